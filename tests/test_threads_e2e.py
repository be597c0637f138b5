"""/chat through discord.py and the stand-in Discord: the thread it opens, answering there without a
mention (with the Message Content intent), across a restart, archived threads, permissions, slowmode,
and the thread following its channel's persona and model."""

from __future__ import annotations

import re

import pytest

from tests.conftest import SECOND_MODEL
from tests.harness import CREATE_PUBLIC_THREADS, DEFERRED, MANAGE_CHANNELS, MANAGE_MESSAGES
from tests.standins.discord_permissions import GATEWAY_MESSAGE_CONTENT_LIMITED, Permission
from tests.test_model_e2e import two_models


@pytest.fixture
def content_on(discord_standin) -> dict:
    """Settings asking for the Message Content intent, which the stand-in's portal then grants."""
    discord_standin.application_flags = GATEWAY_MESSAGE_CONTENT_LIMITED
    return {"discord": {"message_content": True}}


QUESTION = "What is a good name for a cat?"


async def open_chat(chat, message: str | None = QUESTION, **command) -> tuple[int, str]:
    """Run /chat in the channel; (the new thread's id, what the user was told)."""
    options = {"message": message} if message is not None else None
    reply = await chat.command(
        "chat", options=options, permissions=command.pop("permissions", CREATE_PUBLIC_THREADS), **command
    )
    assert reply.type == DEFERRED and reply.ephemeral, "acknowledged at once, then followed up"
    found = re.search(r"<#(\d+)>", reply.content)
    assert found, reply.content
    return int(found[1]), reply.content


async def say(chat, channel_id: int, text: str, *, author=None) -> dict:
    """An ordinary message, no mention."""
    return await chat.dc.post_message(channel_id, author or chat.world.alice, text)


async def test_chat_opens_a_public_thread_named_after_the_message_and_answers_there(chat_bot, world) -> None:
    async with chat_bot() as chat:
        thread_id, told = await open_chat(chat)
        thread = chat.dc.world.channels[thread_id]
        assert thread["type"] == 11 and thread["parent_id"] == str(world.channel_id)
        assert thread["name"] == QUESTION and thread["owner_id"] == chat.me["id"]
        assert thread["thread_metadata"]["auto_archive_duration"] == 1440
        assert "Mention me or reply to me there to continue" in told, "without the intent, /chat says so"

        answer = await chat.answer(thread_id, f"echo: {QUESTION}")
        opening, _ = chat.dc.bot_messages(thread_id)
        assert opening["content"] == f"**alice** asked:\n{QUESTION}"
        assert answer["message_reference"]["message_id"] == opening["id"]
        assert chat.model.requests[-1].messages[-1]["content"] == QUESTION
        assert [t["content"] for t in await chat.stored_turns(thread_id)] == [QUESTION, f"echo: {QUESTION}"]
        public = [m for m in chat.dc.bot_messages(world.channel_id) if not m["flags"] & 64]
        assert public == [], "nothing posted in the busy channel"

        # The interaction was acknowledged before the thread was created (Discord's 3 seconds).
        routes = [r.route for r in chat.dc.requests if r.route in ("interaction_callback", "create_thread")]
        assert routes[:2] == ["interaction_callback", "create_thread"]


async def test_without_message_content_the_thread_answers_mentions_only(chat_bot, world) -> None:
    async with chat_bot() as chat:
        thread_id, _ = await open_chat(chat)
        await chat.answer(thread_id, f"echo: {QUESTION}")
        await say(chat, thread_id, "no mention here")  # Discord delivers it blank: not for the bot
        await chat.mention(thread_id, "and with one")
        await chat.answer(thread_id, "echo: and with one")
        assert [r.messages[-1]["content"] for r in chat.model.requests] == [QUESTION, "and with one"]


