"""Spoken replies end to end: a voice message to the real discord.py client is answered in text and
as a Discord voice message, made from the loopback model server's /v1/audio/speech (real audio, made
with PyAV) and uploaded through discord.py's HTTP client to the stand-in Discord, which checks it as
Discord does (tests/standins/discord_voice.py). Every uploaded file is decoded again here."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from bot.errors import NothingToSay, SpeechOverBudget
from bot.settings import Price, SpeechFormat, SpokenReply
from bot.speech import speakable
from cogs.spoken import NOT_OFFERED
from cogs.utils.budget import Priority
from cogs.utils.spoken_reply import NOT_SPOKEN, PARTLY_SPOKEN
from tests.conftest import TEST_API_KEY, TEST_MODEL
from tests.harness import MANAGE_GUILD
from tests.standins.audio_samples import decode
from tests.standins.discord_recorder import RecordedRequest
from tests.standins.discord_voice import IS_VOICE_MESSAGE, SEND_VOICE_MESSAGES
from tests.standins.model_server import Error, Garbage, ModelServer, Reply, Speech, Stall, Transcript
from tests.test_health_metrics import sample
from tests.test_voice_e2e import CLIP, send_voice, voice_clip

BOTH = {"reply": SpokenReply.BOTH}
VOICE_ONLY = {"reply": SpokenReply.VOICE}
FAILED_NOTE = f"*({NOT_SPOKEN})*"
LOGGER = "cogs.utils.spoken_reply"


class SpokenLog(logging.Handler):
    """The spoken-reply log lines, with a wait for the next one (it may come after the last request)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []
        self._arrived = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self._arrived.set()

    async def first(self, timeout: float = 5.0) -> logging.LogRecord:
        async with asyncio.timeout(timeout):
            await self._arrived.wait()
        return self.records[0]


@pytest.fixture
def spoken_log() -> Iterator[SpokenLog]:
    handler = SpokenLog()
    logger = logging.getLogger(LOGGER)
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def spoken_metric(chat: Any, outcome: str) -> float:
    return sample(chat.bot.metrics.render().decode(), f'discord_bot_spoken_replies_total{{outcome="{outcome}"}}')


def is_voice_message(request: RecordedRequest) -> bool:
    return request.route == "create_message" and bool(int((request.json or {}).get("flags") or 0) & IS_VOICE_MESSAGE)


async def voice_message(chat: Any, *, timeout: float = 5.0) -> RecordedRequest:
    """The bot's voice message, as Discord accepted it."""
    request = await chat.dc.wait_for(lambda r: is_voice_message(r) and r.status == 200, timeout=timeout)
    return request


def uploaded_audio(chat: Any, request: RecordedRequest) -> tuple[bytes, dict[str, Any]]:
    """The file Discord stored for a voice message, and its attachment object."""
    [attachment] = request.response["attachments"]
    return chat.dc.world.attachments[int(attachment["id"])].data, attachment


async def speak_to(chat: Any, channel_id: int, heard: str, answer: str, **options: Any) -> dict[str, Any]:
    """Send a voice message the model server hears as ``heard`` and answers with ``answer``."""
    chat.model.script_transcriptions(Transcript(heard))
    chat.model.script(Reply(answer, **options))
    return await send_voice(chat, channel_id, voice_clip(chat))


