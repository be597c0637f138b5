"""End-to-end harness: the project's own start-up code runs the real discord.py client against the
stand-in Discord, with the test's Redis prefix and the loopback model server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.app import ChatBot
from bot.services import open_services
from bot.settings import Settings
from tests.conftest import TEST_API_KEY, TEST_DISCORD_TOKEN, replace_settings
from tests.standins.discord_fixtures import point_discord_at, running_bot
from tests.standins.discord_standin import DiscordStandin
from tests.standins.model_server import ModelServer

# Permission bits used by tests.
MANAGE_CHANNELS = 1 << 4
MANAGE_GUILD = 1 << 5
MANAGE_MESSAGES = 1 << 13
SEND_MESSAGES = 1 << 11
CREATE_PUBLIC_THREADS = 1 << 35


DEFERRED = 5  # interaction callback type: "thinking…", a follow-up comes later
EPHEMERAL = 1 << 6


@dataclass
class Response:
    """What an interaction answered: the callback type and its message data (content, flags...)."""

    type: int
    data: dict[str, Any]

    @property
    def content(self) -> str:
        return self.data.get("content") or ""

    @property
    def ephemeral(self) -> bool:
        return bool(self.data.get("flags", 0) & EPHEMERAL)


@dataclass
class World:
    """A small Discord: one guild with a channel and a thread, two members, a DM channel."""

    guild_id: int
    channel_id: int
    thread_id: int
    dm_channel_id: int
    alice: dict[str, Any]
    bob: dict[str, Any]


def build_world(dc: DiscordStandin) -> World:
    alice, bob = dc.add_user("alice"), dc.add_user("bob")
    guild = dc.add_guild("Testers", owner_id=int(alice["id"]))
    guild_id = int(guild["id"])
    dc.add_member(guild_id, alice)
    dc.add_member(guild_id, bob, nick="Bobby")
    channel_id = int(dc.add_text_channel(guild_id, "general")["id"])
    thread_id = int(dc.add_thread(channel_id, "side quest", owner_id=int(bob["id"]))["id"])
    dm_channel_id = int(dc.open_dm(alice)["id"])
    return World(guild_id, channel_id, thread_id, dm_channel_id, alice, bob)


class Chat:
    """Drives one running bot: say things, wait for answers."""

    def __init__(self, dc: DiscordStandin, model: ModelServer, bot: ChatBot, world: World) -> None:
        self.dc = dc
        self.model = model
        self.bot = bot
        self.world = world

    @property
    def me(self) -> dict[str, Any]:
        return self.dc.bot_user

    async def mention(self, channel_id: int, text: str, *, author: dict[str, Any] | None = None) -> dict[str, Any]:
        """``@bot text`` in a guild channel or thread."""
        return await self.dc.post_message(
            channel_id, author or self.world.alice, f"<@{self.me['id']}> {text}", mentions=[self.me]
        )

    async def answer(self, channel_id: int, expected: str, *, timeout: float = 5.0) -> dict[str, Any]:
        """Wait until the bot's messages in the channel show ``expected`` as their last content."""

        def shows(request: Any) -> bool:
            return request.channel_id == channel_id and _content(request) == expected

        await self.dc.wait_for(shows, timeout=timeout)
        await self.settled(channel_id)
        return self.dc.bot_messages(channel_id)[-1]

    async def settled(self, conversation_id: int) -> None:
        """Wait for the conversation's turn in progress to end. An answer complete before its first
        slot is posted whole, and then stored: what a test reads after seeing it must be stored."""
        async with self.bot.services.chat.locks.hold(conversation_id):  # FIFO: after the turn
            pass

    async def command(
        self,
        name: str,
        *,
        user: dict[str, Any] | None = None,
        channel_id: int | None = None,
        subcommand: str | None = None,
        options: dict[str, Any] | None = None,
        permissions: int | None = 0,
    ) -> Response:
        """Run a slash command like a member with ``permissions`` (bits) in the channel; return what
        the user sees: the immediate response, or the follow-up after a deferral."""
        payload = await self.dc.send_command(
            name,
            user=user or self.world.alice,
            channel_id=channel_id or self.world.channel_id,
            subcommand=subcommand,
            options=options,
            permissions=permissions,
        )
        return await self.response_to(payload)

    async def response_to(self, payload: dict[str, Any]) -> Response:
        marker = f"/{payload['id']}/{payload['token']}/"
        callback = await self.dc.wait_for(lambda r: r.route == "interaction_callback" and marker in r.path)
        if callback.json["type"] != DEFERRED:
            return Response(callback.json["type"], callback.json.get("data") or {})
        token = f"/{payload['token']}"
        followup = await self.dc.wait_for(
            lambda r: r.route in ("followup", "edit_original") and token in r.path, start=callback.index
        )
        return Response(DEFERRED, followup.json)

    async def stored_turns(self, conversation_id: int) -> list[dict[str, Any]]:
        redis = self.bot.services.redis
        raw = await redis.lrange(self.bot.services.keys.turns(conversation_id), 0, -1)
        return [json.loads(item) for item in raw]


def _content(request: Any) -> str | None:
    body = request.json if isinstance(request.json, dict) else None
    return body.get("content") if body else None


