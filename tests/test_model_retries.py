"""Retries of the model request and what a broken answer costs, against the loopback model server:
a failed attempt is tried again (``max_retries``) while nothing was shown and the wait fits before the
answer's deadline; a Retry-After that does not fit is "rate-limited, try again in N s" at once; an
answer cut off after some text is counted in the usage as an estimate."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from bot.conversation import ChatRequest, TurnDone
from bot.errors import ModelRateLimited, ModelTimeout, StreamInterrupted
from bot.services import Services
from bot.settings import ModelSettings
from tests.standins.model_server import Drop, Error, ModelServer, Reply, StallMidStream

NOW = dt.datetime(2026, 3, 4, 12, 0, tzinfo=dt.UTC)  # the clock is injected: no UTC-midnight edge
GUILD, USER = 700, 71
_ids = itertools.count(50_000)


def request(text: str) -> ChatRequest:
    return ChatRequest(
        conversation_id=9001, guild_id=GUILD, author_id=USER, author_name="Alice", message_id=next(_ids), text=text
    )


async def answer(services: Services, text: str = "hello") -> tuple[str, TurnDone]:
    shown = []
    done = None
    async for event in services.chat.turn(request(text)):
        if isinstance(event, str):
            shown.append(event)
        elif isinstance(event, TurnDone):
            done = event
    assert done is not None
    return "".join(shown), done


@pytest.fixture
def build(services_factory, make_settings):
    def make(**model: object) -> Services:
        return services_factory(make_settings(model=model), clock=lambda: NOW)

    return make


def test_the_default_is_one_retry() -> None:
    assert ModelSettings().max_retries == 1


async def test_the_default_retry_answers_after_a_500(build, model_server: ModelServer) -> None:
    services = build(max_retries=ModelSettings().max_retries)
    model_server.script(Error(500), Reply("second time lucky"))
    text, _ = await answer(services)
    assert text == "second time lucky"
    assert len(model_server.requests) == 2


async def test_a_retry_after_longer_than_the_deadline_is_reported_at_once(build, model_server: ModelServer) -> None:
    """With the SDK's own retries the bot slept out the 30 s and said "took too long" at the deadline."""
    services = build(max_retries=3, timeout_s=5.0)
    model_server.script(Error.rate_limited(retry_after=30))
    with pytest.raises(ModelRateLimited) as raised:
        await answer(services)
    assert raised.value.user_message == "The model is rate-limited right now. Please try again in about 30 s."
    assert len(model_server.requests) == 1, "not retried: the wait does not fit in timeout_s"


async def test_a_short_retry_after_is_waited_and_retried(build, model_server: ModelServer) -> None:
    services = build(max_retries=1)
    model_server.script(Error(429, retry_after_ms=50), Reply("after the wait"))
    text, _ = await answer(services)
    assert text == "after the wait"
    assert len(model_server.requests) == 2


async def test_out_of_quota_is_not_retried(build, model_server: ModelServer) -> None:
    services = build(max_retries=2)
    model_server.script(Error.insufficient_quota(), Reply("never"))
    with pytest.raises(Exception, match="quota"):
        await answer(services)
    assert len(model_server.requests) == 1


@pytest.mark.parametrize("max_retries", [0, 1])
async def test_a_connection_dropped_after_the_headers_but_before_any_text(
    build, model_server: ModelServer, max_retries: int
) -> None:
    """The 200 and the role chunk came, then the connection broke: nothing was shown, so a retry is
    safe when max_retries allows it."""
    services = build(max_retries=max_retries)
    model_server.script(Drop(after_headers=True), Reply("fine now"))
    if max_retries:
        text, _ = await answer(services)
        assert text == "fine now"
        assert len(model_server.requests) == 2
    else:
        with pytest.raises(StreamInterrupted):
            await answer(services)
        assert len(model_server.requests) == 1


async def test_an_answer_broken_after_text_is_not_retried_and_its_tokens_are_counted(
    build, model_server: ModelServer, redis, token_counter
) -> None:
    services = build(max_retries=2)
    model_server.script(Drop(after_chunks=3, text="Twelve words of an answer that the server never finishes sending."))
    with pytest.raises(StreamInterrupted):
        await answer(services, "tell me")
    assert len(model_server.requests) == 1, "text was shown: a retry would show it twice"
    [(_, totals)] = await services.usage.report(today=NOW.date(), days=1, user_id=USER)
    assert totals.requests == 1 and totals.estimated_requests == 1
    assert totals.output_tokens == token_counter.count(model_server.requests[0].sent_text)
    assert totals.output_tokens > 0 and totals.input_tokens > 0
    assert await redis.llen(services.keys.turns(9001)) == 0, "the interrupted answer is not stored"


async def test_a_stall_after_text_is_a_timeout_and_still_counted(build, model_server: ModelServer) -> None:
    services = build(max_retries=1, idle_timeout_s=0.3)
    model_server.script(StallMidStream(after_chunks=2, seconds=3))
    with pytest.raises(ModelTimeout):
        await answer(services)
    [(_, totals)] = await services.usage.report(today=NOW.date(), days=1, guild_id=GUILD)
    assert totals.estimated_requests == 1 and totals.output_tokens > 0


async def test_a_failure_before_any_text_costs_nothing(build, model_server: ModelServer) -> None:
    services = build(max_retries=0)
    model_server.script(Error(500))
    with pytest.raises(Exception, match="500"):
        await answer(services)
    [(_, totals)] = await services.usage.report(today=NOW.date(), days=1, user_id=USER)
    assert totals.requests == 0


async def test_timeout_s_bounds_the_whole_answer_while_chunks_keep_coming(build, model_server: ModelServer) -> None:
    """Each chunk arrives well within idle_timeout_s, but the answer as a whole takes longer than
    timeout_s: the deadline ends it."""
    services = build(max_retries=0, timeout_s=1.0, idle_timeout_s=0.5)
    model_server.script(Reply("slow " * 40, chunk_size=5, chunk_delay=0.1))  # 40 chunks, 4 s in all
    with pytest.raises(ModelTimeout):
        await answer(services)
    sent = model_server.requests[0].sent_text
    assert 0 < len(sent) < len("slow " * 40), "chunks were arriving when the deadline struck"
