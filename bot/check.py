"""``python -m bot check``: try every outside dependency once and say, one line each, what works.

Checks the Discord token (a REST login: the bot's name, an invite URL, the application's intent
flags), Redis (ping, version, persistence), the chat model and the transcription model. Exit code 0
when every check passes, 1 otherwise. Secrets are never printed: every line is scrubbed of them.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
import wave
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TextIO
from urllib.parse import urlsplit

import discord
import openai
from discord.http import Route
from redis.exceptions import RedisClusterException, RedisError

from bot.app import UNREACHABLE, discord_failure, intents_for, use_discord_endpoints
from bot.catalog import DEFAULT_PROVIDER, ModelOption, offered_models
from bot.deployment import discord_site
from bot.errors import ConfigError, ModelTimeout, ModelUnavailable
from bot.llm import build_client, model_error
from bot.reachability import network_cause
from bot.services import build_speech_client, build_transcription_client
from bot.settings import Settings, SpokenReply
from bot.storage import open_redis

CHECK_TIMEOUT_S = 15.0
SCOPES = ("bot", "applications.commands")
# What the bot does in a channel: read it, answer (also in threads), see what it replies to, answer
# voice messages with voice messages, and open a thread for /chat. Voice messages need no Attach
# Files, and it sends no other files, so that is not asked for.
PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    send_messages_in_threads=True,
    read_message_history=True,
    send_voice_messages=True,
    create_public_threads=True,
)
# Privileged intents and the application flags that grant them (either the full or the "limited" flag).
PRIVILEGED = {
    "message_content": ("gateway_message_content", "gateway_message_content_limited"),
    "members": ("gateway_guild_members", "gateway_guild_members_limited"),
    "presences": ("gateway_presence", "gateway_presence_limited"),
}


class CheckFailed(Exception):
    """A check's failure, in words for the operator."""


@dataclass
class Report:
    out: TextIO
    secrets: tuple[str, ...]
    failed: list[str] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)
    _notes: list[tuple[str, str, str]] = field(default_factory=list)

    def note(self, status: str, name: str, text: str) -> None:
        """A detail or warning, printed under the check's own line."""
        self._notes.append((status, name, text))

    def line(self, status: str, name: str, text: str) -> None:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        print(f"{status:<5} {name:<14} {text}", file=self.out, flush=True)

    async def run(self, name: str, check: Callable[[], Awaitable[str]]) -> None:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                text = await check()
        except TimeoutError:
            self.failed.append(name)
            self.line("FAIL", name, f"no answer within {CHECK_TIMEOUT_S:.0f} s")
        except CheckFailed as exc:
            self.failed.append(name)
            self.line("FAIL", name, str(exc))
        else:
            self.passed.append(name)
            self.line("PASS", name, text)
        for note in self._notes:
            self.line(*note)
        self._notes.clear()


async def run_checks(settings: Settings, config_path: str, out: TextIO) -> int:
    """Run every check, print a line for each and a summary; return the exit code (0 all passed, else 1)."""
    if not logging.getLogger().isEnabledFor(logging.DEBUG):  # client chatter is not a result
        for name in ("discord", "httpx", "httpx2", "bot.storage"):
            logging.getLogger(name).setLevel(logging.ERROR)
    secrets = settings.secrets
    report = Report(
        out,
        tuple(
            s
            for s in (
                secrets.discord_token,
                secrets.openai_api_key,
                secrets.transcription_api_key,
                secrets.tts_api_key,
                *(key for _, key in secrets.provider_keys),
            )
            if s
        ),
    )
    report.line("PASS", "config", f"{config_path} and the environment are valid")
    await report.run("discord", lambda: check_discord(settings, report))
    await report.run("redis", lambda: check_redis(settings, report))
    for option in offered_models(settings.model, settings.models):  # every model /model offers
        await report.run("model", lambda option=option: check_model(settings, option))
    if settings.voice.enabled:
        await report.run("transcription", lambda: check_transcription(settings, report))
    else:
        report.line("SKIP", "transcription", "voice messages are off (voice.enabled = false)")
    if settings.voice.enabled and settings.voice.reply is not SpokenReply.TEXT:
        await report.run("speech", lambda: check_speech(settings))
    else:
        report.line("SKIP", "speech", "spoken replies are off (voice.reply = text, or voice.enabled = false)")
    if report.failed:
        print(f"{len(report.failed)} check(s) failed: {', '.join(report.failed)}.", file=out)
        return 1
    print(f"All {len(report.passed) + 1} checks passed.", file=out)
    return 0


