"""``python -m bot playground`` as a real process, driven through Gradio's own client (gradio_client)
against the loopback model server and a real Redis: streaming, history, personas, voice, forget, costs,
errors, restarts, the login and the refusals. No Discord token anywhere."""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
from pathlib import Path

import pytest

from bot.keys import Keys
from bot.settings import BUILTIN_PERSONAS
from tests.conftest import TEST_API_KEY
from tests.playground_harness import (
    GradioPage,
    playground_env,
    run_cli,
    running_playground,
    text,
    transcript,
    write_config,
)
from tests.standins.egress_recorder import EgressRecorder
from tests.standins.model_server import Error, Reply

if importlib.util.find_spec("gradio_client") is None:
    if os.environ.get("CI") == "true":
        raise RuntimeError("CI must install requirements-playground.txt: gradio_client is missing")
    pytest.skip("the playground's optional dependencies are not installed", allow_module_level=True)

# Each test starts the playground (Gradio takes seconds to import) at least once.
pytestmark = pytest.mark.timeout(120)

VOICE = Path(__file__).parent / "fixtures" / "voice-message.ogg"
PRICES = """
[[usage.prices]]
model = "test-model"
input_per_million = 1000.0
output_per_million = 2000.0

[[usage.prices]]
model = "whisper-1"
audio_per_minute = 0.6
"""


def system_prompt(name: str) -> str:
    persona = next(p for p in BUILTIN_PERSONAS if p.name == name)
    today = dt.datetime.now(dt.UTC).date().isoformat()
    return (
        persona.prompt.replace("{date}", today)
        .replace("{bot_name}", "the bot")
        .replace("{guild_name}", "the playground")
    )


def turns_key(key_prefix: str, session: int) -> str:
    return f"{key_prefix}:playground:conv:{{{session}}}:turns"


async def test_chat_streams_keeps_history_in_its_own_key_space_and_survives_a_restart(
    tmp_path, model_server, redis_url, key_prefix, redis
) -> None:
    config = write_config(tmp_path, key_prefix)
    async with EgressRecorder() as egress:
        env = playground_env(model_server, redis_url, egress)
        async with running_playground(config, env) as playground:
            page = await GradioPage.open(playground.url)
            first = await page.start()
            session = first["session"]
            assert first["chat"] == [] and first["persona"] == "assistant"

            model_server.script(Reply("Hello there, nice to meet you!", chunk_size=4, chunk_delay=0.02))
            job = await page.job("/chat", session, "hi bot", [])
            outputs = job.outputs()
            answers = [text(out[1][-1]) for out in outputs if out[1] and out[1][-1]["role"] == "assistant"]
            assert answers[-1] == "Hello there, nice to meet you!"
            growing = [a for a in answers if a and a != answers[-1]]
            assert growing, f"no partial answer was streamed: {answers}"
            assert all(answers[-1].startswith(a) for a in growing)
            assert outputs[0][1] and text(outputs[0][1][-1]) == "hi bot", "the message shows before the answer"
            chat = outputs[-1][1]

            await page.call("/chat", session, "and again", chat)
            [_, second] = model_server.requests
            assert [(m["role"], m["content"]) for m in second.messages[1:]] == [
                ("user", "hi bot"),
                ("assistant", "Hello there, nice to meet you!"),
                ("user", "and again"),
            ], "the stored history is sent with the next message"
            assert second.messages[0]["content"] == system_prompt("assistant")
        assert await playground.stop() == 0
        assert "Traceback" not in playground.log and TEST_API_KEY not in playground.log

        # Its own key space: nothing under the Discord conversation keys.
        assert await redis.llen(turns_key(key_prefix, session)) == 4
        assert [k async for k in redis.scan_iter(match=f"{key_prefix}:conv:*")] == []

        async with running_playground(config, env) as playground:
            page = await GradioPage.open(playground.url)
            again = await page.start(session)
            assert again["session"] == session
            assert [role for role, _ in transcript(again["chat"])] == ["user", "assistant"] * 2
            await page.call("/chat", session, "still there?", again["chat"])
            assert len(model_server.requests[-1].messages) == 6, "system + 4 stored + the new message"
            other = await page.start()
            assert other["session"] != session and other["chat"] == []
        assert egress.attempts == [], f"requests beyond loopback: {egress.attempts}"