async def test_with_message_content_every_message_in_its_threads_is_answered(chat_bot, world, content_on) -> None:
    async with chat_bot(**content_on) as chat:
        assert chat.bot.intents.message_content
        thread_id, told = await open_chat(chat)
        assert "Mention me" not in told
        await chat.answer(thread_id, f"echo: {QUESTION}")

        await say(chat, thread_id, "Something shorter?", author=world.bob)
        await chat.answer(thread_id, "echo: Something shorter?")
        history = [m["content"] for m in chat.model.requests[-1].messages[1:]]
        assert history == [QUESTION, f"echo: {QUESTION}", "Something shorter?"]

        # Everywhere else nothing changes: unmentioned messages are not for the bot.
        before = len(chat.model.requests)
        await say(chat, world.channel_id, "chatting in the channel")
        await say(chat, world.thread_id, "chatting in someone's thread")
        await say(chat, thread_id, "still here")
        await chat.answer(thread_id, "echo: still here")
        assert [r.messages[-1]["content"] for r in chat.model.requests[before:]] == ["still here"]


async def test_threads_are_known_after_a_restart(chat_bot, world, content_on) -> None:
    async with chat_bot(**content_on) as chat:
        thread_id, _ = await open_chat(chat)
        await chat.answer(thread_id, f"echo: {QUESTION}")
    async with chat_bot(**content_on) as chat:  # a new process knows the thread from Redis alone
        await say(chat, thread_id, "after the restart")
        await chat.answer(thread_id, "echo: after the restart")
        assert len(chat.model.requests[-1].messages) == 1 + 3


async def test_an_archived_thread_continues_its_history(chat_bot, world, content_on) -> None:
    async with chat_bot(**content_on) as chat:
        thread_id, _ = await open_chat(chat)
        await chat.answer(thread_id, f"echo: {QUESTION}")
        chat.dc.archive_thread(thread_id)
        await say(chat, thread_id, "back again")  # Discord unarchives it first (THREAD_UPDATE)
        await chat.answer(thread_id, "echo: back again")
        assert [m["content"] for m in chat.model.requests[-1].messages[1:]] == [
            QUESTION,
            f"echo: {QUESTION}",
            "back again",
        ]
        assert not chat.dc.world.channels[thread_id]["thread_metadata"]["archived"]


async def test_a_deleted_thread_is_forgotten_its_marker_history_and_overrides(
    chat_bot, world, content_on, second_model_server
) -> None:
    """Discord's THREAD_DELETE: the thread can never be continued, so nothing the bot kept about it
    stays (a /chat thread's marker, the conversation, the thread's persona and model overrides); the
    other threads are untouched."""
    import asyncio
    import contextlib

    async with chat_bot(**content_on, **two_models(second_model_server)) as chat:
        services = chat.bot.services
        redis, keys = services.redis, services.keys
        deleted, kept = (await open_chat(chat, "first"))[0], (await open_chat(chat, "second"))[0]
        await chat.answer(deleted, "echo: first")
        await chat.answer(kept, "echo: second")
        for name, value in (("persona", "joker"), ("model", SECOND_MODEL)):
            await chat.command(
                name,
                subcommand="set",
                options={"name": value, "scope": "channel"},
                channel_id=deleted,
                permissions=MANAGE_CHANNELS,
            )
        field = f"channel:{deleted}"
        assert await redis.hget(keys.personas(world.guild_id), field) == b"joker"
        assert await redis.hget(keys.models(world.guild_id), field) == SECOND_MODEL.encode()
        await chat.mention(world.thread_id, "in a member's thread")  # a conversation by mention
        await chat.answer(world.thread_id, "echo: in a member's thread")
        assert await redis.exists(keys.bot_thread(deleted), keys.turns(deleted), keys.turns(world.thread_id)) == 3

        chat.dc.delete_thread(deleted)
        chat.dc.delete_thread(world.thread_id)

        async def forgotten() -> bool:
            left = await redis.exists(keys.bot_thread(deleted), keys.turns(deleted), keys.turns(world.thread_id))
            overrides = await redis.hexists(keys.personas(world.guild_id), field) or await redis.hexists(
                keys.models(world.guild_id), field
            )
            return left == 0 and not overrides

        # The bot handles the event in a task of its own, seen only in Redis: poll it, then say what is left.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                while not await forgotten():  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
        assert await redis.exists(keys.bot_thread(deleted)) == 0, "the /chat marker is deleted"
        assert not await services.threads.is_ours(deleted), "and not remembered in memory either"
        assert await redis.exists(keys.turns(deleted), keys.version(deleted), keys.summary(deleted)) == 0
        assert await redis.exists(keys.turns(world.thread_id)) == 0, "any thread's conversation goes"
        assert not await redis.hexists(keys.personas(world.guild_id), field), "its persona override"
        assert not await redis.hexists(keys.models(world.guild_id), field), "its model override"

        assert await redis.exists(keys.bot_thread(kept)) == 1 and len(await chat.stored_turns(kept)) == 2
        await say(chat, kept, "still here")
        await chat.answer(kept, "echo: still here")
        assert [m["content"] for m in chat.model.requests[-1].messages[1:]] == [
            "second",
            "echo: second",
            "still here",
        ], "the thread left standing keeps its history and answers without a mention"


