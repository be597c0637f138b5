"""Speech to text through an OpenAI-compatible audio API (``/v1/audio/transcriptions``, e.g. whisper-1).

No Discord here: callers pass the audio's bytes, file name, content type and, when known, its length.
``Transcriber.check`` applies every limit from that metadata, so nothing too big or too long is ever
downloaded; ``Transcriber.transcribe`` sends the bytes exactly as they came (no re-encoding) and turns
every failure into a ``bot.errors`` exception carrying the sentence the user sees.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal

import httpx2
import openai
from openai.types.audio.transcription import Transcription as ApiTranscription
from openai.types.audio.transcription import UsageDuration

from bot.errors import (
    AudioEmpty,
    AudioRejected,
    AudioTooLarge,
    AudioTooLong,
    ModelError,
    ModelTimeout,
    ModelUnavailable,
    NotAudio,
)
from bot.llm import model_error
from bot.settings import VoiceSettings

# The chat model's sentences speak of answering; a failed transcription is about the audio.
TRANSCRIPTION_WORDING: dict[type[ModelError], str] = {
    ModelError: "The transcription server had a problem with that audio. Please try again in a moment.",
    ModelTimeout: "Transcribing that took too long. Please try again.",
    ModelUnavailable: "I can't reach the transcription server right now. Please try again shortly.",
}


def transcription_error(error: ModelError) -> ModelError:
    """``error`` with the transcription wording of its sentence, where the chat one would mislead."""
    if (wording := TRANSCRIPTION_WORDING.get(type(error))) is not None:
        error.user_message = wording
    return error


# The file extensions the API accepts (it goes by the name), with the content type sent for each
# when the attachment has none.
AUDIO_FORMATS = {
    "flac": "audio/flac",
    "m4a": "audio/mp4",
    "mp3": "audio/mpeg",
    "mp4": "audio/mp4",
    "mpeg": "audio/mpeg",
    "mpga": "audio/mpeg",
    "oga": "audio/ogg",
    "ogg": "audio/ogg",
    "wav": "audio/wav",
    "webm": "audio/webm",
}
# Content types whose file name lacks a usable extension: the extension the API should see.
EXTENSIONS = {
    "audio/flac": "flac",
    "audio/x-flac": "flac",
    "audio/m4a": "m4a",
    "audio/mp4": "m4a",
    "audio/x-m4a": "m4a",
    "audio/mp3": "mp3",
    "audio/mpeg": "mp3",
    "audio/ogg": "ogg",
    "audio/opus": "ogg",
    "audio/wav": "wav",
    "audio/wave": "wav",
    "audio/vnd.wave": "wav",
    "audio/x-wav": "wav",
    "audio/webm": "webm",
    "video/mp4": "mp4",
    "video/webm": "webm",
}
# Only for usage figures when neither the server nor Discord gives the length: a typical bitrate of
# compressed speech. The estimate is never used to refuse a file (voice.max_bytes bounds those).
ESTIMATE_BITS_PER_SECOND = 64_000

# Longer than any recording Discord takes: a reported length past it (like a negative or NaN one) is
# not believed, and the file is bounded by its size instead.
PLAUSIBLE_SECONDS = 24 * 3600.0

Source = Literal["server", "metadata", "estimate"]

log = logging.getLogger(__name__)


def plausible_seconds(value: object) -> float | None:
    """A reported length (Discord's ``duration_secs``, a server's billed seconds) if it can be true:
    a finite number above 0 and at most a day; else None, as if nothing had been reported."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value <= PLAUSIBLE_SECONDS:
        return float(value)
    log.info("Ignoring an implausible audio length: %r", value)
    return None


@dataclass(frozen=True, slots=True)
class AudioFile:
    """The name and content type the API gets for the bytes."""

    filename: str
    content_type: str


@dataclass(frozen=True, slots=True)
class Transcription:
    text: str
    seconds: float  # the audio's length, for usage accounting
    seconds_source: Source  # "server" (billed length), "metadata" (Discord's) or "estimate" (from the size)


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def audio_format(filename: str, content_type: str | None) -> AudioFile | None:
    """The API-acceptable name and type for an attachment, or None when it is not audio the API takes.

    The name's extension decides (the API's own rule); a known audio content type fixes a name without
    one (``voice`` + ``audio/ogg`` -> ``voice.ogg``)."""
    media = _media_type(content_type)
    path = PurePosixPath(filename or "audio")
    extension = path.suffix.lower().removeprefix(".")
    if extension in AUDIO_FORMATS and (not media or media.split("/")[0] in ("audio", "video")):
        return AudioFile(path.name, media or AUDIO_FORMATS[extension])
    if extension in AUDIO_FORMATS and media == "application/octet-stream":
        return AudioFile(path.name, AUDIO_FORMATS[extension])
    if media in EXTENSIONS:
        return AudioFile(f"{path.stem}.{EXTENSIONS[media]}", media)
    return None