async def test_persona_switch_and_custom_prompt_apply_from_the_next_message(
    tmp_path, model_server, redis_url, key_prefix, redis
) -> None:
    async with (
        EgressRecorder() as egress,
        running_playground(
            write_config(tmp_path, key_prefix), playground_env(model_server, redis_url, egress)
        ) as playground,
    ):
        page = await GradioPage.open(playground.url)
        session = (await page.start())["session"]
        chat = (await page.call("/chat", session, "tell me about cats", []))[1]
        assert model_server.requests[-1].messages[0]["content"] == system_prompt("assistant")

        status = await page.call("/persona", session, "joker", "")
        assert "joker" in status and "next message" in status
        await page.call("/chat", session, "cats", chat)
        assert model_server.requests[-1].messages[0]["content"] == system_prompt("joker")

        pirate = "You are a pirate. Answer every question with arr."
        persona, status = await page.call("/custom", session, pirate)
        assert persona == "custom" and "custom" in status
        await page.call("/chat", session, "ahoy", [])
        assert model_server.requests[-1].messages[0]["content"] == pirate
        shown = await page.start(session)
        assert (shown["persona"], shown["custom"]) == ("custom", pirate)

        _, refused = await page.call("/custom", session, "x" * 2_001)
        assert refused == "That prompt is 2,001 characters; the limit is 2,000. Please shorten it."
        other = await page.start()
        assert other["persona"] == "assistant", "a persona belongs to one browser session"
    assert egress.attempts == []


async def test_a_second_configured_model_can_be_picked_for_the_next_message(
    tmp_path, model_server, redis_url, key_prefix, redis
) -> None:
    config = write_config(tmp_path, key_prefix, '[[models]]\nname = "other-model"\nlabel = "Another"\n')
    async with (
        EgressRecorder() as egress,
        running_playground(config, playground_env(model_server, redis_url, egress)) as playground,
    ):
        page = await GradioPage.open(playground.url)
        start = await page.start()
        session = start["session"]
        assert start["model"] == "test-model"
        await page.call("/chat", session, "first", [])
        assert model_server.requests[-1].model == "test-model"
        assert await page.call("/model", session, "other-model") == (
            "Model **other-model**: it answers from your next message."
        )
        await page.call("/chat", session, "second", [])
        assert model_server.requests[-1].model == "other-model"
        assert (await page.start(session))["model"] == "other-model"
        assert (await page.start())["model"] == "test-model", "a model belongs to one browser session"
    assert egress.attempts == []


async def test_a_sessions_persona_and_model_choices_expire_like_its_history_refreshed_on_use(
    tmp_path, model_server, redis_url, key_prefix, redis
) -> None:
    """A browser may never come back: its choices must not stay in Redis forever (a guild's do)."""
    day_ms = 86_400_000
    extra = '[history]\nttl_days = 2\n\n[[models]]\nname = "other-model"\n'
    config = write_config(tmp_path, key_prefix, extra)
    keys = Keys(key_prefix).playground()
    async with (
        EgressRecorder() as egress,
        running_playground(config, playground_env(model_server, redis_url, egress)) as playground,
    ):
        page = await GradioPage.open(playground.url)
        session = (await page.start())["session"]
        choices = (keys.personas(session), keys.models(session))

        await page.call("/persona", session, "joker", "")
        await page.call("/model", session, "other-model")
        for key in choices:
            assert day_ms < await redis.pttl(key) <= 2 * day_ms, f"{key}: [history] ttl_days from the choice on"

        # Nearly expired, then used: a message in the session keeps its choices as long as its history.
        for key in choices:
            await redis.pexpire(key, 60_000)
        await page.call("/chat", session, "still joking?", [])
        assert model_server.requests[-1].model == "other-model"
        assert model_server.requests[-1].messages[0]["content"] == system_prompt("joker")
        assert day_ms < await redis.pttl(keys.turns(session)) <= 2 * day_ms
        for key in choices:
            assert day_ms < await redis.pttl(key) <= 2 * day_ms, f"{key}: refreshed by the turn"

        await redis.pexpire(keys.personas(session), 60_000)
        await page.call("/custom", session, "You are a pirate.")
        assert day_ms < await redis.pttl(keys.personas(session)) <= 2 * day_ms, "refreshed by a custom prompt"
    assert egress.attempts == []


