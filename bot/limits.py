"""What may start a turn: each Discord message once, a per-user rate limit, daily token budgets.

All three are decided from replies that ride in the turn's single read round trip, and all state is in
Redis, so several processes on one Redis share it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from bot.batch import Batch
from bot.errors import BudgetExceeded, DuplicateMessage, TooManyTurns
from bot.keys import Keys
from bot.settings import LimitSettings
from bot.usage import UsageStore, day_key

# Sliding window. KEYS: the user's turns (sorted set), the "already told" marker (same hash slot).
# ARGV: now ms, window ms, limit, this message id. Returns {allowed, wait ms, notify}.
RATE_LUA = """
local now, window, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
-- A message already in the window (a voice message admitted before its turn) is not counted twice.
if redis.call('ZSCORE', KEYS[1], ARGV[4]) or redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], window)
  return {1, 0, 0}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local wait = math.max(1, tonumber(oldest[2]) + window - now)
local notify = redis.call('SET', KEYS[2], '1', 'NX', 'PX', wait) and 1 or 0
return {0, wait, notify}
"""


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    wait_s: float
    notify: bool

    def enforce(self) -> None:
        if not self.allowed:
            raise TooManyTurns(self.wait_s, notify=self.notify)


class Limits:
    def __init__(self, redis: aioredis.Redis, keys: Keys, settings: LimitSettings) -> None:
        self.redis = redis
        self.keys = keys
        self.settings = settings

    @property
    def rate_limited(self) -> bool:
        return self.settings.user_turns > 0

    @property
    def budgeted(self) -> bool:
        return self.settings.guild_daily_tokens > 0 or self.settings.user_daily_tokens > 0

    def queue_claim(self, message_id: int) -> Callable[[Pipeline], Callable[[list[Any]], None]]:
        """For ``Batch.add``: claim a Discord message; its parser raises DuplicateMessage if already claimed."""

        def queue(pipe: Pipeline) -> Callable[[list[Any]], None]:
            pipe.set(self.keys.seen(message_id), 1, nx=True, ex=self.settings.duplicate_ttl_s)
            return _raise_if_taken

        return queue

    async def claim(self, message_id: int) -> None:
        """Claim a message in a round trip of its own, for a reply that starts no turn (a hint, a note,
        a refusal) or work done before the turn (downloads): the turn's own guard, so a replayed event
        or a second process is answered once. Raises DuplicateMessage (silent) if already claimed."""
        batch = Batch(self.redis)
        batch.add(self.queue_claim(message_id))
        await batch.execute()

    def queue_admission(
        self,
        batch: Batch,
        usage: UsageStore,
        *,
        message_id: int,
        guild_id: int | None,
        user_id: int,
        now: dt.datetime,
        claim: bool = True,
    ) -> Callable[[], None]:
        """Queue on ``batch`` what decides whether a message may start paid work: its claim, the user's
        rate window, the day's budgets. Once the batch has executed, call the returned function: it
        raises DuplicateMessage, TooManyTurns or BudgetExceeded, or returns."""
        if claim:
            batch.add(self.queue_claim(message_id))  # its parser raises on a duplicate
        rate = batch.add(self.queue_rate(user_id, message_id, now)) if self.rate_limited else None
        spent = batch.add(usage.queue_tokens_spent(guild_id, user_id, day_key(now))) if self.budgeted else None

        def enforce() -> None:
            if rate is not None:
                rate.value.enforce()
            if spent is not None:
                self.enforce_budgets(guild_id, *spent.value, now)

        return enforce

    async def admit(
        self, usage: UsageStore, *, message_id: int, guild_id: int | None, user_id: int, now: dt.datetime
    ) -> None:
        """The admission in a round trip of its own, for work paid before a turn starts (a voice message's
        transcription). The turn that follows finds its message already in the rate window and passes
        ``claim=False``."""
        batch = Batch(self.redis)
        enforce = self.queue_admission(batch, usage, message_id=message_id, guild_id=guild_id, user_id=user_id, now=now)
        await batch.execute()
        enforce()

    def queue_rate(
        self, user_id: int, message_id: int, now: dt.datetime
    ) -> Callable[[Pipeline], Callable[[list[Any]], RateDecision]]:
        """For ``Batch.add``: count this turn in the user's sliding window, or refuse it."""

        def queue(pipe: Pipeline) -> Callable[[list[Any]], RateDecision]:
            pipe.eval(
                RATE_LUA,
                2,
                self.keys.rate(user_id),
                self.keys.rate_notice(user_id),
                int(now.timestamp() * 1000),
                int(self.settings.user_window_s * 1000),
                self.settings.user_turns,
                message_id,
            )
            return lambda replies: RateDecision(bool(replies[0][0]), replies[0][1] / 1000, bool(replies[0][2]))

        return queue

    def enforce_budgets(
        self, guild_id: int | None, guild_tokens: int, user_tokens: int, now: dt.datetime, *, adding: int = 0
    ) -> None:
        """Refuse a turn once a daily budget is spent, or work of a known size (``adding`` tokens, e.g.
        characters to read out) that would take it past the budget; budgets reset at midnight UTC."""
        midnight = dt.datetime.combine(now.astimezone(dt.UTC).date() + dt.timedelta(days=1), dt.time(), dt.UTC)
        resets_at = int(midnight.timestamp())
        guild_budget, user_budget = self.settings.guild_daily_tokens, self.settings.user_daily_tokens

        def over(spent: int, budget: int) -> bool:
            # A turn's size is unknown until it is answered: it may start while anything is left.
            return spent + adding > budget if adding else spent >= budget

        if guild_id is not None and guild_budget and over(guild_tokens, guild_budget):
            raise BudgetExceeded("this server's", resets_at)
        if user_budget and over(user_tokens, user_budget):
            raise BudgetExceeded("your", resets_at)

    async def check_budgets(
        self, usage: UsageStore, *, guild_id: int | None, user_id: int, now: dt.datetime, adding: int
    ) -> None:
        """Raise BudgetExceeded when ``adding`` more tokens would take the guild or the user past a
        daily budget (one round trip; none without budgets)."""
        if not self.budgeted:
            return
        batch = Batch(self.redis)
        spent = batch.add(usage.queue_tokens_spent(guild_id, user_id, day_key(now)))
        await batch.execute()
        self.enforce_budgets(guild_id, *spent.value, now, adding=adding)


def _raise_if_taken(replies: list[Any]) -> None:
    if not replies[0]:
        raise DuplicateMessage("message already handled")
