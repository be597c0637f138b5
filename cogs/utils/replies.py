"""Streaming an answer into Discord: typing until the first text, the first text at once, then edits
throttled to one per ``edit_interval_s``, continued in new messages past 2,000 characters. The closing
edit goes out as soon as the answer is complete instead of waiting out the interval.

Every request goes through the bot's request scheduler (cogs/utils/budget.py), from one task per reply
that the reply owns and awaits (never fire-and-forget). Under load the first message and the closing
edit go first, an intermediate edit waits behind them and sends the newest text when its slot comes,
and an answer already complete by its first slot is posted once, complete. An edit that fails (the
reply was deleted: 404; 403; a 5xx after discord.py's retries) stops the streaming into it, logged
once, and the turn completes; a first message that fails aborts the turn, as nothing was shown."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Protocol

import discord

from bot.conversation import ChatRequest, TurnDone, TurnStarted
from bot.errors import BotError, BudgetExceeded, TooManyTurns
from bot.llm import Usage
from bot.splitting import close_open_fence, split_message
from bot.turnlog import log_turn
from cogs.utils.budget import Priority, RequestScheduler, Ticket, event_or_timeout
from cogs.utils.routes import Bucket, create_bucket, edit_bucket
from cogs.utils.text import name_list

if TYPE_CHECKING:
    from bot.app import ChatBot
    from cogs.utils.spoken_reply import SpeechOutcome

log = logging.getLogger(__name__)

NOTES = {
    "length": "*(Answer cut short: it reached the reply length limit.)*",
    "content_filter": "*(The model's content filter stopped this answer.)*",
}
EMPTY_ANSWER = "*(The model returned an empty answer. Try rephrasing?)*"


class Speak(Protocol):
    """Reads a finished answer out (cogs/utils/spoken_reply.py)."""

    instead_of_text: bool  # the text is held back, shown only if the speech does not carry it all

    def __call__(self, answer: str) -> Awaitable[SpeechOutcome]: ...


class StreamingReply:
    def __init__(
        self, source: discord.Message, *, edit_interval: float, requests: RequestScheduler, hold: bool = False
    ) -> None:
        self.source = source
        self.channel_id = source.channel.id
        self.interval = edit_interval
        self.requests = requests
        self.hold = hold  # True: collect the text, show nothing (typing goes on) until finish()
        self._parts: list[str] = []
        self._sent: list[discord.Message] = []
        self._shown: list[str] = []
        self._done = False  # the text is final: what is left to send is urgent
        self._complete = False  # the model's stream has ended (the notes may still come)
        self._changed = asyncio.Event()
        self._finished = asyncio.Event()
        self._posted = asyncio.Event()  # the first message is out (or the pump has ended)
        self._last_flush = 0.0
        self._pump: asyncio.Task[None] | None = None
        self._ticket: Ticket | None = None  # the slot the pump is waiting for
        self._typing: asyncio.Task[None] | None = None
        self._raised = False  # the pump's failure has reached the turn
        self.stopped: discord.HTTPException | None = None  # the failed edit that stopped the streaming

    @property
    def started(self) -> bool:
        return bool(self._sent)

    def start_typing(self) -> None:
        self._typing = asyncio.create_task(self._keep_typing())

    async def _keep_typing(self) -> None:
        # One loop pass first: this task is created just before the turn asks the model, whose
        # request aiohttp writes from a task of its own created in that same pass. Typing is
        # cosmetic; the model request goes out first (~0.4 ms sooner), typing right after it.
        await asyncio.sleep(0)
        await self.requests.keep_typing(self.source.channel, self.channel_id)

    def _stop_typing(self) -> None:
        if self._typing is not None:
            self._typing.cancel()

    async def add(self, delta: str) -> None:
        self._raise_if_failed()
        self._parts.append(delta)
        if self.hold:
            return
        self._changed.set()
        self._start_pump()

    async def shown(self) -> None:
        """Return once the first message is out; raise what stopped it (nothing was shown)."""
        if self.hold or (not self._sent and self._next_bucket() is None):
            return  # nothing to show yet (held back for speech; an empty answer's note comes in finish())
        self._complete = True  # the stream has ended: what is sent now carries the whole answer
        if self._ticket is not None:
            self.requests.promote(self._ticket, Priority.URGENT)
        self._start_pump()
        await self._posted.wait()
        self._raise_if_failed()

    async def finish(self, note: str | None = None) -> None:
        """Show the complete answer now, with an optional note after it."""
        text = "".join(self._parts)
        if note:
            text = f"{close_open_fence(text)}\n\n{note}" if text.strip() else note
        self._parts = [text]
        self._done = True
        self._finished.set()
        self._changed.set()
        if self._ticket is not None:  # a waiting intermediate edit now carries the closing text
            self.requests.promote(self._ticket, Priority.URGENT)
        self._start_pump()
        assert self._pump is not None
        try:
            await asyncio.shield(self._pump)
        finally:
            self._stop_typing()
        self._raise_if_failed()

    async def fail(self, error: BotError) -> None:
        """Tell the user what went wrong; text already streamed is kept and marked as interrupted."""
        if self._pump is not None:
            await self.finish(f"*(Interrupted: {error.user_message})*")
        else:
            self._stop_typing()
            await self.requests.reply(self.source, error.user_message)

    async def aclose(self) -> None:
        """Stop typing and any request still under way, and wait for them (the turn is over)."""
        tasks = [task for task in (self._pump, self._typing) if task is not None]
        for task in tasks:
            task.cancel()
        for result in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(result, Exception) and not self._raised:
                log.warning("Could not answer in channel %s: %s", self.channel_id, result)

    def _raise_if_failed(self) -> None:
        pump = self._pump
        if pump is not None and pump.done() and not pump.cancelled() and pump.exception() is not None:
            self._raised = True
            raise pump.exception()  # type: ignore[misc]

    def _start_pump(self) -> None:
        # Again after a finished pump: a later finish() (a note under an answer read out) edits once more.
        if self._pump is None or (self._pump.done() and not self._pump.cancelled() and not self._pump.exception()):
            self._pump = asyncio.create_task(self._run())
            self._pump.add_done_callback(lambda _: self._posted.set())

    async def _run(self) -> None:
        """Send what the reply needs, one request at a time, until the answer is complete and shown."""
        loop = asyncio.get_running_loop()
        while True:
            if self.stopped is not None or self._next_bucket() is None:
                if self._done or self.stopped is not None:
                    return
                self._changed.clear()
                await self._changed.wait()
                continue
            if self._sent and not self._done:  # an intermediate edit: wait out the interval
                delay = self._last_flush + self.interval - loop.time()
                if delay > 0:
                    await event_or_timeout(self._finished, delay)
            bucket = self._next_bucket()
            if bucket is None:
                continue
            if self._done or self._complete:
                priority = Priority.URGENT
            else:
                priority = Priority.UPDATE if self._sent else Priority.FIRST
            self._ticket = self.requests.submit(priority, bucket=bucket)
            try:
                await self.requests.wait(self._ticket)
            finally:
                self._ticket = None
            # Stamped when the request starts, so text arriving during it waits a full interval.
            self._last_flush = loop.time()
            await self._send_next()  # the newest text: whatever arrived while waiting is in it

    def _next_bucket(self) -> Bucket | None:
        """The bucket of the next request the reply needs, or None when Discord shows all of it."""
        pieces = split_message("".join(self._parts))
        for index, piece in enumerate(pieces):
            if index >= len(self._sent):
                return create_bucket(self.channel_id)
            if self._shown[index] != piece:
                return edit_bucket(self.channel_id)
        return None

    async def _send_next(self) -> None:
        pieces = split_message("".join(self._parts))
        for index, piece in enumerate(pieces):
            if index < len(self._sent) and self._shown[index] == piece:
                continue
            try:
                if index < len(self._sent):
                    await self._sent[index].edit(content=piece)
                    self._shown[index] = piece
                    return
                if index == 0:  # its failure ends the pump: nothing was shown, the turn is aborted
                    message = await self.source.reply(piece, mention_author=False)
                else:
                    message = await self.source.channel.send(piece)
            except discord.HTTPException as exc:
                if not self._sent:
                    raise
                self._stop(exc)
                return
            self._sent.append(message)
            self._shown.append(piece)
            if index == 0:
                self._stop_typing()
                self._posted.set()
            return

    def _stop(self, exc: discord.HTTPException) -> None:
        """A request into the reply failed after it was shown: stop streaming into it, say so once."""
        self.stopped = exc
        self._stop_typing()
        log.warning(
            "Stopped streaming the answer in channel %s (%d message(s) shown): %s %s",
            self.channel_id,
            len(self._sent),
            exc.status,
            exc.text or type(exc).__name__,
        )


async def answer(
    bot: ChatBot, source: discord.Message, request: ChatRequest, *, note: str | None = None, speak: Speak | None = None
) -> None:
    """Run one chat turn for ``source`` and stream its answer into the channel; ``note`` (e.g. about
    attachments the bot ignored) goes at the end of the answer. ``speak``: the complete answer is then
    read out as a voice message too (or instead, holding the text back unless speaking fails)."""
    hold = speak is not None and speak.instead_of_text
    reply = StreamingReply(source, edit_interval=bot.settings.stream.edit_interval_s, requests=bot.requests, hold=hold)
    started = time.perf_counter()
    first_text: float | None = None
    done: TurnDone | None = None
    text_note: str | None = None
    try:
        with bot.metrics.streaming():
            async for event in bot.services.chat.turn(request, before_store=reply.shown):
                if isinstance(event, TurnStarted):
                    reply.start_typing()
                elif isinstance(event, TurnDone):
                    done = event
                    notes = [
                        NOTES.get(event.finish_reason) or (None if event.text.strip() else EMPTY_ANSWER),
                        note,
                        ignored_images_note(event.ignored_images),
                    ]
                    text_note = "\n".join(n for n in notes if n) or None
                    if not reply.hold:
                        await reply.finish(text_note)
                    _record(bot, request, "ok", started, first_text, event.usage, answer=event.text)
                else:
                    if first_text is None:
                        first_text = time.perf_counter() - started
                    await reply.add(event)
        # Spoken once the turn is stored and its conversation free for the next message.
        if done is not None and speak is not None:
            await _speak(reply, speak, done, text_note)
    except BotError as exc:
        if exc.silent:
            log.debug("Turn in %s skipped: %s", request.conversation_id, exc)
            return
        outcome = "refused" if isinstance(exc, TooManyTurns | BudgetExceeded) else "error"
        if outcome == "error":
            bot.metrics.error(exc)
        _record(bot, request, outcome, started, first_text, error=type(exc).__name__)
        log.warning("Turn in %s failed: %s", request.conversation_id, exc, exc_info=exc.__cause__ is not None)
        await reply.fail(exc)
    finally:
        await reply.aclose()


def ignored_images_note(names: tuple[str, ...]) -> str | None:
    """The chosen model reads text only: the images it was not shown."""
    return f"*(I can only read text, so I ignored {name_list(list(names))}.)*" if names else None


async def _speak(reply: StreamingReply, speak: Speak, done: TurnDone, text_note: str | None) -> None:
    """Read the answer out; show (or annotate) the text as the outcome says."""
    outcome = await speak(done.text) if done.text.strip() else None
    if reply.hold and (outcome is None or outcome.text_needed):
        reply.hold = False
        notes = [text_note, outcome.note if outcome else None]
        await reply.finish("\n".join(n for n in notes if n) or None)
    elif not reply.hold and outcome is not None and outcome.note:
        await reply.finish(outcome.note)  # appended under the answer already shown


def _record(
    bot: ChatBot,
    request: ChatRequest,
    outcome: str,
    started: float,
    first_text: float | None,
    usage: Usage | None = None,
    *,
    answer: str | None = None,
    error: str | None = None,
) -> None:
    """The turn's metrics and its one log line (texts only at DEBUG: see bot.turnlog)."""
    seconds = time.perf_counter() - started
    bot.metrics.turn_finished(outcome, seconds, usage, first_token_s=first_text)
    log_turn(
        conversation_id=request.conversation_id,
        guild_id=request.guild_id,
        outcome=outcome,
        seconds=seconds,
        usage=usage,
        first_token_s=first_text,
        error=error,
        question=request.text,
        answer=answer,
    )
