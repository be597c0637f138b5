"""Each user's own choice about voice replies to their voice messages, kept in Redis."""

from __future__ import annotations

import redis.asyncio as aioredis

from bot.keys import Keys
from bot.storage import guarded

ON, OFF = b"on", b"off"


class SpokenReplyPrefs:
    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def wants_voice(self, user_id: int) -> bool:
        """False once the user turned voice replies off; they are on until then."""
        return await guarded(lambda: self.redis.get(self.keys.spoken_replies(user_id))) != OFF

    async def choose(self, user_id: int, *, voice: bool) -> None:
        """Kept until changed: a preference, not a cache."""
        value = ON if voice else OFF
        await guarded(lambda: self.redis.set(self.keys.spoken_replies(user_id), value))
