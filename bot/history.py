"""Conversation history in Redis: read a window, append an exchange atomically.

Each conversation (channel, thread or DM) is a Redis list of JSON turns, oldest first, capped at
``history.max_messages`` and expiring after ``history.ttl_days`` without a new turn. A version token,
rewritten by every write, lets this process keep parsed windows in a bounded cache: a read sends the
cached token and Redis returns the list only when it changed, so a turn costs the same at 10 or 1,000
stored turns.

Images a user posted are kept apart from the turns (a turn names its images by id): the newest
``images.keep_in_history`` of a conversation in a hash of data URLs under the same hash tag and TTL,
written in the same script as their turn, so a turn and its images are stored together or not at all.
A turn whose image was dropped since shows the placeholder ``[image: name]`` instead.
"""

from __future__ import annotations

import json
import re
import secrets
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio.client import Pipeline

from bot.keys import Keys

# KEYS: turns, version. ARGV: cached version ('' when none), max turns.
# Returns {version} when the cache is current, else {version or false, turns}.
READ_WINDOW_LUA = """
local v = redis.call('GET', KEYS[2])
if v and v == ARGV[1] then return {v} end
return {v or false, redis.call('LRANGE', KEYS[1], -tonumber(ARGV[2]), -1)}
"""


# The API's `name` field takes only letters, digits, '_' and '-', at most 64 characters.
_NAME_DISALLOWED = re.compile(r"[^A-Za-z0-9_-]+")


def api_name(display_name: str, author_id: int | None) -> str:
    """A display name made acceptable to the API's `name` field (accents folded, the rest replaced)."""
    folded = unicodedata.normalize("NFKD", display_name).encode("ascii", "ignore").decode()
    name = _NAME_DISALLOWED.sub("_", folded).strip("_")[:64]
    return name or f"user_{author_id or 0}"


# KEYS: turns, version, images (hash id -> data URL), image order (list of ids), summary (its TTL
# follows the conversation's). ARGV: version the window was read at ('' for none), new version, turns
# kept at most, ttl ms, images kept at most, number of new
# images n, then n (id, data URL) pairs, then the new turns. Atomic, and all keys share the
# conversation's hash slot. Returns 1 when the window it extends was still current (so the caller may
# cache the result).
APPEND_LUA = """
local current = redis.call('GET', KEYS[2]) or ''
local n = tonumber(ARGV[6])
for i = 0, n - 1 do
  redis.call('HSET', KEYS[3], ARGV[7 + 2 * i], ARGV[8 + 2 * i])
  redis.call('RPUSH', KEYS[4], ARGV[7 + 2 * i])
end
if n > 0 then
  local keep = tonumber(ARGV[5])
  while redis.call('LLEN', KEYS[4]) > keep do
    redis.call('HDEL', KEYS[3], redis.call('LPOP', KEYS[4]))
  end
end
redis.call('RPUSH', KEYS[1], unpack(ARGV, 7 + 2 * n))
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[3]), -1)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[4])
redis.call('PEXPIRE', KEYS[3], ARGV[4])
redis.call('PEXPIRE', KEYS[4], ARGV[4])
redis.call('PEXPIRE', KEYS[5], ARGV[4])
if current == ARGV[1] then return 1 end
return 0
"""


@dataclass(frozen=True, slots=True)
class ImageRef:
    """An image of a user turn: its id among the conversation's kept images, file name and tokens."""

    id: str
    name: str
    tokens: int

    def placeholder(self) -> str:
        return f"[image: {self.name}]"