def bot_settings(settings: Settings, dc: DiscordStandin) -> Settings:
    return replace_settings(settings, secrets={"discord_api_base": dc.api_base, "discord_gateway_url": dc.gateway_url})


@contextlib.asynccontextmanager
async def start_bot(settings: Settings, dc: DiscordStandin) -> AsyncIterator[ChatBot]:
    """The start-up path of ``python -m bot``: open services, build the Bot, connect, wait for ready."""
    settings = bot_settings(settings, dc)
    with point_discord_at(dc):  # restores discord.py's class attributes afterwards
        async with open_services(settings) as services, ChatBot(services, guild_ready_timeout=0.05) as bot:
            async with running_bot(bot, settings.secrets.discord_token):
                yield bot


# ---- the bot as a real process (python -m bot) ----------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent


def write_config(folder: Path, key_prefix: str) -> Path:
    """A config.toml for a bot process under test (its data folder, if any, lands next to it)."""
    path = folder / "config.toml"
    path.write_text(
        f'[model]\nname = "test-model"\n\n[redis]\nkey_prefix = "{key_prefix}"\n\n'
        "[tokens]\ndownload_encodings = false\n\n[stream]\nedit_interval_s = 0.05\n",
        encoding="utf-8",
    )
    return path


def bot_env(dc: DiscordStandin, model: ModelServer, redis_url: str | None) -> dict[str, str]:
    """The environment of a bot process: the stand-ins, and REDIS_URL unless the embedded Redis is wanted."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DISCORD_TOKEN": TEST_DISCORD_TOKEN,
        "OPENAI_API_KEY": TEST_API_KEY,
        "OPENAI_BASE_URL": model.base_url,
        "DISCORD_API_BASE": dc.api_base,
        "DISCORD_GATEWAY_URL": dc.gateway_url,
        "TIKTOKEN_CACHE_DIR": os.environ["TIKTOKEN_CACHE_DIR"],
    }
    return env | ({"REDIS_URL": redis_url} if redis_url else {})


# Every bot process a test starts; the ``stray_bot_processes`` fixture (conftest) stops those still
# running after the test, whatever ended it: a failure, or pytest-timeout interrupting the event loop
# (the test's own ``finally`` cannot await then).
_started: list[BotProcess] = []
STOP_TIMEOUT_S = 15.0  # the bot gives a hung close 5 s (bot/__main__.py STOP_GRACE_S)


class BotProcess:
    """A ``python -m bot`` process, with the part of asyncio's Process API the tests use.

    It is a plain ``subprocess.Popen``, not an asyncio subprocess: asyncio SIGKILLs its children when
    their loop closes (as after a pytest-timeout), which would leave the bot's embedded Redis running.
    Its output (stdout and stderr together) goes to a file, not a pipe, so a bot nobody reads from
    can never block on a full pipe. ``communicate()`` returns ``(output, None)``."""

    def __init__(self, popen: subprocess.Popen[bytes], output: Path) -> None:
        self._popen = popen
        self.output_path = output

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def returncode(self) -> int | None:
        return self._popen.poll()

    def send_signal(self, sig: int) -> None:
        self._popen.send_signal(sig)

    def terminate(self) -> None:
        self._popen.terminate()

    def kill(self) -> None:
        self._popen.kill()

    async def wait(self) -> int:
        # Polled: a Popen offers no event, and a thread blocked in wait() would hold up the loop's closing.
        while (code := self._popen.poll()) is None:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        return code

    async def communicate(self) -> tuple[bytes, None]:
        """Wait for it to exit; its whole output."""
        await self.wait()
        return self.output(), None

    def output(self) -> bytes:
        """What it has written so far."""
        return self.output_path.read_bytes()


async def start_bot_process(*args: str, env: dict[str, str], python: Sequence[str] = ("-m", "bot")) -> BotProcess:
    """``python -m bot *args`` (or ``python *python *args``), its output collected in a file."""
    descriptor, name = tempfile.mkstemp(prefix="bot-output-", suffix=".log")

    def spawn() -> subprocess.Popen[bytes]:
        with os.fdopen(descriptor, "wb") as output:  # the child keeps its own copy of the descriptor
            return subprocess.Popen(
                [sys.executable, *python, *args], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                stdout=output, stderr=subprocess.STDOUT,
            )  # fmt: skip

    started = BotProcess(await asyncio.to_thread(spawn), Path(name))
    _started.append(started)
    return started


async def stop_bot_process(process: BotProcess) -> None:
    """For a test's ``finally``: SIGTERM, so the bot also stops its embedded Redis; SIGKILL if it has
    not exited within a bound."""
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
    try:
        await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()


def stop_stray_bot_processes() -> list[int]:
    """SIGTERM every bot process a test started that still runs (so it stops its embedded Redis), SIGKILL
    past a bound; return their pids. Works without an event loop: the test's may be gone."""
    stray = [process for process in _started if process.returncode is None]
    _started.clear()
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for process in stray:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(sig)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while any(process.returncode is None for process in stray) and time.monotonic() < deadline:
            time.sleep(0.05)  # a process exiting has no event to wait on outside a loop
    return [process.pid for process in stray]
