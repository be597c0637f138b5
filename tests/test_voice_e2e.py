"""Voice messages end to end: a real OGG Opus clip sent through the stand-in Discord to the real
discord.py client, transcribed by the loopback model server's audio endpoint, then answered."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from discord import AppCommandType

from bot.errors import (
    AudioEmpty,
    AudioRejected,
    AudioTooLarge,
    AudioTooLong,
    ModelAuthError,
    ModelError,
    ModelRateLimited,
    ModelTimeout,
    ModelUnavailable,
    NotAudio,
    NothingHeard,
)
from bot.transcription import TRANSCRIPTION_WORDING
from cogs.voice import VOICE_OFF
from tests.conftest import TEST_API_KEY, TEST_MODEL
from tests.harness import DEFERRED
from tests.standins.model_server import Error, ModelServer, Reply, Stall, Transcript

CLIP = (Path(__file__).parent / "fixtures" / "voice-message.ogg").read_bytes()
CLIP_SECONDS = 3.35
WAVEFORM = "AAECAwQFBgcICQ=="  # Discord sends a base64 amplitude sketch with every voice message
VOICE_MESSAGE_FLAG = 8192


def voice_clip(chat: Any, data: bytes = CLIP, *, seconds: float | None = CLIP_SECONDS) -> dict[str, Any]:
    """An attachment shaped like Discord's voice messages."""
    return chat.dc.add_attachment(data, "voice-message.ogg", "audio/ogg", duration_secs=seconds, waveform=WAVEFORM)


async def send_voice(chat: Any, channel_id: int, attachment: dict[str, Any], **options: Any) -> dict[str, Any]:
    flags = VOICE_MESSAGE_FLAG if "waveform" in attachment else 0
    return await chat.dc.post_message(
        channel_id, chat.world.alice, options.pop("content", ""), attachments=[attachment], flags=flags, **options
    )


def replies_to(message: dict[str, Any], request: Any) -> bool:
    return str(request.json["message_reference"]["message_id"]) == str(message["id"])


async def test_a_dm_voice_message_is_transcribed_shown_and_answered(chat_bot, world) -> None:
    async with chat_bot() as chat:
        chat.model.script_transcriptions(Transcript("What is the capital of France?"))
        chat.model.script(Reply("The capital of France is Paris.", chunk_size=6))
        voice = await send_voice(chat, world.dm_channel_id, voice_clip(chat))
        await chat.answer(world.dm_channel_id, "The capital of France is Paris.")

        shown, _ = chat.dc.bot_messages(world.dm_channel_id)
        assert shown["content"] == "> What is the capital of France?"
        creates = [r for r in chat.dc.requests if r.route == "create_message"]
        assert len(creates) == 2 and all(replies_to(voice, r) for r in creates)
        [sent] = chat.model.transcriptions
        assert sent.file == CLIP, "the bytes Discord delivered, not re-encoded"
        assert (sent.filename, sent.content_type) == ("voice-message.ogg", "audio/ogg")
        assert (sent.model, sent.response_format, sent.api_key) == ("whisper-1", "json", TEST_API_KEY)
        assert chat.dc.cdn_downloads == 1
        [request] = chat.model.requests
        assert request.messages[-1] == {"role": "user", "content": "What is the capital of France?", "name": "alice"}
        question, stored_answer = await chat.stored_turns(world.dm_channel_id)
        assert question["content"] == "What is the capital of France?" and question["spoken"] is True
        assert stored_answer["content"] == "The capital of France is Paris." and "spoken" not in stored_answer


async def test_a_voice_reply_that_pings_the_bot_continues_the_guild_conversation(chat_bot, world) -> None:
    async with chat_bot() as chat:
        await chat.mention(world.channel_id, "first")
        first_answer = await chat.answer(world.channel_id, "echo: first")
        await send_voice(chat, world.channel_id, voice_clip(chat))  # no ping, no reply: not for the bot
        await send_voice(chat, world.channel_id, voice_clip(chat), reply_to=first_answer, mentions=[chat.me])
        heard = f"transcript of voice-message.ogg ({len(CLIP)} bytes)"  # the stand-in's default transcript
        await chat.answer(world.channel_id, f"echo: {heard}")

        assert len(chat.model.transcriptions) == 1
        assert chat.dc.bot_messages(world.channel_id)[-2]["content"] == f"> {heard}"
        assert [m["content"] for m in chat.model.requests[-1].messages[1:]] == ["first", "echo: first", heard]
        assert [t.get("spoken", False) for t in await chat.stored_turns(world.channel_id)] == [
            False,
            False,
            True,
            False,
        ]


