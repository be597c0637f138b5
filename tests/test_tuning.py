"""bot/tuning.py: discord.py's rate-limit bucket sweep runs at most once per interval, and a
discord.py without that private method is left alone."""

from __future__ import annotations

import time

import discord

from bot.tuning import throttle_ratelimit_sweep


class FakeHTTP:
    def __init__(self) -> None:
        self.sweeps = 0

    def _try_clear_expired_ratelimits(self) -> None:
        self.sweeps += 1


def test_the_sweep_runs_at_most_once_per_interval() -> None:
    http = FakeHTTP()
    throttle_ratelimit_sweep(http, interval_s=0.05)
    for _ in range(100):
        http._try_clear_expired_ratelimits()
    assert http.sweeps == 1
    time.sleep(0.06)
    http._try_clear_expired_ratelimits()
    assert http.sweeps == 2


def test_a_discord_py_without_the_sweep_is_left_as_it_is() -> None:
    class Other:
        pass

    other = Other()
    throttle_ratelimit_sweep(other)
    assert not hasattr(other, "_try_clear_expired_ratelimits")


async def test_discord_py_still_has_the_sweep_it_throttles() -> None:
    """If a discord.py upgrade renames it, this says the throttle no longer applies."""
    assert callable(getattr(discord.http.HTTPClient, "_try_clear_expired_ratelimits", None))
    http = discord.http.HTTPClient(discord.utils.MISSING)
    throttle_ratelimit_sweep(http)
    for _ in range(300):  # past the 256 buckets at which discord.py starts sweeping
        http.get_ratelimit(f"bucket-{_}")
    assert len(http._buckets) == 300
