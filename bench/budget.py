"""Section 7: Discord's request budget. The bot as ``python -m bot`` against a stand-in Discord that
enforces Discord's real limits (50 requests per second per token, per-channel buckets), N conversations
at once, the model streaming a ~300-token answer over ~5 s; once with the request scheduler (the
default), once with it off (``requests_per_second = 0``: discord.py alone, as before).

Per run: the 429s the stand-in answered, the bot's REST requests per turn (messages, edits, typing,
retries included), the time from the first message to the last answer complete on Discord and stored
in Redis, against the lower bound (the model's 5 s, then one request per answer at the budget's
rate), first text (message posted -> the bot's first message on Discord, and model's first chunk ->
first message), and how many answers are complete and stored once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

import redis.asyncio as aioredis

from bench.concurrency import bot_config, final_request, wait_until_answering
from bench.env import (
    ANSWER_TEXT,
    USER_TEXT,
    BotProcess,
    bench_settings,
    build_guild,
    delete_prefix,
    new_prefix,
    servers,
)
from bot.keys import Keys
from bot.request_budget import burst_for
from tests.standins.model_server import Reply

# ~300 tokens (four times the ~80-token answer), in 60 chunks of ~5 tokens over ~5 s.
LONG_ANSWER = " ".join([ANSWER_TEXT] * 4)
CHUNKS = 60
STREAM_S = 5.0
RATE = 32.0  # the default [discord] requests_per_second
OWN_ROUTES = ("create_message", "edit_message", "typing")


@dataclass
class BudgetRun:
    conversations: int
    scheduler: bool
    rate: float
    processes: int = 1  # bot processes on the one token (SHARD_COUNT), sharing the budget through Redis
    requests: int = 0
    global_429s: int = 0
    route_429s: int = 0
    peak_per_second: int = 0
    wall_s: float = 0.0  # first message posted -> last answer complete (of those that completed)
    complete: int = 0  # answers whose full text is on Discord and stored exactly once
    first_text_ms: list[float] = field(default_factory=list)  # message posted -> first bot message
    first_chunk_ms: list[float] = field(default_factory=list)  # model's first chunk -> first bot message
    closing_ms: list[float] = field(default_factory=list)  # model's last chunk -> complete answer

    @property
    def four_twenty_nines(self) -> int:
        return self.global_429s + self.route_429s

    @property
    def requests_per_turn(self) -> float:
        return self.requests / self.conversations

    @property
    def lower_bound_s(self) -> float:
        """Each answer needs at least one request carrying its complete text, and none can go before
        the model's stream ends: from then on the budget sends its burst at once, the rest at its rate."""
        return STREAM_S + max(0, self.conversations - burst_for(self.rate)) / self.rate


async def budget_run(redis_url: str, conversations: int, *, scheduler: bool = True, processes: int = 1) -> BudgetRun:
    """``processes`` > 1: that many bot processes, one shard each (SHARD_COUNT, SHARD_IDS), the
    conversations spread over one guild per shard, all spending the one token's budget."""
    run = BudgetRun(conversations, scheduler, RATE, processes)
    prefix = new_prefix()
    direct = aioredis.Redis.from_url(redis_url)
    try:
        async with servers(shards=processes, model_thread=True) as (dc, model), contextlib.AsyncExitStack() as bots:
            dc.limits.enforce()
            alice = dc.add_user("alice")
            guilds = [
                build_guild(dc, share + 1, guild_id=dc.guild_id_for_shard(shard, processes), alice=alice)
                for shard, share in enumerate(spread(conversations, processes))
            ]
            channels = [channel for guild in guilds for channel in guild.channels[1:]]
            model.responder = lambda body: Reply(ANSWER_TEXT, chunk_size=len(ANSWER_TEXT) // 2 + 1)
            settings = bench_settings(redis_url, model.base_url, prefix)
            config = bot_config(prefix, requests_per_second=RATE if scheduler else 0)
            for shard, guild in enumerate(guilds):
                shard_env = {"SHARD_COUNT": str(processes), "SHARD_IDS": str(shard)} if processes > 1 else None
                proc = await bots.enter_async_context(BotProcess(settings, dc, config, env=shard_env))
                await wait_until_answering(dc, guild, guild.channels[0], proc)
            await asyncio.sleep(1.1)  # the probes' requests leave the one-second window
            model.responder = lambda body: Reply(
                LONG_ANSWER, chunk_size=len(LONG_ANSWER) // CHUNKS + 1, chunk_delay=STREAM_S / CHUNKS
            )
            dc.limits.reset_counters()
            start, served = len(dc.requests), len(model.requests)
            me = dc.bot_user
            began = time.monotonic()
            posted: dict[int, float] = {}
            for i, channel in enumerate(channels):
                await dc.post_message(channel, alice, f"<@{me['id']}> {USER_TEXT} #{i}", mentions=[me])
                posted[channel] = time.monotonic()
            deadline = 2 * run.lower_bound_s + 30
            results = await asyncio.gather(
                *(final_request(dc, c, start, timeout=deadline, text=LONG_ANSWER) for c in channels),
                return_exceptions=True,
            )
            await bots.aclose()  # SIGTERM: every turn finishes storing before the bots exit
            finished = {c: r for c, r in zip(channels, results, strict=True) if not isinstance(r, BaseException)}
            stored = await stored_once(direct, Keys(prefix), list(finished))
            run.complete = sum(1 for c in finished if stored[c])
            run.wall_s = max((r.at for r in finished.values()), default=began) - began
            mine = [r for r in dc.requests[start:] if r.route in OWN_ROUTES]
            run.requests = len(mine)
            run.global_429s, run.route_429s = dc.limits.global_429s, dc.limits.route_429s
            run.peak_per_second = dc.limits.peak_per_second
            firsts: dict[int, float] = {}
            for request in mine:
                if request.route == "create_message" and request.status == 200 and request.channel_id is not None:
                    firsts.setdefault(request.channel_id, request.at)
            run.first_text_ms = [(firsts[c] - posted[c]) * 1000 for c in channels if c in firsts]
            by_index = {c: i for i, c in enumerate(channels)}
            for record in model.requests[served:]:
                text = record.messages[-1]["content"] if record.messages else ""
                channel = channels[int(text.rsplit("#", 1)[1])] if "#" in text else None
                if channel in firsts and record.first_chunk_at is not None:
                    run.first_chunk_ms.append((firsts[channel] - record.first_chunk_at) * 1000)
                if channel in finished and record.last_chunk_at is not None and by_index.get(channel) is not None:
                    run.closing_ms.append((finished[channel].at - record.last_chunk_at) * 1000)
            return run
    finally:
        await delete_prefix(direct, prefix)
        await direct.aclose()


async def stored_once(client: aioredis.Redis, keys: Keys, channels: list[int]) -> dict[int, bool]:
    """Each conversation holds exactly its one exchange (the question and the whole answer)."""
    pipe = client.pipeline(transaction=False)
    for channel in channels:
        pipe.lrange(keys.turns(channel), 0, -1)
    stored = await pipe.execute()
    return {c: len(turns) == 2 and LONG_ANSWER.encode() in turns[1] for c, turns in zip(channels, stored, strict=True)}


def spread(conversations: int, processes: int) -> list[int]:
    """Conversations per process, as even as they go."""
    return [conversations // processes + (1 if i < conversations % processes else 0) for i in range(processes)]


def per_window() -> float:
    return RATE + burst_for(RATE)
