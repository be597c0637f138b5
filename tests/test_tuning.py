"""bot/tuning.py: discord.py's rate-limit bucket sweep runs at most once per interval, and a
discord.py without that private method is left alone. The clock is injected: no test sleeps or times."""

from __future__ import annotations

import asyncio

import discord

from bot.tuning import RATELIMIT_SWEEP_INTERVAL_S, throttle_ratelimit_sweep


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class FakeHTTP:
    def __init__(self) -> None:
        self.sweeps = 0

    def _try_clear_expired_ratelimits(self) -> None:
        self.sweeps += 1


def test_the_sweep_runs_at_most_once_per_interval() -> None:
    http, clock = FakeHTTP(), FakeClock()
    throttle_ratelimit_sweep(http, interval_s=30.0, clock=clock)
    for _ in range(100):
        http._try_clear_expired_ratelimits()
    assert http.sweeps == 1
    clock.now += 29.9
    http._try_clear_expired_ratelimits()
    assert http.sweeps == 1, "not before the interval has passed"
    clock.now += 0.1
    http._try_clear_expired_ratelimits()
    http._try_clear_expired_ratelimits()
    assert http.sweeps == 2


def test_a_discord_py_without_the_sweep_is_left_as_it_is() -> None:
    class Other:
        pass

    other = Other()
    throttle_ratelimit_sweep(other)
    assert not hasattr(other, "_try_clear_expired_ratelimits")


async def test_discord_py_s_own_sweep_is_the_one_throttled() -> None:
    """On a real HTTPClient: idle buckets stay until the interval has passed, then the sweep discord.py
    runs from get_ratelimit removes them. Unthrottled, each new bucket would sweep them at once; and if
    a discord.py upgrade renames the method, nothing here is swept by the throttle at all."""
    assert callable(getattr(discord.http.HTTPClient, "_try_clear_expired_ratelimits", None))
    http, clock = discord.http.HTTPClient(discord.utils.MISSING), FakeClock()
    throttle_ratelimit_sweep(http, clock=clock)
    for n in range(300):  # past the 256 buckets at which discord.py starts sweeping
        http.get_ratelimit(f"bucket-{n}")
    idle_since = asyncio.get_running_loop().time() - 301  # discord.py drops buckets idle for 300 s
    for bucket in http._buckets.values():
        bucket._last_request = idle_since
    http.get_ratelimit("one-more")
    assert len(http._buckets) == 301, "within the interval the idle buckets are kept"
    clock.now += RATELIMIT_SWEEP_INTERVAL_S
    http.get_ratelimit("and-another")
    assert set(http._buckets) == {"one-more", "and-another"}, "the interval passed: discord.py's sweep ran"
