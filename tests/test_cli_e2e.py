"""``python -m bot`` as a real process: it connects to the stand-in Discord, answers, exits cleanly on
SIGTERM, and ``sync`` publishes the slash commands."""

from __future__ import annotations

import asyncio
import signal

from tests.conftest import TEST_API_KEY, TEST_DISCORD_TOKEN
from tests.harness import MANAGE_CHANNELS, bot_env, start_bot_process, stop_bot_process, write_config


async def test_the_bot_process_answers_and_stops_cleanly_on_sigterm(
    tmp_path, discord_standin, model_server, redis_url, key_prefix, redis, world
) -> None:
    env = bot_env(discord_standin, model_server, redis_url)
    process = await start_bot_process("--config", str(write_config(tmp_path, key_prefix)), env=env)
    try:
        await discord_standin.gateway.wait_identified(1, timeout=20)
        bot_id = discord_standin.bot_user["id"]
        await discord_standin.post_message(
            world.channel_id, world.alice, f"<@{bot_id}> are you there?", mentions=[discord_standin.bot_user]
        )
        await discord_standin.wait_for(lambda r: (r.json or {}).get("content") == "echo: are you there?", timeout=10)
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(process.communicate(), timeout=15)
    finally:
        await stop_bot_process(process)
    log = output.decode()
    assert process.returncode == 0, log
    assert "Traceback" not in log
    assert TEST_DISCORD_TOKEN not in log and TEST_API_KEY not in log
    assert await redis.llen(f"{key_prefix}:conv:{{{world.channel_id}}}:turns") == 2


async def test_sync_publishes_the_slash_commands(
    tmp_path, discord_standin, model_server, redis_url, key_prefix
) -> None:
    env = bot_env(discord_standin, model_server, redis_url)
    process = await start_bot_process("sync", "--config", str(write_config(tmp_path, key_prefix)), env=env)
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout=30)
    finally:
        await stop_bot_process(process)
    assert process.returncode == 0, output.decode()
    [put] = [r for r in discord_standin.requests if r.route == "put_commands"]
    commands = {c["name"]: c for c in put.json}
    assert {"forget", "persona", "model", "usage"} <= set(commands)
    assert f"Published {len(commands)} slash command(s): {', '.join(commands)}" in output.decode()
    assert int(commands["persona"]["default_member_permissions"]) == MANAGE_CHANNELS
    assert commands["persona"]["dm_permission"] is False, "guild only"
    assert {o["name"] for o in commands["persona"]["options"]} == {"list", "show", "set", "custom", "reset"}
    assert {o["name"] for o in commands["model"]["options"]} == {"list", "show", "set", "reset"}
    assert commands["model"]["dm_permission"] is False, "DMs use the default model"
    assert commands["forget"]["default_member_permissions"] is None, "thread owners without permissions may use it"
    assert discord_standin.gateway.identify_count == 0, "sync logs in over REST only"


async def test_a_bad_token_exits_with_a_clear_message(tmp_path, discord_standin, model_server, redis_url, key_prefix):
    env = bot_env(discord_standin, model_server, redis_url) | {"DISCORD_TOKEN": "wrong-token"}
    process = await start_bot_process("--config", str(write_config(tmp_path, key_prefix)), env=env)
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout=30)
    finally:
        await stop_bot_process(process)
    assert process.returncode == 1
    assert "Discord rejected DISCORD_TOKEN" in output.decode()
    assert "Traceback" not in output.decode()
