"""Spoken replies: a finished answer to a voice message, read out and posted as a voice message.

``spoken_reply_for`` decides from ``[voice] reply`` and the user's own choice (``/spoken-replies``)
whether a turn is spoken; ``answer`` (cogs/utils/replies.py) calls the ``SpokenReply`` once the turn
is complete and stored, outside the conversation's lock. Whatever goes wrong, the text answer stands:
a failure is logged once and becomes a short note under the text, never a second error reply.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import discord

from bot.errors import BotError, NothingToSay, SpeechError, SpeechOverBudget, VoiceMessageRefused
from bot.settings import SpokenReply as Mode
from cogs.utils.voice_message import may_send_voice_messages, send_voice_message

if TYPE_CHECKING:
    from bot.app import ChatBot

log = logging.getLogger(__name__)

PARTLY_SPOKEN = "*(Only the first part of this answer was read out.)*"
NOT_SPOKEN = "I couldn't read this answer out."


@dataclass(frozen=True, slots=True)
class SpeechOutcome:
    text_needed: bool  # the text must be shown: nothing was spoken, or only its first part
    note: str | None = None  # goes under the text answer


class SpokenReply:
    """Reads an answer out as a voice message replying to ``source``. ``instead_of_text``: the text is
    held back and shown only if the voice message does not carry the whole answer."""

    def __init__(self, bot: ChatBot, source: discord.Message, *, instead_of_text: bool) -> None:
        self.bot = bot
        self.source = source
        self.instead_of_text = instead_of_text

    async def __call__(self, answer: str) -> SpeechOutcome:
        source = self.source
        metrics = self.bot.metrics
        started = time.perf_counter()
        try:
            if not may_send_voice_messages(source.channel):  # before paying for speech that can't be posted
                raise VoiceMessageRefused(f"no Send Voice Messages permission in channel {source.channel.id}")
            spoken = await self.bot.services.speaker.speak(
                answer, guild_id=source.guild.id if source.guild else None, user_id=source.author.id
            )
            await send_voice_message(self.bot, source, spoken.audio)
        except SpeechError as exc:
            if exc.silent:
                metrics.spoke("refused")
                log.info("Answer to %s not spoken: %s", source.id, exc)
                return SpeechOutcome(text_needed=True)
            if isinstance(exc, NothingToSay | SpeechOverBudget):
                metrics.spoke("skipped")
                log.info("Answer to %s not spoken: %s", source.id, exc)
            else:
                metrics.spoke("error")
                metrics.error(exc)
                log.warning("Answer to %s not spoken: %s", source.id, exc, exc_info=exc.__cause__ is not None)
            return SpeechOutcome(text_needed=True, note=f"*({exc.user_message})*")
        except (BotError, discord.HTTPException) as exc:  # storage down, or Discord refused the upload
            metrics.spoke("error")
            metrics.error(exc)
            log.warning("Answer to %s not spoken: %s", source.id, exc, exc_info=exc.__cause__ is not None)
            return SpeechOutcome(text_needed=True, note=f"*({NOT_SPOKEN})*")
        metrics.spoke("ok", len(spoken.script.text), time.perf_counter() - started)
        audio = spoken.audio
        log.info(
            "Spoke %d characters to %s: %.1f s of audio%s",
            len(spoken.script.text),
            source.id,
            audio.seconds,
            " (transcoded)" if audio.transcoded else "",
        )
        if spoken.script.complete:
            return SpeechOutcome(text_needed=False)
        return SpeechOutcome(text_needed=True, note=PARTLY_SPOKEN)


async def spoken_reply_for(bot: ChatBot, source: discord.Message) -> SpokenReply | None:
    """The spoken reply to a voice message, or None: text only, as configured (``[voice] reply =
    "text"``), as its author chose, or because ``source`` is an uploaded audio file, not speech."""
    mode = bot.settings.voice.reply
    if mode is Mode.TEXT or not source.flags.voice:
        return None
    try:
        wanted = await bot.services.spoken_prefs.wants_voice(source.author.id)
    except BotError as exc:  # storage down: the turn will say so; the answer stays text
        log.warning("Could not read %s's spoken-reply choice: %s", source.author.id, exc)
        return None
    return SpokenReply(bot, source, instead_of_text=mode is Mode.VOICE) if wanted else None
