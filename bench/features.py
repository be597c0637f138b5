"""Section 8: what images and long memory add to a turn, with the bot as ``python -m bot`` in its own
process (as in ``turns.process_run``), at 10 stored turns, next to the same turn without them.

- *image attached*: each message carries one 1920 x 1080 JPEG photo (~0.3 MB) the bot downloads from
  the stand-in CDN, decodes, downscales to 1568 px and sends inline;
- *image kept*: a plain follow-up in a conversation whose earlier turn had that image: it is read from
  Redis in the turn's read round trip and sent again;
- *summary present*: each conversation has a 400-token summary covering its older turns (read in the
  same round trip, sent after the system prompt); no new summary is made while measuring.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from PIL import Image

from bench.concurrency import bot_config, wait_until_answering
from bench.env import (
    ANSWER_TEXT,
    BotProcess,
    bench_settings,
    build_guild,
    delete_prefix,
    new_prefix,
    seed_history,
    servers,
)
from bench.turns import CHANNELS, CHUNK_CHARS, CHUNK_DELAY_S, GatewayClock, TurnTiming, one_turn
from bot.keys import Keys
from bot.summary import Summary
from tests.standins.model_server import Reply

STORED_TURNS = 10
SUMMARY_TEXT = " ".join(["Alice asked about hash maps, collisions, open addressing and chaining."] * 30)


@dataclass
class FeatureRun:
    plain: list[TurnTiming] = field(default_factory=list)
    image_attached: list[TurnTiming] = field(default_factory=list)
    image_kept: list[TurnTiming] = field(default_factory=list)
    summary: list[TurnTiming] = field(default_factory=list)
    image_bytes: int = 0


def photo() -> bytes:
    """A 1920 x 1080 JPEG that compresses like a photo (gradients and noise, not one flat colour)."""
    gradient = Image.radial_gradient("L").resize((1920, 1080))
    noise = Image.effect_noise((1920, 1080), 40)
    image = Image.merge("RGB", (gradient, noise, Image.linear_gradient("L").resize((1920, 1080))))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


async def feature_run(redis_url: str, turns: int) -> FeatureRun:
    run = FeatureRun()
    prefix = new_prefix()
    direct = aioredis.Redis.from_url(redis_url)
    data = photo()
    run.image_bytes = len(data)
    try:
        async with servers() as (dc, model):
            # Conversations: a probe, then four each for plain turns, images and summaries.
            guild = build_guild(dc, 1 + 3 * CHANNELS)
            probe, plain, pictures, summarised = (
                guild.channels[0],
                guild.channels[1 : 1 + CHANNELS],
                guild.channels[1 + CHANNELS : 1 + 2 * CHANNELS],
                guild.channels[1 + 2 * CHANNELS :],
            )
            await seed_history(direct, prefix, guild.channels, STORED_TURNS, author_id=int(guild.alice["id"]))
            keys = Keys(prefix)
            for channel in summarised:  # covers the first half of the seeded turns (message ids 1..5)
                await direct.set(keys.summary(channel), Summary(SUMMARY_TEXT, 400, STORED_TURNS // 2).to_json())
            model.responder = lambda body: Reply(ANSWER_TEXT, chunk_size=CHUNK_CHARS, chunk_delay=CHUNK_DELAY_S)
            settings = bench_settings(redis_url, model.base_url, prefix)
            # The cap is far away: no summary is made while measuring (only the stored one is read).
            # The request budget at its default, as in section 1.
            config = bot_config(prefix, history={"max_messages": 100_000})
            async with BotProcess(settings, dc, config) as proc:
                await wait_until_answering(dc, guild, probe, proc)
                clock = GatewayClock(dc)
                for channel in (*plain, *pictures, *summarised):  # warm every conversation's cache
                    await one_turn(dc, model, None, guild, channel, clock)
                for i in range(turns):
                    run.plain.append(await one_turn(dc, model, None, guild, plain[i % CHANNELS], clock))
                    channel = pictures[i % CHANNELS]
                    # Exactly one image per measured turn: the one before is dropped (not timed).
                    await direct.delete(keys.images(channel), keys.image_order(channel))
                    attached = [dc.add_attachment(data, "photo.jpg", "image/jpeg")]
                    run.image_attached.append(await one_turn(dc, model, None, guild, channel, clock, attached))
                    run.image_kept.append(await one_turn(dc, model, None, guild, channel, clock))
                    run.summary.append(await one_turn(dc, model, None, guild, summarised[i % CHANNELS], clock))
    finally:
        await delete_prefix(direct, prefix)
        await direct.aclose()
    return run
