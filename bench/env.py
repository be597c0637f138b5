"""The benchmark's world: a real Redis, the loopback model server, the stand-in Discord, and the bot.

The bot runs either in this process (``start_bot``, the test harness's start-up path: its timings are on
this process's monotonic clock) or as ``python -m bot`` in a subprocess (``BotProcess``: its own CPU
core and memory, as in production). On Linux ``time.monotonic`` is CLOCK_MONOTONIC, shared by every
process, so stand-in timestamps stay comparable either way: all of them are taken here.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from bot.batch import Batch
from bot.history import HistoryStore, Turn, Window
from bot.keys import Keys
from bot.settings import Secrets, Settings
from tests.standins.discord_standin import DiscordStandin
from tests.standins.model_server import ModelServer
from tests.standins.redis_proxy import RoundTripProxy

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "sk-bench-0123456789"
DISCORD_TOKEN = "bench-token.abc.xyz"
MODEL = "bench-model"

# Realistic sizes: a user asks in ~25 words, the model answers in ~80.
USER_TEXT = "Could you explain how a hash map handles collisions, and when open addressing beats chaining?"
ANSWER_TEXT = (
    "Collisions happen when two keys land in the same slot. Chaining keeps a small list per slot; "
    "open addressing probes for the next free slot instead. Open addressing wins when the table is "
    "kept under about 70% full and entries are small, since probing stays within a few cache lines. "
    "Chaining copes better with high load factors and large entries, and deletions stay simple."
)


def base_config(key_prefix: str) -> dict[str, dict[str, Any]]:
    """What every bench run changes from the production defaults, in the bot's process or in its own."""
    return {
        "model": {"name": MODEL},
        "redis": {"key_prefix": key_prefix},
        "tokens": {"download_encodings": False},
        "logging": {"level": "WARNING"},
    }


def bench_settings(redis_url: str, model_url: str, key_prefix: str, **sections: dict[str, Any]) -> Settings:
    """Production defaults, pointed at the bench's servers; ``sections`` change single keys."""
    base = Settings(
        secrets=Secrets(
            discord_token=DISCORD_TOKEN, openai_api_key=API_KEY, openai_base_url=model_url, redis_url=redis_url
        ),
        base_dir=Path(tempfile.gettempdir()),
    )
    defaults = base_config(key_prefix)
    for name, values in sections.items():
        defaults[name] = {**defaults.get(name, {}), **values}
    changed = {name: dataclasses.replace(getattr(base, name), **values) for name, values in defaults.items()}
    return dataclasses.replace(base, **changed)


def new_prefix() -> str:
    return f"bench-{uuid.uuid4().hex[:10]}"


def history_turns(count: int, author_id: int) -> list[Turn]:
    """``count`` stored turns alternating user/assistant, with plausible token counts."""
    turns = []
    for i in range(count):
        if i % 2 == 0:
            turns.append(Turn("user", f"{USER_TEXT} (#{i})", 30, name="alice", author_id=author_id, message_id=i + 1))
        else:
            turns.append(Turn("assistant", ANSWER_TEXT, 75))
    return turns


async def seed_history(
    client: aioredis.Redis, key_prefix: str, conversations: list[int], turns: int, *, author_id: int = 1
) -> None:
    """Store ``turns`` turns in each conversation through the history store's own append script, in
    pipelined batches (seeding 10,000 conversations must not take a round trip each)."""
    store = HistoryStore(Keys(key_prefix), max_messages=max(turns, 1), ttl_days=1.0, cache_size=0)
    stored = history_turns(turns, author_id)
    empty = Window((), None)
    for start in range(0, len(conversations), 500):
        batch = Batch(client)
        for conversation_id in conversations[start : start + 500]:
            batch.add(store.queue_append(conversation_id, empty, stored))
        await batch.execute()


async def delete_prefix(client: aioredis.Redis, key_prefix: str) -> None:
    keys = [key async for key in client.scan_iter(match=f"{key_prefix}:*", count=5000)]
    for start in range(0, len(keys), 5000):
        await client.delete(*keys[start : start + 5000])


async def command_calls(client: aioredis.Redis) -> int:
    """Commands the server has executed so far (INFO commandstats; scripts' inner calls included)."""
    stats = await client.info("commandstats")
    return sum(int(entry["calls"]) for entry in stats.values())


@contextlib.asynccontextmanager
async def counting_proxy(redis_url: str) -> AsyncIterator[RoundTripProxy]:
    from urllib.parse import urlparse

    parsed = urlparse(redis_url)
    if parsed.scheme == "unix":
        proxy = await RoundTripProxy(unix_socket=parsed.path).start()
    else:
        proxy = await RoundTripProxy(host=parsed.hostname, port=parsed.port or 6379).start()
    try:
        yield proxy
    finally:
        await proxy.close()