@dataclass(frozen=True, slots=True)
class Turn:
    role: str  # "user" or "assistant"
    content: str
    tokens: int  # prompt tokens this turn costs, counted once when stored
    name: str | None = None  # the speaker's display name (user turns)
    author_id: int | None = None
    message_id: int | None = None
    spoken: bool = False  # transcribed from a voice message
    # Images posted with the turn. ``tokens`` counts the text with each image's placeholder; an image
    # still kept adds its own tokens (ImageRef.tokens) when it is sent.
    images: tuple[ImageRef, ...] = ()

    def to_json(self) -> str:
        data: dict[str, Any] = {"role": self.role, "content": self.content, "tokens": self.tokens}
        for key in ("name", "author_id", "message_id"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        if self.spoken:
            data["spoken"] = True
        if self.images:
            data["images"] = [{"id": i.id, "name": i.name, "tokens": i.tokens} for i in self.images]
        return json.dumps(data, ensure_ascii=False)

    @classmethod
    def from_json(cls, raw: bytes | str) -> Turn:
        data = json.loads(raw)
        if "images" in data:
            data["images"] = tuple(ImageRef(**item) for item in data["images"])
        return cls(**data)

    def placeholder_text(self, kept: Mapping[str, str] | None = None) -> str:
        """The text, then the placeholder of each image not in ``kept`` (id -> data URL)."""
        missing = [i.placeholder() for i in self.images if not kept or i.id not in kept]
        return "\n".join(part for part in (self.content, *missing) if part)

    def to_message(self, kept: Mapping[str, str] | None = None, detail: str = "auto") -> dict[str, Any]:
        """The chat API message for this turn. Its images still ``kept`` (id -> data URL) follow the
        text as image parts; the others are named by their placeholder."""
        content: str | list[dict[str, Any]] = self.placeholder_text(kept) if self.images else self.content
        if kept and any(i.id in kept for i in self.images):
            parts: list[dict[str, Any]] = [{"type": "text", "text": content}] if content else []
            for image in self.images:
                if image.id in kept:
                    parts.append({"type": "image_url", "image_url": {"url": kept[image.id], "detail": detail}})
            content = parts
        if self.role == "user" and self.name:
            return {"role": "user", "content": content, "name": api_name(self.name, self.author_id)}
        return {"role": self.role, "content": content}

    def image_tokens(self, images: Mapping[str, str]) -> int:
        """The tokens this turn's kept images add to its text."""
        return sum(i.tokens for i in self.images if i.id in images)


class Window:
    """The stored turns of one conversation (oldest first), the version they were read at, and their
    API messages and token counts, built once so a turn never re-walks a long history in Python."""

    __slots__ = ("image_turns", "messages", "tokens", "turns", "version")

    def __init__(self, turns: tuple[Turn, ...], version: str | None, messages: tuple[dict[str, Any], ...] = ()):
        self.turns = turns
        self.version = version
        self.messages = messages or tuple(turn.to_message() for turn in turns)  # images as placeholders
        self.tokens = [turn.tokens for turn in turns]
        self.image_turns = tuple(i for i, turn in enumerate(turns) if turn.images)  # few: walked per prompt

    def extended(self, new: Sequence[Turn], version: str, limit: int) -> Window:
        turns = (*self.turns, *new)[-limit:]
        messages = (*self.messages, *(turn.to_message() for turn in new))[-limit:]
        return Window(turns, version, messages)


class HistoryStore:
    def __init__(
        self,
        keys: Keys,
        *,
        max_messages: int,
        ttl_days: float,
        cache_size: int,
        keep_images: int = 4,
        summarized: bool = False,
    ) -> None:
        self.keys = keys
        self.max_messages = max_messages
        # With summaries, turns not yet folded into one are kept past max_messages (up to twice that),
        # so a summary that failed loses nothing; reads then take up to that many.
        self.read_limit = max_messages * 2 if summarized else max_messages
        self.keep_images = keep_images
        self.ttl_ms = int(ttl_days * 86_400_000)
        self._cache: OrderedDict[int, Window] = OrderedDict()
        self._cache_size = cache_size

    def queue_read(self, conversation_id: int) -> Callable[[Pipeline], Callable[[list[Any]], Window]]:
        """For ``Batch.add``: read the conversation's stored turns (from cache when still current)."""
        cached = self._cache.get(conversation_id)

        def queue(pipe: Pipeline) -> Callable[[list[Any]], Window]:
            pipe.eval(
                READ_WINDOW_LUA,
                2,
                self.keys.turns(conversation_id),
                self.keys.version(conversation_id),
                cached.version if cached and cached.version else "",
                self.read_limit,
            )
            return lambda replies: self._parse_read(conversation_id, cached, replies[0])

        return queue

    def _parse_read(self, conversation_id: int, cached: Window | None, reply: list[Any]) -> Window:
        version = reply[0].decode() if reply[0] else None
        if len(reply) == 1 and cached is not None:
            self._cache.move_to_end(conversation_id)
            return cached
        window = Window(tuple(Turn.from_json(raw) for raw in reply[1]), version)
        self.remember(conversation_id, window)
        return window

    def queue_images(self, conversation_id: int) -> Callable[[Pipeline], Callable[[list[Any]], dict[str, str]]]:
        """For ``Batch.add``: the conversation's kept images, id -> data URL (a handful at most). Not
        cached in memory: a few hundred KB each, and they are sent with every prompt that keeps them."""

        def queue(pipe: Pipeline) -> Callable[[list[Any]], dict[str, str]]:
            pipe.hgetall(self.keys.images(conversation_id))
            return lambda replies: {k.decode(): v.decode() for k, v in replies[0].items()}

        return queue

    def queue_append(
        self,
        conversation_id: int,
        window: Window,
        new: Sequence[Turn],
        images: Sequence[tuple[str, str]] = (),
        *,
        keep: int = 0,
    ) -> Callable[[Pipeline], Callable[[list[Any]], None]]:
        """For ``Batch.add``: append ``new`` after ``window`` atomically, with ``images`` ((id, data
        URL) pairs) kept for follow-ups; at least the newest ``keep`` turns stay (turns no summary
        covers yet) within ``read_limit``. The result is cached when nobody else wrote in between."""
        version = secrets.token_hex(8)
        limit = min(self.read_limit, max(self.max_messages, keep))
        kept = images[-self.keep_images :] if self.keep_images else ()

        def queue(pipe: Pipeline) -> Callable[[list[Any]], None]:
            pipe.eval(
                APPEND_LUA,
                5,
                self.keys.turns(conversation_id),
                self.keys.version(conversation_id),
                self.keys.images(conversation_id),
                self.keys.image_order(conversation_id),
                self.keys.summary(conversation_id),
                window.version or "",
                version,
                limit,
                self.ttl_ms,
                self.keep_images,
                len(kept),
                *(value for pair in kept for value in pair),
                *(turn.to_json() for turn in new),
            )
            return lambda replies: self._appended(conversation_id, window, new, version, limit, replies[0] == 1)

        return queue

    def _appended(
        self, conversation_id: int, window: Window, new: Sequence[Turn], version: str, limit: int, current: bool
    ) -> None:
        if current:
            self.remember(conversation_id, window.extended(new, version, limit))
        else:
            self._cache.pop(conversation_id, None)

    def queue_clear(self, conversation_id: int) -> Callable[[Pipeline], Callable[[list[Any]], int]]:
        """For ``Batch.add``: remove a conversation's history; the result is how many turns it had."""
        self._cache.pop(conversation_id, None)

        def queue(pipe: Pipeline) -> Callable[[list[Any]], int]:
            pipe.llen(self.keys.turns(conversation_id))
            # Keys of one hash slot: valid on Redis Cluster too.
            pipe.delete(
                self.keys.turns(conversation_id),
                self.keys.version(conversation_id),
                self.keys.images(conversation_id),
                self.keys.image_order(conversation_id),
                self.keys.summary(conversation_id),
            )
            return lambda replies: int(replies[0])

        return queue

    def remember(self, conversation_id: int, window: Window) -> None:
        """Cache a window known to match Redis (after a read, or after an append executed)."""
        self._cache[conversation_id] = window
        self._cache.move_to_end(conversation_id)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