async def test_a_voice_message_is_answered_in_text_then_as_a_voice_message(chat_bot, world) -> None:
    async with chat_bot(voice=BOTH) as chat:
        voice = await speak_to(chat, world.dm_channel_id, "Say hello", "Hello **there**! See https://example.com.")
        request = await voice_message(chat)
        [speech] = chat.model.speech.requests
        assert speech.input == "Hello there! See." == speakable("Hello **there**! See https://example.com.")
        assert (speech.body["model"], speech.body["voice"], speech.body["response_format"]) == (
            "gpt-4o-mini-tts",
            "alloy",
            "opus",
        )
        assert speech.api_key == TEST_API_KEY, "the chat server speaks too unless TTS_BASE_URL is set"

        # What Discord got: the flag, one OGG Opus file, its length and waveform, no content, a reply.
        payload = request.json
        assert payload["flags"] == IS_VOICE_MESSAGE and "content" not in payload
        assert str(payload["message_reference"]["message_id"]) == voice["id"]
        assert payload["allowed_mentions"] == {"parse": [], "replied_user": False}
        assert [(f["name"], f["content_type"]) for f in request.files] == [("files[0]", "audio/ogg")]
        [entry] = payload["attachments"]
        data, attachment = uploaded_audio(chat, request)
        decoded = decode(data)
        assert (decoded.container, decoded.codec) == ("ogg", "opus")
        assert data == speech.sent, "the server's OGG Opus is sent as it came"
        assert abs(entry["duration_secs"] - decoded.seconds) <= 0.1
        assert 1 <= len(base64.b64decode(entry["waveform"])) <= 256
        assert attachment["content_type"] == "audio/ogg" and attachment["filename"] == "voice-message.ogg"
        assert request.response["flags"] & IS_VOICE_MESSAGE and request.response["content"] == ""

        shown, text, spoken = chat.dc.bot_messages(world.dm_channel_id)
        assert shown["content"] == "> Say hello"
        assert text["content"] == "Hello **there**! See https://example.com."
        assert spoken["id"] == request.response["id"]
        stored = await chat.stored_turns(world.dm_channel_id)
        assert [t["content"] for t in stored] == ["Say hello", "Hello **there**! See https://example.com."]
        metrics = chat.bot.metrics.render().decode()
        assert spoken_metric(chat, "ok") == 1 and spoken_metric(chat, "error") == 0
        assert sample(metrics, "discord_bot_spoken_characters_total") == len(speech.input)


@pytest.mark.parametrize("server_format", ["wav", "mp3"])
async def test_audio_that_is_not_ogg_opus_is_transcoded(chat_bot, world, server_format) -> None:
    async with chat_bot(voice={**BOTH, "tts_format": SpeechFormat(server_format)}) as chat:
        chat.model.speech.script(Speech(seconds=2.5))  # the format asked for
        await speak_to(chat, world.dm_channel_id, "hi", "A short answer.")
        request = await voice_message(chat)
        [speech] = chat.model.speech.requests
        assert speech.body["response_format"] == server_format and speech.sent_format == server_format
        data, _ = uploaded_audio(chat, request)
        decoded = decode(data)
        assert (decoded.container, decoded.codec) == ("ogg", "opus")
        assert abs(decoded.seconds - 2.5) <= 0.1
        assert abs(request.json["attachments"][0]["duration_secs"] - decoded.seconds) <= 0.1
        assert len(base64.b64decode(request.json["attachments"][0]["waveform"])) == 25  # one point per 100 ms


async def test_a_server_that_ignores_the_format_asked_for_is_transcoded_too(chat_bot, world) -> None:
    async with chat_bot(voice=BOTH) as chat:
        chat.model.speech.script(Speech(response_format="mp3", seconds=1.0))
        await speak_to(chat, world.dm_channel_id, "hi", "Short.")
        data, _ = uploaded_audio(chat, await voice_message(chat))
        assert decode(data).codec == "opus"


async def test_voice_mode_posts_only_the_voice_message_and_keeps_the_text_in_history(chat_bot, world) -> None:
    async with chat_bot(voice=VOICE_ONLY) as chat:
        await speak_to(chat, world.dm_channel_id, "What's up?", "Not much, thanks.")
        await voice_message(chat)
        shown, spoken = chat.dc.bot_messages(world.dm_channel_id)
        assert shown["content"] == "> What's up?" and spoken["flags"] & IS_VOICE_MESSAGE
        assert not any(r.json and r.json.get("content") == "Not much, thanks." for r in chat.dc.requests)
        answer = (await chat.stored_turns(world.dm_channel_id))[-1]
        assert answer["content"] == "Not much, thanks.", "the text is the voice message's transcript"


