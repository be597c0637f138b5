"""``python -m bot check`` as a real process against the stand-ins: one line per check, exit 0 when all
pass and 1 when any fails (config errors stay 2), and never a secret in its output."""

from __future__ import annotations

import asyncio
import io
import re
import socket
import wave
from pathlib import Path

from bot.embedded_redis import EmbeddedRedis
from tests.conftest import TEST_API_KEY, TEST_DISCORD_TOKEN, needs_server_binary
from tests.harness import bot_env, start_bot_process, stop_bot_process, write_config
from tests.standins.model_behaviours import Error
from tests.standins.model_server import ModelServer
from tests.standins.unreachable import UNRESOLVABLE_HOST, SilentServer, resolves_fast, unused_port

INVITE = re.compile(
    r"(?P<site>\S+)/oauth2/authorize\?client_id=(?P<id>\d+)&scope=bot\+applications\.commands"
    r"&permissions=70677981891584$"
)


async def check(
    tmp_path: Path, env: dict[str, str], key_prefix: str = "check", extra: str = ""
) -> tuple[int, list[str]]:
    config = write_config(tmp_path, key_prefix)
    text = config.read_text(encoding="utf-8") + '\n[voice]\nmodel = "whisper-1"\n' + extra
    config.write_text(text, encoding="utf-8")
    process = await start_bot_process("check", "--config", str(config), env=env)
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout=40)
    finally:
        await stop_bot_process(process)
    text = output.decode()
    assert TEST_DISCORD_TOKEN not in text and TEST_API_KEY not in text and "wrong-" not in text, text
    assert "Traceback" not in text, text
    assert process.returncode is not None
    return process.returncode, text.splitlines()


def line(lines: list[str], status: str, name: str) -> str:
    found = [text for text in lines if re.match(rf"{status}\s+{name}\s", text)]
    assert found, f"no {status} line for {name} in:\n" + "\n".join(lines)
    return found[0]


def unused_redis_url() -> str:
    with socket.socket() as probe:  # a port just released: nothing listens there
        probe.bind(("127.0.0.1", 0))
        return f"redis://127.0.0.1:{probe.getsockname()[1]}/0"


async def test_everything_passes(tmp_path, discord_standin, model_server, redis_url, redis) -> None:
    model_server.models.extend(("whisper-1", "gpt-4o-mini-tts"))
    # The embedded test Redis runs with AOF; a REDIS_URL given to the suite may not.
    aof = bool(int((await redis.info("persistence"))["aof_enabled"]))
    code, lines = await check(tmp_path, bot_env(discord_standin, model_server, redis_url))
    assert code == 0, "\n".join(lines)
    assert "logged in as StandinBot" in line(lines, "PASS", "discord")
    [invite] = [INVITE.search(text) for text in lines if "invite" in text]
    assert invite is not None
    assert int(invite["id"]) == discord_standin.application_id
    assert invite["site"] == discord_standin.api_base, "the invite is on the server DISCORD_API_BASE names"
    assert "no privileged intent needed (the portal grants: none)" in next(t for t in lines if "intents" in t)
    assert re.search(r"Redis \d+\.\d+\.\d+ at REDIS_URL", line(lines, "PASS", "redis"))
    warnings = [text for text in lines if text.startswith("WARN")]
    assert warnings == ([] if aof else [line(lines, "WARN", "redis")]), warnings
    assert "test-model is offered" in line(lines, "PASS", "model")
    assert "whisper-1 transcribed a 0.5 s test clip at http://127.0.0.1:" in line(lines, "PASS", "transcription")
    [clip] = model_server.transcriptions
    assert clip.fields["model"] == "whisper-1"
    with wave.open(io.BytesIO(clip.file or b"")) as audio:  # a real WAV, half a second of 16 kHz mono
        assert (audio.getnchannels(), audio.getframerate(), audio.getnframes()) == (1, 16_000, 8_000)
    assert "gpt-4o-mini-tts is offered" in line(lines, "PASS", "speech")
    assert lines[-1] == "All 6 checks passed."
    assert discord_standin.gateway.identify_count == 0, "a REST login only"


async def test_a_wrong_discord_token_fails_with_exit_1(tmp_path, discord_standin, model_server, redis_url) -> None:
    model_server.models.extend(("whisper-1", "gpt-4o-mini-tts"))
    env = bot_env(discord_standin, model_server, redis_url) | {"DISCORD_TOKEN": "wrong-token"}
    code, lines = await check(tmp_path, env)
    assert code == 1
    assert "Discord rejected DISCORD_TOKEN (401)" in line(lines, "FAIL", "discord")
    line(lines, "PASS", "redis")
    line(lines, "PASS", "model")
    assert lines[-1] == "1 check(s) failed: discord."


async def test_redis_down_and_a_rejected_model_key(tmp_path, discord_standin, model_server) -> None:
    env = bot_env(discord_standin, model_server, unused_redis_url()) | {"OPENAI_API_KEY": "wrong-key"}
    code, lines = await check(tmp_path, env)
    assert code == 1
    line(lines, "PASS", "discord")
    assert "cannot reach Redis at redis://127.0.0.1:" in line(lines, "FAIL", "redis")
    assert "rejected OPENAI_API_KEY (401)" in line(lines, "FAIL", "model")
    assert "rejected OPENAI_API_KEY (401)" in line(lines, "FAIL", "transcription")
    assert "rejected OPENAI_API_KEY (401)" in line(lines, "FAIL", "speech")
    assert lines[-1] == "4 check(s) failed: redis, model, transcription, speech."


