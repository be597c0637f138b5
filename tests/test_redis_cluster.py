"""The storage layer on a real 3-node Redis Cluster: every script and multi-key command stays within one
hash slot, and pipelines spanning slots (a turn's reads, usage for a guild and a user) still work."""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot

from bot.conversation import ChatRequest, TurnDone
from bot.errors import DuplicateMessage, TooManyTurns
from bot.keys import Keys
from bot.llm import Usage, build_client
from bot.personas import Scope
from bot.services import Services, build_services
from bot.settings import Price
from bot.storage import open_redis
from tests.conftest import needs_server_binary
from tests.standins.model_server import ModelServer
from tests.standins.redis_cluster import redis_cluster

ROOT = Path(__file__).resolve().parent.parent
_ids = itertools.count(90_000)
NOW = dt.datetime(2026, 5, 4, 12, tzinfo=dt.UTC)


pytestmark = needs_server_binary


@pytest.fixture(scope="module")
def cluster_ports() -> Iterator[list[int]]:
    with redis_cluster(3) as ports:
        yield ports


@pytest.fixture
async def cluster_services(cluster_ports, make_settings, token_counter, tmp_path) -> AsyncIterator[Services]:
    """Services built exactly as at start-up, from a ``redis+cluster://`` REDIS_URL."""
    settings = make_settings(
        limits={"user_turns": 2, "user_window_s": 60.0},
        usage={"prices": (Price("test-model", input_per_million=1.0, output_per_million=2.0),)},
    )
    async with open_redis(f"redis+cluster://127.0.0.1:{cluster_ports[1]}", tmp_path) as handle:
        assert handle.description == "REDIS_URL (cluster)"
        client = build_client(settings.model, settings.secrets.openai_api_key, settings.secrets.openai_base_url)
        try:
            yield build_services(settings, handle.client, client, token_counter, clock=lambda: NOW)
        finally:
            await client.close()


def request(text: str, *, channel: int, guild: int | None = 1, user: int | None = None) -> ChatRequest:
    """A new message; by default from a new user, so the rate limit (2 a minute) stays out of the way."""
    user = user if user is not None else next(_ids)
    return ChatRequest(
        conversation_id=channel,
        guild_id=guild,
        author_id=user,
        author_name=f"user{user}",
        message_id=next(_ids),
        text=text,
    )


async def turn(services: Services, req: ChatRequest) -> TurnDone:
    events = [event async for event in services.chat.turn(req)]
    assert isinstance(events[-1], TurnDone)
    return events[-1]


def test_every_key_of_a_conversation_guild_or_user_shares_one_slot() -> None:
    keys = Keys("dcb")
    groups = [
        (keys.turns(123), keys.version(123)),
        (keys.rate(7), keys.rate_notice(7)),
        (keys.personas(5),),
        (keys.guild_usage(5, "2026-05-04"), keys.guild_usage(5, "2026-05-03")),
    ]
    for group in groups:
        assert len({key_slot(k.encode()) for k in group}) == 1, group


def test_every_script_names_only_keys_passed_to_it() -> None:
    """A Lua script may only touch KEYS[n] (a cluster routes it by them), never build key names itself."""
    sources = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "bot").glob("*.py"))
    scripts = re.findall(r'_LUA = """(.*?)"""', sources, flags=re.S)
    assert len(scripts) >= 3
    for script in scripts:
        for call in re.findall(r"redis\.call\('\w+', ([^,)]+)", script):
            assert call.startswith("KEYS["), (call, script)


async def test_history_turns_and_forget_on_a_cluster(cluster_services: Services, model_server: ModelServer) -> None:
    channels = [1_000 + n for n in range(6)]  # several conversations: their keys land on different nodes
    for channel in channels:
        assert (await turn(cluster_services, request(f"hello {channel}", channel=channel))).text
        done = await turn(cluster_services, request(f"again {channel}", channel=channel))
        assert done.text == f"echo: again {channel}"
    last = model_server.requests[-1]
    assert [m["content"] for m in last.messages[1:]] == [
        f"hello {channels[-1]}",
        f"echo: hello {channels[-1]}",
        f"again {channels[-1]}",
    ]
    redis = cluster_services.redis
    assert await redis.llen(cluster_services.keys.turns(channels[0])) == 4
    assert await cluster_services.chat.forget(channels[0]) == 4
    assert await redis.exists(cluster_services.keys.turns(channels[0]), cluster_services.keys.version(channels[0])) == 0
    # A fresh service (empty cache) reads the other conversations back from the cluster.
    cluster_services.history._cache.clear()
    await turn(cluster_services, request("third", channel=channels[1]))
    assert len(model_server.requests[-1].messages) == 1 + 4 + 1


async def test_personas_on_a_cluster(cluster_services: Services) -> None:
    personas = cluster_services.personas
    await personas.choose(11, "joker", Scope.GUILD, channel_id=1)
    await personas.choose(11, "assistant", Scope.CHANNEL, channel_id=2)
    assert (await personas.active(11, 1)).name == "joker"
    assert (await personas.active(11, 2)).name == "assistant"
    await personas.save_custom(12, "Talk like a pirate.")
    assert await personas.custom_prompt(12) == "Talk like a pirate."
    assert (await personas.active(12, 3)).prompt == "Talk like a pirate."
    assert await personas.reset(11, Scope.GUILD, channel_id=1)
    assert (await personas.active(11, 1)).name == "assistant"


async def test_usage_duplicates_and_rate_limit_on_a_cluster(cluster_services: Services, model_server) -> None:
    usage, limits = cluster_services.usage, cluster_services.limits
    await usage.record(guild_id=21, user_id=31, model="test-model", day="2026-05-04", usage=Usage(1000, 500))
    await usage.record(guild_id=21, user_id=32, model="test-model", day="2026-05-04", usage=Usage(10, 5))
    [(day, guild_totals)] = await usage.report(today=NOW.date(), days=1, guild_id=21)
    assert day == NOW.date()
    assert (guild_totals.input_tokens, guild_totals.output_tokens, guild_totals.requests) == (1010, 505, 2)
    assert guild_totals.cost == pytest.approx(1010 / 1e6 + 505 * 2 / 1e6)
    report = await usage.report(today=NOW.date(), days=3, user_id=31)
    assert [totals.tokens for _, totals in report] == [1500, 0, 0]

    # A voice message's admission: claim, rate window and budgets in one pipeline over three slots.
    await limits.admit(usage, message_id=555, guild_id=21, user_id=32, now=NOW)
    with pytest.raises(DuplicateMessage):
        await limits.admit(usage, message_id=555, guild_id=21, user_id=32, now=NOW)

    # Two turns per minute: the third is refused, from the same pipeline that reads history and persona.
    for n in range(2):
        await turn(cluster_services, request(f"turn {n}", channel=4_000 + n, user=77))
    with pytest.raises(TooManyTurns):
        await turn(cluster_services, request("one too many", channel=4_100, user=77))
    [(_, totals)] = await usage.report(today=NOW.date(), days=1, user_id=77)
    assert totals.requests == 2


async def test_a_cluster_client_reaches_every_node(cluster_ports, tmp_path) -> None:
    async with open_redis(f"redis+cluster://127.0.0.1:{cluster_ports[0]}", tmp_path) as handle:
        client: aioredis.Redis = handle.client
        keys = [f"spread:{{{n}}}" for n in range(30)]
        for key in keys:
            await client.set(key, "1")
        nodes = {client.get_node_from_key(key).port for key in keys}  # type: ignore[attr-defined]
        assert nodes == set(cluster_ports)
        await client.delete(*keys)
