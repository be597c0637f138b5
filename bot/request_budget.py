"""The Discord request budget shared by every process on one bot token: a token bucket in Redis.

Discord allows a bot token about 50 REST requests per second in total, whatever the number of
processes (shards) using it. Every process leases tokens from one bucket in Redis with one small
atomic script, a few at a time, only as many as it has requests ready to send, and spends them as
soon as the lease allows: tokens are never hoarded, so the bucket's promise holds for the requests as
sent, and under load a lease of several tokens saves the requests a Redis round trip each.

A lease reserves the tokens and says when they may be spent (once the bucket's refill covers them),
so no lease comes back empty. That moment is on Redis's clock, when the script ran: a lease that took a
while to reach Redis (a busy server, a congested process) is due later than its ask plus its wait, and
spending it at the ask plus the wait would be early, crowding the tokens of the second before.

The promise: in any one-second window at most ``burst + rate`` tokens are spent (a full bucket plus
one second of refill), under Discord's limit. When Redis cannot be reached, the process falls back to
a local bucket with its share of the rate (its shards out of SHARD_COUNT) until Redis answers again:
the bot keeps answering, at a rate that still keeps the processes together within the budget.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import NamedTuple

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bot.storage import own_connection

log = logging.getLogger(__name__)

# KEYS[1]: the bucket (hash: tokens, ts in ms). ARGV: rate per second, burst, tokens wanted.
# A lease always reserves the wanted tokens and returns {tokens, ms to wait before spending them, the
# balance left, Redis's clock}: the balance may go below zero, and the wait is the time until the
# bucket's refill covers it. Leases queue up in Redis's order, no lease comes back empty, and tokens
# spent after their wait keep the bucket's promise. The clock is Redis's own (TIME), so processes on
# different machines agree on it.
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
-- the balance left in thousandths and the clock in microseconds (a reply's numbers are integers)
return {want, wait, math.floor(tokens * 1000), tonumber(t[1]) * 1000000 + tonumber(t[2])}
"""
RETRY_REDIS_S = 5.0  # how long the local bucket is used before Redis is asked again
# The offset between Redis's clock and this process's is the smallest (Redis's clock - ask) of the
# recent leases (the quickest one's transit is the least); recent, so a clock adjusted since is followed.
OFFSET_SAMPLES = 64
OFFSET_WINDOW_S = 30.0


class Lease(NamedTuple):
    granted: int  # tokens reserved
    due: float  # when they may be spent (time.monotonic())


class ClockOffset:
    """Places the moment a lease ran in Redis on this process's clock. Redis ran it between the ask and
    the reply; how far in is read from Redis's own clock, less the smallest recent difference between
    the two clocks (their offset plus the quickest transit), so a lease delayed on its way to Redis is
    seen as run late rather than at the ask."""

    def __init__(self) -> None:
        self._samples: deque[tuple[float, float]] = deque()  # (asked, Redis's clock - asked)

    def moment(self, redis_clock: float, asked: float, replied: float) -> float:
        samples = self._samples
        while samples and (len(samples) >= OFFSET_SAMPLES or asked - samples[0][0] > OFFSET_WINDOW_S):
            samples.popleft()
        samples.append((asked, redis_clock - asked))
        offset = min(difference for _, difference in samples)
        # Clamped to when it must have run: a clock stepped since the samples can only blur within that.
        return min(max(redis_clock - offset, asked), replied)


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

    def lease(self, want: int) -> Lease:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate) - want
        self.at = now
        return Lease(want, now + max(0.0, -self.tokens / self.rate))

    def forget(self, seconds: float) -> None:
        """Forget the last ``seconds`` of refill: tokens spent that late are then as if spent on time
        (the next lease waits for them), with no catch-up burst after them."""
        self.at += seconds


class RequestBudget:
    """Leases Discord request tokens for this process: from the bucket shared through Redis when other
    processes use the same token (``redis`` given), else from a bucket in memory (no round trip)."""

    def __init__(self, redis: aioredis.Redis | None, key: str, *, rate: float, share: float = 1.0) -> None:
        # A connection of its own: a lease is written at once, not after hundreds of turns waiting for
        # the pool, so its tokens are not reserved long before anyone is ready to spend them.
        self.redis = own_connection(redis) if redis is not None else None
        self._shared_client = redis
        self.key = key
        self.rate = rate
        self.burst = burst_for(rate)
        self.local = LocalBucket(rate * share, self.burst)
        self._local_until = 0.0
        self._from_local = redis is None  # where the last lease came from
        self._left, self._left_at = float(self.burst), time.monotonic()  # the balance at the last lease
        self._clock = ClockOffset()
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

    async def lease(self, want: int) -> Lease:
        """Tokens reserved (at most ``want`` and the burst) and when they may be spent."""
        want = max(1, min(want, self.burst))
        self._from_local = self.redis is None or time.monotonic() < self._local_until
        if self._from_local:
            lease = self.local.lease(want)
            self._left = self.local.tokens
        else:
            try:
                # No timeout of its own: a slow lease under load (a busy pool) is still the shared
                # bucket, while spending locally then would add this process's share to the others'.
                # A Redis that is down fails fast (connection refused) or at the client's timeouts.
                asked = time.monotonic()
                reply = await self.redis.eval(LEASE_LUA, 1, self.key, self.rate, self.burst, want)
                ran = self._clock.moment(int(reply[3]) / 1_000_000, asked, time.monotonic())
                lease = Lease(int(reply[0]), ran + int(reply[1]) / 1000)
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
                lease = self.local.lease(want)
                self._left = self.local.tokens
        self._left_at = time.monotonic()
        self.granted += lease.granted
        return lease