@needs_server_binary
async def test_a_model_the_server_does_not_offer_and_redis_without_aof(tmp_path, discord_standin, model_server) -> None:
    server = EmbeddedRedis(tmp_path / "no-aof", aof=False)
    try:
        await asyncio.to_thread(server.start)
        code, lines = await check(tmp_path, bot_env(discord_standin, model_server, server.url))
    finally:
        await asyncio.to_thread(server.stop)
    assert code == 1
    assert "AOF is off" in line(lines, "WARN", "redis")
    line(lines, "PASS", "redis")
    assert "whisper-1 is not offered at http://127.0.0.1:" in line(lines, "FAIL", "transcription")
    assert "(it offers: test-model)" in line(lines, "FAIL", "transcription")
    assert "gpt-4o-mini-tts is not offered" in line(lines, "FAIL", "speech")


async def test_a_separate_speech_server_is_checked_with_its_own_key(
    tmp_path, discord_standin, model_server, redis_url
) -> None:
    model_server.models.append("whisper-1")
    async with ModelServer(api_key="sk-speech", models=("gpt-4o-mini-tts",)) as speech_server:
        env = bot_env(discord_standin, model_server, redis_url) | {"TTS_BASE_URL": speech_server.base_url}
        code, lines = await check(tmp_path, env | {"TTS_API_KEY": "wrong-speech-key"})
        assert code == 1 and "rejected TTS_API_KEY (401)" in line(lines, "FAIL", "speech")
        code, lines = await check(tmp_path, env | {"TTS_API_KEY": "sk-speech"})
        assert code == 0 and f"gpt-4o-mini-tts is offered at {speech_server.base_url}" in line(lines, "PASS", "speech")


async def test_a_config_error_still_exits_2(tmp_path, discord_standin, model_server, redis_url) -> None:
    env = bot_env(discord_standin, model_server, redis_url) | {"SHARD_IDS": "0"}
    process = await start_bot_process("check", "--config", str(write_config(tmp_path, "x")), env=env)
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout=30)
    finally:
        await stop_bot_process(process)
    assert process.returncode == 2
    assert "config error: SHARD_IDS needs SHARD_COUNT" in output.decode()


def test_the_invite_is_on_discord_without_discord_api_base() -> None:
    from bot.check import invite_url

    url = invite_url(123, None)
    assert url.startswith("https://discord.com/oauth2/authorize?client_id=123&")
    assert invite_url(123, "https://chat.example:8443/api/v9").startswith("https://chat.example:8443/oauth2/authorize?")


async def test_a_transcription_server_without_audio_fails_however_it_lists_models(
    tmp_path, discord_standin, model_server, redis_url
) -> None:
    """Listing whisper-1, or listing nothing, is not enough: the test clip must be transcribed."""
    model_server.models.extend(("whisper-1", "gpt-4o-mini-tts"))
    model_server.script_transcriptions(Error(404, message="Unknown request URL: POST /v1/audio/transcriptions."))
    code, lines = await check(tmp_path, bot_env(discord_standin, model_server, redis_url))
    assert code == 1
    failed = line(lines, "FAIL", "transcription")
    assert "answered 404 for a whisper-1 transcription: Unknown request URL" in failed
    line(lines, "PASS", "model")


async def test_unreachable_servers_say_why_in_one_line(tmp_path, discord_standin, model_server) -> None:
    """The same words as the bot's own: refused is refused (not the SDK's APITimeoutError), a name
    under .invalid does not resolve, and a Redis Cluster nobody answers is one line, not three chained
    exceptions."""
    refused = f"http://127.0.0.1:{unused_port()}"
    env = bot_env(discord_standin, model_server, f"redis+cluster://127.0.0.1:{unused_port()}") | {
        "DISCORD_API_BASE": refused,
        "OPENAI_BASE_URL": f"http://{UNRESOLVABLE_HOST}/v1" if resolves_fast() else f"{refused}/v1",
        "TRANSCRIPTION_BASE_URL": f"{refused}/v1",
    }
    code, lines = await check(tmp_path, env)
    assert code == 1
    assert line(lines, "FAIL", "discord").endswith(f"cannot log in to Discord at {refused}/api/v10: connection refused")
    assert "cannot reach Redis at redis+cluster://127.0.0.1:" in line(lines, "FAIL", "redis")
    if resolves_fast():
        assert line(lines, "FAIL", "model").endswith(f"the host name {UNRESOLVABLE_HOST} does not resolve")
    assert line(lines, "FAIL", "transcription").endswith(f"cannot reach {refused}/v1/: connection refused")
    assert not any("APITimeoutError" in text for text in lines)


async def test_a_discord_that_never_answers_fails_within_the_connect_timeout(
    tmp_path, discord_standin, model_server, redis_url
) -> None:
    model_server.models.extend(("whisper-1", "gpt-4o-mini-tts"))
    async with SilentServer() as silent:
        env = bot_env(discord_standin, model_server, redis_url) | {
            "DISCORD_API_BASE": f"http://127.0.0.1:{silent.port}"
        }
        config = tmp_path / "quick"
        config.mkdir()
        code, lines = await check(config, env, extra="[discord]\nconnect_timeout_s = 0.5\n")
    assert code == 1
    assert line(lines, "FAIL", "discord").endswith(": no answer within 0.5 s")
    assert lines[-1] == "1 check(s) failed: discord."