async def test_voice_mode_shows_the_text_when_it_cannot_be_spoken(chat_bot, world) -> None:
    async with chat_bot(voice=VOICE_ONLY) as chat:
        chat.model.speech.script(Error(500))
        await speak_to(chat, world.dm_channel_id, "What's up?", "Not much, thanks.")
        await chat.answer(world.dm_channel_id, f"Not much, thanks.\n\n{FAILED_NOTE}")
        assert not any(is_voice_message(r) for r in chat.dc.requests)
        creates = [r for r in chat.dc.requests if r.route == "create_message"]
        assert len(creates) == 2, "the transcript, then the text once, complete with its note"


@pytest.mark.parametrize(
    "fault",
    [Error(500), Error(401), Stall(5), Garbage(), Garbage(b"")],
    ids=["500", "401", "timeout", "garbage", "empty"],
)
async def test_when_speech_fails_the_text_stands_with_a_note(chat_bot, world, spoken_log, fault) -> None:
    async with chat_bot(voice={**BOTH, "tts_timeout_s": 0.5}) as chat:
        chat.model.speech.script(fault)
        await speak_to(chat, world.dm_channel_id, "hi", "The answer.")
        await chat.answer(world.dm_channel_id, f"The answer.\n\n{FAILED_NOTE}")
        assert len(chat.model.speech.requests) == 1
        assert not any(is_voice_message(r) for r in chat.dc.requests)
        assert [t["content"] for t in await chat.stored_turns(world.dm_channel_id)] == ["hi", "The answer."]
        logged = spoken_log.records
        assert len(logged) == 1 and logged[0].levelno == logging.WARNING, "logged once"
        assert spoken_metric(chat, "error") == 1
        # Nothing else changed: the next message is answered as usual.
        await speak_to(chat, world.dm_channel_id, "again", "Second answer.")
        await voice_message(chat)


async def test_a_failed_speech_is_not_billed_but_unplayable_audio_is(chat_bot, world) -> None:
    async with chat_bot(voice=BOTH) as chat:
        chat.model.speech.script(Error(500), Garbage())
        for heard in ("one", "two"):
            await speak_to(chat, world.dm_channel_id, heard, f"Answer {heard}.")
            await chat.answer(world.dm_channel_id, f"Answer {heard}.\n\n{FAILED_NOTE}")
        mine = await chat.command("usage", options={"days": 1}, channel_id=world.dm_channel_id)
        assert f"{len('Answer two.')} characters read out" in mine.content, "the server sent audio: billed"


async def test_long_answers_read_out_their_first_part_and_say_so(chat_bot, world) -> None:
    long_answer = "First sentence here. Second sentence is a bit longer. Third one will not fit at all."
    async with chat_bot(voice={**BOTH, "tts_max_chars": 60}) as chat:
        await speak_to(chat, world.dm_channel_id, "tell me", long_answer)
        await chat.answer(world.dm_channel_id, f"{long_answer}\n\n{PARTLY_SPOKEN}")
        await voice_message(chat)
        [speech] = chat.model.speech.requests
        assert speech.input == "First sentence here. Second sentence is a bit longer."


async def test_voice_mode_also_shows_the_text_of_a_long_answer(chat_bot, world) -> None:
    long_answer = "First sentence here. Second sentence is a bit longer. Third one will not fit at all."
    async with chat_bot(voice={**VOICE_ONLY, "tts_max_chars": 60}) as chat:
        await speak_to(chat, world.dm_channel_id, "tell me", long_answer)
        await voice_message(chat)
        await chat.answer(world.dm_channel_id, f"{long_answer}\n\n{PARTLY_SPOKEN}")


