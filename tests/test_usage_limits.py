"""Usage accounting, daily budgets, the per-user rate limit and the duplicate guard, on a real Redis and
the loopback model server."""

from __future__ import annotations

import datetime as dt
import itertools
import random

import pytest

from bot.conversation import ChatRequest, TurnDone
from bot.errors import BudgetExceeded, DuplicateMessage, TooManyTurns
from bot.services import Services
from bot.settings import Price
from tests.standins.model_server import ModelServer, Reply

_ids = itertools.count(50_000)
PRICES = (Price("test-model", input_per_million=2.0, output_per_million=8.0),)


# A fixed clock for tests that read a day's usage back: a turn records under its clock's UTC day, so the
# test's "today" must be that day, not the wall clock's (they differ across UTC midnight).
NOON = dt.datetime(2026, 6, 15, 12, 0, tzinfo=dt.UTC)


class Clock:
    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now


def request(text: str = "hi", *, guild: int | None = 1, user: int = 7, channel: int = 100, message_id=None):
    return ChatRequest(
        conversation_id=channel,
        guild_id=guild,
        author_id=user,
        author_name=f"user{user}",
        message_id=message_id if message_id is not None else next(_ids),
        text=text,
    )


async def turn(services: Services, req: ChatRequest) -> TurnDone:
    done = None
    async for event in services.chat.turn(req):
        if isinstance(event, TurnDone):
            done = event
    assert done is not None
    return done


async def test_stored_totals_equal_what_the_server_reported(
    services_factory, make_settings, model_server: ModelServer
) -> None:
    services = services_factory(make_settings(usage={"prices": PRICES}), clock=Clock(NOON))
    rng = random.Random(7)
    script = [(guild, user, rng.randint(5, 500), rng.randint(1, 300)) for guild in (1, 2) for user in (7, 8, 9)] * 2
    model_server.script(*(Reply("ok", usage=(p, c)) for _, _, p, c in script))
    for guild, user, _, _ in script:
        await turn(services, request(guild=guild, user=user, channel=guild * 1000 + user))
    assert [(u["prompt_tokens"], u["completion_tokens"]) for u in model_server.reported_usage] == [
        (p, c) for _, _, p, c in script
    ]
    today = NOON.date()
    for guild in (1, 2):
        [(_, totals)] = await services.usage.report(today=today, days=1, guild_id=guild)
        rows = [(p, c) for g, _, p, c in script if g == guild]
        assert (totals.input_tokens, totals.output_tokens) == (sum(p for p, _ in rows), sum(c for _, c in rows))
        assert totals.requests == len(rows) and totals.estimated_requests == 0
        expected_cost = sum(p for p, _ in rows) * 2.0 / 1e6 + sum(c for _, c in rows) * 8.0 / 1e6
        assert totals.cost == pytest.approx(expected_cost, rel=1e-12)
    for user in (7, 8, 9):
        [(_, totals)] = await services.usage.report(today=today, days=1, user_id=user)
        rows = [(p, c) for _, u, p, c in script if u == user]
        assert (totals.input_tokens, totals.output_tokens) == (sum(p for p, _ in rows), sum(c for _, c in rows))


async def test_usage_without_a_usage_chunk_is_estimated_and_marked(services_factory, model_server: ModelServer) -> None:
    services = services_factory(clock=Clock(NOON))
    model_server.script(Reply("four words right here", usage=None))
    done = await turn(services, request("count me"))
    assert done.usage.estimated and done.usage.completion_tokens == services.chat.counter.count("four words right here")
    [(_, totals)] = await services.usage.report(today=NOON.date(), days=1, user_id=7)
    assert totals.estimated_requests == 1 and totals.output_tokens == done.usage.completion_tokens