async def test_voice_upload_is_transcribed_shown_answered_and_priced_then_forgotten(
    tmp_path, model_server, redis_url, key_prefix, redis
) -> None:
    from gradio_client import handle_file

    config = write_config(tmp_path, key_prefix, PRICES)
    async with (
        EgressRecorder() as egress,
        running_playground(config, playground_env(model_server, redis_url, egress)) as playground,
    ):
        page = await GradioPage.open(playground.url)
        start = await page.start()
        session = start["session"]
        assert "Today (UTC, all playground sessions):** 0 tokens, 0 requests, $0.000000" in start["costs"]

        model_server.script(Reply("Sounds good.", usage=(100, 20)))
        _, chat, costs = await page.call("/voice", session, handle_file(str(VOICE)), [])
        [heard] = model_server.transcriptions
        assert heard.file == VOICE.read_bytes(), "the audio reaches the transcriber exactly as uploaded"
        spoken = f"transcript of {VOICE.name} ({VOICE.stat().st_size} bytes)"
        assert transcript(chat) == [("user", f"🎤 {spoken}"), ("assistant", "Sounds good.")]
        assert model_server.requests[-1].messages[-1]["content"] == spoken
        # 100 in x $1000/M + 20 out x $2000/M = $0.14, plus the audio's estimated seconds at $0.6/min.
        audio_s = VOICE.stat().st_size * 8 / 64_000
        cost = 0.14 + audio_s / 60 * 0.6
        assert f"**Last turn:** 100 in + 20 out tokens · {audio_s:.1f} s of audio · ${cost:.4f}" in costs
        assert f"120 tokens, 2 requests, ${cost:.4f} estimated" in costs

        model_server.script(Reply("Typed answer.", usage=(50, 10)))
        _, chat, costs = await page.call("/chat", session, "typed", chat)
        assert "**Last turn:** 50 in + 10 out tokens · $0.0700 estimated" in costs
        assert f"180 tokens, 3 requests, ${cost + 0.07:.4f} estimated" in costs

        cleared, status = await page.call("/forget", session)
        assert cleared == [] and status == "Done: I forgot this conversation (4 messages)."
        assert await redis.exists(turns_key(key_prefix, session)) == 0
        await page.call("/chat", session, "fresh start", [])
        assert [m["role"] for m in model_server.requests[-1].messages] == ["system", "user"]
        assert (await page.call("/forget", session))[1] == "Done: I forgot this conversation (2 messages)."
        assert (await page.call("/forget", session))[1] == "There was nothing to forget."
    assert egress.attempts == []


async def test_errors_are_the_bots_short_sentences_and_leave_history_alone(
    tmp_path, model_server, redis_url, key_prefix, redis
) -> None:
    limits = "[limits]\nuser_daily_tokens = 100\nuser_turns = 3\nuser_window_s = 600.0\n"
    config = write_config(tmp_path, key_prefix, limits)
    async with (
        EgressRecorder() as egress,
        running_playground(config, playground_env(model_server, redis_url, egress)) as playground,
    ):
        page = await GradioPage.open(playground.url)
        session = (await page.start())["session"]

        model_server.script(Error(401))
        _, chat, _ = await page.call("/chat", session, "hello?", [])
        assert transcript(chat) == [
            ("user", "hello?"),
            ("assistant", "The model server rejected my API key. A server admin needs to check the bot's key."),
        ]
        assert await redis.exists(turns_key(key_prefix, session)) == 0, "a failed turn stores nothing"

        model_server.script(Reply("Part of an answer", usage=(90, 30)))
        await page.call("/chat", session, "spend the budget", [])
        requests = len(model_server.requests)
        _, chat, _ = await page.call("/chat", session, "one more", [])
        assert text(chat[-1]) == "Your daily budget for the model is used up. It resets at 00:00 UTC."
        assert len(model_server.requests) == requests, "no model request over budget"
        assert await redis.llen(turns_key(key_prefix, session)) == 2
        _, chat, _ = await page.call("/chat", session, "a fourth turn in ten minutes", [])
        assert text(chat[-1]) == "You're sending messages faster than I can answer. Please wait 10 min."
        assert len(model_server.requests) == requests
        _, chat, _ = await page.call("/voice", session, None, [])
        assert chat == [], "no audio: nothing happens"
    assert "Traceback" not in playground.log
    assert egress.attempts == []


async def test_a_password_puts_the_playground_behind_a_login(tmp_path, model_server, redis_url, key_prefix) -> None:
    from gradio_client.exceptions import AuthenticationError

    config = write_config(tmp_path, key_prefix)
    async with (
        EgressRecorder() as egress,
        running_playground(
            config, playground_env(model_server, redis_url, egress, PLAYGROUND_PASSWORD="s3cret")
        ) as playground,
    ):
        with pytest.raises(AuthenticationError, match="credentials were not provided"):
            await GradioPage.open(playground.url)
        with pytest.raises(ValueError, match="Could not login"):  # the server's 400 "Incorrect credentials"
            await GradioPage.open(playground.url, auth=("anyone", "wrong"))
        page = await GradioPage.open(playground.url, auth=("anyone", "s3cret"))
        session = (await page.start())["session"]
        _, chat, _ = await page.call("/chat", session, "let me in", [])
        assert text(chat[-1]) == "echo: let me in"
    assert "s3cret" not in playground.log
    assert egress.attempts == []


async def test_it_refuses_an_address_beyond_loopback_without_a_password(
    tmp_path, model_server, redis_url, key_prefix
) -> None:
    async with EgressRecorder() as egress:
        env = playground_env(model_server, redis_url, egress)
        config = write_config(tmp_path, key_prefix)
        code, output = await run_cli("playground", "--config", str(config), "--host", "0.0.0.0", env=env)
    assert code == 2
    assert output.strip().splitlines()[-1] == (
        "Refusing to listen on 0.0.0.0: anyone who can reach it could use your model. Set PLAYGROUND_PASSWORD "
        "to require a login, or leave --host at 127.0.0.1."
    )
    assert "Traceback" not in output
