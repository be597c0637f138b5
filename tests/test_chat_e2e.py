"""Text chat end to end: the real discord.py client, started by the project's start-up code, against
the stand-in Discord, a real Redis and the loopback model server."""

from __future__ import annotations

import itertools

import pytest

from bot.errors import (
    MessageTooLong,
    ModelAuthError,
    ModelError,
    ModelRateLimited,
    ModelTimeout,
    StorageUnavailable,
)
from cogs.chat import EMPTY_MENTION_HINT
from cogs.utils.replies import NOTES
from tests.standins.model_server import Cut, Error, Reply, Stall


def pings_nobody(body: dict) -> bool:
    mentions = body["allowed_mentions"]
    return mentions["parse"] == [] and not mentions.get("replied_user") and set(mentions) <= {"parse", "replied_user"}


async def test_mention_gets_a_streamed_reply(chat_bot, world) -> None:
    async with chat_bot(stream={"edit_interval_s": 0.05}) as chat:
        chat.model.script(Reply("Hello Alice! The answer is forty-two.", chunk_size=4, chunk_delay=0.02))
        question = await chat.mention(world.channel_id, "what is the answer?")
        final = await chat.answer(world.channel_id, "Hello Alice! The answer is forty-two.")

        creates = [r for r in chat.dc.requests if r.route == "create_message" and r.channel_id == world.channel_id]
        assert len(creates) == 1
        first = creates[0].json
        assert first["message_reference"]["message_id"] in (question["id"], int(question["id"]))
        assert pings_nobody(first)
        assert len(first["content"]) < len("Hello Alice! The answer is forty-two."), "first text posted early"
        assert final["edits"], "the rest arrived through edits"
        typing = [r for r in chat.dc.requests if r.route == "typing"]
        assert typing and typing[0].index < creates[0].index, "typing shown before the first text"
        [request] = chat.model.requests
        assert request.messages[-1] == {"role": "user", "content": "what is the answer?", "name": "alice"}
        assert "Testers" in request.messages[0]["content"] and "StandinBot" in request.messages[0]["content"]


async def test_second_mention_sees_the_first_exchange(chat_bot, world) -> None:
    async with chat_bot() as chat:
        chat.model.script(Reply("The Moon is 10,921 km around."), Reply("Earth's Moon."))
        await chat.mention(world.channel_id, "How big is the Moon?")
        await chat.answer(world.channel_id, "The Moon is 10,921 km around.")
        await chat.mention(world.channel_id, "Which moon is that?", author=world.bob)
        await chat.answer(world.channel_id, "Earth's Moon.")
        assert chat.model.requests[1].messages[1:] == [
            {"role": "user", "content": "How big is the Moon?", "name": "alice"},
            {"role": "assistant", "content": "The Moon is 10,921 km around."},
            {"role": "user", "content": "Which moon is that?", "name": "Bobby"},
        ]


async def test_thread_channel_and_dm_are_separate_conversations(chat_bot, world) -> None:
    async with chat_bot() as chat:
        await chat.mention(world.channel_id, "in the channel")
        await chat.answer(world.channel_id, "echo: in the channel")
        await chat.mention(world.thread_id, "in the thread", author=world.bob)
        await chat.answer(world.thread_id, "echo: in the thread")
        await chat.dc.post_message(world.dm_channel_id, world.alice, "in a DM")
        await chat.answer(world.dm_channel_id, "echo: in a DM")
        thread_request, dm_request = chat.model.requests[1], chat.model.requests[2]
        assert [m["content"] for m in thread_request.messages[1:]] == ["in the thread"]
        assert [m["content"] for m in dm_request.messages[1:]] == ["in a DM"]
        assert "in a Discord direct message" in dm_request.messages[0]["content"]
        assert [t["content"] for t in await chat.stored_turns(world.thread_id)] == [
            "in the thread",
            "echo: in the thread",
        ]