async def test_code_blocks_and_links_are_not_read_out(chat_bot, world) -> None:
    answer = "Run this:\n```python\nprint('hi')\n```\nDocs: [the guide](https://docs.python.org/3/) or <https://x.org>."
    async with chat_bot(voice=BOTH) as chat:
        await speak_to(chat, world.dm_channel_id, "code please", answer)
        await voice_message(chat)
        [speech] = chat.model.speech.requests
        assert speech.input == "Run this:\nDocs: the guide or."
        assert "print" not in speech.input and "http" not in speech.input


async def test_an_answer_that_is_all_code_is_not_spoken(chat_bot, world) -> None:
    async with chat_bot(voice=BOTH) as chat:
        await speak_to(chat, world.dm_channel_id, "code only", "```\nx = 1\n```")
        await chat.answer(world.dm_channel_id, f"```\nx = 1\n```\n\n*({NothingToSay().user_message})*")
        assert chat.model.speech.requests == []
        assert spoken_metric(chat, "skipped") == 1


async def test_typed_messages_and_audio_files_get_text_only(chat_bot, world) -> None:
    async with chat_bot(voice=BOTH) as chat:
        await chat.dc.post_message(world.dm_channel_id, world.alice, "typed question")
        await chat.answer(world.dm_channel_id, "echo: typed question")
        chat.model.script_transcriptions(Transcript("an uploaded song"))
        upload = chat.dc.add_attachment(CLIP, "song.ogg", "audio/ogg")  # a file, not a voice message
        await send_voice(chat, world.dm_channel_id, upload)
        await chat.answer(world.dm_channel_id, "echo: an uploaded song")
        assert chat.model.speech.requests == []


async def test_each_user_turns_spoken_replies_off_and_on(chat_bot, world) -> None:
    async with chat_bot(voice=BOTH) as chat:
        shown = await chat.command("spoken-replies", channel_id=world.dm_channel_id)
        assert shown.ephemeral and shown.content.startswith("Spoken replies are on for you.")
        off = await chat.command("spoken-replies", options={"turn": "off"}, channel_id=world.dm_channel_id)
        assert off.ephemeral and "text only" in off.content
        key = chat.bot.services.keys.spoken_replies(int(world.alice["id"]))
        assert await chat.bot.services.redis.get(key) == b"off"

        await speak_to(chat, world.dm_channel_id, "quietly", "Quiet answer.")
        await chat.answer(world.dm_channel_id, "Quiet answer.")
        # Bob has not turned them off: his voice reply in the guild is spoken.
        chat.model.script_transcriptions(Transcript("bob speaks"))
        await chat.dc.post_message(
            world.channel_id,
            world.bob,
            "",
            attachments=[voice_clip(chat)],
            flags=IS_VOICE_MESSAGE,
            mentions=[chat.me],
        )
        await voice_message(chat)
        assert [s.input for s in chat.model.speech.requests] == ["echo: bob speaks"]

        on = await chat.command("spoken-replies", options={"turn": "on"}, channel_id=world.dm_channel_id)
        assert "with a voice message" in on.content
        await speak_to(chat, world.dm_channel_id, "loudly", "Loud answer.")
        await chat.dc.wait_for(lambda r: is_voice_message(r) and r.channel_id == world.dm_channel_id)
        assert [s.input for s in chat.model.speech.requests][-1] == "Loud answer."


async def test_with_spoken_replies_off_in_config_nothing_is_spoken(chat_bot, world) -> None:
    async with chat_bot(voice={"reply": SpokenReply.TEXT}) as chat:
        response = await chat.command("spoken-replies", options={"turn": "on"}, channel_id=world.dm_channel_id)
        assert response.content == NOT_OFFERED
        await speak_to(chat, world.dm_channel_id, "hi", "Text only.")
        await chat.answer(world.dm_channel_id, "Text only.")
        assert chat.model.speech.requests == []


