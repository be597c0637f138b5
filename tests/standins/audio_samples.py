"""Real audio made at test time with PyAV (no network, no fixture files): a tone in OGG Opus, WAV, MP3
or FLAC, and a decoder the tests use to check what the bot sent is playable and how long it is."""

from __future__ import annotations

import io
import math
from array import array
from dataclasses import dataclass

import av
from av.audio.fifo import AudioFifo

# Container format and encoder for each speech API ``response_format``.
FORMATS = {
    "opus": ("ogg", "libopus", 48_000),
    "wav": ("wav", "pcm_s16le", 24_000),
    "mp3": ("mp3", "libmp3lame", 24_000),
    "flac": ("flac", "flac", 24_000),
    "aac": ("adts", "aac", 24_000),
}


def tone(seconds: float, response_format: str = "opus", *, frequency: float = 440.0) -> bytes:
    """``seconds`` of a sine tone that swells and fades (so the waveform is not flat), encoded as the
    speech API would for ``response_format``."""
    container_format, codec, rate = FORMATS[response_format]
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container_format) as container:
        stream = container.add_stream(codec, rate=rate, layout="mono")
        fifo = AudioFifo()
        total = round(seconds * rate)
        step = rate // 10
        for start in range(0, total, step):
            count = min(step, total - start)
            samples = array("h", (_sample(n, total, rate, frequency) for n in range(start, start + count)))
            frame = av.AudioFrame(format="s16", layout="mono", samples=count)
            frame.planes[0].update(samples.tobytes())
            frame.sample_rate = rate
            fifo.write(frame)
        size = stream.codec_context.frame_size or step
        pts = 0
        while (chunk := fifo.read(size, partial=True)) is not None:
            chunk.pts = pts
            pts += chunk.samples
            for packet in stream.encode(chunk):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()


def _sample(n: int, total: int, rate: int, frequency: float) -> int:
    envelope = math.sin(math.pi * n / total)  # swells and fades over the whole tone
    return round(20_000 * envelope * math.sin(2 * math.pi * frequency * n / rate))


@dataclass(frozen=True)
class Decoded:
    container: str
    codec: str
    seconds: float
    sample_rate: int


def decode(data: bytes) -> Decoded:
    """Decode every sample of ``data``: raises av.FFmpegError when it is not playable audio."""
    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.audio[0]
        seconds = sum(frame.samples / frame.sample_rate for frame in container.decode(stream))
        return Decoded(container.format.name, stream.codec_context.name, seconds, stream.codec_context.sample_rate)
