"""One chat turn, end to end, as an async stream of text.

The walk: one Redis round trip claims the message, checks the user's rate limit and the daily budgets,
and reads the persona and the stored window; the window is fitted to the token budget from stored counts
(only the new message is tokenised); the model streams; on success one more round trip appends the
user's turn and the answer together (atomically) and adds the usage. On any failure no history is written.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import redis.asyncio as aioredis

from bot.batch import Batch
from bot.errors import ImagesNotRead, ModelError, StorageUnavailable
from bot.history import HistoryStore, ImageRef, Turn, Window, api_name
from bot.images import PreparedImage
from bot.limits import Limits
from bot.llm import ChatModel, Finish, Usage
from bot.models import ModelChoices, ModelRegistry, ServedModel
from bot.personas import PersonaStore, Scope
from bot.prompt import build_prompt
from bot.sanitize import clean_text
from bot.summary import Summarizer, Summary, SummaryJob, SummaryStore, first_unsummarized, plan_fold
from bot.threads import BotThreads
from bot.tokens import TokenCounter
from bot.usage import UsageStore, day_key

log = logging.getLogger(__name__)


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
    parent_id: int | None = None  # a thread's parent channel (for the persona and the model)
    spoken: bool = False
    claim: bool = True  # False when the caller already claimed the message (voice claims early)
    bot_thread: bool = False  # a thread the bot opened with /chat: the turn keeps it known as such
    images: tuple[PreparedImage, ...] = ()  # sent after the text, in order (see bot.images)

    def cleaned(self) -> ChatRequest:
        """The request with every text from Discord made encodable (see bot.sanitize)."""
        return dataclasses.replace(
            self,
            text=clean_text(self.text),
            author_name=clean_text(self.author_name),
            bot_name=clean_text(self.bot_name),
            guild_name=clean_text(self.guild_name) if self.guild_name is not None else None,
        )


@dataclass(frozen=True, slots=True)
class TurnStarted:
    """The turn passed its checks and the model is being asked: time to show "typing"."""


@dataclass(frozen=True, slots=True)
class TurnDone:
    """The last item of a successful turn: the whole answer, why it ended and what it cost."""

    text: str
    finish_reason: str
    usage: Usage
    model: str = ""  # the model that answered (each server may pick its own)
    ignored_images: tuple[str, ...] = ()  # names of images the chosen model (text-only) was not shown


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
        models: ModelChoices,
        margin: int,
        personas: PersonaStore,
        usage: UsageStore,
        limits: Limits,
        threads: BotThreads | None = None,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        observe_redis: Callable[[float], None] | None = None,
        image_detail: str = "auto",
        summaries: SummaryStore | None = None,
        summarizer: Summarizer | None = None,
    ) -> None:
        self.redis = redis
        self.history = history
        self.models = models
        self.margin = margin
        self.personas = personas
        self.usage = usage
        self.limits = limits
        self.threads = threads
        self.clock = clock
        self.observe_redis = observe_redis  # each turn round trip's duration, for metrics
        self.image_detail = image_detail
        self.summaries = summaries  # None: no long memory ([history] summarize = false)
        self.summarizer = summarizer
        self.locks = ConversationLocks()

    @property
    def registry(self) -> ModelRegistry:
        return self.models.registry

    @property
    def model(self) -> ChatModel:
        """The default model's (the one-model case's) ChatModel."""
        return self.registry.default.chat

    @property
    def counter(self) -> TokenCounter:
        return self.registry.default.counter

    async def turn(
        self, request: ChatRequest, *, before_store: Callable[[], Awaitable[None]] | None = None
    ) -> AsyncIterator[TurnStarted | str | TurnDone]:
        """Yield ``TurnStarted`` once the turn is allowed, the answer's text deltas, then ``TurnDone``.
        Raises ``BotError`` subclasses (some ``silent``); after an error no history has been written.
        ``before_store`` is awaited once the answer is complete, before it is stored: the caller shows
        it there first (its exception aborts the turn: an answer nobody saw is not history)."""
        request = request.cleaned()  # where a message enters the engine: nothing later may choke on it
        # Taking the lock is the first await, so turns queue in the order their messages arrived.
        async with self.locks.hold(request.conversation_id):
            now = self.clock()
            day = day_key(now)
            # The one read round trip: every check and everything the prompt needs.
            batch = Batch(self.redis, observe=self.observe_redis)
            admitted = self.limits.queue_admission(
                batch,
                self.usage,
                message_id=request.message_id,
                guild_id=request.guild_id,
                user_id=request.author_id,
                now=now,
                claim=request.claim,
            )
            persona = batch.add(
                self.personas.queue_active(request.guild_id, request.conversation_id, request.parent_id)
            )
            chosen = batch.add(self.models.queue_active(request.guild_id, request.conversation_id, request.parent_id))
            read = batch.add(self.history.queue_read(request.conversation_id))
            kept_images = batch.add(self.history.queue_images(request.conversation_id))
            stored_summary = batch.add(self.summaries.queue_read(request.conversation_id)) if self.summaries else None
            await batch.execute()
            admitted()
            window = read.value
            model = chosen.value.model

            system_prompt = persona.value.render(
                bot_name=request.bot_name, guild_name=request.guild_name, today=now.date()
            )
            # A text-only model sees no image: stored ones as placeholders, new ones not at all.
            sees_images = model.settings.images
            ignored = () if sees_images else tuple(image.name for image in request.images)
            if ignored and not request.text:
                raise ImagesNotRead(ignored)
            user_turn, new_images = self._user_turn(request, model, request.images if sees_images else ())
            images = {**kept_images.value, **new_images} if sees_images else {}
            summary = stored_summary.value if stored_summary else None
            first = first_unsummarized(window, summary)
            prompt = build_prompt(
                settings=model.settings,
                counter=model.counter,
                margin=self.margin,
                system_prompt=system_prompt,
                window=window,
                user_turn=user_turn,
                images=images,
                detail=self.image_detail,
                summary=summary,
                first=first,
            )
            messages, prompt_tokens = prompt.messages, prompt.tokens
            yield TurnStarted()
            parts: list[str] = []
            finish: Finish | None = None
            try:
                async for event in model.chat.stream(messages):
                    if isinstance(event, Finish):
                        finish = event
                    else:
                        parts.append(event)
                        yield event
            except ModelError:
                if parts:  # the server bills the tokens it generated before the break
                    await self._record_interrupted(request, model, day, prompt_tokens, "".join(parts))
                raise
            assert finish is not None  # ChatModel.stream raises when the stream has no finish
            text = "".join(parts)
            # No usage from the server: estimate from the counts already known, so a long history is
            # not tokenised again (every message's count was taken once, when it was stored).
            usage = finish.usage or Usage(prompt_tokens, model.counter.count(text), estimated=True)
            if before_store is not None:
                await before_store()
            # Turns no summary covers yet stay stored (past max_messages) until one does.
            keep = len(window.turns) - first + 2 if self.summaries else 0
            await self._finish(request, model, day, window, user_turn, new_images, text, usage, keep)
            yield TurnDone(text, finish.reason, usage, model.name, ignored)
            # Here the answer is delivered (the caller asked for what follows TurnDone) and stored.
            if self.summarizer is not None and text.strip():
                self._fold_later(request, model, day, window, summary, first, prompt.shown_from)

    def _user_turn(
        self, request: ChatRequest, model: ServedModel, images: tuple[PreparedImage, ...]
    ) -> tuple[Turn, dict[str, str]]:
        """The new turn, and its images by id (id -> data URL)."""
        name = api_name(request.author_name, request.author_id)
        refs = tuple(
            ImageRef(f"{request.message_id}.{index}", image.name, image.tokens) for index, image in enumerate(images)
        )
        turn = Turn(
            role="user",
            content=request.text,
            tokens=0,
            name=request.author_name,
            author_id=request.author_id,
            message_id=request.message_id,
            spoken=request.spoken,
            images=refs,
        )
        turn = dataclasses.replace(turn, tokens=model.counter.message(turn.placeholder_text(), name))
        return turn, {ref.id: image.data_url for ref, image in zip(refs, images, strict=True)}

    async def _finish(
        self,
        request: ChatRequest,
        model: ServedModel,
        day: str,
        window: Window,
        user_turn: Turn,
        new_images: dict[str, str],
        text: str,
        usage: Usage,
        keep: int = 0,
    ) -> None:
        """The one write round trip: the exchange with its images (unless the answer is empty or only
        whitespace: the user was told the model returned nothing) and the usage."""
        batch = Batch(self.redis, observe=self.observe_redis)
        if text.strip():
            answer = Turn(role="assistant", content=text, tokens=model.counter.message(text))
            exchange = (user_turn, answer)
            new = tuple(new_images.items())
            batch.add(self.history.queue_append(request.conversation_id, window, exchange, new, keep=keep))
        batch.add(
            self.usage.queue_record(
                guild_id=request.guild_id,
                user_id=request.author_id,
                model=model.name,
                day=day,
                usage=usage,
            )
        )
        if request.bot_thread and self.threads is not None:
            batch.add(self.threads.queue_refresh(request.conversation_id))
        await batch.execute()

    async def _record_interrupted(
        self, request: ChatRequest, model: ServedModel, day: str, prompt_tokens: int, text: str
    ) -> None:
        """An interrupted answer's usage, estimated (the server sends usage only at the end): the
        prompt and the text that came. No history is written: the answer is not stored."""
        usage = Usage(prompt_tokens, model.counter.count(text), estimated=True)
        batch = Batch(self.redis, observe=self.observe_redis)
        batch.add(
            self.usage.queue_record(
                guild_id=request.guild_id, user_id=request.author_id, model=model.name, day=day, usage=usage
            )
        )
        try:
            await batch.execute()
        except StorageUnavailable as exc:  # the user hears about the model; the lost count is logged
            log.warning("Could not record the usage of an interrupted answer: %s", exc)

    def _fold_later(
        self,
        request: ChatRequest,
        model: ServedModel,
        day: str,
        window: Window,
        summary: Summary | None,
        first: int,
        shown_from: int,
    ) -> None:
        """Start folding the turns this prompt left out into the summary, in the background."""
        assert self.summarizer is not None
        if self.summarizer.busy(request.conversation_id):
            return
        served = self.summarizer.model(model)
        input_budget = served.settings.context_window - self.summarizer.max_tokens - 2 * self.margin
        fold = plan_fold(window, first, shown_from, self.history.max_messages, input_budget)
        if fold is not None:
            self.summarizer.start(SummaryJob(request.conversation_id, request.guild_id, day, summary, fold), served)

    async def forget(self, conversation_id: int) -> int:
        """Clear a conversation's history and summary; returns how many turns it had. Waits for a turn in
        progress, so its answer is not written back after the history was cleared, and stops a summary
        being made."""
        if self.summarizer is not None:
            await self.summarizer.cancel(conversation_id)
        async with self.locks.hold(conversation_id):
            batch = Batch(self.redis, observe=self.observe_redis)
            removed = batch.add(self.history.queue_clear(conversation_id))
            await batch.execute()
            return removed.value

    async def forget_thread(self, guild_id: int, thread_id: int) -> None:
        """A deleted thread can never be continued: its conversation goes (as ``forget``), and so do its
        /chat marker and its persona and model overrides, which nothing would ever read again."""
        await self.forget(thread_id)
        if self.threads is not None:
            await self.threads.drop(thread_id)
        await self.personas.reset(guild_id, Scope.CHANNEL, thread_id)
        await self.models.reset(guild_id, Scope.CHANNEL, thread_id)
