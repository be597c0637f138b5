"""Two bot processes on one token (SHARD_COUNT=2, one shard each) under load share one request budget
through Redis: their combined rate, as the stand-in measures it, stays within Discord's limit."""

from __future__ import annotations

import asyncio

import pytest

from bench.concurrency import final_answer
from bench.env import ANSWER_TEXT
from bot.settings import DiscordSettings
from tests.conftest import TEST_DISCORD_TOKEN
from tests.harness import bot_env, write_config
from tests.standins.discord_standin import DiscordStandin
from tests.standins.model_server import ModelServer, Reply
from tests.test_shards_e2e import SHARDS, bot_process

pytestmark = pytest.mark.timeout(120)
RATE = DiscordSettings().requests_per_second  # the default: what a deployment runs with
PER_SHARD = 60  # conversations per process, all at once: far more requests than 50 per second


async def test_two_processes_stay_within_one_budget(tmp_path, model_server: ModelServer, redis_url, key_prefix):
    # Two chunks 0.3 s apart: a first message, then a closing edit (the stand-ins share this process,
    # so a light model keeps their clock true).
    model_server.responder = lambda body: Reply(ANSWER_TEXT, chunk_size=len(ANSWER_TEXT) // 2 + 1, chunk_delay=0.3)
    async with DiscordStandin(token=TEST_DISCORD_TOKEN, shards=SHARDS) as dc:
        dc.limits.enforce()  # 50 per second for the token, whichever process sends
        alice = dc.add_user("alice")
        channels: list[int] = []
        for shard in range(SHARDS):
            guild_id = int(dc.add_guild(f"g{shard}", guild_id=dc.guild_id_for_shard(shard, SHARDS))["id"])
            dc.add_member(guild_id, alice)
            channels += [int(dc.add_text_channel(guild_id, f"c{i}")["id"]) for i in range(PER_SHARD)]
        # The default budget in each process: 32 per second each would be 64 together, past Discord's 50;
        # only sharing keeps them within 42 (rate plus burst) in any second.
        config = str(write_config(tmp_path, key_prefix))
        env = bot_env(dc, model_server, redis_url)
        async with bot_process(env, config, "0") as zero, bot_process(env, config, "1") as one:
            await dc.gateway.wait_identified(2, timeout=30)
            dc.limits.reset_counters()  # the burst only: not the log-ins
            me = dc.bot_user
            for channel_id in channels:
                await dc.post_message(channel_id, alice, f"<@{me['id']}> go", mentions=[me])

            await asyncio.gather(*(final_answer(dc, c, 0, timeout=90) for c in channels))  # keyed waits: cheap
        limits = dc.limits
        assert "Redis unavailable" not in zero[0] + one[0], "the budget was shared through Redis throughout"
        assert limits.four_twenty_nines == 0, (limits.global_429s, limits.route_429s, limits.peak_per_second)
        assert limits.peak_per_second <= 50, "the two processes' combined rate"
        # Well used, not idle (not always the whole 42: on a loaded machine congested processes leave
        # some late tokens unspent).
        assert limits.peak_per_second > RATE * 0.75, "the budget was used"
        assert all(dc.bot_messages(c)[-1]["content"] == ANSWER_TEXT for c in channels)
        assert not dc.internal_errors