async def test_characters_read_out_are_usage_for_the_guild_and_the_user(chat_bot, world) -> None:
    prices = (Price(TEST_MODEL), Price("whisper-1"), Price("tts-test", tts_per_million_chars=20_000.0))
    async with chat_bot(voice={**BOTH, "tts_model": "tts-test"}, usage={"prices": prices}) as chat:
        chat.model.script_transcriptions(Transcript("in the guild"))
        chat.model.script(Reply("A guild answer, read out."))
        await send_voice(chat, world.channel_id, voice_clip(chat), mentions=[chat.me])
        await voice_message(chat)
        [speech] = chat.model.speech.requests
        assert speech.body["model"] == "tts-test"
        chars = len(speech.input)
        assert chars == len("A guild answer, read out.")

        services = chat.bot.services
        day = services.chat.clock().date().isoformat()
        field = "tts_chars:tts-test"
        guild = await services.redis.hget(services.keys.guild_usage(world.guild_id, day), field)
        user = await services.redis.hget(services.keys.user_usage(int(world.alice["id"]), day), field)
        assert int(guild) == int(user) == chars
        mine = await chat.command("usage", options={"days": 1})
        assert f"{chars} characters read out" in mine.content and "3 requests" in mine.content
        assert f"about ${chars * 0.02:.4f}" in mine.content  # $20,000 per million characters
        guild_report = await chat.command("usage", options={"scope": "guild", "days": 1}, permissions=MANAGE_GUILD)
        assert f"{chars} characters read out" in guild_report.content


async def test_a_spoken_reply_that_would_exceed_the_budget_is_skipped(chat_bot, world) -> None:
    answer = "Twenty-six characters ok."  # 25 characters read out
    async with chat_bot(voice=BOTH, limits={"user_daily_tokens": 15 + len(answer) - 1}) as chat:
        await speak_to(chat, world.dm_channel_id, "first", answer, usage=(10, 5))
        note = f"*({SpeechOverBudget('your', 0).user_message})*".split("<t:")[0]
        reply = await chat.dc.wait_for(lambda r: note in str((r.json or {}).get("content")))
        assert reply.json["content"].startswith(f"{answer}\n\n{note}")
        assert chat.model.speech.requests == []


async def test_a_spoken_reply_that_fits_the_budget_counts_toward_it(chat_bot, world) -> None:
    answer = "Twenty-six characters ok."
    async with chat_bot(voice=BOTH, limits={"user_daily_tokens": 15 + len(answer)}) as chat:
        await speak_to(chat, world.dm_channel_id, "first", answer, usage=(10, 5))
        await voice_message(chat)
        # The budget is now spent exactly: the next message is refused before anything is paid.
        await send_voice(chat, world.dm_channel_id, voice_clip(chat))
        refusal = await chat.dc.wait_for(lambda r: "daily budget" in str((r.json or {}).get("content")))
        assert refusal.json["content"].startswith("Your daily budget for the model is used up.")
        assert len(chat.model.transcriptions) == 1 and len(chat.model.speech.requests) == 1


async def test_another_speech_server_gets_its_own_key_and_never_the_chat_key(chat_bot, world) -> None:
    async with ModelServer(api_key=None) as speech_server:  # records whatever key it is sent
        secrets = {"tts_base_url": speech_server.base_url, "tts_api_key": "sk-speech-key"}
        async with chat_bot(voice=BOTH, secrets=secrets) as chat:
            await speak_to(chat, world.dm_channel_id, "hi", "Spoken elsewhere.")
            await voice_message(chat)
            [speech] = speech_server.speech.requests
            assert speech.api_key == "sk-speech-key" and speech.input == "Spoken elsewhere."
            assert chat.model.speech.requests == []
        seen = [speech_server.requests, speech_server.transcriptions, speech_server.speech.requests]
        assert all(TEST_API_KEY not in str(dict(r.headers)) for records in seen for r in records)


