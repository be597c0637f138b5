"""Snowflake ids and timestamps as Discord makes them, and the small id helpers every part of the stand-in uses."""

from __future__ import annotations

import datetime
import time
from typing import Any

DISCORD_EPOCH_MS = 1_420_070_400_000
UserRef = dict[str, Any] | int  # a user payload or its bare id (what as_id takes)


class Snowflakes:
    """Real-looking, strictly increasing snowflakes: ``(ms since Discord epoch) << 22 | counter``."""

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> int:
        value = (int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22
        value = max(value, self._last + 1)
        self._last = value
        return value

    def for_shard(self, shard_id: int, shard_count: int) -> int:
        """A fresh id whose ``(id >> 22) % shard_count == shard_id`` (i.e. a guild on that shard)."""
        value = self.next()
        while (value >> 22) % shard_count != shard_id:
            value += 1 << 22
        self._last = max(self._last, value)
        return value


SNOWFLAKES = Snowflakes()  # process-wide so several stand-ins never hand out the same id


def snowflake_time(snowflake: int) -> str:
    ms = (snowflake >> 22) + DISCORD_EPOCH_MS
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).isoformat()


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()


def shard_of(guild_id: int | None, shard_count: int) -> int:
    return 0 if guild_id is None else (guild_id >> 22) % shard_count


def as_id(obj: dict[str, Any] | int | str) -> int:
    return int(obj["id"]) if isinstance(obj, dict) else int(obj)