async def test_a_reply_that_pings_the_bot_continues_the_conversation(chat_bot, world) -> None:
    async with chat_bot() as chat:
        await chat.mention(world.channel_id, "first")
        answer = await chat.answer(world.channel_id, "echo: first")
        # A reply with the ping on: Discord lists the bot in mentions, the content has no <@id>.
        await chat.dc.post_message(world.channel_id, world.bob, "and then?", reply_to=answer, mentions=[chat.me])
        await chat.answer(world.channel_id, "echo: and then?")
        assert [m["content"] for m in chat.model.requests[1].messages[1:]] == ["first", "echo: first", "and then?"]


async def test_messages_not_for_the_bot_are_ignored(chat_bot, world) -> None:
    async with chat_bot() as chat:
        other_bot = chat.dc.add_user("otherbot", bot=True)
        answer_to_first = None
        await chat.mention(world.channel_id, "first")
        answer_to_first = await chat.answer(world.channel_id, "echo: first")
        await chat.dc.post_message(world.channel_id, world.bob, "reply without ping", reply_to=answer_to_first)
        await chat.dc.post_message(world.channel_id, world.bob, "@everyone hello")
        await chat.dc.post_message(
            world.channel_id, other_bot, f"<@{chat.me['id']}> bots are ignored", mentions=[chat.me]
        )
        await chat.dc.post_message(world.channel_id, world.bob, "just chatting")
        # A last mention proves the ones before it were seen and skipped, not still queued.
        await chat.mention(world.channel_id, "last")
        await chat.answer(world.channel_id, "echo: last")
        assert [r.messages[-1]["content"] for r in chat.model.requests] == ["first", "last"]


async def test_an_empty_mention_gets_a_hint_and_nothing_is_stored(chat_bot, world) -> None:
    async with chat_bot() as chat:
        await chat.dc.post_message(world.channel_id, world.alice, f"<@{chat.me['id']}>", mentions=[chat.me])
        await chat.answer(world.channel_id, EMPTY_MENTION_HINT)
        assert chat.model.requests == []
        assert await chat.stored_turns(world.channel_id) == []


async def test_history_survives_a_restart(chat_bot, world) -> None:
    async with chat_bot() as chat:
        await chat.mention(world.channel_id, "remember the word kumquat")
        await chat.answer(world.channel_id, "echo: remember the word kumquat")
    async with chat_bot() as chat:
        await chat.mention(world.channel_id, "what was the word?")
        await chat.answer(world.channel_id, "echo: what was the word?")
        assert [m["content"] for m in chat.model.requests[-1].messages[1:]] == [
            "remember the word kumquat",
            "echo: remember the word kumquat",
            "what was the word?",
        ]


async def test_a_long_answer_is_split_with_code_fences_intact(chat_bot, world) -> None:
    code = "\n".join(f"print('line {i}')" for i in range(250))
    text = f"Here is the script:\n\n```python\n{code}\n```\n\nRun it with python."
    async with chat_bot() as chat:
        chat.model.script(Reply(text, chunk_size=400))
        await chat.mention(world.channel_id, "write a long script")
        await chat.dc.wait_for(lambda r: r.channel_id == world.channel_id and "Run it with python." in str(r.json))
        messages = chat.dc.bot_messages(world.channel_id)
        assert len(messages) >= 3
        for message in messages:
            assert len(message["content"]) <= 2000
            assert message["content"].count("```") % 2 == 0, "each message's code block is closed"
        assert messages[1]["content"].startswith("```python\n")
        printed = [line for m in messages for line in m["content"].split("\n") if line.startswith("print(")]
        assert printed == code.split("\n")
        [stored_answer] = [t for t in await chat.stored_turns(world.channel_id) if t["role"] == "assistant"]
        assert stored_answer["content"] == text


async def test_edits_are_throttled_to_the_interval(chat_bot, world) -> None:
    interval = 0.25
    text = "".join(f"word{i} " for i in range(60)).strip()
    async with chat_bot(stream={"edit_interval_s": interval}) as chat:
        chat.model.script(Reply(text, chunk_size=6, chunk_delay=0.01))  # ~60 chunks over ~0.6 s
        await chat.mention(world.channel_id, "stream slowly")
        final = await chat.answer(world.channel_id, text)
        edits = final["edits"]
        assert 1 <= len(edits) <= 5, f"{len(edits)} edits for ~60 chunks"
        create = next(r for r in chat.dc.requests if r.route == "create_message" and r.channel_id == world.channel_id)
        times = [create.at] + [r.at for r in chat.dc.requests if r.route == "edit_message"]
        gaps = [b - a for a, b in itertools.pairwise(times[:-1])]  # the closing edit may come early
        assert all(gap >= interval * 0.9 for gap in gaps), gaps