async def check_discord(settings: Settings, report: Report) -> str:
    secrets = settings.secrets
    use_discord_endpoints(secrets.discord_api_base, secrets.discord_gateway_url)
    async with discord.Client(intents=intents_for(settings)) as client:
        timeout_s = settings.discord.connect_timeout_s
        try:
            async with asyncio.timeout(timeout_s):
                await client.login(secrets.discord_token)
                app = await client.application_info()
        except discord.LoginFailure:
            raise CheckFailed("Discord rejected DISCORD_TOKEN (401): copy the token again from the portal") from None
        except (*UNREACHABLE, discord.HTTPException) as exc:
            cause, _ = discord_failure(exc, timeout_s=timeout_s)  # the words `python -m bot` logs
            raise CheckFailed(f"cannot log in to Discord at {Route.BASE}: {cause}") from None
        assert client.user is not None
    name = f"{client.user} (id {client.user.id})"
    url = invite_url(app.id, secrets.discord_api_base)
    report.note("", "invite", url)
    status, check, text = intents_line(app.flags, intents_for(settings))
    if status == "WARN":  # Discord would refuse the gateway connection (4014): the bot cannot run
        raise CheckFailed(f"logged in as {name}, but {text}")
    report.note(status, check, text)
    return f"logged in as {name}"


def invite_url(app_id: int, api_base: str | None) -> str:
    """The invite link, on the Discord-compatible server's own site when DISCORD_API_BASE is set."""
    url = discord.utils.oauth_url(app_id, permissions=PERMISSIONS, scopes=SCOPES)
    return url.replace("https://discord.com", discord_site(api_base), 1)


def intents_line(flags: discord.ApplicationFlags, intents: discord.Intents) -> tuple[str, str, str]:
    """Whether the portal grants every privileged intent the bot asks for: Message Content only with
    ``[discord] message_content = true``, which Discord refuses at connect (4014) if not granted."""
    enabled = [intent for intent, names in PRIVILEGED.items() if any(getattr(flags, n) for n in names)]
    needed = [intent for intent in PRIVILEGED if getattr(intents, intent)]
    missing = [intent for intent in needed if intent not in enabled]
    granted = ", ".join(enabled) or "none"
    if missing:
        return (
            "WARN",
            "intents",
            f"the bot asks for {', '.join(missing)} but the portal does not grant it: enable it under Bot > "
            f"Privileged Gateway Intents, or set [discord] message_content = false (granted: {granted})",
        )
    if needed:
        return "", "intents", f"the portal grants {', '.join(needed)}, which the bot asks for (granted: {granted})"
    hint = " (threads answer only mentions and replies)" if "message_content" not in enabled else ""
    return "", "intents", f"no privileged intent needed (the portal grants: {granted}){hint}"


async def check_redis(settings: Settings, report: Report) -> str:
    secrets = settings.secrets
    try:
        async with open_redis(secrets.redis_url, settings.resolve_path(settings.redis.data_dir)) as handle:
            started = time.perf_counter()
            await handle.client.ping()
            latency_ms = (time.perf_counter() - started) * 1000
            server = _one_node(await handle.client.info("server"))
            persistence = _one_node(await handle.client.info("persistence"))
    except ConfigError as exc:
        raise CheckFailed(str(exc)) from None
    except (RedisError, RedisClusterException, OSError) as exc:  # a cluster's is not a RedisError
        where = where_is(secrets.redis_url) if secrets.redis_url else "embedded"
        detail = " ".join(str(exc).split())  # one line, whatever redis-py put in it
        raise CheckFailed(f"cannot reach Redis at {where}: {type(exc).__name__}: {detail}") from None
    if not int(persistence.get("aof_enabled", 0)):
        report.note("WARN", "redis", "AOF is off: a restart loses recent history (set appendonly yes)")
    return f"Redis {server.get('redis_version', '?')} at {handle.description}, ping {latency_ms:.1f} ms"


def _one_node(info: dict[str, Any]) -> dict[str, Any]:
    """A cluster client answers INFO per node (``{"host:port": {...}}``); report the first one."""
    first = next(iter(info.values()), None)
    return first if isinstance(first, dict) else info


