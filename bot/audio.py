"""Audio for Discord voice messages: OGG Opus bytes, their exact length and a waveform sketch.

A voice message is one OGG Opus file plus two numbers Discord shows before anyone presses play: its
length (``duration_secs``) and a waveform of at most 256 amplitude bytes. Speech servers answer in
whatever format they were asked for or happen to produce (OpenAI: Ogg Opus when asked; local servers
often WAV or MP3), so the audio is decoded with PyAV (FFmpeg and libopus bundled in its wheels, no
system packages) and, unless it already is OGG Opus, encoded to it. Length and waveform come from
the decoded samples, never from a container's header, which a server may leave wrong.

CPU-bound: callers run ``voice_message_audio`` in a thread.
"""

from __future__ import annotations

import io
import math
from array import array
from dataclasses import dataclass

import av
import av.error
from av.audio.fifo import AudioFifo
from av.audio.frame import AudioFrame

from bot.errors import AudioUnplayable

OPUS_RATE = 48_000  # Opus always decodes at 48 kHz
OPUS_FRAME = 960  # 20 ms at 48 kHz: libopus takes whole frames (the last may be short)
OPUS_BITRATE = 48_000  # plenty for speech, ~360 KB a minute
# Discord's clients take a waveform point at most every 100 ms and at most 256 of them.
WAVEFORM_MAX_POINTS = 256
WAVEFORM_STEP_S = 0.1
# The waveform is measured on a copy at this rate: enough for an amplitude envelope, and a minute of
# speech is 480,000 samples to scan instead of 2.9 million.
ENVELOPE_RATE = 8_000
MAX_SECONDS = 20 * 60  # far beyond any spoken reply: a server sending hours of audio is refused


@dataclass(frozen=True, slots=True)
class VoiceAudio:
    """What a Discord voice message needs: the OGG Opus file, its length and its waveform."""

    ogg: bytes
    seconds: float
    waveform: bytes  # 1 to 256 amplitude bytes (0-255), one per equal slice of the audio
    transcoded: bool  # False: the server's bytes were already OGG Opus and are sent as they came


def voice_message_audio(data: bytes) -> VoiceAudio:
    """Decode ``data`` (any format FFmpeg reads), measure it, and make it OGG Opus if it is not.

    Raises ``AudioUnplayable`` for bytes that are not audio, hold no sound, or are unreasonably long."""
    if not data:
        raise AudioUnplayable("the speech server sent 0 bytes")
    try:
        return _convert(data)
    except (av.error.FFmpegError, ValueError, OSError, EOFError) as exc:
        raise AudioUnplayable(f"undecodable audio ({len(data)} bytes): {exc}") from exc


def _convert(data: bytes) -> VoiceAudio:
    with av.open(io.BytesIO(data), mode="r") as source:
        if not source.streams.audio:
            raise AudioUnplayable(f"no audio stream in {len(data)} bytes ({source.format.name})")
        stream = source.streams.audio[0]
        already_opus = "ogg" in source.format.name.split(",") and stream.codec_context.name == "opus"
        envelope = av.AudioResampler(format="s16", layout="mono", rate=ENVELOPE_RATE)
        to_opus = None if already_opus else av.AudioResampler(format="s16", layout="mono", rate=OPUS_RATE)
        levels = array("h")
        samples = 0.0  # in seconds, summed per decoded frame at its own rate
        encoded = _OpusWriter() if to_opus is not None else None
        for frame in source.decode(stream):
            samples += frame.samples / frame.sample_rate
            if samples > MAX_SECONDS:
                raise AudioUnplayable(f"audio longer than {MAX_SECONDS} s")
            for low in envelope.resample(frame):
                levels.frombytes(bytes(low.planes[0])[: low.samples * 2])
            if to_opus is not None and encoded is not None:
                for resampled in to_opus.resample(frame):
                    encoded.write(resampled)
        for low in envelope.resample(None):
            levels.frombytes(bytes(low.planes[0])[: low.samples * 2])
        if to_opus is not None and encoded is not None:
            for resampled in to_opus.resample(None):
                encoded.write(resampled)
    if samples <= 0:
        raise AudioUnplayable(f"no sound decoded from {len(data)} bytes")
    ogg = data if encoded is None else encoded.finish()
    return VoiceAudio(ogg, round(samples, 3), waveform(levels, samples), transcoded=encoded is not None)


class _OpusWriter:
    """Encodes 48 kHz mono s16 frames into an in-memory OGG Opus file, in libopus's 20 ms frames."""

    def __init__(self) -> None:
        self._buffer = io.BytesIO()
        self._container = av.open(self._buffer, mode="w", format="ogg")
        self._stream = self._container.add_stream("libopus", rate=OPUS_RATE, layout="mono")
        self._stream.bit_rate = OPUS_BITRATE
        self._fifo = AudioFifo()
        self._pts = 0

    def write(self, frame: AudioFrame) -> None:
        frame.pts = None  # the fifo's output is re-stamped below, sample-exact
        self._fifo.write(frame)
        while (chunk := self._fifo.read(OPUS_FRAME)) is not None:
            self._encode(chunk)

    def finish(self) -> bytes:
        last = self._fifo.read(0, partial=True) if self._fifo.samples else None
        if last is not None:
            self._encode(last)
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()
        return self._buffer.getvalue()

    def _encode(self, frame: AudioFrame) -> None:
        frame.pts = self._pts
        self._pts += frame.samples
        for packet in self._stream.encode(frame):
            self._container.mux(packet)


def waveform(levels: array[int], seconds: float) -> bytes:
    """Peak amplitude (0-255) of each of up to 256 equal slices of the audio, one slice per 100 ms
    at most, as Discord's clients draw it."""
    points = max(1, min(WAVEFORM_MAX_POINTS, math.ceil(seconds / WAVEFORM_STEP_S - 1e-9)))
    if not levels:
        return bytes(points)
    out = bytearray()
    for index in range(points):
        start, end = len(levels) * index // points, len(levels) * (index + 1) // points
        window = levels[start : max(end, start + 1)]
        peak = max(max(window), -min(window))
        out.append(min(255, peak * 255 // 32767))
    return bytes(out)
