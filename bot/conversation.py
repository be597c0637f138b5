"""One chat turn, end to end, as an async stream of text.

The walk: one Redis round trip reads the stored window; the window is fitted to the token budget from
stored counts (only the new message is tokenised); the model streams; on success one MULTI round trip
appends the user's turn and the answer together. On any failure nothing is written.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from bot.batch import Batch
from bot.errors import MessageTooLong
from bot.history import HistoryStore, Turn, Window, api_name
from bot.llm import ChatModel, Finish, Usage
from bot.personas import PersonaStore
from bot.tokens import REPLY_PRIMING_TOKENS, TokenCounter, fit_newest


@dataclass(frozen=True, slots=True)
class ChatRequest:
    conversation_id: int  # the channel, thread or DM channel
    guild_id: int | None
    author_id: int
    author_name: str
    message_id: int
    text: str
    bot_name: str = "the bot"
    guild_name: str | None = None
    parent_id: int | None = None  # a thread's parent channel (for the persona)
    spoken: bool = False


@dataclass(frozen=True, slots=True)
class TurnDone:
    """The last item of a successful turn: the whole answer, why it ended and what it cost."""

    text: str
    finish_reason: str
    usage: Usage


class ConversationLocks:
    """Turns of one conversation run one at a time, in arrival order; others run in parallel.
    asyncio.Lock is FIFO, and a lock lives only while someone holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[int, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: int) -> AsyncIterator[None]:
        lock, users = self._locks.get(key) or (asyncio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


class ChatService:
    def __init__(
        self,
        *,
        redis: aioredis.Redis,
        history: HistoryStore,
        model: ChatModel,
        counter: TokenCounter,
        context_window: int,
        max_reply_tokens: int,
        margin: int,
        personas: PersonaStore,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.redis = redis
        self.history = history
        self.model = model
        self.counter = counter
        self.context_window = context_window
        self.max_reply_tokens = max_reply_tokens
        self.margin = margin
        self.personas = personas
        self.clock = clock
        self.locks = ConversationLocks()

    async def turn(self, request: ChatRequest) -> AsyncIterator[str | TurnDone]:
        """Yield the answer's text deltas, then a ``TurnDone``. Raises ``BotError`` subclasses; after
        an error nothing has been stored."""
        # Taking the lock is the first await, so turns queue in the order their messages arrived.
        async with self.locks.hold(request.conversation_id):
            batch = Batch(self.redis)
            persona = batch.add(
                self.personas.queue_active(request.guild_id, request.conversation_id, request.parent_id)
            )
            read = batch.add(self.history.queue_read(request.conversation_id))
            await batch.execute()
            window = read.value

            system_prompt = persona.value.render(
                bot_name=request.bot_name, guild_name=request.guild_name, today=self.clock().date()
            )
            user_turn = self._user_turn(request)
            messages = self._prompt(system_prompt, window, user_turn)
            parts: list[str] = []
            finish: Finish | None = None
            async for event in self.model.stream(messages):
                if isinstance(event, Finish):
                    finish = event
                else:
                    parts.append(event)
                    yield event
            assert finish is not None  # ChatModel.stream raises when the stream has no finish
            text = "".join(parts)
            usage = finish.usage or Usage(
                sum(self.counter.message(m["content"], m.get("name")) for m in messages) + REPLY_PRIMING_TOKENS,
                self.counter.count(text),
                estimated=True,
            )
            if text:
                await self._store(request.conversation_id, window, user_turn, text, usage)
            yield TurnDone(text, finish.reason, usage)

    def _user_turn(self, request: ChatRequest) -> Turn:
        name = api_name(request.author_name, request.author_id)
        return Turn(
            role="user",
            content=request.text,
            tokens=self.counter.message(request.text, name),
            name=request.author_name,
            author_id=request.author_id,
            message_id=request.message_id,
            spoken=request.spoken,
        )

    def _prompt(self, system_prompt: str, window: Window, user_turn: Turn) -> list[dict[str, Any]]:
        """System prompt, the newest stored turns that fit, the new message. Only the new message (and
        the system prompt) are tokenised here: stored turns carry their counts."""
        system = {"role": "system", "content": system_prompt}
        budget = (
            self.context_window
            - self.max_reply_tokens
            - self.margin
            - REPLY_PRIMING_TOKENS
            - self.counter.message(system_prompt)
        )
        if user_turn.tokens > budget:
            raise MessageTooLong(user_turn.tokens, budget)
        kept = fit_newest(window.tokens, budget - user_turn.tokens)
        history = window.messages[len(window.messages) - kept :]
        return [system, *history, user_turn.to_message()]

    async def _store(self, conversation_id: int, window: Window, user_turn: Turn, text: str, usage: Usage) -> None:
        answer_tokens = self.counter.message(text)
        answer = Turn(role="assistant", content=text, tokens=answer_tokens)
        batch = Batch(self.redis)
        batch.add(self.history.queue_append(conversation_id, window, (user_turn, answer)))
        await batch.execute()

    async def forget(self, conversation_id: int) -> int:
        """Clear a conversation's history; returns how many turns it had. Waits for a turn in progress,
        so its answer is not written back after the history was cleared."""
        async with self.locks.hold(conversation_id):
            batch = Batch(self.redis)
            removed = batch.add(self.history.queue_clear(conversation_id))
            await batch.execute()
            return removed.value