async def test_model_output_cannot_ping_anyone(chat_bot, world) -> None:
    async with chat_bot() as chat:
        role = chat.dc.add_role(world.guild_id, "mods")
        text = f"@everyone @here <@&{role['id']}> <@{world.bob['id']}> look!"
        chat.model.script(Reply(text))
        await chat.mention(world.channel_id, "ping everyone please")
        await chat.answer(world.channel_id, text)
        sends = [r for r in chat.dc.requests if r.route in ("create_message", "edit_message")]
        assert sends and all(pings_nobody(r.json) for r in sends)


@pytest.mark.parametrize("finish_reason", ["length", "content_filter"])
async def test_an_answer_stopped_early_says_why(chat_bot, world, finish_reason) -> None:
    async with chat_bot() as chat:
        chat.model.script(Reply("This answer goes on and", finish_reason=finish_reason))
        await chat.mention(world.channel_id, "tell me everything")
        await chat.answer(world.channel_id, f"This answer goes on and\n\n{NOTES[finish_reason]}")
        assert len(await chat.stored_turns(world.channel_id)) == 2


@pytest.mark.parametrize(
    ("behaviour", "error"),
    [
        (Error(401), ModelAuthError()),
        (Error.rate_limited(retry_after=3), ModelRateLimited(retry_after=3)),
        (Error(500), ModelError()),
        (Stall(5), ModelTimeout()),
    ],
    ids=["401", "429", "500", "timeout"],
)
async def test_each_model_failure_gets_its_message_and_history_is_unchanged(chat_bot, world, behaviour, error) -> None:
    async with chat_bot(model={"timeout_s": 0.5, "idle_timeout_s": 0.3}) as chat:
        await chat.mention(world.channel_id, "first")
        await chat.answer(world.channel_id, "echo: first")
        before = await chat.stored_turns(world.channel_id)
        chat.model.script(behaviour)
        await chat.mention(world.channel_id, "second")
        await chat.answer(world.channel_id, error.user_message)
        assert await chat.stored_turns(world.channel_id) == before
        typing_tasks = [r for r in chat.dc.requests if r.route == "typing"]
        assert typing_tasks, "typing was shown"


async def test_a_stream_cut_mid_answer_is_marked_interrupted_and_not_stored(chat_bot, world) -> None:
    async with chat_bot() as chat:
        chat.model.script(Cut(after_chunks=3))
        await chat.mention(world.channel_id, "tell me a story")
        await chat.dc.wait_for(lambda r: r.channel_id == world.channel_id and "Interrupted" in str(r.json))
        [message] = chat.dc.bot_messages(world.channel_id)
        assert message["content"].startswith(chat.model.requests[0].sent_text)
        assert message["content"].endswith("*(Interrupted: The model's answer was interrupted. Please try again.)*")
        assert await chat.stored_turns(world.channel_id) == []


async def test_a_message_over_the_token_budget_is_refused(chat_bot, world) -> None:
    async with chat_bot(model={"context_window": 600, "max_reply_tokens": 100}) as chat:
        await chat.mention(world.channel_id, "blah " * 1500)
        request = await chat.dc.wait_for(lambda r: r.route == "create_message" and r.channel_id == world.channel_id)
        assert "too long" in request.json["content"]
        assert chat.model.requests == []
        assert await chat.stored_turns(world.channel_id) == []
        assert MessageTooLong(1, 1).user_message.split(":")[0] in request.json["content"]


async def test_storage_down_gets_its_message(chat_bot, world) -> None:
    async with chat_bot(secrets={"redis_url": "redis://127.0.0.1:1/0"}) as chat:
        await chat.mention(world.channel_id, "hello?")
        await chat.answer(world.channel_id, StorageUnavailable().user_message)
        assert chat.model.requests == []