async def test_asking_for_the_intent_the_portal_does_not_grant_stops_with_one_line(
    tmp_path, discord_standin, model_server, redis_url
) -> None:
    import asyncio

    from tests.harness import bot_env, start_bot_process, stop_bot_process, write_config

    config = write_config(tmp_path, "intent")
    config.write_text(config.read_text(encoding="utf-8") + "\n[discord]\nmessage_content = true\n", encoding="utf-8")
    process = await start_bot_process("--config", str(config), env=bot_env(discord_standin, model_server, redis_url))
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout=30)
    finally:
        await stop_bot_process(process)
    text = output.decode()
    assert process.returncode == 1 and "Traceback" not in text, text
    assert "Discord refused the Message Content intent" in text.splitlines()[-1]
    assert discord_standin.gateway.disallowed_intents == 1


async def test_the_thread_follows_the_channels_persona_and_model(chat_bot, world, second_model_server) -> None:
    async with chat_bot(**two_models(second_model_server)) as chat:
        await chat.command(
            "persona", subcommand="set", options={"name": "joker", "scope": "channel"}, permissions=MANAGE_CHANNELS
        )
        await chat.command(
            "model", subcommand="set", options={"name": SECOND_MODEL, "scope": "channel"}, permissions=MANAGE_CHANNELS
        )
        thread_id, _ = await open_chat(chat)
        await chat.answer(thread_id, f"echo: {QUESTION}")
        [sent] = second_model_server.requests
        assert sent.body["model"] == SECOND_MODEL and chat.model.requests == []
        assert sent.messages[0]["content"].startswith("You are StandinBot, a joke bot")


async def test_forget_works_for_whoever_opened_the_thread(chat_bot, world) -> None:
    async with chat_bot() as chat:
        thread_id, _ = await open_chat(chat)
        await chat.answer(thread_id, f"echo: {QUESTION}")
        refused = await chat.command("forget", user=world.bob, channel_id=thread_id, permissions=0)
        assert refused.content == "You need the Manage Messages permission to do that."
        done = await chat.command("forget", user=world.alice, channel_id=thread_id, permissions=0)
        assert done.content == "Done: I forgot this conversation (2 messages)."
        assert await chat.stored_turns(thread_id) == []


async def test_chat_without_a_message_greets_in_a_thread_named_after_the_bot(chat_bot, world) -> None:
    async with chat_bot() as chat:
        thread_id, _ = await open_chat(chat, message=None)
        assert chat.dc.world.channels[thread_id]["name"] == "Chat with StandinBot"
        greeting = await chat.dc.wait_for(lambda r: r.route == "create_message" and r.channel_id == thread_id)
        assert greeting.json["content"] == "Hi alice! What would you like to talk about?"
        assert chat.model.requests == []


