"""Every addressed message gets exactly one short reply, whatever it carries (issue 17's classes, one
test each): replies that start no turn are claimed like a turn, notes stay within Discord's limit,
text the SDK could not encode is cleaned, a whitespace answer is not stored, and implausible voice
lengths are not believed."""

from __future__ import annotations

import math
from typing import Any

import pytest

from bot.conversation import ChatRequest
from bot.transcription import PLAUSIBLE_SECONDS, plausible_seconds
from cogs.chat import DM_REFUSED, EMPTY_MENTION_HINT
from cogs.utils.replies import EMPTY_ANSWER
from tests.standins.model_server import Reply, Transcript
from tests.test_conversation import run_turn, stored
from tests.test_voice_e2e import send_voice, voice_clip


def replies_to(chat: Any, message: dict[str, Any]) -> list[Any]:
    """The bot's create-message requests that reply to ``message``."""
    return [
        r
        for r in chat.dc.requests
        if r.route == "create_message"
        and str(((r.json or {}).get("message_reference") or {}).get("message_id")) == str(message["id"])
    ]


async def test_replies_that_start_no_turn_are_claimed_like_a_turn(chat_bot, world) -> None:
    async with chat_bot() as chat:
        me = chat.me
        image = chat.dc.add_attachment(b"\x89PNG\r\n", "dog.png", "image/png")
        sent = [
            await chat.dc.post_message(world.channel_id, world.alice, f"<@{me['id']}>", mentions=[me]),
            await chat.dc.post_message(world.channel_id, world.alice, f"<@{me['id']}> \n\t ", mentions=[me]),
            await chat.dc.post_message(
                world.channel_id, world.alice, f"<@{me['id']}>", mentions=[me], attachments=[image]
            ),
        ]
        for message in sent:
            await chat.dc.dispatch("MESSAGE_CREATE", message)  # each delivered twice (a replay)
        await chat.mention(world.channel_id, "next")  # handled after the replays
        await chat.answer(world.channel_id, "echo: next")
        # The image is downloaded and decoded (in a thread) before its note: that may finish after "next".
        await chat.dc.wait_for(lambda r: bool(replies_to(chat, sent[2])))
        expected = [EMPTY_MENTION_HINT, EMPTY_MENTION_HINT, "*(I skipped dog.png: not an image I could read.)*"]
        assert [[r.json["content"] for r in replies_to(chat, m)] for m in sent] == [[text] for text in expected]
        assert len(chat.model.requests) == 1


async def test_a_refused_dm_is_answered_once(chat_bot, world) -> None:
    async with chat_bot(access={"dms": "nobody"}) as chat:
        dm = await chat.dc.post_message(world.dm_channel_id, world.alice, "hello?")
        await chat.dc.dispatch("MESSAGE_CREATE", dm)  # a replay
        later = await chat.dc.post_message(world.dm_channel_id, world.alice, "still there?")
        await chat.dc.wait_for(lambda r: bool(replies_to(chat, later)) and bool(replies_to(chat, dm)))
        assert [r.json["content"] for r in replies_to(chat, dm)] == [DM_REFUSED]
        assert [r.json["content"] for r in replies_to(chat, later)] == [DM_REFUSED]


async def test_a_note_about_many_long_file_names_fits_one_message(chat_bot, world) -> None:
    async with chat_bot(images={"enabled": False}) as chat:  # the text-only note (images: test_images_e2e)
        names = [f"{'x' * 290}-{i:02d}.png" for i in range(10)]
        files = [chat.dc.add_attachment(b"\x89PNG\r\n", name, "image/png") for name in names]
        message = await chat.dc.post_message(
            world.channel_id, world.alice, f"<@{chat.me['id']}>", mentions=[chat.me], attachments=files
        )
        reply = await chat.dc.wait_for(lambda r: r.route == "create_message")
        assert reply.status == 200 and replies_to(chat, message) == [reply]
        note = reply.json["content"]
        assert len(note) < 300 and note.endswith(" and 7 more.)*") and note.startswith("*(I can only read text")
        assert note.count("…") == 3, "each name shown is shortened"


async def test_a_whitespace_answer_is_shown_as_empty_and_not_stored(chat_bot, world) -> None:
    async with chat_bot() as chat:
        chat.model.script(Reply(" \n\t \n"))
        await chat.mention(world.channel_id, "say nothing")
        await chat.answer(world.channel_id, EMPTY_ANSWER)
        assert await chat.stored_turns(world.channel_id) == []


