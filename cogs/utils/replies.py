"""Streaming an answer into Discord: typing until the first text, the first text at once, then edits
throttled to one per ``edit_interval_s``, continued in new messages past 2,000 characters. The closing
edit goes out as soon as the answer is complete instead of waiting out the interval."""

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
from cogs.utils.text import name_list

if TYPE_CHECKING:
    from bot.app import ChatBot
    from cogs.utils.spoken_reply import SpeechOutcome

log = logging.getLogger(__name__)

TYPING_REFRESH_S = 8.0  # Discord shows "typing" for about 10 s per request
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
    def __init__(self, source: discord.Message, *, edit_interval: float, hold: bool = False) -> None:
        self.source = source
        self.interval = edit_interval
        self.hold = hold  # True: collect the text, show nothing (typing goes on) until finish()
        self._parts: list[str] = []
        self._sent: list[discord.Message] = []
        self._shown: list[str] = []
        self._lock = asyncio.Lock()
        self._last_flush = 0.0
        self._timer: asyncio.Task[None] | None = None
        self._typing: asyncio.Task[None] | None = None

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
        try:
            while True:
                await self.source.channel.typing()
                await asyncio.sleep(TYPING_REFRESH_S)
        except discord.HTTPException as exc:
            log.debug("Typing indicator failed in %s: %s", self.source.channel.id, exc)

    def _stop_typing(self) -> None:
        if self._typing is not None:
            self._typing.cancel()
            self._typing = None

    async def add(self, delta: str) -> None:
        self._parts.append(delta)
        if self.hold:
            return
        if not self._sent:
            await self._flush()  # first visible text as soon as it exists
        elif self._timer is None:
            delay = max(0.0, self._last_flush + self.interval - asyncio.get_running_loop().time())
            self._timer = asyncio.create_task(self._flush_later(delay))

    async def _flush_later(self, delay: float) -> None:
        await asyncio.sleep(delay)
        self._timer = None  # from here on a flush is under way: finish() waits for it, never cancels it
        await self._flush()

    async def finish(self, note: str | None = None) -> None:
        """Show the complete answer now, with an optional note after it."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        text = "".join(self._parts)
        if note:
            text = f"{close_open_fence(text)}\n\n{note}" if text.strip() else note
        self._parts = [text]
        await self._flush()
        self._stop_typing()

    async def fail(self, error: BotError) -> None:
        """Tell the user what went wrong; text already shown is kept and marked as interrupted."""
        if self._sent:
            await self.finish(f"*(Interrupted: {error.user_message})*")
        else:
            self._stop_typing()
            await self.source.reply(error.user_message, mention_author=False)

    def close(self) -> None:
        self._stop_typing()
        if self._timer is not None:
            self._timer.cancel()

    async def _flush(self) -> None:
        async with self._lock:
            # Stamped when the flush starts, so text arriving during its requests waits a full interval.
            self._last_flush = asyncio.get_running_loop().time()
            pieces = split_message("".join(self._parts))
            for index, piece in enumerate(pieces):
                if index < len(self._sent):
                    if self._shown[index] != piece:
                        await self._sent[index].edit(content=piece)
                        self._shown[index] = piece
                    continue
                if index == 0:
                    message = await self.source.reply(piece, mention_author=False)
                    self._stop_typing()
                else:
                    message = await self.source.channel.send(piece)
                self._sent.append(message)
                self._shown.append(piece)


async def answer(
    bot: ChatBot, source: discord.Message, request: ChatRequest, *, note: str | None = None, speak: Speak | None = None
) -> None:
    """Run one chat turn for ``source`` and stream its answer into the channel; ``note`` (e.g. about
    attachments the bot ignored) goes at the end of the answer. ``speak``: the complete answer is then
    read out as a voice message too (or instead, holding the text back unless speaking fails)."""
    hold = speak is not None and speak.instead_of_text
    reply = StreamingReply(source, edit_interval=bot.settings.stream.edit_interval_s, hold=hold)
    started = time.perf_counter()
    first_text: float | None = None
    done: TurnDone | None = None
    text_note: str | None = None
    try:
        with bot.metrics.streaming():
            async for event in bot.services.chat.turn(request):
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
        reply.close()


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