async def test_a_long_message_names_the_thread_within_discords_limit(chat_bot, world) -> None:
    long = "Tell me <@123> about **cats** " + "and dogs " * 40
    async with chat_bot() as chat:
        thread_id, _ = await open_chat(chat, message=long)
        name = chat.dc.world.channels[thread_id]["name"]
        assert len(name) == 100 and name.startswith("Tell me about cats and dogs") and name.endswith("…")
        await chat.answer(thread_id, f"echo: {long.strip()}")


@pytest.mark.parametrize(
    ("where", "permissions", "denied", "expected"),
    [
        ("channel", 0, 0, "You need the Create Public Threads permission in this channel to start a chat."),
        ("channel", CREATE_PUBLIC_THREADS, Permission.CREATE_PUBLIC_THREADS, "I can't open a thread here"),
        ("channel", CREATE_PUBLIC_THREADS, Permission.SEND_MESSAGES_IN_THREADS, "I can't open a thread here"),
        ("thread", CREATE_PUBLIC_THREADS, 0, "Use /chat in a server's text channel"),
        ("dm", CREATE_PUBLIC_THREADS, 0, "This command only works in a server."),
    ],
)
async def test_chat_is_refused_with_one_short_ephemeral_reply(
    chat_bot, world, where, permissions, denied, expected
) -> None:
    channel_id = {"channel": world.channel_id, "thread": world.thread_id, "dm": world.dm_channel_id}[where]
    async with chat_bot() as chat:
        if denied:
            chat.dc.deny_bot(world.channel_id, denied)
        reply = await chat.command(
            "chat", options={"message": "hi"}, channel_id=channel_id, permissions=None if where == "dm" else permissions
        )
        assert reply.type != DEFERRED and reply.ephemeral and reply.content.startswith(expected), reply.content
        assert not [r for r in chat.dc.requests if r.route == "create_thread"]
        assert chat.model.requests == []


async def test_slowmode_limits_chats_per_user_and_carries_over_to_the_thread(chat_bot, world) -> None:
    async with chat_bot() as chat:
        chat.dc.set_slowmode(world.channel_id, 60)
        thread_id, _ = await open_chat(chat)
        assert chat.dc.world.channels[thread_id]["rate_limit_per_user"] == 60
        second = await chat.command("chat", options={"message": "again"}, permissions=CREATE_PUBLIC_THREADS)
        assert second.ephemeral and second.content.startswith("This channel has slowmode on: you can start another")
        assert len([r for r in chat.dc.requests if r.route == "create_thread"]) == 1
        # Moderators are not slowed down, as on Discord; nor is another member.
        await open_chat(chat, message="mod", permissions=CREATE_PUBLIC_THREADS | MANAGE_MESSAGES)
        await open_chat(chat, message="bob", user=world.bob)


async def test_an_opening_message_over_the_limit_is_refused(chat_bot, world) -> None:
    async with chat_bot() as chat:
        reply = await chat.command("chat", options={"message": "x" * 1_801}, permissions=CREATE_PUBLIC_THREADS)
        assert reply.ephemeral and reply.content == "`message` must be between 1 and 1800 characters long."
        assert not [r for r in chat.dc.requests if r.route == "create_thread"]


