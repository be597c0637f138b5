"""/healthz and /metrics of a running bot (real discord.py client, stand-in Discord, real Redis), the
metrics observer API, and the per-turn log line."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import socket
from typing import Any

import aiohttp
import pytest

from bot.errors import ModelError
from bot.llm import Usage
from bot.metrics import Metrics
from bot.turnlog import format_turn, log_turn
from tests.harness import start_bot
from tests.standins.model_server import Error

HEALTH = {"enabled": True, "host": "127.0.0.1", "port": 0}


async def get(bot: Any, path: str) -> tuple[int, str, str]:
    assert bot.health is not None, "the health server runs when [health] enabled = true"
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{bot.health.port}{path}") as response:
        return response.status, response.headers["Content-Type"], await response.text()


def sample(metrics_text: str, name: str) -> float:
    """The value of one sample line (``name`` includes its labels, as exposed)."""
    for line in metrics_text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in /metrics:\n{metrics_text}")


async def test_healthz_and_metrics_after_a_few_turns(chat_bot, world) -> None:
    async with chat_bot(health=HEALTH) as chat:
        for n in range(3):
            await chat.mention(world.channel_id, f"question {n}")
            await chat.answer(world.channel_id, f"echo: question {n}")
        chat.model.script(Error(500))
        await chat.mention(world.channel_id, "this one fails")
        await chat.answer(world.channel_id, ModelError().user_message)
        status, content_type, body = await get(chat.bot, "/healthz")
        assert status == 200 and content_type.startswith("application/json"), body
        health = json.loads(body)
        assert health["status"] == "ok"
        assert health["gateway"] == {"ok": True, "shards": {"0": True}}
        assert health["redis"]["ok"] is True and health["redis"]["latency_ms"] >= 0

        status, content_type, text = await get(chat.bot, "/metrics")
        assert status == 200 and content_type.startswith("text/plain; version=0.0.4")
        assert sample(text, "discord_bot_shards_connected") == 1
        assert sample(text, "discord_bot_shards") == 1
        assert sample(text, 'discord_bot_redis_seconds_count{op="ping"}') >= 2  # one per probe
        assert sample(text, 'discord_bot_turns_total{outcome="ok"}') == 3
        assert sample(text, 'discord_bot_turns_total{outcome="error"}') == 1
        assert sample(text, 'discord_bot_errors_total{kind="ModelError"}') == 1
        reported = chat.model.reported_usage
        assert sample(text, 'discord_bot_tokens_total{kind="input"}') == sum(u["prompt_tokens"] for u in reported)
        assert sample(text, 'discord_bot_tokens_total{kind="output"}') == sum(u["completion_tokens"] for u in reported)
        assert sample(text, "discord_bot_model_first_token_seconds_count") == 3
        assert sample(text, "discord_bot_turn_seconds_count") == 4
        assert sample(text, 'discord_bot_redis_seconds_count{op="batch"}') == 3 * 2 + 1, "2 per turn, 1 if it fails"
        assert sample(text, "discord_bot_active_streams") == 0
        assert "python_gc" not in text, "a registry of its own, not the process-global default"


async def test_healthz_is_503_while_a_shard_is_disconnected(chat_bot, world) -> None:
    """The gateway drops the shard and takes no new connection for a while: 503 naming the shard,
    then 200 again once it has RESUMEd."""
    async with chat_bot(health=HEALTH) as chat:
        status, _, _ = await get(chat.bot, "/healthz")
        assert status == 200
        gateway = chat.dc.gateway
        gateway.accepting.clear()
        await chat.dc.disconnect(0, code=4000)  # resumable: discord.py reconnects, and is held
        for _ in range(100):
            status, _, body = await get(chat.bot, "/healthz")
            if status == 503:
                break
            await asyncio.sleep(0.02)
        assert status == 503, body
        health = json.loads(body)
        assert health["status"] == "unavailable" and health["redis"]["ok"] is True
        assert health["gateway"] == {"ok": False, "shards": {"0": False}}
        _, _, text = await get(chat.bot, "/metrics")
        assert sample(text, "discord_bot_shards_connected") == 0
        gateway.accepting.set()
        await chat.dc.wait_resumed(0)
        status, _, body = await get(chat.bot, "/healthz")
        assert status == 200, body


async def test_healthz_is_503_when_a_redis_cluster_is_unreachable(discord_standin, make_settings, world) -> None:
    from tests.standins.unreachable import unused_port

    settings = make_settings(health=HEALTH, secrets={"redis_url": f"redis+cluster://127.0.0.1:{unused_port()}"})
    async with start_bot(settings, discord_standin) as bot:
        status, _, body = await get(bot, "/healthz")
    assert status == 503, body
    assert json.loads(body)["redis"] == {"ok": False, "error": "RedisClusterException"}


async def test_healthz_is_503_when_redis_is_unreachable(discord_standin, make_settings, world) -> None:
    with socket.socket() as probe:  # a port just released: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = make_settings(health=HEALTH)
    settings = dataclasses.replace(
        settings, secrets=dataclasses.replace(settings.secrets, redis_url=f"redis://127.0.0.1:{port}/0")
    )
    async with start_bot(settings, discord_standin) as bot:
        status, _, body = await get(bot, "/healthz")
        assert status == 503, body
        health = json.loads(body)
        assert health["status"] == "unavailable" and health["gateway"]["ok"] is True
        assert health["redis"] == {"ok": False, "error": "ConnectionError"}
        _, _, text = await get(bot, "/metrics")
        assert sample(text, 'discord_bot_errors_total{kind="ConnectionError"}') >= 1
    assert bot.health is None, "closed with the bot"


async def test_health_is_off_by_default(chat_bot) -> None:
    async with chat_bot() as chat:
        assert chat.bot.health is None


def test_metrics_observer_api() -> None:
    one, two = Metrics(), Metrics()  # two bots in one process do not collide
    one.turn_finished("refused", 0.01)
    one.error(TimeoutError())
    one.error("ModelRateLimited")
    with one.streaming():
        assert b"discord_bot_active_streams 1.0" in one.render()
    one.transcribed(12.5, seconds=1.5)
    one.redis_latency(0.002)
    text = one.render().decode()
    assert sample(text, 'discord_bot_turns_total{outcome="refused"}') == 1
    assert sample(text, 'discord_bot_errors_total{kind="TimeoutError"}') == 1
    assert sample(text, 'discord_bot_errors_total{kind="ModelRateLimited"}') == 1
    assert sample(text, "discord_bot_active_streams") == 0
    assert sample(text, "discord_bot_transcribed_audio_seconds_total") == 12.5
    assert sample(text, 'discord_bot_redis_seconds_count{op="batch"}') == 1
    assert sample(two.render().decode(), 'discord_bot_turns_total{outcome="refused"}') == 0


def test_the_turn_line_has_ids_tokens_and_timings_but_no_content() -> None:
    line = format_turn(
        conversation_id=42, guild_id=7, outcome="ok", seconds=2.345, usage=Usage(100, 20), first_token_s=0.41
    )
    assert line == "turn conversation=42 guild=7 outcome=ok in=100 out=20 first_token=0.41s total=2.35s"
    assert format_turn(conversation_id=1, outcome="error", seconds=0.5, error="ModelTimeout") == (
        "turn conversation=1 guild=dm outcome=error total=0.50s error=ModelTimeout"
    )


@pytest.mark.parametrize(("level", "shows_content"), [(logging.INFO, False), (logging.DEBUG, True)])
def test_message_text_is_logged_only_at_debug(caplog, level: int, shows_content: bool) -> None:
    caplog.set_level(level, logger="bot.turns")
    log_turn(conversation_id=5, outcome="ok", seconds=1.0, question="my secret plan", answer="x" * 500)
    [record] = caplog.records
    assert ("my secret plan" in record.getMessage()) is shows_content
    if shows_content:
        assert len(record.getMessage()) < 600, "long texts are cut to a preview"


async def test_each_turn_logs_one_line_without_content_unless_debug(chat_bot, world, caplog) -> None:
    def turn_lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "bot.turns"]

    async def exchange(text: str) -> None:
        await chat.mention(world.channel_id, text)
        await chat.answer(world.channel_id, f"echo: {text}")

    async with chat_bot() as chat:
        caplog.set_level(logging.INFO, logger="bot.turns")
        await exchange("a private question")
        # A turn logs after its last edit; the next turn of the conversation starts only after that.
        await exchange("next one")
        line = turn_lines()[0]
        assert line.startswith(f"turn conversation={world.channel_id} guild={world.guild_id} outcome=ok in=")
        assert "first_token=" in line and "total=" in line
        assert "private" not in caplog.text, "no message content at INFO"
        caplog.set_level(logging.DEBUG, logger="bot.turns")
        await exchange("a debug question")
        await exchange("and the next")
        line = turn_lines()[2]
        assert "question='a debug question'" in line and "answer='echo: a debug question'" in line
