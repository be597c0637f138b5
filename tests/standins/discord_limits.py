"""Discord's rate limits, as the stand-in enforces them (off unless a test or the benchmark turns them on).

What Discord publishes (https://discord.com/developers/docs/topics/rate-limits):

- a **global** limit per bot token, 50 requests per second; Discord does not say how it counts the
  second, so the stand-in counts any one-second window (a sliding window). Interaction responses
  (callbacks and followups through the interaction's webhook) are exempt. Exceeding it answers 429 with
  ``{"global": true, "retry_after": s}`` and the headers ``X-RateLimit-Global: true``,
  ``X-RateLimit-Scope: global`` and ``Retry-After``;
- **per-route** buckets keyed by the route's bucket and its top-level resource (the channel), e.g.
  creating messages in one channel: 5 per 5 s. Every answer carries ``X-RateLimit-Limit``,
  ``-Remaining``, ``-Reset``, ``-Reset-After`` and ``-Bucket``, which discord.py reads to wait before a
  bucket runs dry; a request past the limit gets 429 with ``X-RateLimit-Scope: user``;
- **invalid requests**: 401, 403 and 429 answers count towards 10,000 per 10 minutes, past which
  Cloudflare bans the IP for an hour. The stand-in counts them (``invalid_requests``).

discord.py only trusts a 429 that carries a ``Via`` header (otherwise it assumes a Cloudflare ban),
so every 429 here has one, as Discord's do.

The stand-in counts a request's second when its event loop reads it, in the test's own process. A
full garbage collection there (a few hundred ms once the whole suite, the playground's Gradio with it,
is loaded) would hold back the requests that arrive meanwhile and count them together: a burst the bot
never sent. So while the limits are enforced the heap that existed before is frozen (``gc.freeze``),
and a collection only walks what the test itself allocates, as Discord's clock does not stop for ours.
"""

from __future__ import annotations

import gc
import math
import time
import zlib
from collections import deque
from dataclasses import dataclass, field

# Routes outside the global limit: Discord exempts interaction responses.
EXEMPT_ROUTES = frozenset(
    {
        "interaction_callback",
        "followup",
        "get_original",
        "edit_original",
        "delete_original",
        "get_followup",
        "edit_followup",
        "delete_followup",
        "cdn_attachment",
    }
)
INVALID_STATUSES = (401, 403, 429)


@dataclass
class Bucket:
    """A per-route bucket as Discord runs it: ``limit`` requests per ``per`` seconds from the first."""

    limit: int
    per: float
    count: int = 0
    resets_at: float = 0.0