async def test_text_the_sdk_cannot_encode_is_cleaned_where_it_enters_the_engine(services, redis, model_server) -> None:
    request = ChatRequest(
        conversation_id=4242,
        guild_id=1,
        author_id=7,
        author_name="ev\udc00e",
        message_id=99_001,
        text="a\udc00b\x00c",
        bot_name="Bot\ud800",
        guild_name="G\udfff",
    )
    deltas, done = await run_turn(services, request)
    assert "".join(deltas) == done.text == "echo: a\ufffdbc"
    [sent] = model_server.requests
    assert sent.messages[-1]["content"] == "a\ufffdbc"
    question, answer = await stored(redis, services, 4242)
    assert question["content"] == "a\ufffdbc" and question["name"] == "ev\ufffde"
    assert answer["content"] == "echo: a\ufffdbc"


async def test_an_unpaired_surrogate_through_the_gateway_is_answered(chat_bot, world) -> None:
    """Valid in the gateway's JSON; with orjson installed, discord.py alone would die reading it."""
    async with chat_bot() as chat:
        await chat.mention(world.channel_id, "a\udc00b")
        await chat.answer(world.channel_id, "echo: a\ufffdb")
        await chat.mention(world.channel_id, "after")
        await chat.answer(world.channel_id, "echo: after")
        assert [t["content"] for t in await chat.stored_turns(world.channel_id)][:2] == ["a\ufffdb", "echo: a\ufffdb"]


@pytest.mark.parametrize("value", [-3.0, 0.0, math.nan, math.inf, 10**12, "12", True])
def test_an_implausible_voice_length_is_not_believed(value) -> None:
    assert plausible_seconds(value) is None


def test_a_plausible_voice_length_is_kept() -> None:
    assert plausible_seconds(3.35) == 3.35 and plausible_seconds(PLAUSIBLE_SECONDS) == PLAUSIBLE_SECONDS


@pytest.mark.parametrize("seconds", [-5.0, 1e12], ids=["negative", "absurd"])
async def test_a_voice_message_with_an_implausible_length_is_answered_and_billed(chat_bot, world, seconds) -> None:
    async with chat_bot() as chat:
        chat.model.script_transcriptions(Transcript("what time is it?"))
        await send_voice(chat, world.dm_channel_id, voice_clip(chat, seconds=seconds))
        await chat.answer(world.dm_channel_id, "echo: what time is it?")
        mine = await chat.command("usage", options={"days": 1}, channel_id=world.dm_channel_id)
        assert "s of audio" in mine.content, "the audio is billed from an estimate instead"


def text_file(chat: Any, name: str = "notes.txt", size: int = 100) -> dict[str, Any]:
    return chat.dc.add_attachment(b"n" * size, name, "text/plain; charset=utf-8")


@pytest.mark.parametrize("fault", ["hang", "cut"])
async def test_a_text_file_that_does_not_download_gets_one_sentence(chat_bot, world, fault) -> None:
    async with chat_bot(discord={"download_timeout_s": 0.3}) as chat:
        broken = text_file(chat, size=50_000)
        if fault == "hang":
            chat.dc.hang_download(broken)
        else:
            chat.dc.cut_download(broken)  # Content-Length 50,000; 16 bytes, then the connection closes
        fine = text_file(chat, "fine.txt")
        message = await chat.dc.post_message(
            world.channel_id,
            world.alice,
            f"<@{chat.me['id']}> summarise these",
            mentions=[chat.me],
            attachments=[fine, broken],
        )
        await chat.answer(world.channel_id, "I couldn't download notes.txt from Discord. Please try again.")
        assert len(replies_to(chat, message)) == 1
        assert chat.model.requests == [] and await chat.stored_turns(world.channel_id) == []
        await chat.mention(world.channel_id, "still there?")  # the bot carries on
        await chat.answer(world.channel_id, "echo: still there?")


@pytest.mark.parametrize("fault", ["hang", "cut"])
async def test_a_voice_message_that_does_not_download_gets_one_sentence(chat_bot, world, fault) -> None:
    from bot.errors import AudioUnavailable

    async with chat_bot(discord={"download_timeout_s": 0.3}) as chat:
        clip = voice_clip(chat, b"\x4f\x67\x67\x53" + bytes(100_000))
        getattr(chat.dc, f"{fault}_download")(clip)
        voice = await send_voice(chat, world.dm_channel_id, clip)
        await chat.answer(world.dm_channel_id, AudioUnavailable().user_message)
        assert len(replies_to(chat, voice)) == 1
        assert chat.model.transcriptions == [] and chat.model.requests == []
