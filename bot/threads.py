"""The threads the bot opened with /chat: every message in them is for the bot.

Kept in Redis (one key per thread, expiring with the conversation's history and refreshed by each
turn in it; deleted with the thread), so a restarted process, or another shard's, knows them too. A
thread once known to be ours is remembered in memory; unknown ones are asked again, because the
thread's creation and its first message may race the key's write.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from bot.keys import Keys
from bot.storage import guarded

KNOWN_CACHE_SIZE = 10_000


class BotThreads:
    def __init__(self, redis: aioredis.Redis, keys: Keys, *, ttl_days: float) -> None:
        self.redis = redis
        self.keys = keys
        self.ttl_ms = int(ttl_days * 86_400_000)
        self._known: OrderedDict[int, None] = OrderedDict()

    async def remember(self, thread_id: int, opened_by: int) -> None:
        key = self.keys.bot_thread(thread_id)
        await guarded(lambda: self.redis.set(key, opened_by, px=self.ttl_ms))
        self._note(thread_id)

    async def opened_by(self, thread_id: int) -> int | None:
        """Who opened this thread with /chat (None: not one of the bot's threads)."""
        value = await guarded(lambda: self.redis.get(self.keys.bot_thread(thread_id)))
        return int(value) if value else None

    async def is_ours(self, thread_id: int) -> bool:
        if thread_id in self._known:
            self._known.move_to_end(thread_id)
            return True
        if not await guarded(lambda: self.redis.exists(self.keys.bot_thread(thread_id))):
            return False
        self._note(thread_id)
        return True

    def queue_refresh(self, thread_id: int) -> Callable[[Pipeline], Callable[[list[Any]], None]]:
        """For ``Batch.add`` in a turn's write round trip: the thread lives as long as its history."""

        def queue(pipe: Pipeline) -> Callable[[list[Any]], None]:
            pipe.pexpire(self.keys.bot_thread(thread_id), self.ttl_ms)
            return lambda replies: None

        return queue

    async def take_slowmode(self, channel_id: int, user_id: int, seconds: int) -> float | None:
        """Discord's slowmode also limits thread creation to one per interval: None when this user may
        open a thread now (and the interval starts), else the seconds left."""
        key = self.keys.chat_slowmode(channel_id, user_id)
        if await guarded(lambda: self.redis.set(key, 1, ex=seconds, nx=True)):
            return None
        left_ms = await guarded(lambda: self.redis.pttl(key))
        return max(left_ms, 1_000) / 1000 if left_ms > 0 else float(seconds)

    async def drop(self, thread_id: int) -> None:
        """The thread was deleted: no longer one of the bot's (another process's memory may still list
        it, harmlessly: no message can arrive in a deleted thread)."""
        self.forget(thread_id)
        await guarded(lambda: self.redis.delete(self.keys.bot_thread(thread_id)))

    def forget(self, thread_id: int) -> None:
        self._known.pop(thread_id, None)

    def _note(self, thread_id: int) -> None:
        self._known[thread_id] = None
        self._known.move_to_end(thread_id)
        while len(self._known) > KNOWN_CACHE_SIZE:
            self._known.popitem(last=False)