@dataclass
class RateLimits:
    """The stand-in's limits and what they refused. ``enabled`` False: no limit, roomy headers."""

    enabled: bool = False
    global_per_second: int = 50
    # route name -> (limit, seconds), per channel. Message create and edit are separate buckets on
    # Discord; typing has its own too.
    routes: dict[str, tuple[int, float]] = field(
        default_factory=lambda: {"create_message": (5, 5.0), "edit_message": (5, 5.0), "typing": (5, 5.0)}
    )
    global_429s: int = 0
    route_429s: int = 0
    invalid_requests: int = 0
    counted: int = 0  # requests counted against the global limit
    peak_per_second: int = 0  # most requests accepted in any one-second window
    _recent: deque[float] = field(default_factory=deque)
    _buckets: dict[tuple[str, int | None], Bucket] = field(default_factory=dict)
    _froze_heap: bool = False

    def enforce(self, *, global_per_second: int = 50, **routes: tuple[int, float]) -> RateLimits:
        """Turn Discord's limits on (``routes`` overrides per-route buckets, e.g. ``create_message=(50, 1.0)``)."""
        self.enabled = True
        self.global_per_second = global_per_second
        self.routes.update(routes)
        if not self._froze_heap:
            gc.freeze()  # see the module's docstring: the clock must not pause for a full collection
            self._froze_heap = True
        return self

    def release(self) -> None:
        """Give the heap frozen by ``enforce`` back to the collector (the stand-in's close)."""
        if self._froze_heap:
            gc.unfreeze()
            self._froze_heap = False

    @property
    def four_twenty_nines(self) -> int:
        return self.global_429s + self.route_429s

    def reset_counters(self) -> None:
        self.global_429s = self.route_429s = self.invalid_requests = self.counted = self.peak_per_second = 0

    def note_status(self, status: int) -> None:
        if status in INVALID_STATUSES:
            self.invalid_requests += 1

    def check(self, route: str, channel_id: int | None, now: float) -> tuple[int, dict, dict[str, str]] | None:
        """A 429 (status, body, headers) if this request is over a limit; None lets it through (and
        counts it). Call ``headers`` afterwards for the bucket headers of an accepted request."""
        if not self.enabled:
            return None
        if route not in EXEMPT_ROUTES:
            recent = self._recent
            while recent and recent[0] <= now - 1.0:
                recent.popleft()
            if len(recent) >= self.global_per_second:
                self.global_429s += 1
                return global_429(recent[0] + 1.0 - now)
        bucket = self._bucket(route, channel_id, now)
        if bucket is not None and bucket.count >= bucket.limit:
            self.route_429s += 1
            return route_429(route, bucket, now)
        if bucket is not None:
            bucket.count += 1
        if route not in EXEMPT_ROUTES:
            self._recent.append(now)
            self.counted += 1
            self.peak_per_second = max(self.peak_per_second, len(self._recent))
        return None

    def _bucket(self, route: str, channel_id: int | None, now: float) -> Bucket | None:
        spec = self.routes.get(route)
        if spec is None:
            return None
        bucket = self._buckets.get((route, channel_id))
        if bucket is None:
            bucket = self._buckets[(route, channel_id)] = Bucket(*spec)
        if now >= bucket.resets_at:
            bucket.count, bucket.resets_at = 0, now + bucket.per
        return bucket

    def headers(self, route: str, channel_id: int | None, now: float) -> dict[str, str]:
        """The X-RateLimit-* headers of an accepted request."""
        bucket = self._buckets.get((route, channel_id)) if self.enabled else None
        if bucket is None:  # a roomy bucket so discord.py never waits pre-emptively
            return bucket_headers(bucket_hash(route), 10_000, 9_999, 1.0)
        return bucket_headers(bucket_hash(route), bucket.limit, bucket.limit - bucket.count, bucket.resets_at - now)


def bucket_hash(route: str) -> str:
    return f"{zlib.crc32(route.encode()):08x}"


def bucket_headers(bucket: str, limit: int, remaining: int, reset_after: float) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(max(0, remaining)),
        "X-RateLimit-Reset-After": f"{max(0.0, reset_after):.3f}",
        "X-RateLimit-Reset": f"{time.time() + max(0.0, reset_after):.3f}",
        "X-RateLimit-Bucket": bucket,
    }


def global_429(retry_after: float) -> tuple[int, dict, dict[str, str]]:
    retry_after = max(0.001, retry_after)
    body = {"message": "You are being rate limited.", "retry_after": round(retry_after, 3), "global": True}
    headers = {
        "Retry-After": str(math.ceil(retry_after)),
        "X-RateLimit-Global": "true",
        "X-RateLimit-Scope": "global",
        "Via": "1.1 google",
    }
    return 429, body, headers


def route_429(route: str, bucket: Bucket, now: float) -> tuple[int, dict, dict[str, str]]:
    retry_after = max(0.001, bucket.resets_at - now)
    body = {"message": "You are being rate limited.", "retry_after": round(retry_after, 3), "global": False, "code": 0}
    headers = bucket_headers(bucket_hash(route), bucket.limit, 0, retry_after) | {
        "Retry-After": str(math.ceil(retry_after)),
        "X-RateLimit-Scope": "user",
        "Via": "1.1 google",
    }
    return 429, body, headers
