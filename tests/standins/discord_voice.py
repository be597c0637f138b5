"""What Discord requires of a voice message a bot posts (a message create with the IS_VOICE_MESSAGE
flag, 1 << 13), checked by the stand-in as Discord would:

- no content, embeds, stickers, poll or components;
- exactly one uploaded file (``files[0]``) and exactly one ``attachments`` entry, with its ``id``;
- that entry's ``duration_secs`` a number matching the audio's decoded length within 0.1 s, and its
  ``waveform`` base64 of 1 to 256 bytes;
- the attachment's Content-Type beginning with ``audio/`` (Discord's Voice Messages section: only then
  are ``duration_secs`` and ``waveform`` respected); the file part's own, or for a part declared
  ``application/octet-stream`` (as discord.py declares every file) the type its filename names;
- the file an OGG container of Opus audio that decodes (PyAV, as in the tests).

Without the Send Voice Messages permission Discord answers 403 (50013); where voice messages are
refused (``dc.refuse_voice_messages(channel_id)``) 400 with code 50173.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
from typing import Any

import av

from tests.standins.audio_samples import decode

IS_VOICE_MESSAGE = 1 << 13
SEND_VOICE_MESSAGES = 1 << 46
CANNOT_SEND_VOICE_MESSAGES = 50173
DURATION_TOLERANCE_S = 0.1
MAX_WAVEFORM_BYTES = 256


def upload_content_type(declared: str, filename: str) -> str:
    """An uploaded file's media type: as its part declares it, or by its name when the part says only
    ``application/octet-stream``."""
    if declared == "application/octet-stream":
        return mimetypes.guess_type(filename)[0] or declared
    return declared


def voice_message_problem(payload: dict[str, Any], files: list[dict[str, Any]]) -> str | None:
    """Why Discord would refuse this voice message (None: it is valid)."""
    for key in ("content", "embeds", "sticker_ids", "poll", "components"):
        if payload.get(key):
            return f"a voice message may not carry {key}"
    if len(files) != 1:
        return f"a voice message has exactly one file, got {len(files)}"
    entries = payload.get("attachments")
    if not isinstance(entries, list) or len(entries) != 1:
        return f"a voice message has exactly one attachments entry, got {entries!r}"
    entry, part = entries[0], files[0]
    if part["name"] != f"files[{entry.get('id')}]":
        return f"attachments[0].id {entry.get('id')!r} does not name the uploaded part {part['name']!r}"
    content_type = upload_content_type(part["content_type"], entry.get("filename") or part["filename"] or "")
    if not content_type.startswith("audio/"):
        return f"a voice message's attachment has an audio/ Content-Type, got {content_type!r}"
    duration = entry.get("duration_secs")
    if not isinstance(duration, int | float) or isinstance(duration, bool) or duration <= 0:
        return f"duration_secs must be a positive number, got {duration!r}"
    waveform = entry.get("waveform")
    if not isinstance(waveform, str):
        return f"waveform must be a base64 string, got {waveform!r}"
    try:
        amplitudes = base64.b64decode(waveform, validate=True)
    except (binascii.Error, ValueError):
        return "waveform is not valid base64"
    if not 1 <= len(amplitudes) <= MAX_WAVEFORM_BYTES:
        return f"waveform must be 1 to {MAX_WAVEFORM_BYTES} bytes, got {len(amplitudes)}"
    try:
        audio = decode(part["data"])
    except (av.error.FFmpegError, IndexError, ValueError, OSError) as exc:
        return f"the file is not playable audio: {exc}"
    if audio.container != "ogg" or audio.codec != "opus":
        return f"a voice message is OGG Opus, got {audio.codec} in {audio.container}"
    if abs(audio.seconds - duration) > DURATION_TOLERANCE_S:
        return f"duration_secs {duration} is not the audio's length ({audio.seconds:.3f} s)"
    return None
