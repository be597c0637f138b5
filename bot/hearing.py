"""Hearing a voice message: transcribe audio already in hand, record what it cost, refuse silence.

The one path every transcription takes, whichever adapter received the audio (a Discord attachment, a
file uploaded or recorded in the playground), so each is counted in the metrics and the usage alike.
"""

from __future__ import annotations

import logging
import time

from bot.errors import NothingHeard
from bot.services import Services
from bot.transcription import AudioFile, Transcription
from bot.usage import day_key

log = logging.getLogger(__name__)


async def hear(
    services: Services, data: bytes, audio: AudioFile, *, guild_id: int | None, user_id: int, seconds: float | None
) -> Transcription:
    """The transcript of ``data``. Its audio seconds are recorded for the guild and the user before an
    empty transcript is refused with ``NothingHeard`` (the server bills it all the same)."""
    started = time.perf_counter()
    heard = await services.transcriber.transcribe(data, audio, seconds=seconds)
    services.metrics.transcribed(heard.seconds, seconds=time.perf_counter() - started)
    log.info("Transcribed %.1f s of audio (%s)", heard.seconds, heard.seconds_source)
    await services.usage.record(
        guild_id=guild_id,
        user_id=user_id,
        model=services.transcriber.model,
        day=day_key(services.chat.clock()),
        audio_seconds=heard.seconds,
    )
    if not heard.text:
        raise NothingHeard(f"empty transcript of {len(data)} bytes")
    return heard