def looks_like_audio(filename: str, content_type: str | None) -> bool:
    """True for anything meant as audio, including formats the API does not take: those get a clear
    refusal from ``check`` instead of being read as an ordinary attachment."""
    return audio_format(filename, content_type) is not None or _media_type(content_type).startswith("audio/")


class Transcriber:
    def __init__(self, client: openai.AsyncOpenAI, settings: VoiceSettings, *, connect_timeout_s: float) -> None:
        self.client = client
        self.settings = settings
        # Each attempt, like the chat model's: the SDK's timeout; ``transcribe`` adds the overall deadline.
        self._timeout = openai.Timeout(settings.timeout_s, connect=connect_timeout_s)

    @property
    def model(self) -> str:
        return self.settings.model

    def check(self, filename: str, content_type: str | None, *, size: int, seconds: float | None) -> AudioFile:
        """Apply the limits to an attachment's metadata, before downloading it. Raises an ``AudioError``.

        ``seconds`` is the length Discord reports (voice messages have it; uploaded files do not, and
        are then bounded by their size alone, like a length that cannot be true)."""
        seconds = plausible_seconds(seconds)
        audio = audio_format(filename, content_type)
        if audio is None:
            raise NotAudio(f"not audio the API takes: {filename!r} ({content_type})")
        self._check_size(size)
        if seconds is not None and seconds > self.settings.max_seconds:
            raise AudioTooLong(seconds, self.settings.max_seconds)
        return audio

    def _check_size(self, size: int) -> None:
        if size <= 0:
            raise AudioEmpty("0-byte audio")
        if size > self.settings.max_bytes:
            raise AudioTooLarge(size, self.settings.max_bytes)

    async def transcribe(self, data: bytes, audio: AudioFile, *, seconds: float | None = None) -> Transcription:
        """The text spoken in ``data`` (empty when nothing was heard: still billed, so the caller records
        the usage before refusing it with ``NothingHeard``). Raises ``AudioRejected`` when the server
        cannot read the audio, and the chat model's errors (``ModelError`` subclasses)
        for timeouts, rate limits, bad keys and unreachable servers."""
        self._check_size(len(data))  # again: what Discord delivered may differ from its metadata
        seconds = plausible_seconds(seconds)
        try:
            async with asyncio.timeout(self.settings.timeout_s):
                result = await self.client.audio.transcriptions.create(
                    model=self.settings.model,
                    file=(audio.filename, data, audio.content_type),
                    # Plain "json" works with every transcription model and compatible server;
                    # verbose_json (which adds the length) is whisper-only.
                    response_format="json",
                    timeout=self._timeout,
                )
        except TimeoutError as exc:
            raise transcription_error(
                ModelTimeout(f"no transcript within {self.settings.timeout_s} s ({self.settings.model})")
            ) from exc
        except openai.BadRequestError as exc:
            raise AudioRejected(f"{exc.status_code}: {exc.message}") from exc
        except openai.APIStatusError as exc:
            if exc.status_code == 413:  # a compatible server with a lower limit than ours
                raise AudioRejected(
                    f"413: {exc.message}", user_message="That audio is too big for the transcription server."
                ) from exc
            raise transcription_error(model_error(exc)) from exc
        except (openai.APIError, httpx2.HTTPError) as exc:
            raise transcription_error(model_error(exc)) from exc
        return Transcription(result.text.strip(), *self._length(result, len(data), seconds))

    @staticmethod
    def _length(result: ApiTranscription, size: int, seconds: float | None) -> tuple[float, Source]:
        """The audio's length: what the server billed, else Discord's figure, else an estimate."""
        billed = plausible_seconds(result.usage.seconds) if isinstance(result.usage, UsageDuration) else None
        if billed is not None:
            return billed, "server"
        if seconds is not None:
            return seconds, "metadata"
        return size * 8 / ESTIMATE_BITS_PER_SECOND, "estimate"
