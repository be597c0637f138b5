"""Sections 1, 2, 4 and 6: one turn at a time through the real discord.py client, at a given number of
stored turns, with every interval taken from the stand-ins' own timestamps (one monotonic clock).

A turn's bot-added latency is (model request arrived - MESSAGE_CREATE frame written to the bot's
websocket) + (final Discord edit arrived - model's last byte sent): everything but the model's own time.

``process_run`` is the headline: the bot as ``python -m bot`` in its own process, so the stand-ins'
CPU (aiohttp, JSON, the recorder) runs on the other core and is not counted as the bot's. ``history_run``
runs the bot in this process, next to the stand-ins: the only way to swap its tokenizer for a counting one
or its model for the SDK's ordinary call, so it gives the token and SDK-walk figures, and an in-process
latency for comparison (which includes the stand-ins' CPU, interleaved on the same event loop).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from bench.concurrency import bot_config, final_request, wait_until_answering
from bench.env import (
    ANSWER_TEXT,
    USER_TEXT,
    BotProcess,
    Guild,
    bench_settings,
    build_guild,
    command_calls,
    counting_proxy,
    delete_prefix,
    new_prefix,
    seed_history,
    servers,
)
from bot.llm import ChatModel
from tests.harness import start_bot
from tests.standins.discord_standin import DiscordStandin
from tests.standins.model_server import ModelServer, Reply
from tests.standins.redis_proxy import RoundTripProxy

CHANNELS = 4  # conversations the turns rotate over (each seeded with the same history)
CHUNK_CHARS = 80  # ~5 content chunks per answer...
CHUNK_DELAY_S = 0.005  # ...streamed over ~20 ms, so the first message is out before the answer ends


class GatewayClock:
    """When the stand-in actually wrote a watched MESSAGE_CREATE frame to the bot's websocket.

    ``post_message`` only queues the frame (a writer task sends it on a later loop pass, after
    json.dumps): stamping before it would count the stand-in's own work as the bot's. The bot cannot
    see a message before its frame is in the kernel, so that is where its time starts."""

    def __init__(self, dc: DiscordStandin) -> None:
        self.dc = dc
        self.watching: str | None = None
        self.written_at: float | None = None
        self._wrapped: set[int] = set()

    def watch(self, message_id: str) -> None:
        """Call right after ``post_message`` (the frame is queued, not yet written)."""
        for conn in list(self.dc.gateway.connections):
            if id(conn.ws) not in self._wrapped:  # a reconnect brings a new websocket
                self._wrapped.add(id(conn.ws))
                conn.ws.send_str = self._timed(conn.ws.send_str)  # type: ignore[method-assign]
        self.watching, self.written_at = f'"id": "{message_id}"', None

    def _timed(self, send_str: Any) -> Any:
        async def send(data: str, *args: Any, **kwargs: Any) -> None:
            await send_str(data, *args, **kwargs)
            if self.watching is not None and self.watching in data:
                self.written_at = time.monotonic()
                self.watching = None

        return send


@dataclass
class TurnTiming:
    to_request_ms: float  # MESSAGE_CREATE dispatched -> model request arrived
    after_model_ms: float  # model's last byte -> final Discord edit arrived
    first_text_ms: float  # model's first content chunk -> the bot's first message arrived
    round_trips: int

    @property
    def added_ms(self) -> float:
        return self.to_request_ms + self.after_model_ms


@dataclass
class HistoryRun:
    stored_turns: int
    cold: list[TurnTiming] = field(default_factory=list)  # each conversation's first turn (cache miss)
    warm: list[TurnTiming] = field(default_factory=list)
    commands_per_turn: float = 0.0
    encode_calls_per_turn: float = 0.0
    encode_chars_per_turn: float = 0.0
    encode_ms_per_turn: float = 0.0
    # A server that sends no usage: the bot estimates the prompt's tokens itself.
    encode_calls_no_usage: float = 0.0
    encode_ms_no_usage: float = 0.0


class CountingEncoding:
    """Wraps the bot's tiktoken encoding to count what a turn tokenises (calls, characters, time)."""

    def __init__(self, encoding: Any) -> None:
        self.encoding = encoding
        self.calls = 0
        self.chars = 0
        self.seconds = 0.0

    def encode(self, text: str, **kwargs: Any) -> list[int]:
        start = time.perf_counter()
        tokens = self.encoding.encode(text, **kwargs)
        self.seconds += time.perf_counter() - start
        self.calls += 1
        self.chars += len(text)
        return tokens

    def __getattr__(self, name: str) -> Any:
        return getattr(self.encoding, name)


