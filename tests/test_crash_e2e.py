"""The bot process killed (SIGKILL) in the middle of a turn and started again: no half-written history,
no duplicate answer, and with the embedded Redis the orphaned server is found again, data intact."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from tests.conftest import needs_server_binary
from tests.harness import BotProcess, bot_env, start_bot_process, stop_bot_process, write_config
from tests.standins.model_server import Reply

SLOW_ANSWER = Reply("word " * 200, chunk_size=5, chunk_delay=0.02)  # about 4 s of streaming


async def stop(process: BotProcess, sig: int) -> str:
    if process.returncode is None:
        process.send_signal(sig)
    output, _ = await asyncio.wait_for(process.communicate(), timeout=20)
    return output.decode()


def embedded_server_pid(data_dir: Path) -> int | None:
    """The pid in the embedded server's pidfile, if that process is still running."""
    pidfile = data_dir / "redis.pid"
    if not pidfile.exists():  # removed by a clean shutdown
        return None
    pid = int(pidfile.read_text())
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


@pytest.mark.parametrize(
    "embedded", [False, pytest.param(True, marks=needs_server_binary)], ids=["REDIS_URL", "embedded Redis"]
)
async def test_sigkill_mid_turn_leaves_no_half_history_and_no_duplicate(
    tmp_path, discord_standin, model_server, redis_url, key_prefix, world, embedded
) -> None:
    dc = discord_standin
    env = bot_env(dc, model_server, None if embedded else redis_url)
    config = str(write_config(tmp_path, key_prefix))
    data_dir = tmp_path / "data"
    orphan = None
    try:
        process = await start_bot_process("--config", config, env=env)
        await dc.gateway.wait_identified(1, timeout=20)
        me = dc.bot_user
        await dc.post_message(world.channel_id, world.alice, f"<@{me['id']}> remember: kiwi", mentions=[me])
        await dc.wait_for(lambda r: (r.json or {}).get("content") == "echo: remember: kiwi", timeout=10)

        model_server.script(SLOW_ANSWER)
        doomed = await dc.post_message(world.channel_id, world.alice, f"<@{me['id']}> a long story", mentions=[me])
        await dc.wait_for(lambda r: r.route == "edit_message" and "word word" in str(r.json), timeout=10)
        await stop(process, signal.SIGKILL)  # mid-stream: the answer is half shown

        if embedded:
            orphan = embedded_server_pid(data_dir)
            assert orphan is not None, "SIGKILL leaves the embedded redis-server running"
        process = await start_bot_process("--config", config, env=env)
        await dc.gateway.wait_identified(2, timeout=20)
        await dc.dispatch("MESSAGE_CREATE", doomed)  # a replay of the interrupted message
        await dc.post_message(world.channel_id, world.bob, f"<@{me['id']}> what was the fruit?", mentions=[me])
        answered = await dc.wait_for(lambda r: (r.json or {}).get("content") == "echo: what was the fruit?", timeout=10)
        history = model_server.requests[-1].messages[1:]
        assert [m["content"] for m in history] == ["remember: kiwi", "echo: remember: kiwi", "what was the fruit?"]
        assert not [r for r in dc.requests[answered.index :] if "a long story" in str(r.json)]
        assert len(model_server.requests) == 3, "the replayed message was not answered again"
        if embedded:
            assert embedded_server_pid(data_dir) == orphan, "the restarted bot reused the orphaned server"
        log = await stop(process, signal.SIGTERM)
        assert process.returncode == 0, log
        if embedded:
            assert embedded_server_pid(data_dir) is None, "a clean stop shuts the embedded server down"
    finally:
        await stop_bot_process(process)
        if orphan and embedded_server_pid(data_dir):
            os.kill(orphan, signal.SIGKILL)