async def test_a_spent_daily_budget_refuses_without_asking_the_model_until_midnight_utc(
    services_factory, make_settings, model_server: ModelServer
) -> None:
    clock = Clock(dt.datetime(2026, 11, 21, 22, 0, tzinfo=dt.UTC))
    services = services_factory(make_settings(limits={"guild_daily_tokens": 100}), clock=clock)
    model_server.script(Reply("a", usage=(60, 10)), Reply("b", usage=(30, 5)))
    await turn(services, request(user=7))
    await turn(services, request(user=8))  # 75 then 110 tokens: the budget is now spent
    with pytest.raises(BudgetExceeded) as refused:
        await turn(services, request(user=9))
    midnight = int(dt.datetime(2026, 11, 22, tzinfo=dt.UTC).timestamp())
    assert refused.value.resets_at == midnight and f"<t:{midnight}:R>" in refused.value.user_message
    assert "this server's daily budget" in refused.value.user_message.lower()
    assert len(model_server.requests) == 2
    await turn(services, request(guild=2))  # another guild is not affected
    clock.now = dt.datetime(2026, 11, 22, 0, 0, 1, tzinfo=dt.UTC)
    await turn(services, request(user=9))
    assert len(model_server.requests) == 4


async def test_a_users_daily_budget_spans_guilds(services_factory, make_settings, model_server) -> None:
    services = services_factory(make_settings(limits={"user_daily_tokens": 50}))
    model_server.script(Reply("a", usage=(40, 20)))
    await turn(services, request(guild=1, user=7))
    with pytest.raises(BudgetExceeded, match="your daily"):
        await turn(services, request(guild=2, user=7, channel=555))
    await turn(services, request(guild=1, user=8))


async def test_rate_limit_allows_n_then_tells_once_per_window(services_factory, make_settings, model_server) -> None:
    clock = Clock(dt.datetime(2026, 11, 21, 12, 0, tzinfo=dt.UTC))
    services = services_factory(make_settings(limits={"user_turns": 3, "user_window_s": 60}), clock=clock)
    for _ in range(3):
        clock.now += dt.timedelta(seconds=1)
        await turn(services, request(user=7))
    clock.now += dt.timedelta(seconds=1)  # 4 s after the window's first turn
    with pytest.raises(TooManyTurns) as first_refusal:
        await turn(services, request(user=7))
    assert not first_refusal.value.silent and first_refusal.value.retry_after_s == pytest.approx(57)
    assert "Please wait 57 s" in first_refusal.value.user_message
    with pytest.raises(TooManyTurns) as second_refusal:
        await turn(services, request(user=7))
    assert second_refusal.value.silent, "told once per window, not once per message"
    await turn(services, request(user=8))  # others are not limited
    clock.now += dt.timedelta(seconds=58)
    await turn(services, request(user=7))
    assert len(model_server.requests) == 5


async def test_two_processes_share_the_rate_limit_and_the_duplicate_guard(
    services_factory, make_settings, model_server
) -> None:
    settings = make_settings(limits={"user_turns": 2})
    first, second = services_factory(settings), services_factory(settings)
    await turn(first, request(user=7))
    await turn(second, request(user=7, channel=101))
    with pytest.raises(TooManyTurns):
        await turn(first, request(user=7, channel=102))
    same = request(user=8, channel=200)
    await turn(second, same)
    with pytest.raises(DuplicateMessage) as duplicate:
        await turn(first, same)
    assert duplicate.value.silent
    assert len(model_server.requests) == 3


async def test_a_replayed_message_is_answered_once(services, model_server) -> None:
    req = request()
    await turn(services, req)
    with pytest.raises(DuplicateMessage):
        await turn(services, req)
    assert len(model_server.requests) == 1


async def test_still_two_round_trips_with_every_limit_on(services_factory, make_settings, counted_redis) -> None:
    client, proxy = counted_redis
    settings = make_settings(
        limits={"user_turns": 100, "guild_daily_tokens": 10**9, "user_daily_tokens": 10**9},
        usage={"prices": PRICES},
    )
    services = services_factory(settings, redis_client=client)
    for _ in range(3):
        before = proxy.round_trips
        await turn(services, request())
        assert proxy.round_trips - before == 2
