"""Usage accounting: tokens, requests and audio per guild and per user per UTC day, priced from config.

Each day is one Redis hash per guild and one per user, with a field per model and kind
(``in:<model>``, ``out:<model>``, ``req:<model>``, ``est:<model>``, ``audio_ms:<model>``,
``tts_chars:<model>``), so a day that mixes models is still priced exactly. Chat turns add their usage
in the turn's write round trip.

Daily budgets are counted in tokens; a character read out (spoken replies) counts as one token. That
over-counts the text (about 4 characters a token) on purpose: speech costs more per character than a
chat model's output per token.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from bot.batch import Batch
from bot.keys import Keys
from bot.llm import Usage
from bot.settings import UsageSettings


def day_key(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d")


@dataclass
class UsageTotals:
    input_tokens: int = 0
    output_tokens: int = 0
    requests: int = 0
    estimated_requests: int = 0  # requests whose server sent no usage: counted with tiktoken
    audio_seconds: float = 0.0
    spoken_chars: int = 0  # characters read out by a speech model
    cost: float = 0.0  # dollars, from the configured prices
    unpriced_models: set[str] = field(default_factory=set)

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def budget_tokens(self) -> int:
        """What counts toward the daily budgets: tokens, and each character read out as one."""
        return self.tokens + self.spoken_chars

    def add(self, other: UsageTotals) -> None:
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.requests += other.requests
        self.estimated_requests += other.estimated_requests
        self.audio_seconds += other.audio_seconds
        self.spoken_chars += other.spoken_chars
        self.cost += other.cost
        self.unpriced_models |= other.unpriced_models


def _fields(model: str, usage: Usage | None, audio_seconds: float, spoken_chars: int = 0) -> dict[str, int]:
    """The hash fields one request adds to a day."""
    increments = {f"req:{model}": 1}
    if usage is not None:
        increments[f"in:{model}"] = usage.prompt_tokens
        increments[f"out:{model}"] = usage.completion_tokens
        if usage.estimated:
            increments[f"est:{model}"] = 1
    if audio_seconds:
        increments[f"audio_ms:{model}"] = round(audio_seconds * 1000)
    if spoken_chars:
        increments[f"tts_chars:{model}"] = spoken_chars
    return increments


class UsageStore:
    def __init__(self, redis: aioredis.Redis, keys: Keys, settings: UsageSettings) -> None:
        self.redis = redis
        self.keys = keys
        self.settings = settings
        self.retention_s = settings.retention_days * 86_400

    def queue_record(
        self,
        *,
        guild_id: int | None,
        user_id: int,
        model: str,
        day: str,
        usage: Usage | None = None,
        audio_seconds: float = 0.0,
        spoken_chars: int = 0,
    ) -> Callable[[Pipeline], Callable[[list[Any]], None]]:
        """For ``Batch.add``: add one request's usage to the guild's and the user's day."""
        increments = _fields(model, usage, audio_seconds, spoken_chars)

        def queue(pipe: Pipeline) -> Callable[[list[Any]], None]:
            for key in (self.keys.guild_usage(guild_id, day), self.keys.user_usage(user_id, day)):
                for name, amount in increments.items():
                    pipe.hincrby(key, name, amount)
                pipe.expire(key, self.retention_s)
            return lambda replies: None

        return queue

    def request_totals(self, model: str, usage: Usage | None = None, audio_seconds: float = 0.0) -> UsageTotals:
        """One request's figures and estimated cost, priced exactly as the stored days are."""
        fields = _fields(model, usage, audio_seconds)
        return self.totals({name.encode(): str(value).encode() for name, value in fields.items()})

    async def record(self, **usage: Any) -> None:
        """Record one request in its own round trip (transcriptions and speech, which are not part of a turn)."""
        batch = Batch(self.redis)
        batch.add(self.queue_record(**usage))
        await batch.execute()

    def queue_tokens_spent(
        self, guild_id: int | None, user_id: int, day: str
    ) -> Callable[[Pipeline], Callable[[list[Any]], tuple[int, int]]]:
        """For ``Batch.add``: (guild tokens, user tokens) used on ``day``, as the budgets count them."""

        def queue(pipe: Pipeline) -> Callable[[list[Any]], tuple[int, int]]:
            pipe.hgetall(self.keys.guild_usage(guild_id, day))
            pipe.hgetall(self.keys.user_usage(user_id, day))
            return lambda replies: (self.totals(replies[0]).budget_tokens, self.totals(replies[1]).budget_tokens)

        return queue

    async def report(
        self, *, today: dt.date, days: int, guild_id: int | None = None, user_id: int | None = None
    ) -> list[tuple[dt.date, UsageTotals]]:
        """Usage of a guild or a user for ``days`` UTC days ending today, newest first, in one round trip."""
        dates = [today - dt.timedelta(days=n) for n in range(days)]
        batch = Batch(self.redis)
        for date in dates:
            key = (
                self.keys.guild_usage(guild_id, date.isoformat())
                if user_id is None
                else self.keys.user_usage(user_id, date.isoformat())
            )
            batch.pipe.hgetall(key)
        replies = await batch.execute_raw()
        return [(date, self.totals(reply)) for date, reply in zip(dates, replies, strict=True)]

    def totals(self, fields: dict[bytes, bytes]) -> UsageTotals:
        totals = UsageTotals()
        for raw_name, raw_value in fields.items():
            kind, _, model = raw_name.decode().partition(":")
            value = int(raw_value)
            price = self.settings.price(model)
            if kind == "in":
                totals.input_tokens += value
                totals.cost += value * (price.input_per_million if price else 0) / 1_000_000
            elif kind == "out":
                totals.output_tokens += value
                totals.cost += value * (price.output_per_million if price else 0) / 1_000_000
            elif kind == "req":
                totals.requests += value
            elif kind == "est":
                totals.estimated_requests += value
            elif kind == "audio_ms":
                totals.audio_seconds += value / 1000
                totals.cost += value / 60_000 * (price.audio_per_minute if price else 0)
            elif kind == "tts_chars":
                totals.spoken_chars += value
                totals.cost += value * (price.tts_per_million_chars if price else 0) / 1_000_000
            if price is None and kind in ("in", "out", "audio_ms", "tts_chars") and value:
                totals.unpriced_models.add(model)
        return totals
