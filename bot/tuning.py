"""Process-wide settings for a bot serving many conversations on one event loop, found by profiling
``python -m bench`` (1,000 conversations at once). Each is cheap to undo and says why it exists."""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

# Python's default (700, 10, 10) runs a full collection every ~70,000 allocations net of frees. With
# hundreds of turns in flight each holds thousands of live objects (SDK models, discord.py messages,
# aiohttp requests), so full collections kept walking the whole heap: a quarter of the bot's CPU at
# 1,000 concurrent conversations. Turns free their objects by reference counting, not by the cycle
# collector, so collecting less often costs little memory (the benchmark checks RSS stays flat).
GC_THRESHOLDS = (20_000, 50, 100)

# discord.py drops a rate-limit bucket after 300 s without requests; sweeping every 30 s bounds the
# buckets kept as tightly as sweeping on every new one did, give or take 10%.
RATELIMIT_SWEEP_INTERVAL_S = 30.0


def tune_gc() -> None:
    gc.set_threshold(*GC_THRESHOLDS)


def throttle_ratelimit_sweep(
    http: Any, interval_s: float = RATELIMIT_SWEEP_INTERVAL_S, clock: Callable[[], float] = time.monotonic
) -> None:
    """Once it holds 256 rate-limit buckets (one per channel and route: typing, reply and edit in
    every busy channel), discord.py's HTTPClient scans them all for idle ones each time it creates
    another: quadratic in busy channels (14% of the bot's CPU at 1,000 at once). This runs that same
    sweep at most once per ``interval_s``. discord.py offers no setting for it, so this replaces a
    private method on the one instance: if a release renames it, the replacement is simply never
    called and discord.py behaves as shipped."""
    sweep = getattr(http, "_try_clear_expired_ratelimits", None)
    if sweep is None:
        log.debug("discord.py has no _try_clear_expired_ratelimits; its bucket sweep is left as is")
        return
    last = -interval_s

    def throttled() -> None:
        nonlocal last
        now = clock()
        if now - last >= interval_s:
            last = now
            sweep()

    http._try_clear_expired_ratelimits = throttled