async def test_an_audio_file_with_a_question_sends_both(chat_bot, world) -> None:
    async with chat_bot() as chat:
        chat.model.script_transcriptions(Transcript("we meet at noon on friday"))
        upload = chat.dc.add_attachment(CLIP, "meeting notes", "audio/ogg")  # no extension, no duration
        await send_voice(chat, world.channel_id, upload, content=f"<@{chat.me['id']}> when is it?", mentions=[chat.me])
        await chat.answer(world.channel_id, "echo: when is it?\n\nwe meet at noon on friday")
        [sent] = chat.model.transcriptions
        assert (sent.filename, sent.content_type) == ("meeting notes.ogg", "audio/ogg")


async def test_the_transcribe_menu_shows_the_transcript_to_whoever_asked(chat_bot, world) -> None:
    async with chat_bot() as chat:
        assert chat.bot.tree.get_command("Transcribe", type=AppCommandType.message) is not None
        chat.model.script_transcriptions(Transcript("Lunch is at noon.\nBring a friend."))
        voice = await send_voice(chat, world.channel_id, voice_clip(chat))
        payload = await chat.dc.send_message_command("Transcribe", voice, user=world.bob)
        response = await chat.response_to(payload)
        assert response.type == DEFERRED
        assert response.content == "> Lunch is at noon.\n> Bring a friend."
        assert response.ephemeral
        [callback] = chat.dc.interaction(payload).callbacks
        assert callback.data["flags"] & 64, "deferred as ephemeral, so the thinking state is private too"
        assert chat.model.requests == [] and await chat.stored_turns(world.channel_id) == []
        assert all(m["flags"] & 64 for m in chat.dc.bot_messages(world.channel_id)), "nothing public"

        text = await chat.dc.post_message(world.channel_id, world.alice, "just text")
        payload = await chat.dc.send_message_command("Transcribe", text, user=world.bob)
        response = await chat.response_to(payload)
        assert response.type != DEFERRED and response.ephemeral
        assert response.content == NotAudio().user_message
        assert len(chat.model.transcriptions) == 1


async def test_a_refused_menu_transcription_says_why(chat_bot, world) -> None:
    async with chat_bot() as chat:
        chat.model.script_transcriptions(Error.rate_limited(retry_after=3))
        voice = await send_voice(chat, world.channel_id, voice_clip(chat))
        response = await chat.response_to(await chat.dc.send_message_command("Transcribe", voice, user=world.bob))
        assert response.ephemeral and response.content == ModelRateLimited(retry_after=3).user_message


def too_big(chat: Any) -> dict[str, Any]:
    return voice_clip(chat, CLIP * 2)


def too_long(chat: Any) -> dict[str, Any]:
    return voice_clip(chat, seconds=300.5)


def not_audio_the_api_takes(chat: Any) -> dict[str, Any]:
    return chat.dc.add_attachment(b"\x00" * 64, "song.aac", "audio/aac")


def empty(chat: Any) -> dict[str, Any]:
    return voice_clip(chat, b"", seconds=0.0)


@pytest.mark.parametrize(
    ("attachment", "error"),
    [
        (too_big, AudioTooLarge(2 * len(CLIP), 8_000)),
        (too_long, AudioTooLong(300.5, 300)),
        (not_audio_the_api_takes, NotAudio()),
        (empty, AudioEmpty()),
    ],
    ids=["too-big", "too-long", "not-audio", "0-bytes"],
)
async def test_audio_over_a_limit_is_refused_before_downloading(chat_bot, world, attachment, error) -> None:
    async with chat_bot(voice={"max_bytes": 8_000, "max_seconds": 300}) as chat:
        await send_voice(chat, world.dm_channel_id, attachment(chat))
        await chat.answer(world.dm_channel_id, error.user_message)
        assert chat.dc.cdn_downloads == 0
        assert chat.model.transcriptions == [] and chat.model.requests == []
        assert await chat.stored_turns(world.dm_channel_id) == []


