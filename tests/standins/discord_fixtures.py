"""Reusable pytest fixtures and helpers for driving discord.py against the Discord stand-in.

Import what you need into a test module (or conftest)::

    from tests.standins.discord_fixtures import discord_standin_fixture, running_bot  # noqa: F401

``discord_standin_fixture`` registers the ``discord_standin`` fixture: a fresh stand-in per test with
discord.py pointed at it (``point_discord_at``) for the test's duration.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import discord
import pytest
import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route

from .discord_standin import DiscordStandin

STANDIN_TOKEN = "standin-token.abc.xyz"


@contextlib.contextmanager
def point_discord_at(standin: DiscordStandin) -> Iterator[None]:
    """Point discord.py's REST base and default gateway at the stand-in; restore them afterwards."""
    old_base, old_gateway = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
    Route.BASE = f"{standin.api_base}/api/v10"
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(standin.gateway_url)
    try:
        yield
    finally:
        Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = old_base, old_gateway


def skip_identify_delay(client: discord.Client) -> None:
    """discord.py sleeps 5 s before every IDENTIFY except a process's first (``before_identify_hook``):
    several shards in one process, or a re-IDENTIFY after an invalidated session, would crawl."""

    async def no_delay(shard_id: int | None, *, initial: bool = False) -> None:
        return None

    client.before_identify_hook = no_delay  # type: ignore[method-assign]


@contextlib.asynccontextmanager
async def running_bot(client: discord.Client, token: str, *, ready_timeout: float = 5.0) -> AsyncIterator[None]:
    """Start ``client`` in a task, wait for on_ready, and on exit close it and reap the task.
    If start() dies first (e.g. a bad token), its exception is raised instead of a timeout."""
    task = asyncio.create_task(client.start(token))
    ready = asyncio.create_task(client.wait_until_ready())
    try:
        done, _ = await asyncio.wait({task, ready}, timeout=ready_timeout, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()  # raises the startup error
            raise AssertionError("client.start() returned before the client was ready")
        if ready not in done:
            raise AssertionError(f"discord.py client was not ready within {ready_timeout}s")
        yield
    finally:
        ready.cancel()
        await client.close()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 5.0)


@pytest.fixture(name="discord_standin")
async def discord_standin_fixture() -> AsyncIterator[DiscordStandin]:
    """A fresh stand-in per test (token STANDIN_TOKEN), with discord.py pointed at it."""
    async with DiscordStandin(token=STANDIN_TOKEN) as standin:
        with point_discord_at(standin):
            yield standin