async def test_a_keyless_speech_server_is_not_sent_the_chat_key(chat_bot, world) -> None:
    async with ModelServer(api_key=None) as speech_server:
        async with chat_bot(voice=BOTH, secrets={"tts_base_url": speech_server.base_url}) as chat:
            await speak_to(chat, world.dm_channel_id, "hi", "Local speech.")
            await voice_message(chat)
        [speech] = speech_server.speech.requests
        assert TEST_API_KEY not in str(dict(speech.headers)) and speech.api_key == "not-needed"


async def test_a_channel_that_refuses_voice_messages_keeps_the_text(chat_bot, world, spoken_log) -> None:
    async with chat_bot(voice=BOTH) as chat:
        chat.dc.refuse_voice_messages(world.dm_channel_id)
        await speak_to(chat, world.dm_channel_id, "hi", "Text stays.")
        refused = await chat.dc.wait_for(is_voice_message)
        assert (refused.status, refused.response["code"]) == (400, 50173)
        await chat.answer(world.dm_channel_id, "Text stays.")
        logged = (await spoken_log.first()).getMessage()
        assert "not spoken" in logged and "50173" in logged
        assert spoken_metric(chat, "refused") == 1
        assert [m["content"] for m in chat.dc.bot_messages(world.dm_channel_id)] == ["> hi", "Text stays."]


async def test_voice_mode_in_a_refusing_channel_posts_the_text(chat_bot, world) -> None:
    async with chat_bot(voice=VOICE_ONLY) as chat:
        chat.dc.refuse_voice_messages(world.dm_channel_id)
        await speak_to(chat, world.dm_channel_id, "hi", "Text instead.")
        await chat.answer(world.dm_channel_id, "Text instead.")


async def test_without_the_send_voice_messages_permission_nothing_is_attempted(chat_bot, world, spoken_log) -> None:
    async with chat_bot(voice=BOTH) as chat:
        chat.dc.deny_bot(world.channel_id, SEND_VOICE_MESSAGES)
        chat.model.script_transcriptions(Transcript("in the guild"))
        await send_voice(chat, world.channel_id, voice_clip(chat), mentions=[chat.me])
        await chat.answer(world.channel_id, "echo: in the guild")
        assert "Send Voice Messages" in (await spoken_log.first()).getMessage()
        assert chat.model.speech.requests == [], "nothing is paid for that cannot be posted"
        assert not any(is_voice_message(r) for r in chat.dc.requests), "no request Discord would refuse"


async def test_voice_messages_spend_the_request_budget_like_every_other_message(chat_bot, world) -> None:
    """Several spoken replies at once under Discord's limits (the stand-in enforcing them): every
    message the bot posts, voice messages included, is granted a slot by the bot's scheduler first."""
    rate, conversations = 4.0, 5
    async with chat_bot(voice=BOTH, discord={"requests_per_second": rate}) as chat:
        dc = chat.dc
        dc.limits.enforce()
        channels = [int(dc.add_text_channel(world.guild_id, f"talk-{i}")["id"]) for i in range(conversations)]
        for channel_id in channels:
            await send_voice(chat, channel_id, voice_clip(chat), mentions=[chat.me])
        for channel_id in channels:
            await chat.dc.wait_for(lambda r, c=channel_id: is_voice_message(r) and r.channel_id == c, timeout=30)
        assert dc.limits.four_twenty_nines == 0
        posted = [r for r in dc.requests if r.channel_id in channels and r.route in ("create_message", "edit_message")]
        assert sum(1 for r in posted if is_voice_message(r)) == conversations
        granted = chat.bot.requests.granted
        # The log-in's two requests and the gateway lookup spend the budget too, at start-up.
        startup = [r for r in dc.requests if r.route in ("get_current_user", "get_application", "get_gateway_bot")]
        assert len(startup) == 3
        assert granted[Priority.URGENT] + granted[Priority.UPDATE] == len(posted) + len(startup), (
            "no message without a slot"
        )
        assert len(chat.model.speech.requests) == conversations
