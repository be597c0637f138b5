"""Sections 3 and 5: the bot as ``python -m bot`` in a subprocess (its own core, as deployed), the
stand-ins and the clock here.

Concurrency: N conversations each get one message at once; the wall time runs from the first
MESSAGE_CREATE dispatched to the last conversation's complete answer arriving at the stand-in Discord.
Memory: the bot's peak RSS after the same turns, with 10 or 10,000 conversations stored in Redis.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from bench.env import (
    ANSWER_TEXT,
    USER_TEXT,
    BotProcess,
    Guild,
    base_config,
    bench_settings,
    build_guild,
    delete_prefix,
    new_prefix,
    seed_history,
    servers,
)
from tests.standins.discord_recorder import RecordedRequest
from tests.standins.discord_standin import DiscordStandin
from tests.standins.model_server import Reply

SEEDED_TURNS = 10
READY_TIMEOUT_S = 30.0


@dataclass
class ConcurrencyRun:
    conversations: int
    model_latency_s: float
    wall_s: float  # first message dispatched -> last complete answer
    answered: int  # complete answers (the others failed, e.g. storage timeouts under load)

    @property
    def turns_per_s(self) -> float:
        return self.answered / self.wall_s if self.wall_s else 0.0


@dataclass
class MemoryRun:
    stored_conversations: int
    turns: int
    peak_rss_mib: float


def bot_config(
    key_prefix: str, *, requests_per_second: float | None = None, history: dict[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """The config file of a bot process. ``requests_per_second``: the request budget (0: off), else
    the bot's default (on, as deployed); ``history``: keys of the ``[history]`` section."""
    config = base_config(key_prefix)
    if requests_per_second is not None:
        config["discord"] = {"requests_per_second": requests_per_second}
    if history is not None:
        config["history"] = history
    return config


async def final_answer(dc: DiscordStandin, channel: int, start: int, timeout: float) -> float:
    """When the complete answer arrived in ``channel``: as the closing edit, or as the first message
    when the answer was complete by the time its first slot in the request budget came."""
    return (await final_request(dc, channel, start, timeout)).at


async def final_request(
    dc: DiscordStandin, channel: int, start: int, timeout: float, *, text: str = ANSWER_TEXT
) -> RecordedRequest:
    def complete(request: RecordedRequest) -> bool:
        return isinstance(request.json, dict) and request.json.get("content") == text and request.status == 200

    waits = [
        asyncio.ensure_future(dc.recorder.wait_for(complete, key=(route, channel), start=start, timeout=timeout))
        for route in ("create_message", "edit_message")
    ]
    try:
        done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        found = [task.result() for task in done if task.exception() is None]
        if not found:
            raise next(task.exception() for task in done)  # type: ignore[misc]
        return min(found, key=lambda r: r.index)
    finally:
        for task in waits:
            task.cancel()
        await asyncio.gather(*waits, return_exceptions=True)


async def settled(dc: DiscordStandin, channel: int, start: int, timeout: float) -> float | None:
    """When the complete answer arrived, or None when the turn failed (its reply is an error sentence,
    not the answer's first piece): a failed turn must not hold the run until the timeout."""
    first_piece = ANSWER_TEXT[: len(ANSWER_TEXT) // 2 + 1]
    answered = asyncio.ensure_future(final_answer(dc, channel, start, timeout))
    failed = asyncio.ensure_future(
        dc.recorder.wait_for(
            lambda r: isinstance(r.json, dict) and r.json.get("content") not in (first_piece, ANSWER_TEXT),
            key=("create_message", channel),
            start=start,
            timeout=timeout,
        )
    )
    done, pending = await asyncio.wait({answered, failed}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    if answered in done and answered.exception() is None:
        return answered.result()
    return None


async def mention(dc: DiscordStandin, guild: Guild, channel: int) -> None:
    me = dc.bot_user
    await dc.post_message(channel, guild.alice, f"<@{me['id']}> {USER_TEXT}", mentions=[me])


async def wait_until_answering(dc: DiscordStandin, guild: Guild, channel: int, proc: BotProcess) -> None:
    """Connected is not yet answering (discord.py waits for guilds after READY): probe until it does."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    await dc.gateway.wait_identified(timeout=READY_TIMEOUT_S)
    while True:
        start = len(dc.requests)
        await mention(dc, guild, channel)
        try:
            await final_answer(dc, channel, start, timeout=1.0)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise AssertionError(f"the bot never answered; its stderr:\n{proc.stderr()}") from None


async def concurrency_run(redis_url: str, conversations: int, model_latency: float) -> ConcurrencyRun:
    prefix = new_prefix()
    direct = aioredis.Redis.from_url(redis_url)
    try:
        async with servers(model_latency) as (dc, model):
            guild = build_guild(dc, conversations + 1)
            probe, channels = guild.channels[0], guild.channels[1:]
            await seed_history(direct, prefix, channels, SEEDED_TURNS, author_id=int(guild.alice["id"]))
            # Two chunks at once: the first message, then the closing edit with the whole answer.
            model.responder = lambda body: Reply(ANSWER_TEXT, chunk_size=len(ANSWER_TEXT) // 2 + 1)
            settings = bench_settings(redis_url, model.base_url, prefix)
            # CPU against a stand-in without rate limits: the request budget is off (section 7 sets it).
            async with BotProcess(settings, dc, bot_config(prefix, requests_per_second=0.0)) as proc:
                await wait_until_answering(dc, guild, probe, proc)
                start = len(dc.requests)
                began = time.monotonic()
                for channel in channels:
                    await mention(dc, guild, channel)
                done = await asyncio.gather(*(settled(dc, channel, start, timeout=60.0) for channel in channels))
                finished = [at for at in done if at is not None]
                wall = (max(finished) - began) if finished else 0.0
                return ConcurrencyRun(conversations, model_latency, wall, len(finished))
    finally:
        await delete_prefix(direct, prefix)
        await direct.aclose()


async def memory_run(redis_url: str, stored: int, turns: int, active: int = 10) -> MemoryRun:
    """Peak RSS after ``turns`` turns over ``active`` conversations, with ``stored`` conversations in
    Redis in all: the idle ones exist only in Redis (no Discord channel), so nothing but storage grows."""
    prefix = new_prefix()
    direct = aioredis.Redis.from_url(redis_url)
    try:
        async with servers() as (dc, model):
            guild = build_guild(dc, active)
            idle = [10**15 + i for i in range(max(stored - active, 0))]
            await seed_history(direct, prefix, guild.channels + idle, 20, author_id=int(guild.alice["id"]))
            model.responder = lambda body: Reply(ANSWER_TEXT, chunk_size=len(ANSWER_TEXT) // 2 + 1)
            settings = bench_settings(redis_url, model.base_url, prefix)
            # CPU against a stand-in without rate limits: the request budget is off (section 7 sets it).
            async with BotProcess(settings, dc, bot_config(prefix, requests_per_second=0.0)) as proc:
                await wait_until_answering(dc, guild, guild.channels[0], proc)
                for i in range(turns):
                    channel = guild.channels[i % active]
                    start = len(dc.requests)
                    await mention(dc, guild, channel)
                    await final_answer(dc, channel, start, timeout=30.0)
                return MemoryRun(stored, turns, proc.peak_rss_kib() / 1024)
    finally:
        await delete_prefix(direct, prefix)
        await direct.aclose()