@contextlib.asynccontextmanager
async def servers(
    model_latency: float = 0.0, *, shards: int = 1, model_thread: bool = False
) -> AsyncIterator[tuple[DiscordStandin, ModelServer]]:
    """The stand-in Discord and the model server. ``model_thread``: the model server on its own event
    loop in a thread (see ``model_in_thread``)."""
    model_server = model_in_thread if model_thread else ModelServer
    async with (
        DiscordStandin(token=DISCORD_TOKEN, shards=shards) as dc,
        model_server(api_key=API_KEY, models=(MODEL,), latency=model_latency) as model,
    ):
        yield dc, model


@contextlib.asynccontextmanager
async def model_in_thread(**options: Any) -> AsyncIterator[ModelServer]:
    """A ModelServer on its own event loop in a thread. Streaming a thousand answers keeps a loop busy
    for long stretches; on this loop the stand-in Discord would then read requests late and stamp
    them together, counting requests the bot sent spread out as one burst against the global limit.
    In its own thread the model server takes turns with Discord's loop at the interpreter's switch
    interval (5 ms) instead. Its records (``requests``) are read from here once the run is over."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="bench-model-server", daemon=True)
    thread.start()

    def on_model_loop(coroutine: Any) -> asyncio.Future[Any]:
        return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, loop))

    async def start() -> ModelServer:
        return await ModelServer(**options).start()

    try:
        model = await on_model_loop(start())
        try:
            yield model
        finally:
            await on_model_loop(model.close())
    finally:
        loop.call_soon_threadsafe(loop.stop)
        await asyncio.to_thread(thread.join)
        loop.close()


@dataclasses.dataclass
class Guild:
    guild_id: int
    channels: list[int]
    alice: dict[str, Any]


def build_guild(
    dc: DiscordStandin, channels: int, *, guild_id: int | None = None, alice: dict[str, Any] | None = None
) -> Guild:
    """A guild (``guild_id``: e.g. one on a given shard) with ``channels`` text channels and alice in it."""
    alice = alice or dc.add_user("alice")
    guild_id = int(dc.add_guild("Bench", owner_id=int(alice["id"]), guild_id=guild_id)["id"])
    dc.add_member(guild_id, alice)
    ids = [int(dc.add_text_channel(guild_id, f"c{i}")["id"]) for i in range(channels)]
    return Guild(guild_id, ids, alice)


class BotProcess:
    """``python -m bot`` in a subprocess, configured through a config file and the environment, exactly
    as deployed. ``peak_rss_kib`` reads the kernel's high-water mark (VmHWM) while it still runs."""

    def __init__(
        self,
        settings: Settings,
        dc: DiscordStandin,
        config: dict[str, dict[str, Any]],
        *,
        env: dict[str, str] | None = None,  # more environment, e.g. SHARD_COUNT and SHARD_IDS
    ) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="bench-bot-"))
        (self.folder / "config.toml").write_text(_toml(config))
        secrets = settings.secrets
        self.env = {
            **os.environ,
            "DISCORD_TOKEN": secrets.discord_token,
            "OPENAI_API_KEY": secrets.openai_api_key,
            "OPENAI_BASE_URL": secrets.openai_base_url or "",
            "REDIS_URL": secrets.redis_url or "",
            "DISCORD_API_BASE": dc.api_base,
            "DISCORD_GATEWAY_URL": dc.gateway_url,
            "PYTHONPATH": str(ROOT),
            **(env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None

    async def __aenter__(self) -> BotProcess:
        self.process = await asyncio.to_thread(self._spawn)
        return self

    def _spawn(self) -> subprocess.Popen[bytes]:
        with open(self.folder / "stderr.log", "wb") as stderr:  # the child keeps its own descriptor
            return subprocess.Popen(
                [sys.executable, "-m", "bot", "--config", str(self.folder / "config.toml")],
                cwd=ROOT,
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )

    async def __aexit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                await asyncio.to_thread(self.process.wait, 10)
            except subprocess.TimeoutExpired:
                self.process.kill()  # SIGKILL cannot be ignored: this wait is short
                await asyncio.to_thread(self.process.wait)

    def peak_rss_kib(self) -> int:
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        raise RuntimeError("VmHWM not found (Linux only)")

    def stderr(self) -> str:
        return (self.folder / "stderr.log").read_text(errors="replace")[-4000:]


def _toml(config: dict[str, dict[str, Any]]) -> str:
    lines = []
    for section, values in config.items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            if isinstance(value, bool):
                lines.append(f"{key} = {'true' if value else 'false'}")
            elif isinstance(value, str):
                lines.append(f'{key} = "{value}"')
            else:
                lines.append(f"{key} = {value}")
    return "\n".join(lines) + "\n"
