"""Scale-out: several ``python -m bot`` processes, each running its own shards (SHARD_COUNT/SHARD_IDS),
on one Redis. Discord delivers a guild's events to one shard, so each process answers its own guilds;
state set through one process (a persona, history) is what another process sees when it takes over."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from typing import Any

from tests.conftest import TEST_DISCORD_TOKEN
from tests.harness import MANAGE_GUILD, bot_env, start_bot_process, stop_bot_process, write_config
from tests.standins.discord_standin import DiscordStandin
from tests.standins.model_server import ModelServer, Reply

SHARDS = 2


@contextlib.asynccontextmanager
async def bot_process(env: dict[str, str], config: str, shard_ids: str) -> AsyncIterator[list[str]]:
    """A bot process running ``shard_ids`` of SHARDS; yields a list that receives its output at exit,
    when it must have stopped cleanly on SIGTERM."""
    process = await start_bot_process(
        "--config", config, env=env | {"SHARD_COUNT": str(SHARDS), "SHARD_IDS": shard_ids}
    )
    output: list[str] = []
    try:
        yield output
        process.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(process.communicate(), timeout=15)
        output.append(out.decode())
        assert process.returncode == 0, output[0]
    finally:
        await stop_bot_process(process)


async def mention(dc: DiscordStandin, channel_id: int, author: dict[str, Any], text: str) -> None:
    bot = dc.bot_user
    await dc.post_message(channel_id, author, f"<@{bot['id']}> {text}", mentions=[bot])
    await dc.wait_for(lambda r: r.channel_id == channel_id and (r.json or {}).get("content") == f"echo: {text}", 10)


async def test_two_processes_share_the_shards_and_the_state(tmp_path, model_server: ModelServer, redis_url, key_prefix):
    async with DiscordStandin(token=TEST_DISCORD_TOKEN, shards=SHARDS) as dc:
        alice = dc.add_user("alice")
        channels = []
        for shard in range(SHARDS):
            guild = dc.add_guild(
                f"guild-{shard}", owner_id=int(alice["id"]), guild_id=dc.guild_id_for_shard(shard, SHARDS)
            )
            dc.add_member(int(guild["id"]), alice)
            channels.append(int(dc.add_text_channel(int(guild["id"]), "general")["id"]))
        env, config = bot_env(dc, model_server, redis_url), str(write_config(tmp_path, key_prefix))

        async with bot_process(env, config, "1") as one_log:
            async with bot_process(env, config, "0") as zero_log:
                await dc.gateway.wait_identified(2, timeout=20)
                # Each guild's messages reach only the process running its shard, and are answered.
                await mention(dc, channels[0], alice, "hello shard zero")
                await mention(dc, channels[1], alice, "hello shard one")
                # Whatever the model writes, a bot process's messages ping no one.
                model_server.script(Reply(f"@everyone and <@{alice['id']}>, look"))
                await dc.post_message(channels[1], alice, f"<@{dc.bot_user['id']}> ping them", mentions=[dc.bot_user])
                pinging = await dc.wait_for(lambda r: "@everyone" in str((r.json or {}).get("content")), 10)
                assert pinging.json["allowed_mentions"]["parse"] == []
                payload = await dc.send_command(
                    "persona", user=alice, channel_id=channels[0], subcommand="set", options={"name": "joker"},
                    permissions=MANAGE_GUILD,
                )  # fmt: skip
                marker = f"/{payload['id']}/{payload['token']}/"
                callback = await dc.wait_for(lambda r: r.route == "interaction_callback" and marker in r.path, 10)
                assert "now **joker**" in callback.json["data"]["content"]
            assert "Shard ID 0 has connected" in zero_log[0] and "Shard ID 1" not in zero_log[0]

            # Another process takes shard 0 over: the persona and history set through the first are there.
            async with bot_process(env, config, "0"):
                await dc.gateway.wait_identified(3, timeout=20)
                await mention(dc, channels[0], alice, "still there?")
                request = model_server.requests[-1]
                assert "a joke bot in the Discord server guild-0" in request.messages[0]["content"]
                assert [m["content"] for m in request.messages[1:]] == [
                    "hello shard zero",
                    "echo: hello shard zero",
                    "still there?",
                ]
                await mention(dc, channels[1], alice, "and shard one?")  # the other process never stopped
        assert "Shard ID 1 has connected" in one_log[0] and "Shard ID 0" not in one_log[0]
        assert "a joke bot" not in model_server.requests[-1].messages[0]["content"], "guild-1 kept its persona"
        assert not dc.internal_errors
        dc.assert_no_mention_violations()
