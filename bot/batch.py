"""Several stores' Redis commands sent in one round trip.

A store queues its commands on the shared pipeline and returns a parser for its own slice of the
replies; ``Batch.execute`` sends everything at once and hands each parser its slice. This is how a chat
turn reads everything it needs (history, persona, limits) in a single round trip.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from bot.storage import guarded

T = TypeVar("T")
Parser = Callable[[list[Any]], T]


class Pending(Generic[T]):
    """A value that becomes available once its batch has executed."""

    __slots__ = ("_parse", "_ready", "_value")

    def __init__(self, parse: Parser[T]) -> None:
        self._parse = parse
        self._ready = False

    def _resolve(self, replies: list[Any]) -> None:
        self._value = self._parse(replies)
        self._ready = True

    @property
    def value(self) -> T:
        if not self._ready:
            raise RuntimeError("the batch has not been executed yet")
        return self._value


class Batch:
    def __init__(
        self, client: aioredis.Redis, *, transaction: bool = False, observe: Callable[[float], None] | None = None
    ) -> None:
        self.pipe: Pipeline = client.pipeline(transaction=transaction)
        self._parts: list[tuple[int, Pending[Any]]] = []
        self._observe = observe  # told each round trip's duration (seconds), for metrics

    def add(self, queue: Callable[[Pipeline], Parser[T]]) -> Pending[T]:
        """``queue`` puts its commands on the pipeline and returns the parser for their replies."""
        before = len(self.pipe)
        pending: Pending[T] = Pending(queue(self.pipe))
        self._parts.append((len(self.pipe) - before, pending))
        return pending

    async def execute(self) -> None:
        """One round trip; Redis failures become StorageUnavailable."""
        replies = await self.execute_raw()
        start = 0
        for count, pending in self._parts:
            pending._resolve(replies[start : start + count])
            start += count

    async def execute_raw(self) -> list[Any]:
        """One round trip returning every reply (for commands queued directly on ``pipe``)."""
        if self._observe is None:
            return await guarded(self.pipe.execute)
        started = time.perf_counter()
        try:
            return await guarded(self.pipe.execute)
        finally:
            self._observe(time.perf_counter() - started)