@pytest.mark.parametrize(
    ("behaviour", "error"),
    [
        (Error(400, message="Audio file might be corrupted or unsupported"), AudioRejected()),
        (Transcript("  \n"), NothingHeard()),
        (Error(401), ModelAuthError()),
        (Error.rate_limited(retry_after=3), ModelRateLimited(retry_after=3)),
        (Stall(5), TRANSCRIPTION_WORDING[ModelTimeout]),
        (Error(500), TRANSCRIPTION_WORDING[ModelError]),
    ],
    ids=["unreadable-400", "nothing-heard", "401", "429", "timeout", "500"],
)
async def test_a_failed_transcription_says_why_and_stores_nothing(chat_bot, world, behaviour, error) -> None:
    async with chat_bot(voice={"timeout_s": 0.5}) as chat:
        chat.model.script_transcriptions(behaviour)
        await send_voice(chat, world.dm_channel_id, voice_clip(chat))
        await chat.answer(world.dm_channel_id, error if isinstance(error, str) else error.user_message)
        assert "answering" not in (error if isinstance(error, str) else error.user_message)
        assert len(chat.model.transcriptions) == 1 and chat.model.requests == []
        assert await chat.stored_turns(world.dm_channel_id) == []
        assert any(r.route == "typing" for r in chat.dc.requests), "typing shown while transcribing"


async def test_an_unreachable_transcription_server_is_reported(chat_bot, world) -> None:
    from tests.standins.model_server import unused_base_url

    async with chat_bot(secrets={"transcription_base_url": unused_base_url()}) as chat:
        await send_voice(chat, world.dm_channel_id, voice_clip(chat))
        await chat.answer(world.dm_channel_id, TRANSCRIPTION_WORDING[ModelUnavailable])
        assert chat.model.requests == []


async def test_a_separate_transcription_server_gets_the_audio_and_its_own_key(chat_bot, world) -> None:
    async with ModelServer(api_key="sk-audio-key", models=(TEST_MODEL,)) as audio_server:
        secrets = {"transcription_base_url": audio_server.base_url, "transcription_api_key": "sk-audio-key"}
        async with chat_bot(secrets=secrets, voice={"model": "whisper-large-v3"}) as chat:
            audio_server.script_transcriptions(Transcript("hello from elsewhere"))
            await send_voice(chat, world.dm_channel_id, voice_clip(chat))
            await chat.answer(world.dm_channel_id, "echo: hello from elsewhere")
            [sent] = audio_server.transcriptions
            assert (sent.api_key, sent.model, sent.file) == ("sk-audio-key", "whisper-large-v3", CLIP)
            assert chat.model.transcriptions == [] and len(chat.model.requests) == 1


async def test_with_voice_turned_off_the_bot_says_so(chat_bot, world) -> None:
    async with chat_bot(voice={"enabled": False}) as chat:
        assert chat.bot.tree.get_command("Transcribe", type=AppCommandType.message) is None
        await send_voice(chat, world.dm_channel_id, voice_clip(chat))
        await chat.answer(world.dm_channel_id, VOICE_OFF)
        assert chat.model.transcriptions == [] and chat.dc.cdn_downloads == 0


async def test_voice_follows_the_access_lists(chat_bot, world) -> None:
    async with chat_bot(access={"channels": (world.thread_id,)}) as chat:
        await send_voice(chat, world.channel_id, voice_clip(chat), mentions=[chat.me])
        await send_voice(chat, world.thread_id, voice_clip(chat), mentions=[chat.me])
        heard = f"transcript of voice-message.ogg ({len(CLIP)} bytes)"
        await chat.answer(world.thread_id, f"echo: {heard}")
        assert len(chat.model.transcriptions) == 1 and chat.dc.cdn_downloads == 1
        assert chat.dc.bot_messages(world.channel_id) == []


async def test_a_replayed_voice_message_is_transcribed_and_answered_once(chat_bot, world) -> None:
    async with chat_bot() as chat:
        voice = await send_voice(chat, world.dm_channel_id, voice_clip(chat))
        await chat.dc.dispatch("MESSAGE_CREATE", voice)  # a gateway replay
        await chat.answer(world.dm_channel_id, f"echo: transcript of voice-message.ogg ({len(CLIP)} bytes)")
        await chat.dc.post_message(world.dm_channel_id, world.alice, "next")  # handled after the replay
        await chat.answer(world.dm_channel_id, "echo: next")
        assert len(chat.model.transcriptions) == 1 and chat.dc.cdn_downloads == 1
        assert len(chat.model.requests) == 2, "one answer to the voice message, one to the text"
        assert len(chat.dc.bot_messages(world.dm_channel_id)) == 3  # transcript, its answer, the text's