class UnpatchedChatModel(ChatModel):
    """The SDK's ordinary call: messages as a typed param, so the SDK walks them before sending
    (the "without the extra_body workaround" figure)."""

    def request_params(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        params = super().request_params(messages)
        params.pop("extra_body")
        params["messages"] = messages
        return params


def history_config(stored_turns: int) -> dict[str, Any]:
    """A conversation at its cap. Without long memory, which would fold turns past the cap into a
    summary on every turn here: it is measured on its own (bench/features.py)."""
    return {"max_messages": stored_turns, "summarize": False}


async def one_turn(
    dc: DiscordStandin,
    model: ModelServer,
    proxy: RoundTripProxy | None,
    guild: Guild,
    channel: int,
    clock: GatewayClock | None = None,
    attachments: list[dict[str, Any]] | None = None,
) -> TurnTiming:
    start = len(dc.requests)
    served = len(model.requests)
    trips = proxy.round_trips if proxy else 0
    me = dc.bot_user
    clock = clock or GatewayClock(dc)
    posted = await dc.post_message(
        channel, guild.alice, f"<@{me['id']}> {USER_TEXT}", mentions=[me], attachments=attachments or ()
    )
    clock.watch(posted["id"])
    record = (await model.wait_for_requests(served + 1, timeout=30))[served]
    # The model's handler ends once the bot has read the whole stream: a bot that stopped reading
    # would otherwise hold the section for ever (every other wait here has its own timeout).
    async with asyncio.timeout(30):
        await record.finished.wait()
    final = await final_request(dc, channel, start, timeout=30)
    first = await dc.wait_for_route("create_message", channel_id=channel, start=start)
    assert record.first_chunk_at is not None and record.last_chunk_at is not None
    assert clock.written_at is not None, "the MESSAGE_CREATE frame was never written"
    return TurnTiming(
        to_request_ms=(record.arrived_at - clock.written_at) * 1000,
        after_model_ms=(final.at - record.last_chunk_at) * 1000,
        first_text_ms=(first.at - record.first_chunk_at) * 1000,
        round_trips=proxy.round_trips - trips if proxy else -1,
    )


async def history_run(
    redis_url: str, stored_turns: int, turns: int, *, workaround: bool = True, count_round_trips: bool = False
) -> HistoryRun:
    """``turns`` turns, one at a time, in conversations holding ``stored_turns`` turns (kept there by
    ``history.max_messages``: a long conversation at its cap, trimmed every turn). Round trips are
    counted through a proxy only when asked: the relay's own hop would otherwise count as bot time."""
    run = HistoryRun(stored_turns)
    prefix = new_prefix()
    direct = aioredis.Redis.from_url(redis_url)
    try:
        async with servers() as (dc, model), counting_proxy(redis_url) as counter:
            proxy = counter if count_round_trips else None
            guild = build_guild(dc, CHANNELS)
            await seed_history(direct, prefix, guild.channels, stored_turns, author_id=int(guild.alice["id"]))
            model.responder = lambda body: Reply(ANSWER_TEXT, chunk_size=CHUNK_CHARS, chunk_delay=CHUNK_DELAY_S)
            settings = bench_settings(
                proxy.url if proxy else redis_url, model.base_url, prefix, history=history_config(stored_turns)
            )
            async with start_bot(settings, dc) as bot:
                chat = bot.services.chat
                if not workaround:
                    default = chat.registry.default
                    chat.registry.serve(
                        dataclasses.replace(default, chat=UnpatchedChatModel(chat.model.client, chat.model.settings))
                    )
                for channel in guild.channels:
                    run.cold.append(await one_turn(dc, model, proxy, guild, channel))
                encoding = CountingEncoding(chat.counter.encoding)
                chat.counter.encoding = encoding
                calls_before = await command_calls(direct)
                for i in range(turns):
                    run.warm.append(await one_turn(dc, model, proxy, guild, guild.channels[i % CHANNELS]))
                # The second INFO counts itself once more than the first did.
                run.commands_per_turn = (await command_calls(direct) - calls_before - 1) / max(turns, 1)
                run.encode_calls_per_turn = encoding.calls / max(turns, 1)
                run.encode_chars_per_turn = encoding.chars / max(turns, 1)
                run.encode_ms_per_turn = encoding.seconds * 1000 / max(turns, 1)
                model.responder = lambda body: Reply(
                    ANSWER_TEXT, chunk_size=CHUNK_CHARS, chunk_delay=CHUNK_DELAY_S, usage=None
                )
                encoding = chat.counter.encoding = CountingEncoding(encoding.encoding)
                no_usage_turns = max(1, turns // 10)
                for i in range(no_usage_turns):
                    await one_turn(dc, model, proxy, guild, guild.channels[i % CHANNELS])
                run.encode_calls_no_usage = encoding.calls / no_usage_turns
                run.encode_ms_no_usage = encoding.seconds * 1000 / no_usage_turns
    finally:
        await delete_prefix(direct, prefix)
        await direct.aclose()
    return run


async def process_run(redis_url: str, stored_turns: int, turns: int) -> HistoryRun:
    """The headline latency: ``turns`` turns, one at a time, answered by ``python -m bot`` in its own
    process, in conversations holding ``stored_turns`` turns (as in ``history_run``). Only the timings
    are filled in: the counters need the bot in this process."""
    run = HistoryRun(stored_turns)
    prefix = new_prefix()
    direct = aioredis.Redis.from_url(redis_url)
    try:
        async with servers() as (dc, model):
            # One more channel to probe readiness, so every measured conversation's first turn is cold.
            guild = build_guild(dc, CHANNELS + 1)
            probe, channels = guild.channels[0], guild.channels[1:]
            await seed_history(direct, prefix, guild.channels, stored_turns, author_id=int(guild.alice["id"]))
            model.responder = lambda body: Reply(ANSWER_TEXT, chunk_size=CHUNK_CHARS, chunk_delay=CHUNK_DELAY_S)
            settings = bench_settings(redis_url, model.base_url, prefix)
            # The request budget at its default, as deployed: the latency includes its scheduling.
            async with BotProcess(settings, dc, bot_config(prefix, history=history_config(stored_turns))) as proc:
                await wait_until_answering(dc, guild, probe, proc)
                clock = GatewayClock(dc)
                for channel in channels:
                    run.cold.append(await one_turn(dc, model, None, guild, channel, clock))
                for i in range(turns):
                    run.warm.append(await one_turn(dc, model, None, guild, channels[i % CHANNELS], clock))
    finally:
        await delete_prefix(direct, prefix)
        await direct.aclose()
    return run
