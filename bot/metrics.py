"""Prometheus metrics of one bot: a small observer API the turn path calls, on a registry of its own.

Each ``Metrics`` has its own ``CollectorRegistry`` rather than prometheus-client's global one, so
several bots in one process (tests, a benchmark) never collide and each ``/metrics`` shows only its bot.
Calls are cheap (a counter increment, a histogram bucket), never raise, and never block.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Seconds: a chat answer streams for seconds; Redis answers in well under a millisecond locally.
TURN_BUCKETS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0)
REDIS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class TokenUsage(Protocol):
    """What a turn cost (``bot.llm.Usage`` fits)."""

    prompt_tokens: int
    completion_tokens: int


class Metrics:
    """The bot's metrics. Outcomes and error kinds are short fixed words (``ok``, ``error``, ``refused``;
    an exception's class name), never user data, so label sets stay small."""

    def __init__(self, namespace: str = "discord_bot") -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r, ns = self.registry, namespace
        self.turns = Counter("turns", "Chat turns finished, by outcome", ["outcome"], namespace=ns, registry=r)
        self.errors = Counter("errors", "Errors, by kind (exception class)", ["kind"], namespace=ns, registry=r)
        self.turn_seconds = Histogram(
            "turn_seconds", "A turn from its message to the last edit", namespace=ns, registry=r, buckets=TURN_BUCKETS
        )
        self.model_seconds = Histogram(
            "model_first_token_seconds",
            "From the model request to its first streamed text",
            namespace=ns,
            registry=r,
            buckets=TURN_BUCKETS,
        )
        self.tokens = Counter("tokens", "Model tokens, by kind (input, output)", ["kind"], namespace=ns, registry=r)
        self.audio_seconds = Counter("transcribed_audio_seconds", "Audio transcribed", namespace=ns, registry=r)
        self.transcription_seconds = Histogram(
            "transcription_seconds", "A transcription request", namespace=ns, registry=r, buckets=TURN_BUCKETS
        )
        self.spoken_replies = Counter(
            "spoken_replies",
            "Spoken replies, by outcome (ok; skipped: nothing to say or over budget; refused: the channel "
            "takes no voice messages; error: the speech server or the upload failed)",
            ["outcome"],
            namespace=ns,
            registry=r,
        )
        self.spoken_chars = Counter("spoken_characters", "Characters read out", namespace=ns, registry=r)
        self.speech_seconds = Histogram(
            "speech_seconds", "A spoken reply, from the speech request to the posted voice message",
            namespace=ns, registry=r, buckets=TURN_BUCKETS,
        )  # fmt: skip
        self.redis_seconds = Histogram(
            "redis_seconds",
            "Redis round trips, by operation (batch: a turn's read or write; ping: health probes)",
            ["op"],
            namespace=ns,
            registry=r,
            buckets=REDIS_BUCKETS,
        )
        self.active_streams = Gauge("active_streams", "Answers being streamed now", namespace=ns, registry=r)
        self.shards_connected = Gauge(
            "shards_connected", "Gateway shards of this process that are connected", namespace=ns, registry=r
        )
        self.shards = Gauge("shards", "Gateway shards this process runs", namespace=ns, registry=r)
        for outcome in ("ok", "error", "refused"):
            self.turns.labels(outcome)  # present at 0 from the start, so rates work on the first scrape
        for kind in ("input", "output"):
            self.tokens.labels(kind)
        for outcome in ("ok", "skipped", "refused", "error"):
            self.spoken_replies.labels(outcome)

    # ---- the observer API: called from the turn path -------------------------------------------
    def turn_finished(
        self,
        outcome: str,
        seconds: float,
        usage: TokenUsage | None = None,
        *,
        first_token_s: float | None = None,
    ) -> None:
        """One turn ended: ``ok`` (answered), ``error`` (the user was told something failed) or
        ``refused`` (rate limit, budget); its wall time; the tokens it cost, when it reached the model."""
        self.turns.labels(outcome).inc()
        self.turn_seconds.observe(seconds)
        if first_token_s is not None:
            self.model_seconds.observe(first_token_s)
        if usage is not None:
            self.tokens.labels("input").inc(usage.prompt_tokens)
            self.tokens.labels("output").inc(usage.completion_tokens)

    def error(self, kind: str | BaseException) -> None:
        """Count an error; pass the exception or its class name."""
        self.errors.labels(kind if isinstance(kind, str) else type(kind).__name__).inc()

    def stream_started(self) -> None:
        self.active_streams.inc()

    def stream_ended(self) -> None:
        self.active_streams.dec()

    @contextlib.contextmanager
    def streaming(self) -> Iterator[None]:
        """``with metrics.streaming():`` around an answer being streamed; ended even on error."""
        self.stream_started()
        try:
            yield
        finally:
            self.stream_ended()

    def redis_latency(self, seconds: float, op: str = "batch") -> None:
        self.redis_seconds.labels(op).observe(seconds)

    def transcribed(self, audio_seconds: float, seconds: float | None = None) -> None:
        """A voice message was transcribed: its length, and how long the request took."""
        self.audio_seconds.inc(audio_seconds)
        if seconds is not None:
            self.transcription_seconds.observe(seconds)

    def spoke(self, outcome: str, characters: int = 0, seconds: float | None = None) -> None:
        """A spoken reply ended (``ok``, ``skipped``, ``refused``, ``error``): the characters read out
        and how long it took, when it was spoken."""
        self.spoken_replies.labels(outcome).inc()
        if characters:
            self.spoken_chars.inc(characters)
        if seconds is not None:
            self.speech_seconds.observe(seconds)

    # ---- exposition -----------------------------------------------------------------------------
    def shards_state(self, connected: int, total: int) -> None:
        self.shards_connected.set(connected)
        self.shards.set(total)

    def render(self) -> bytes:
        """The Prometheus text format of this bot's metrics."""
        return generate_latest(self.registry)
