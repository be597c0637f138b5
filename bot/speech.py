"""Text to speech through an OpenAI-compatible speech API (``/v1/audio/speech``), for spoken replies.

No Discord here. ``Speaker.speak`` takes an answer's text and returns a ready voice message (OGG
Opus, its length and waveform), or raises a ``SpeechError`` whose sentence becomes a short note under
the text answer, which always stands. On the way:

- only what makes sense aloud is read out: code blocks, links, mentions and Markdown marks are taken
  out (``speakable``), and past ``tts_max_chars`` only the first part, cut at a sentence end (``clip``);
- the characters read out count toward the daily budgets, checked before the request is made;
- the characters are recorded as usage once the server has answered (it bills them whether or not
  the audio turns out playable), per guild and user.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
import httpx2
import openai

from bot.audio import VoiceAudio, voice_message_audio
from bot.errors import BudgetExceeded, NothingToSay, SpeechFailed, SpeechOverBudget
from bot.limits import Limits
from bot.settings import VoiceSettings
from bot.usage import UsageStore, day_key

FENCED_CODE = re.compile(r"```.*?(?:```|\Z)", re.DOTALL)
INLINE_CODE = re.compile(r"`([^`\n]*)`")
MARKDOWN_LINK = re.compile(r"\[([^\]\n]*)\]\(\s*<?[^)\s]*>?\s*\)")
# A URL's trailing punctuation is the sentence's, and stays.
URL = re.compile(r"<?\b(?:https?|ftp)://[^\s>]*[^\s>.,;:!?)\]'\"]>?|\bwww\.[^\s>]*[^\s>.,;:!?)\]'\"]", re.IGNORECASE)
# User, role and channel mentions, custom emoji, timestamps: nothing a listener should hear as digits.
DISCORD_MARKUP = re.compile(r"<(?:@[!&]?\d+|#\d+|a?:\w+:\d+|t:-?\d+(?::[a-zA-Z])?)>")
LINE_MARKS = re.compile(r"^[ \t]*(?:#{1,6}[ \t]+|>{1,3}[ \t]?|-#[ \t]+|[-*+][ \t]+)", re.MULTILINE)
EMPHASIS = re.compile(r"\*\*|__|~~|\|\||\*|(?<!\w)_|_(?!\w)")
# The notes the chat reply adds in italics ("*(Answer cut short: ...)*") are about the text.
REPLY_NOTE = re.compile(r"^\*\(.*\)\*$", re.MULTILINE)
SPACES = re.compile(r"[ \t]+")
SPACE_BEFORE_PUNCTUATION = re.compile(r"[ \t]+([.,;:!?])")  # where a link was taken out
BLANK_LINES = re.compile(r"\n\s*\n+")
SENTENCE_END = re.compile(r"[.!?…](?:[\"')\]]*)(?=\s|$)")


def speakable(text: str) -> str:
    """What of a Markdown answer should be read out: no code blocks, links or Discord markup; link
    texts and inline code kept as words."""
    text = FENCED_CODE.sub(" ", text)
    text = MARKDOWN_LINK.sub(r"\1", text)
    text = URL.sub(" ", text)
    text = DISCORD_MARKUP.sub(" ", text)
    text = INLINE_CODE.sub(r"\1", text)
    text = REPLY_NOTE.sub(" ", text)
    text = LINE_MARKS.sub("", text)
    text = EMPHASIS.sub("", text)
    text = SPACES.sub(" ", text)
    text = SPACE_BEFORE_PUNCTUATION.sub(r"\1", text)
    text = BLANK_LINES.sub("\n", text)
    return "\n".join(line.strip() for line in text.split("\n")).strip()


def clip(text: str, max_chars: int) -> str:
    """The first part of ``text`` that fits ``max_chars``: up to the last sentence end in the second
    half of the room, else the last word, else a hard cut."""
    if len(text) <= max_chars:
        return text
    room = text[: max_chars + 1]  # one more: a sentence may end exactly at the limit
    ends = [m.end() for m in SENTENCE_END.finditer(room) if max_chars // 2 <= m.end() <= max_chars]
    if ends:
        return text[: ends[-1]].rstrip()
    space = room.rfind(" ", max_chars // 2, max_chars + 1)
    return (text[:space] if space > 0 else text[:max_chars]).rstrip()


@dataclass(frozen=True, slots=True)
class Script:
    """What is read out of an answer."""

    text: str
    complete: bool  # False: the answer was longer, only its first part is read out


@dataclass(frozen=True, slots=True)
class Spoken:
    audio: VoiceAudio
    script: Script


class Speaker:
    def __init__(
        self,
        client: openai.AsyncOpenAI,
        settings: VoiceSettings,
        *,
        usage: UsageStore,
        limits: Limits,
        connect_timeout_s: float,
        clock: Callable[[], dt.datetime],
    ) -> None:
        self.client = client
        self.settings = settings
        self.usage = usage
        self.limits = limits
        self.clock = clock
        self._timeout = openai.Timeout(settings.tts_timeout_s, connect=connect_timeout_s)

    @property
    def model(self) -> str:
        return self.settings.tts_model

    def script(self, answer: str) -> Script:
        """What would be read out of ``answer``; raises NothingToSay when nothing is left."""
        text = speakable(answer)
        if not any(c.isalnum() for c in text):
            raise NothingToSay(f"nothing speakable in {len(answer)} characters")
        spoken = clip(text, self.settings.tts_max_chars)
        return Script(spoken, complete=len(spoken) == len(text))

    async def speak(self, answer: str, *, guild_id: int | None, user_id: int) -> Spoken:
        """Read ``answer`` out as a voice message. Raises NothingToSay, SpeechOverBudget, SpeechFailed
        (the server failed or timed out) or AudioUnplayable (its audio cannot be played)."""
        script = self.script(answer)
        now = self.clock()
        try:
            await self.limits.check_budgets(
                self.usage, guild_id=guild_id, user_id=user_id, now=now, adding=len(script.text)
            )
        except BudgetExceeded as exc:
            raise SpeechOverBudget(exc.whose, exc.resets_at) from exc
        data = await self._synthesize(script.text)
        await self.usage.record(
            guild_id=guild_id, user_id=user_id, model=self.model, day=day_key(now), spoken_chars=len(script.text)
        )
        audio = await asyncio.to_thread(voice_message_audio, data)  # decoding and encoding: off the loop
        return Spoken(audio, script)

    async def _synthesize(self, text: str) -> bytes:
        settings = self.settings
        try:
            async with asyncio.timeout(settings.tts_timeout_s):
                response = await self.client.audio.speech.create(
                    model=settings.tts_model,
                    voice=settings.tts_voice,
                    input=text,
                    response_format=settings.tts_format.value,
                    timeout=self._timeout,
                )
                return response.content
        except TimeoutError as exc:
            raise SpeechFailed(f"no speech within {settings.tts_timeout_s} s ({settings.tts_model})") from exc
        except openai.APIStatusError as exc:
            raise SpeechFailed(f"speech server answered {exc.status_code}: {exc.message}") from exc
        except (openai.APIError, httpx2.HTTPError, aiohttp.ClientError, OSError) as exc:
            raise SpeechFailed(f"speech request failed: {type(exc).__name__}: {exc}") from exc