@pytest.mark.parametrize(
    ("setting", "flags", "status", "expected"),
    [
        ("false", 0, "", "no privileged intent needed (the portal grants: none)"),
        ("true", GATEWAY_MESSAGE_CONTENT_LIMITED, "", "the portal grants message_content, which the bot asks for"),
        ("true", 0, "FAIL", "the bot asks for message_content but the portal does not grant it"),
    ],
)
async def test_check_reports_whether_the_application_has_the_intent(
    tmp_path, discord_standin, model_server, redis_url, setting, flags, status, expected
) -> None:
    import asyncio

    from tests.harness import bot_env, start_bot_process, stop_bot_process, write_config

    discord_standin.application_flags = flags
    config = write_config(tmp_path, "check-intent")
    config.write_text(
        config.read_text(encoding="utf-8") + f"\n[voice]\nenabled = false\n\n[discord]\nmessage_content = {setting}\n",
        encoding="utf-8",
    )
    process = await start_bot_process(
        "check", "--config", str(config), env=bot_env(discord_standin, model_server, redis_url)
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout=40)
    finally:
        await stop_bot_process(process)
    lines = output.decode().splitlines()
    if status == "FAIL":  # Discord would refuse the bot's connection (4014): it cannot run like this
        [line] = [text for text in lines if text.startswith("FAIL  discord")]
        assert expected in line and "enable it under Bot > Privileged Gateway Intents" in line, line
        assert process.returncode == 1
    else:
        [line] = [text for text in lines if " intents " in text]
        assert expected in line, line
        assert process.returncode == 0, "\n".join(lines)


async def test_chat_outside_the_access_lists_is_refused(chat_bot, world) -> None:
    async with chat_bot(access={"channels": (world.channel_id + 1,)}) as chat:
        reply = await chat.command("chat", options={"message": "hi"}, permissions=CREATE_PUBLIC_THREADS)
        assert reply.ephemeral and reply.content == "I'm not enabled in this channel."
        assert not [r for r in chat.dc.requests if r.route == "create_thread"]


async def test_discord_failing_to_create_the_thread_is_one_sentence(chat_bot, world) -> None:
    async with chat_bot() as chat:
        chat.dc.fail("POST", "create_thread", 400, {"message": "Invalid Form Body", "code": 50035})
        reply = await chat.command("chat", options={"message": "hi"}, permissions=CREATE_PUBLIC_THREADS)
        assert reply.ephemeral and reply.content == (
            "Discord didn't let me open the thread just now. Please try again in a moment."
        )
        assert chat.model.requests == []


async def test_a_voice_message_in_its_thread_is_heard_without_a_mention(chat_bot, world, content_on) -> None:
    from tests.test_voice_e2e import CLIP, send_voice, voice_clip

    async with chat_bot(**content_on) as chat:
        thread_id, _ = await open_chat(chat)
        await chat.answer(thread_id, f"echo: {QUESTION}")
        await send_voice(chat, thread_id, voice_clip(chat))
        heard = f"transcript of voice-message.ogg ({len(CLIP)} bytes)"
        await chat.answer(thread_id, f"echo: {heard}")
        assert len(chat.model.transcriptions) == 1
        assert chat.model.requests[-1].messages[-1]["content"] == heard


async def test_chats_opened_at_once_stay_within_the_request_budget(chat_bot, world) -> None:
    """Thread creation and the opening messages go through the request scheduler: several /chat at once
    under a small budget all land, without a single 429 from Discord."""
    import asyncio

    from cogs.utils.budget import Priority

    rate = 4.0
    async with chat_bot(discord={"requests_per_second": rate}) as chat:
        chat.dc.limits.enforce()
        granted = chat.bot.requests.granted[Priority.URGENT]
        questions = [f"question {i}" for i in range(6)]
        opened = await asyncio.gather(*(open_chat(chat, message=q, user=world.bob) for q in questions))
        threads = [thread for thread, _ in opened]
        answers = (chat.answer(t, f"echo: {q}", timeout=30) for t, q in zip(threads, questions, strict=True))
        await asyncio.gather(*answers)
        assert chat.dc.limits.four_twenty_nines == 0
        # Per chat: the thread, the quoted question and the answer (one message, complete by its slot).
        assert chat.bot.requests.granted[Priority.URGENT] - granted >= 3 * len(questions)
        assert len(set(threads)) == len(questions)