async def test_transcriptions_count_audio_seconds_for_the_guild_and_the_user(chat_bot, world) -> None:
    from bot.settings import Price

    prices = (Price("whisper-1", audio_per_minute=0.6), Price(TEST_MODEL))
    async with chat_bot(usage={"prices": prices}) as chat:
        chat.model.script_transcriptions(Transcript("hello there", billed_seconds=12.5))
        await send_voice(chat, world.dm_channel_id, voice_clip(chat))
        await chat.answer(world.dm_channel_id, "echo: hello there")
        mine = await chat.command("usage", options={"days": 1}, channel_id=world.dm_channel_id)
        assert "12 s of audio" in mine.content and "2 requests" in mine.content
        assert "about $0.1250" in mine.content  # 12.5 s at $0.60 a minute; the chat model is free here
        # Without usage from the server, the length Discord gives the voice message counts.
        await send_voice(chat, world.dm_channel_id, voice_clip(chat, seconds=30.0))
        await chat.answer(world.dm_channel_id, f"echo: transcript of voice-message.ogg ({len(CLIP)} bytes)")
        mine = await chat.command("usage", options={"days": 1}, channel_id=world.dm_channel_id)
        assert "42 s of audio" in mine.content and "4 requests" in mine.content


async def test_a_spent_budget_or_rate_limit_stops_a_voice_message_before_it_is_transcribed(chat_bot, world) -> None:
    async with chat_bot(limits={"user_turns": 1, "user_window_s": 600}) as chat:
        await send_voice(chat, world.dm_channel_id, voice_clip(chat))
        await chat.dc.wait_for(lambda r: str((r.json or {}).get("content", "")).startswith("echo: transcript"))
        await send_voice(chat, world.dm_channel_id, voice_clip(chat))
        refusal = await chat.dc.wait_for(lambda r: "faster than I can answer" in str((r.json or {}).get("content")))
        assert refusal.json["content"].startswith("You're sending messages faster than I can answer.")
        assert len(chat.model.transcriptions) == 1 and len(chat.model.requests) == 1


async def test_an_empty_transcript_is_refused_but_its_audio_still_counts(chat_bot, world) -> None:
    async with chat_bot() as chat:
        chat.model.script_transcriptions(Transcript("   ", billed_seconds=4.0))
        await send_voice(chat, world.dm_channel_id, voice_clip(chat))
        await chat.answer(world.dm_channel_id, NothingHeard().user_message)
        mine = await chat.command("usage", options={"days": 1}, channel_id=world.dm_channel_id)
        assert "4 s of audio" in mine.content and "1 request" in mine.content
        assert chat.model.requests == [] and await chat.stored_turns(world.dm_channel_id) == []


async def test_the_transcribe_menu_answers_only_in_allowed_servers(chat_bot, world) -> None:
    from bot.app import NOT_IN_THIS_SERVER

    async with chat_bot(access={"guilds": (world.guild_id + 1,)}) as chat:
        voice = await send_voice(chat, world.channel_id, voice_clip(chat))
        response = await chat.response_to(await chat.dc.send_message_command("Transcribe", voice, user=world.bob))
        assert response.ephemeral and response.content == NOT_IN_THIS_SERVER
        assert chat.model.transcriptions == [], "nothing is sent for transcription outside the listed servers"
        assert chat.dc.cdn_downloads == 0


@pytest.mark.parametrize(
    ("filename", "content_type", "sent_type"),
    [
        ("memo.webm", "audio/webm", "audio/webm"),
        ("screen.webm", "video/webm", "video/webm"),
        ("take.flac", "audio/flac", "audio/flac"),
        ("take2.flac", "application/octet-stream", "audio/flac"),
    ],
)
async def test_webm_and_flac_files_are_transcribed(chat_bot, world, filename, content_type, sent_type) -> None:
    """The README lists webm and flac among the audio files it takes (bytes passed on as delivered)."""
    data = b"\x1aE\xdf\xa3" + b"\0" * 500 if filename.endswith(".webm") else b"fLaC" + b"\0" * 500
    async with chat_bot() as chat:
        chat.model.script_transcriptions(Transcript("what time is it"))
        upload = chat.dc.add_attachment(data, filename, content_type)
        await send_voice(chat, world.dm_channel_id, upload)
        await chat.answer(world.dm_channel_id, "echo: what time is it")
        [sent] = chat.model.transcriptions
        assert (sent.filename, sent.content_type, sent.file) == (filename, sent_type, data)
