"""The Discord request budget shared by every process on one bot token: a token bucket in Redis.

Discord allows a bot token about 50 REST requests per second in total, whatever the number of
processes (shards) using it. Every process leases tokens from one bucket in Redis with one small
atomic script, a few at a time, only as many as it has requests ready to send, and spends them as
soon as the lease allows: tokens are never hoarded, so the bucket's promise holds for the requests as
sent, and under load a lease of several tokens saves the requests a Redis round trip each.

A lease reserves the tokens and says how long to wait before spending them (the time the bucket's
refill takes to cover them), so no lease comes back empty. The promise: in any one-second window at
most ``burst + rate`` tokens are spent (a full bucket plus one second of refill), under Discord's
limit. When Redis cannot be reached, the process falls back to a local bucket with its share of the
rate (its shards out of SHARD_COUNT) until Redis answers again: the bot keeps answering, at a rate
that still keeps the processes together within the budget.
"""

from __future__ import annotations

import logging
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bot.storage import own_connection

log = logging.getLogger(__name__)

# KEYS[1]: the bucket (hash: tokens, ts in ms). ARGV: rate per second, burst, tokens wanted.
# A lease always reserves the wanted tokens and returns {tokens, ms to wait before spending them}: the
# balance may go below zero, and the wait is the time until the bucket's refill covers it. Leases queue
# up in Redis's order, no lease comes back empty, and tokens spent after their wait keep the bucket's
# promise. The clock is Redis's own (TIME), so processes on different machines agree on it.
LEASE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local rate, burst, want = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens, ts = tonumber(state[1]), tonumber(state[2])
if tokens == nil or ts == nil or ts > now then tokens, ts = burst, now end
tokens = math.min(burst, tokens + (now - ts) * rate / 1000) - want
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'ts', string.format('%.3f', now))
redis.call('PEXPIRE', KEYS[1], 60000)
local wait = 0
if tokens < 0 then wait = math.ceil(-tokens * 1000 / rate) end
-- the balance left, in thousandths (a reply's numbers are integers): how full the bucket is
return {want, wait, math.floor(tokens * 1000)}
"""
RETRY_REDIS_S = 5.0  # how long the local bucket is used before Redis is asked again


def burst_for(rate: float) -> int:
    """The bucket's size for a rate: about a third of it, at most 10. At the default 32 per second a
    burst of 10 lets ten conversations starting together post their first text at once, and the
    most spent in any second stays at 42."""
    return max(1, min(10, int(rate // 3)))


class LocalBucket:
    """The same token bucket in this process only (the fallback, and the unit tests' reference)."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.at = time.monotonic()

    def lease(self, want: int) -> tuple[int, float]:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate) - want
        self.at = now
        return want, max(0.0, -self.tokens / self.rate)

    def forget(self, seconds: float) -> None:
        """Forget the last ``seconds`` of refill: tokens spent that late are then as if spent on time
        (the next lease waits for them), with no catch-up burst after them."""
        self.at += seconds


class RequestBudget:
    """Leases Discord request tokens for this process: from the bucket shared through Redis when other
    processes use the same token (``redis`` given), else from a bucket in memory (no round trip)."""

    def __init__(self, redis: aioredis.Redis | None, key: str, *, rate: float, share: float = 1.0) -> None:
        # A connection of its own: a lease is written at once, not after hundreds of turns waiting for
        # the pool, so the bucket's clock is read when the lease is asked for (the wait counts from then).
        self.redis = own_connection(redis) if redis is not None else None
        self._shared_client = redis
        self.key = key
        self.rate = rate
        self.burst = burst_for(rate)
        self.local = LocalBucket(rate * share, self.burst)
        self._local_until = 0.0
        self._from_local = redis is None  # where the last lease came from
        self._left, self._left_at = float(self.burst), time.monotonic()  # the balance at the last lease
        self.leases = 0  # Redis round trips made (the benchmark reports tokens per lease)
        self.granted = 0

    async def close(self) -> None:
        """Give the lease's own connection back to the pool."""
        if self.redis is not None and self.redis is not self._shared_client:
            await self.redis.aclose()

    @property
    def per_window(self) -> float:
        """The most tokens granted in any one-second window."""
        return self.burst + self.rate

    def nearly_full(self) -> bool:
        """Is the bucket (as of the last lease, refilled since) nearly full? Typing only spends a
        token then, so it never delays an answer's first message."""
        left = min(self.burst, self._left + (time.monotonic() - self._left_at) * self.rate)
        return left >= max(1, self.burst - 1)

    def spend_late(self, seconds: float) -> bool:
        """May the last lease's tokens, whose time was ``seconds`` ago, still be spent? From the bucket in
        memory, yes: it forgets those seconds' refill, so the next lease waits as if they had gone out on
        time. From the shared bucket, no: the other processes' tokens due now are reserved already, and
        Discord would count both in one second."""
        if self._from_local:
            self.local.forget(seconds)
        return self._from_local

    async def lease(self, want: int) -> tuple[int, float]:
        """(tokens reserved, at most ``want`` and the burst; seconds to wait before spending them, from
        when the lease was asked for)."""
        want = max(1, min(want, self.burst))
        self._from_local = self.redis is None or time.monotonic() < self._local_until
        if self._from_local:
            granted, wait = self.local.lease(want)
            self._left = self.local.tokens
        else:
            try:
                # No timeout of its own: a slow lease under load (a busy pool) is still the shared
                # bucket, while spending locally then would add this process's share to the others'.
                # A Redis that is down fails fast (connection refused) or at the client's timeouts.
                reply = await self.redis.eval(LEASE_LUA, 1, self.key, self.rate, self.burst, want)
                granted, wait = int(reply[0]), int(reply[1]) / 1000
                self._left = int(reply[2]) / 1000
                self.leases += 1
            except (RedisError, OSError) as exc:
                log.warning(
                    "Discord request budget: Redis unavailable (%s); this process uses its share of the "
                    "budget locally for %.0f s",
                    type(exc).__name__,
                    RETRY_REDIS_S,
                )
                self._local_until = time.monotonic() + RETRY_REDIS_S
                self._from_local = True
                granted, wait = self.local.lease(want)
                self._left = self.local.tokens
        self._left_at = time.monotonic()
        self.granted += granted
        return granted, wait