async def check_model(settings: Settings, option: ModelOption) -> str:
    secrets = settings.secrets
    if option.provider == DEFAULT_PROVIDER:
        client = build_client(settings.model, secrets.openai_api_key, secrets.openai_base_url)
        key_name = "OPENAI_API_KEY"
    else:
        provider = next(p for p in settings.providers if p.name == option.provider)
        client = build_client(settings.model, secrets.provider_key(provider.name), provider.base_url)
        key_name = provider.api_key_env or "no key"
    async with client:
        return await _model_offered(client.with_options(max_retries=0), option.name, key_name)


async def check_transcription(settings: Settings, report: Report) -> str:
    secrets = settings.secrets
    own = build_transcription_client(settings)
    client = own or build_client(settings.model, secrets.openai_api_key, secrets.openai_base_url)
    key_name = "TRANSCRIPTION_API_KEY" if own is not None else "OPENAI_API_KEY"
    async with client:
        client = client.with_options(max_retries=0)
        await _model_offered(client, settings.voice.model, key_name, chat=False)  # fails if listed elsewhere
        return await _transcribes(client, settings.voice.model, key_name)


TEST_CLIP_S = 0.5


def silent_wav(seconds: float = TEST_CLIP_S, rate: int = 16_000) -> bytes:
    """A short, silent, real WAV file (16-bit mono PCM): any transcription server can read it."""
    out = io.BytesIO()
    with wave.open(out, "wb") as clip:
        clip.setnchannels(1)
        clip.setsampwidth(2)
        clip.setframerate(rate)
        clip.writeframes(b"\x00\x00" * int(seconds * rate))
    return out.getvalue()


async def _transcribes(client: openai.AsyncOpenAI, model: str, key_name: str) -> str:
    """A real transcription of a tiny silent clip: what voice messages need, whatever models the server
    lists (a chat request would pass on a server with no audio endpoint)."""
    where = where_is(str(client.base_url))
    with _model_errors(where, key_name, f"a {model} transcription"):
        await client.audio.transcriptions.create(model=model, file=("check.wav", silent_wav(), "audio/wav"))
    return f"{model} transcribed a {TEST_CLIP_S:g} s test clip at {where}"


async def check_speech(settings: Settings) -> str:
    """The speech model for spoken replies, on TTS_BASE_URL or the chat model's server."""
    secrets = settings.secrets
    own = build_speech_client(settings)
    client = own or build_client(settings.model, secrets.openai_api_key, secrets.openai_base_url)
    key_name = "TTS_API_KEY" if own is not None else "OPENAI_API_KEY"
    async with client:
        return await _model_offered(client.with_options(max_retries=0), settings.voice.tts_model, key_name, chat=False)


async def _model_offered(client: openai.AsyncOpenAI, model: str, key_name: str, *, chat: bool = True) -> str:
    """The server lists its models; a server that cannot list them gets a 1-token request instead
    (chat models; a speech server that lists none is taken at its word)."""
    where = where_is(str(client.base_url))
    with _model_errors(where, key_name, model):
        try:
            offered = [m.id async for m in client.models.list()]
        except openai.NotFoundError:
            if not chat:
                return f"{where} lists no models: {model} is not checked"
            await client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "ping"}], max_completion_tokens=1
            )
            return f"{model} answered a 1-token request at {where}"
    if model not in offered:
        shown = ", ".join(sorted(offered)[:10]) + (", …" if len(offered) > 10 else "")
        raise CheckFailed(f"{model} is not offered at {where} (it offers: {shown or 'nothing'})")
    return f"{model} is offered at {where}"


@contextmanager
def _model_errors(where: str, key_name: str, what: str) -> Iterator[None]:
    """The SDK's errors as one line each, classified as a chat turn classifies them (bot/llm.py): a
    refused connection or a name that does not resolve is "cannot reach", not the SDK's timeout."""
    try:
        yield
    except openai.AuthenticationError:
        raise CheckFailed(f"the server at {where} rejected {key_name} (401)") from None
    except openai.APIStatusError as exc:
        body = exc.body if isinstance(exc.body, dict) else {}
        said = f": {body['message']}" if isinstance(body.get("message"), str) else ""
        raise CheckFailed(f"the server at {where} answered {exc.status_code} for {what}{said}") from None
    except openai.APIError as exc:
        error = model_error(exc)
        cause = network_cause(exc) if isinstance(error, ModelUnavailable | ModelTimeout) else None
        raise CheckFailed(f"cannot reach {where}: {cause or error}") from None


def where_is(url: str) -> str:
    """A server's URL without the user name or password it may hold."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}{parts.path}"
