"""Long memory against a real Redis and the loopback model server: turns that leave the window are
folded into a rolling summary after the answer, which the next prompts carry."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import pytest

from bot.conversation import TurnDone
from bot.services import Services
from bot.summary import BOT_OWN_USER_ID, INSTRUCTIONS, PROMPT_HEADING
from tests.standins.model_behaviours import echo_responder
from tests.standins.model_server import Error, ModelServer, RecordedRequest, Reply
from tests.test_conversation import CHANNEL, request, run_turn, stored

PADDING = " ".join(f"w{i}" for i in range(30))  # ~60 tokens a turn: a small window holds a few
SUMMARY_MARK = INSTRUCTIONS[:40]


def is_summary(record: RecordedRequest) -> bool:
    return bool(record.messages) and str(record.messages[0].get("content", "")).startswith(SUMMARY_MARK)


def summaries(server: ModelServer) -> list[RecordedRequest]:
    return [r for r in server.requests if is_summary(r)]


def chats(server: ModelServer) -> list[RecordedRequest]:
    return [r for r in server.requests if not is_summary(r)]


def small_window(make_settings: Any, **history: Any) -> Any:
    # 700 - 100 reply - 64 margin - the system prompt (~50): room for about six short turns.
    return make_settings(model={"context_window": 700, "max_reply_tokens": 100}, history=history)


def answer_summaries(server: ModelServer, text: str = "SUMMARY: fruit is kiwi", **options: Any) -> None:
    """Summary requests get ``text``; chat requests the usual echo."""

    def respond(body: dict[str, Any]) -> Any:
        messages = body.get("messages") or []
        if messages and str(messages[0].get("content", "")).startswith(SUMMARY_MARK):
            return Reply(text, **options)
        return echo_responder(body)

    server.responder = respond


async def talk(services: Services, count: int, start: int = 0) -> None:
    for i in range(start, start + count):
        await run_turn(services, request(f"message {i} {PADDING}", message_id=1_000 + i))


async def test_turns_leaving_the_window_become_a_summary_the_next_prompt_carries(
    services_factory, make_settings, model_server: ModelServer, redis
) -> None:
    answer_summaries(model_server)
    services = services_factory(small_window(make_settings))
    assert services.chat.summarizer is not None
    for i in range(8):  # each fold done before the next turn: the turn just before a fold triggered it
        await talk(services, 1, start=i)
        await services.chat.summarizer.wait()
    fold = summaries(model_server)[0]
    # Its input: the turns the prompt of the turn before it had left out (and at most half the window).
    folded = fold.messages[1]["content"]
    earlier = [r for r in chats(model_server) if r.index < fold.index]
    shown = {m["content"] for m in earlier[-1].messages}
    assert "message 0 " in folded and "Summary so far:\n(none yet)" in folded
    texts = [f"message {i} {PADDING}" for i in range(len(earlier))]
    dropped = [text for text in texts if text not in shown]
    assert dropped and all(text in folded for text in dropped), "every dropped turn went into the summary"
    stored_summary = json.loads(await redis.get(services.keys.summary(CHANNEL)))
    assert stored_summary["text"] == "SUMMARY: fruit is kiwi"
    await talk(services, 1, start=8)
    last = chats(model_server)[-1]
    assert last.messages[1] == {"role": "system", "content": f"{PROMPT_HEADING}\nSUMMARY: fruit is kiwi"}
    covered = folded.split("New messages:\n", 1)[1]
    users = [m["content"] for m in last.messages[2:] if m["role"] == "user"]
    assert users and not [text for text in users if text in covered], "covered turns are not sent again"


async def test_the_summary_call_comes_after_the_answer_and_is_billed_to_the_guild_as_the_bots(
    services_factory, make_settings, model_server: ModelServer, redis
) -> None:
    answer_summaries(model_server, usage=(120, 30))
    services = services_factory(small_window(make_settings))
    turns = 0
    while not summaries(model_server):  # turn after turn until one makes the first summary
        assert turns < 12, "the conversation never outgrew its window"
        delivered_at = None
        async for event in services.chat.turn(request(f"message {turns} {PADDING}", message_id=1_000 + turns)):
            if isinstance(event, TurnDone):
                await asyncio.sleep(0.2)  # the caller is still delivering the answer
                delivered_at = time.monotonic()
        turns += 1
        await services.chat.summarizer.wait()
    [fold] = summaries(model_server)
    assert delivered_at is not None and fold.arrived_at >= delivered_at, "asked once the caller was done"
    assert len(await stored(redis, services)) == 2 * turns, "the turn that triggered it was stored first"
    day = services.chat.clock().strftime("%Y-%m-%d")
    guild = await redis.hgetall(services.keys.guild_usage(500, day))
    bots = await redis.hgetall(services.keys.user_usage(BOT_OWN_USER_ID, day))
    assert bots == {b"req:test-model": b"1", b"in:test-model": b"120", b"out:test-model": b"30"}
    assert int(guild[b"req:test-model"]) == turns + 1, "the turns and the summary, all under the guild"
    alice = await redis.hgetall(services.keys.user_usage(42, day))
    assert int(alice[b"req:test-model"]) == turns, "the user is not billed for the summary"


async def test_two_round_trips_per_turn_with_a_summary_and_its_write_is_one_more(
    services_factory, make_settings, counted_redis, model_server: ModelServer
) -> None:
    client, proxy = counted_redis
    answer_summaries(model_server, first_chunk_delay=0.2)  # still being written when the turn returns
    services = services_factory(small_window(make_settings), redis_client=client)
    for i in range(10):
        before = proxy.round_trips
        await run_turn(services, request(f"message {i} {PADDING}", message_id=1_000 + i))
        assert proxy.round_trips - before == 2
        if services.chat.summarizer.busy(CHANNEL):
            before = proxy.round_trips
            await services.chat.summarizer.wait()
            assert proxy.round_trips - before == 1, "the summary's write is its own round trip"
    assert len(summaries(model_server)) >= 2, "a summary was present in later turns, and was extended"
    assert "SUMMARY" in summaries(model_server)[-1].messages[1]["content"], "the previous summary is its input"


async def test_forget_removes_the_summary(services_factory, make_settings, model_server: ModelServer, redis):
    answer_summaries(model_server)
    services = services_factory(small_window(make_settings))
    await talk(services, 8)
    await services.chat.summarizer.wait()
    assert await redis.exists(services.keys.summary(CHANNEL))
    await services.chat.forget(CHANNEL)
    assert not await redis.exists(services.keys.summary(CHANNEL))
    await talk(services, 1, start=20)
    assert chats(model_server)[-1].messages[1]["role"] == "user", "no summary in the prompt any more"


async def test_forget_during_a_summary_call_leaves_no_summary(
    services_factory, make_settings, model_server: ModelServer, redis
) -> None:
    answer_summaries(model_server, first_chunk_delay=5.0)  # still asking when /forget comes
    services = services_factory(small_window(make_settings))
    await talk(services, 8)
    assert services.chat.summarizer.busy(CHANNEL)
    await services.chat.forget(CHANNEL)
    await services.chat.summarizer.wait()
    assert not await redis.exists(services.keys.summary(CHANNEL))


async def test_a_failing_summary_leaves_the_turn_answered_and_stored_and_is_retried(
    services_factory, make_settings, model_server: ModelServer, redis, caplog
) -> None:
    caplog.set_level(logging.WARNING, logger="bot.summary")
    failing = True

    def respond(body: dict[str, Any]) -> Any:
        if str(body["messages"][0]["content"]).startswith(SUMMARY_MARK):
            return Error(500) if failing else Reply("SUMMARY: recovered")
        return echo_responder(body)

    model_server.responder = respond
    services = services_factory(small_window(make_settings, max_messages=8))
    await talk(services, 7)
    await services.chat.summarizer.wait()
    attempts = len(summaries(model_server))
    assert attempts >= 1 and all(r.status == 500 for r in summaries(model_server))
    assert "Summary of conversation 1001 failed (tried again later)" in caplog.text
    assert len(await stored(redis, services)) == 14, "answered and stored, and nothing trimmed"
    assert not await redis.exists(services.keys.summary(CHANNEL))
    failing = False
    await talk(services, 1, start=7)
    await services.chat.summarizer.wait()
    assert len(summaries(model_server)) == attempts + 1, "tried again on a later turn"
    assert "message 0 " in summaries(model_server)[-1].messages[1]["content"], "nothing was lost meanwhile"
    assert json.loads(await redis.get(services.keys.summary(CHANNEL)))["text"] == "SUMMARY: recovered"


async def test_summaries_off_keeps_the_old_window(services_factory, make_settings, model_server: ModelServer, redis):
    services = services_factory(small_window(make_settings, summarize=False))
    assert services.chat.summarizer is None
    await talk(services, 8)
    assert summaries(model_server) == [] and not await redis.exists(services.keys.summary(CHANNEL))


@pytest.mark.parametrize("max_tokens", [64])
async def test_the_summary_call_uses_summary_max_tokens_and_the_summary_model(
    services_factory, make_settings, model_server: ModelServer, max_tokens: int
) -> None:
    answer_summaries(model_server)
    settings = make_settings(
        model={"context_window": 700, "max_reply_tokens": 100},
        history={"summary_max_tokens": max_tokens, "summary_model": "test-model"},
    )
    services = services_factory(settings)
    await talk(services, 8)
    await services.chat.summarizer.wait()
    fold = summaries(model_server)[0]
    assert fold.body["max_completion_tokens"] == max_tokens and fold.model == "test-model"


async def test_summarised_turns_are_trimmed_at_max_messages(
    services_factory, make_settings, model_server: ModelServer, redis
) -> None:
    answer_summaries(model_server)
    services = services_factory(make_settings(history={"max_messages": 4}))
    for i in range(6):
        await run_turn(services, request(f"q{i}", message_id=i + 1))
        await services.chat.summarizer.wait()
    kept = {t["message_id"] for t in await stored(redis, services) if t["role"] == "user"}
    through = json.loads(await redis.get(services.keys.summary(CHANNEL)))["through"]
    dropped = set(range(1, 7)) - kept
    assert dropped and all(message_id <= through for message_id in dropped), "only covered turns were trimmed"
    users = [m["content"] for m in chats(model_server)[-1].messages if m["role"] == "user"]
    assert users[-1] == "q5" and "q0" not in users


async def test_a_summary_longer_than_asked_is_cut_to_summary_max_tokens(
    services_factory, make_settings, model_server: ModelServer, redis
) -> None:
    answer_summaries(model_server, text="word " * 2_000)  # a server that ignores max_completion_tokens
    settings = small_window(make_settings, summary_max_tokens=64)
    services = services_factory(settings)
    await talk(services, 8)
    await services.chat.summarizer.wait()
    stored_summary = json.loads(await redis.get(services.keys.summary(CHANNEL)))
    assert len(stored_summary["text"].split()) <= 64 and stored_summary["tokens"] < 100
    await talk(services, 1, start=8)
    assert chats(model_server)[-1].messages[1]["content"].startswith(PROMPT_HEADING), "and it still fits"
