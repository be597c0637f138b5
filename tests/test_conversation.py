"""The chat turn against a real Redis and the loopback model server (no Discord involved)."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bot.conversation import ChatRequest, TurnDone
from bot.errors import (
    MessageTooLong,
    ModelAuthError,
    ModelError,
    ModelQuotaExceeded,
    ModelRateLimited,
    ModelTimeout,
    ModelUnavailable,
    StorageUnavailable,
    StreamInterrupted,
)
from bot.services import Services
from bot.settings import Persona
from bot.storage import connect
from tests.conftest import replace_settings
from tests.standins.model_server import Cut, Drop, Error, Malformed, ModelServer, Reply, Stall, StallMidStream

CHANNEL = 1001


_message_ids = itertools.count(10_000)


def request(
    text: str, *, conversation: int = CHANNEL, message_id: int | None = None, author: str = "Alice"
) -> ChatRequest:
    """A chat request; Discord message ids are unique, so each gets a fresh one unless given."""
    message_id = message_id if message_id is not None else next(_message_ids)
    return ChatRequest(
        conversation_id=conversation,
        guild_id=500,
        author_id=42,
        author_name=author,
        message_id=message_id,
        text=text,
        bot_name="Helper",
        guild_name="Testers",
    )


async def run_turn(services: Services, req: ChatRequest) -> tuple[list[str], TurnDone]:
    deltas: list[str] = []
    done = None
    async for event in services.chat.turn(req):
        if isinstance(event, TurnDone):
            done = event
        elif isinstance(event, str):
            deltas.append(event)
    assert done is not None
    return deltas, done


async def stored(redis: aioredis.Redis, services: Services, conversation: int = CHANNEL) -> list[dict]:
    return [json.loads(raw) for raw in await redis.lrange(services.keys.turns(conversation), 0, -1)]


async def test_turn_streams_the_answer_and_stores_the_exchange(
    services_factory, model_server: ModelServer, redis: aioredis.Redis
) -> None:
    # The clock is injected: the prompt's date is the turn's, even across UTC midnight.
    services = services_factory(clock=lambda: datetime(2026, 5, 6, 23, 59, 59, tzinfo=UTC))
    model_server.script(Reply("The Moon is about 10,921 km around.", chunk_size=5, usage=(30, 9)))
    deltas, done = await run_turn(services, request("How big is the Moon?", message_id=77))

    assert len(deltas) > 1 and "".join(deltas) == "The Moon is about 10,921 km around."
    assert (done.finish_reason, done.usage.prompt_tokens, done.usage.completion_tokens) == ("stop", 30, 9)
    assert not done.usage.estimated
    [sent] = model_server.requests
    assert sent.messages == [
        {
            "role": "system",
            "content": services.personas.default.prompt.replace("{bot_name}", "Helper")
            .replace("{guild_name}", "Testers")
            .replace("{date}", "2026-05-06"),
        },
        {"role": "user", "content": "How big is the Moon?", "name": "Alice"},
    ]
    assert sent.body["stream"] is True and sent.body["stream_options"] == {"include_usage": True}
    assert sent.body["model"] == "test-model" and "temperature" not in sent.body
    assert sent.api_key == "sk-test-key-0123456789"
    turns = await stored(redis, services)
    assert [(t["role"], t["content"]) for t in turns] == [
        ("user", "How big is the Moon?"),
        ("assistant", "The Moon is about 10,921 km around."),
    ]
    assert turns[0]["name"] == "Alice" and turns[0]["message_id"] == 77 and turns[0]["author_id"] == 42
    counter = services.chat.counter
    assert turns[0]["tokens"] == counter.message("How big is the Moon?", "Alice")
    assert turns[1]["tokens"] == counter.message("The Moon is about 10,921 km around.")
    ttl_ms = await redis.pttl(services.keys.turns(CHANNEL))
    assert 0 < ttl_ms <= services.settings.history.ttl_days * 86_400_000


async def test_second_turn_sends_the_first_exchange_in_order(services: Services, model_server: ModelServer) -> None:
    model_server.script(Reply("It is Earth's Moon."), Reply("About 384,400 km away."))
    await run_turn(services, request("Which moon?", message_id=1))
    await run_turn(services, request("How far is it?", message_id=2, author="Bob"))
    second = model_server.requests[1].messages
    assert second[1:] == [
        {"role": "user", "content": "Which moon?", "name": "Alice"},
        {"role": "assistant", "content": "It is Earth's Moon."},
        {"role": "user", "content": "How far is it?", "name": "Bob"},
    ]


async def test_names_are_made_acceptable_to_the_api(services: Services, model_server: ModelServer) -> None:
    await run_turn(services, request("hi", author="Zoë the 🦊 fox!"))
    await run_turn(services, request("hi", author="小明", message_id=2, conversation=CHANNEL + 1))
    assert model_server.requests[0].messages[-1]["name"] == "Zoe_the_fox"
    assert model_server.requests[1].messages[-1]["name"] == "user_42"


async def test_conversations_are_kept_apart(services: Services, model_server: ModelServer) -> None:
    await run_turn(services, request("in the channel", conversation=1))
    await run_turn(services, request("in the thread", conversation=2))
    assert [m["content"] for m in model_server.requests[1].messages[1:]] == ["in the thread"]


@pytest.mark.parametrize(
    ("behaviour", "error"),
    [
        (Error(401), ModelAuthError),
        (Error.rate_limited(retry_after=7), ModelRateLimited),
        (Error.insufficient_quota(), ModelQuotaExceeded),
        (Error(500), ModelError),
        (Error(404, message="The model does not exist"), ModelError),
        (Stall(10), ModelTimeout),
        (StallMidStream(after_chunks=1, seconds=10), ModelTimeout),
        (Cut(after_chunks=2), StreamInterrupted),
        (Malformed(after_chunks=1), StreamInterrupted),
        (Drop(after_chunks=1), StreamInterrupted),
        (Drop(after_chunks=0), ModelUnavailable),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, type) else v.__name__,
)
async def test_a_failed_call_leaves_history_unchanged(
    services_factory, make_settings, model_server: ModelServer, redis: aioredis.Redis, behaviour, error
) -> None:
    services = services_factory(make_settings(model={"timeout_s": 1.0, "idle_timeout_s": 0.3}))
    await run_turn(services, request("first", message_id=1))
    before = await stored(redis, services)
    model_server.script(behaviour)
    with pytest.raises(error) as raised:
        await run_turn(services, request("second", message_id=2))
    assert raised.value.user_message and "Traceback" not in raised.value.user_message
    assert await stored(redis, services) == before
    # The next turn still works and sees only the first exchange.
    await run_turn(services, request("third", message_id=3))
    assert [m["content"] for m in model_server.requests[-1].messages[1:]] == ["first", "echo: first", "third"]


async def test_rate_limit_message_says_how_long_to_wait(services: Services, model_server: ModelServer) -> None:
    model_server.script(Error.rate_limited(retry_after=7))
    with pytest.raises(ModelRateLimited) as raised:
        await run_turn(services, request("hi"))
    assert "7 s" in raised.value.user_message


async def test_connection_refused_is_model_unavailable(services_factory, make_settings) -> None:
    from tests.standins.model_server import unused_base_url

    settings = make_settings(secrets={"openai_base_url": unused_base_url()})
    with pytest.raises(ModelUnavailable):
        await run_turn(services_factory(settings), request("hi"))


async def test_history_is_trimmed_to_the_token_budget_newest_first(
    services_factory, make_settings, model_server: ModelServer, token_counter
) -> None:
    # Budget: room for the system prompt, the new message and about two earlier turns.
    system = "Be brief."
    budget_tokens = token_counter.message(system) + 3 + 64 + 100
    settings = make_settings(
        personas={"builtin": (Persona("brief", "", system),), "default": "brief"},
        model={"context_window": budget_tokens + 60, "max_reply_tokens": 100},
    )
    services = services_factory(settings)
    for i in range(6):
        model_server.script(Reply(f"answer number {i} " + "word " * 10))
        await run_turn(services, request(f"question number {i} " + "word " * 10, message_id=i + 1))
    last = model_server.requests[-1].messages
    assert last[0]["content"] == system
    assert last[-1]["content"].startswith("question number 5")
    kept = last[1:-1]
    assert 0 < len(kept) < 10, "old turns are dropped, some recent ones kept"
    assert kept[-1]["content"].startswith("answer number 4"), "the newest turns are the ones kept"
    total = sum(token_counter.message(m["content"], m.get("name")) for m in last) + 3
    assert total <= settings.model.context_window - settings.model.max_reply_tokens


async def test_a_message_over_the_budget_is_refused_and_nothing_is_stored(
    services_factory, make_settings, model_server: ModelServer, redis: aioredis.Redis
) -> None:
    services = services_factory(make_settings(model={"context_window": 400, "max_reply_tokens": 100}))
    with pytest.raises(MessageTooLong) as raised:
        await run_turn(services, request("word " * 1000))
    assert raised.value.tokens > raised.value.budget
    assert f"{raised.value.tokens:,}" in raised.value.user_message
    assert f"{raised.value.budget:,}" in raised.value.user_message
    assert model_server.requests == []
    assert await stored(redis, services) == []


async def test_stored_turns_are_capped(
    services_factory, make_settings, model_server: ModelServer, redis: aioredis.Redis
) -> None:
    # Without summaries (with them, turns not yet summarised are kept longer: see test_summary.py).
    services = services_factory(make_settings(history={"max_messages": 4, "summarize": False}))
    for i in range(5):
        await run_turn(services, request(f"q{i}", message_id=i + 1))
    assert [t["content"] for t in await stored(redis, services)] == ["q3", "echo: q3", "q4", "echo: q4"]
    assert [m["content"] for m in model_server.requests[-1].messages[1:]] == ["q2", "echo: q2", "q3", "echo: q3", "q4"]


async def test_a_second_process_sees_writes_made_by_another(services_factory, model_server: ModelServer) -> None:
    first, second = services_factory(), services_factory()
    await run_turn(first, request("one", message_id=1))
    await run_turn(second, request("two", message_id=2))  # second caches the window after its write
    await run_turn(first, request("three", message_id=3))  # first's cached window is stale: must re-read
    assert [m["content"] for m in model_server.requests[-1].messages[1:]] == [
        "one",
        "echo: one",
        "two",
        "echo: two",
        "three",
    ]


async def test_turns_of_one_conversation_run_in_arrival_order(
    services: Services, model_server: ModelServer, redis: aioredis.Redis
) -> None:
    model_server.responder = lambda body: Reply(f"echo: {body['messages'][-1]['content']}", chunk_delay=0.002)
    await asyncio.gather(*(run_turn(services, request(f"m{i}", message_id=i + 1)) for i in range(10)))
    contents = [t["content"] for t in await stored(redis, services)]
    assert contents == [text for i in range(10) for text in (f"m{i}", f"echo: m{i}")]
    assert len(services.chat.locks) == 0, "locks are released once no turn waits"


async def test_different_conversations_stream_concurrently(services: Services, model_server: ModelServer) -> None:
    model_server.responder = lambda body: Reply("slow answer", first_chunk_delay=0.3)
    await asyncio.gather(*(run_turn(services, request("hi", conversation=c)) for c in range(20)))
    arrivals = [r.arrived_at for r in model_server.requests]
    assert max(arrivals) - min(arrivals) < 0.3, "all 20 requests were in flight before the first answered"


@pytest.mark.parametrize("stored_turns", [10, 1000])
async def test_two_redis_round_trips_per_turn_whatever_the_history(
    services_factory, make_settings, counted_redis, model_server: ModelServer, stored_turns: int
) -> None:
    client, proxy = counted_redis
    services = services_factory(make_settings(history={"max_messages": 2000}), redis_client=client)
    turns = [
        json.dumps({"role": role, "content": f"{role} {i}", "tokens": 6})
        for i in range(stored_turns // 2)
        for role in ("user", "assistant")
    ]
    await client.rpush(services.keys.turns(CHANNEL), *turns)
    for i in range(3):
        before = proxy.round_trips
        await run_turn(services, request(f"new {i}", message_id=i + 1))
        assert proxy.round_trips - before == 2
    assert len(model_server.requests[-1].messages) == 1 + stored_turns + 5


async def test_storage_down_is_reported_and_the_model_is_not_called(
    services_factory, model_server: ModelServer
) -> None:
    dead = connect("redis://127.0.0.1:1/0")
    services = services_factory(redis_client=dead)
    with pytest.raises(StorageUnavailable) as raised:
        await run_turn(services, request("hi"))
    assert isinstance(raised.value.__cause__, RedisError | OSError), "it is the Redis failure, reported"
    assert model_server.requests == []
    await dead.aclose()


async def test_temperature_is_sent_only_when_configured(
    services_factory, make_settings, model_server: ModelServer
) -> None:
    await run_turn(services_factory(make_settings(model={"temperature": 0.3})), request("hi"))
    assert model_server.requests[0].body["temperature"] == 0.3


def test_replace_settings_changes_only_what_it_names(make_settings) -> None:
    base = make_settings()
    changed = replace_settings(base, history={"max_messages": 3})
    assert changed.history == dataclasses.replace(base.history, max_messages=3)
    others = [f.name for f in dataclasses.fields(base) if f.name != "history"]
    assert [getattr(changed, name) for name in others] == [getattr(base, name) for name in others]
