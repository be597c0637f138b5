"""The request budget shared through Redis: one token bucket for every process on the bot token,
leased a few tokens at a time, and a local share when Redis is away."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
import redis.asyncio as aioredis
from redis.asyncio import BlockingConnectionPool

from bot.keys import Keys
from bot.request_budget import ClockOffset, RequestBudget, burst_for
from bot.storage import connect

pytestmark = pytest.mark.timeout(30)


async def spend(budget: RequestBudget, seconds: float, stamps: list[float], want: int) -> None:
    """Lease greedily for ``seconds``, like a process with more requests than budget."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        granted, due = await budget.lease(want)
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        stamps.extend([time.monotonic()] * granted)


def busiest_second(stamps: list[float]) -> int:
    stamps = sorted(stamps)
    return max((sum(1 for t in stamps[i:] if t < start + 1.0) for i, start in enumerate(stamps)), default=0)


async def test_two_processes_share_one_budget(redis: aioredis.Redis, key_prefix: str, redis_url: str) -> None:
    rate = 40.0
    key = Keys(key_prefix).request_budget()
    other = aioredis.Redis.from_url(redis_url)  # the second process's own connection
    try:
        first, second = RequestBudget(redis, key, rate=rate), RequestBudget(other, key, rate=rate)
        a: list[float] = []
        b: list[float] = []
        await asyncio.gather(spend(first, 2.5, a, want=3), spend(second, 2.5, b, want=3))  # both overloaded
    finally:
        await other.aclose()
    assert busiest_second(a + b) <= burst_for(rate) + rate, "together they stay within the one budget"
    assert len(a) > 10 and len(b) > 10, "both got a share"
    span = max(a + b) - min(a + b)
    assert len(a) + len(b) <= burst_for(rate) + rate * span + 1, "and over the whole run"
    assert first.leases + second.leases < len(a) + len(b), "under load a lease carries several tokens"
    assert await redis.exists(key), "the bucket lives under the bot's key prefix"


async def test_a_full_bucket_grants_a_burst_at_once_then_paces(redis: aioredis.Redis, key_prefix: str) -> None:
    budget = RequestBudget(redis, Keys(key_prefix).request_budget(), rate=9.0)
    assert budget.burst == 3 and budget.per_window == 12
    assert burst_for(32.0) + 32 == 42, "the default: 42 at most in any second, under Discord's 50"
    asked = time.monotonic()
    granted, due = await budget.lease(10)
    assert granted == 3 and due <= time.monotonic(), "a lease never exceeds the burst; a full bucket: at once"
    granted, due = await budget.lease(3)
    assert granted == 3 and 0 < due - asked <= 3 / 9 + 0.01, "empty: reserved, to be spent once refilled"
    granted, later = await budget.lease(1)
    assert granted == 1 and later - due > 1 / 9 - 0.01, "the next lease queues behind the last"


async def test_without_redis_the_process_uses_its_share_locally(caplog: pytest.LogCaptureFixture) -> None:
    unreachable = connect("redis://127.0.0.1:1/0")  # nothing listens on port 1
    try:
        budget = RequestBudget(unreachable, "dcb:discord:budget", rate=40.0, share=0.5)
        stamps: list[float] = []
        with caplog.at_level(logging.WARNING, logger="bot.request_budget"):
            await spend(budget, 1.5, stamps, want=2)
    finally:
        await unreachable.aclose()
    assert stamps, "requests still go out"
    assert busiest_second(stamps) <= budget.burst + 20, "half the shards: half the rate"
    warnings = [r for r in caplog.records if "Redis unavailable" in r.message]
    assert len(warnings) == 1, "said once, not per request"


async def test_a_lease_does_not_queue_behind_a_busy_pool(
    redis: aioredis.Redis, redis_url: str, key_prefix: str
) -> None:
    """Turns waiting for the shared pool must not hold a lease's reply back (its tokens would then be
    spent late, bunched with the next ones): the budget has a connection of its own, and gives it back
    when closed."""
    pool = BlockingConnectionPool.from_url(redis_url, max_connections=2, timeout=2.0)
    client = aioredis.Redis.from_pool(pool)
    key = Keys(key_prefix).request_budget()
    budget = RequestBudget(client, key, rate=30.0)
    never = f"{key_prefix}:never"
    try:
        await budget.lease(1)
        # Two long blocking pops on an empty list: one holds the pool's other connection, one waits.
        busy = [asyncio.ensure_future(client.blpop([never], timeout=5)) for _ in range(2)]
        # Until the first pop blocks in Redis (the other waits for the pool): a server's state, polled.
        async with asyncio.timeout(2):
            while (await redis.info("clients"))["blocked_clients"] < 1:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        granted, _ = await budget.lease(1)
        assert granted == 1 and budget.leases == 2, "leased from Redis, not the local fallback"
        assert not any(task.done() for task in busy), "while the pool had no connection free"
        await budget.close()
        for task in busy:
            task.cancel()
        await asyncio.gather(*busy, return_exceptions=True)
        # Both connections are the pool's again: two commands at once (with one, the second would wait
        # for the pool until its timeout and fail).
        await asyncio.gather(client.blpop([never], timeout=0.3), client.blpop([never], timeout=0.3))
    finally:
        await client.aclose()


async def test_a_lease_slow_to_reach_redis_is_due_when_redis_ran_it(counted_redis, key_prefix: str) -> None:
    """The tokens' time is read on Redis's clock: a lease held up on its way (a busy server, a slow
    network) is due when Redis ran it, not at the ask, which would spend it early, crowding the second
    before with another process's tokens."""
    client, proxy = counted_redis
    budget = RequestBudget(client, Keys(key_prefix).request_budget(), rate=30.0)
    try:
        await budget.lease(1)  # a quick lease: the offset between the clocks
        proxy.upstream_delay = 0.3
        asked = time.monotonic()
        granted, due = await budget.lease(1)
    finally:
        await budget.close()
    assert granted == 1 and budget.leases == 2
    assert due - asked >= 0.29, "the bucket had room: due when Redis ran the lease, 0.3 s after the ask"


def test_a_stepped_clock_only_blurs_within_the_round_trip() -> None:
    clock = ClockOffset()
    assert clock.moment(1000.5, asked=10.0, replied=10.002) == 10.0, "the first: the offset itself"
    assert clock.moment(1000.6 + 3600, asked=10.1, replied=10.102) == 10.102, "never after the reply"
    assert clock.moment(1000.7 - 3600, asked=10.2, replied=10.202) == 10.2, "never before the ask"
