"""Faults on every side: Redis going away and coming back, Discord rate limits and reconnects."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import ModelUnavailable, StorageUnavailable
from tests.conftest import needs_server_binary
from tests.standins.model_server import Drop, Malformed, Reply, StallMidStream
from tests.standins.redis_process import RedisProcess


@needs_server_binary
async def test_a_redis_outage_gets_its_message_and_nothing_is_lost(chat_bot, world, tmp_path: Path) -> None:
    server = RedisProcess(tmp_path / "redis")
    server.start()
    try:
        async with chat_bot(secrets={"redis_url": server.url}) as chat:
            for i in range(3):
                await chat.mention(world.channel_id, f"before {i}")
                await chat.answer(world.channel_id, f"echo: before {i}")
            server.stop()
            await chat.mention(world.channel_id, "during the outage")
            await chat.answer(world.channel_id, StorageUnavailable().user_message)
            server.start()
            await chat.mention(world.channel_id, "after the restart")
            await chat.answer(world.channel_id, "echo: after the restart", timeout=5)
            users = [t["content"] for t in await chat.stored_turns(world.channel_id) if t["role"] == "user"]
            assert users == ["before 0", "before 1", "before 2", "after the restart"]
            assert [m["content"] for m in chat.model.requests[-1].messages[1:-1]] == [
                text for i in range(3) for text in (f"before {i}", f"echo: before {i}")
            ]
    finally:
        server.kill()


async def test_a_rate_limited_edit_does_not_lose_the_final_text(chat_bot, world) -> None:
    async with chat_bot(stream={"edit_interval_s": 0.05}) as chat:
        chat.dc.rate_limit("PATCH", "edit_message", retry_after=0.3, times=2)
        text = "The final words must arrive even when Discord says slow down."
        chat.model.script(Reply(text, chunk_size=5, chunk_delay=0.01))
        await chat.mention(world.channel_id, "talk")
        await chat.answer(world.channel_id, text)
        assert [r.status for r in chat.dc.requests if r.route == "edit_message"][:2] == [429, 429]
        assert chat.dc.bot_messages(world.channel_id)[-1]["content"] == text


async def test_a_gateway_reconnect_does_not_answer_twice(chat_bot, world) -> None:
    async with chat_bot() as chat:
        await chat.mention(world.channel_id, "before the drop")
        await chat.answer(world.channel_id, "echo: before the drop")
        await chat.dc.disconnect(shard_id=0)
        await chat.dc.wait_resumed(shard_id=0)
        await chat.mention(world.channel_id, "after the resume")
        await chat.answer(world.channel_id, "echo: after the resume")
        assert chat.dc.gateway.resume_count == 1
        assert [r.messages[-1]["content"] for r in chat.model.requests] == ["before the drop", "after the resume"]
        assert len(chat.dc.bot_messages(world.channel_id)) == 2


@pytest.mark.parametrize(
    "fault",
    [Drop(after_chunks=2), Malformed(after_chunks=2), StallMidStream(after_chunks=2, seconds=5)],
    ids=["dropped connection", "malformed chunk", "stall mid-stream"],
)
async def test_an_answer_broken_mid_stream_is_marked_and_not_stored(chat_bot, world, fault) -> None:
    async with chat_bot(model={"idle_timeout_s": 0.3}) as chat:
        chat.model.script(fault)
        await chat.mention(world.channel_id, "tell me a story")
        final = await chat.dc.wait_for(lambda r: "*(Interrupted:" in str((r.json or {}).get("content")))
        assert final.json["content"].startswith(chat.model.requests[0].sent_text)
        assert await chat.stored_turns(world.channel_id) == []


async def test_a_model_server_that_refuses_connections_gets_its_message(chat_bot, world) -> None:
    async with chat_bot() as chat:
        await chat.model.refuse_connections()
        await chat.mention(world.channel_id, "anyone there?")
        await chat.answer(world.channel_id, ModelUnavailable().user_message)
        await chat.model.restart()
        await chat.mention(world.channel_id, "and now?")
        await chat.answer(world.channel_id, "echo: and now?")
        assert [t["content"] for t in await chat.stored_turns(world.channel_id)] == ["and now?", "echo: and now?"]


async def test_an_unreachable_redis_cluster_gets_the_storage_message(chat_bot, world) -> None:
    """redis-py's cluster client raises RedisClusterException, which is not a RedisError: it must
    still be the storage sentence, with nothing asked of the model."""
    from tests.standins.unreachable import unused_port

    async with chat_bot(secrets={"redis_url": f"redis+cluster://127.0.0.1:{unused_port()}"}) as chat:
        await chat.mention(world.channel_id, "is anyone home?")
        await chat.answer(world.channel_id, StorageUnavailable().user_message, timeout=15)
        assert not chat.model.requests
