"""The bad-input matrix, end to end: each input gets a clear reply or is ignored as a user would
expect, nothing crashes, and nothing wrong is stored."""

from __future__ import annotations

import logging

import pytest

from cogs.chat import DM_REFUSED, EMPTY_MENTION_HINT
from tests.conftest import TEST_API_KEY, TEST_DISCORD_TOKEN
from tests.harness import MANAGE_GUILD, MANAGE_MESSAGES
from tests.standins.model_server import Error, Reply

ZALGO = "h̸̢̛̙͎e̵̡̛͓̥l̴̨̛̘̥l̶̢̛̙̥ơ̵̢̙̥"
TRICKY_TEXTS = {
    "emoji only": "🦊🔥🎉",
    "zero-width and RTL": "a\u200bb\u200dc \u202eevil\u202c שלום مرحبا",
    "zalgo": ZALGO,
    "nitro length": "long " * 798 + "the end.",  # 3,998 characters
}


@pytest.mark.parametrize("text", TRICKY_TEXTS.values(), ids=TRICKY_TEXTS.keys())
async def test_odd_text_is_answered_and_stored_exactly(chat_bot, world, text) -> None:
    async with chat_bot() as chat:
        await chat.mention(world.channel_id, text)
        ending = text.strip()[-8:]
        await chat.dc.wait_for(lambda r: str((r.json or {}).get("content", "")).endswith(ending))
        shown = "".join(m["content"] for m in chat.dc.bot_messages(world.channel_id))
        assert shown.replace("\n", "").replace(" ", "") == f"echo: {text.strip()}".replace(" ", "")
        await chat.settled(world.channel_id)
        user_turn, answer = await chat.stored_turns(world.channel_id)
        assert user_turn["content"] == text.strip() and answer["content"] == f"echo: {text.strip()}"


async def test_only_whitespace_gets_the_hint(chat_bot, world) -> None:
    async with chat_bot() as chat:
        await chat.dc.post_message(world.channel_id, world.alice, f"<@{chat.me['id']}>  \n\t ", mentions=[chat.me])
        await chat.answer(world.channel_id, EMPTY_MENTION_HINT)
        assert chat.model.requests == [] and await chat.stored_turns(world.channel_id) == []


async def test_a_10000_character_answer_with_unbalanced_fences_arrives_whole(chat_bot, world) -> None:
    text = ("Intro.\n\n```js\n" + "\n".join(f"let v{i} = {i};" for i in range(600)))[:10_000]  # never closed
    async with chat_bot() as chat:
        chat.model.script(Reply(text, chunk_size=500))
        await chat.mention(world.channel_id, "a huge answer please")
        last_line = text.rsplit("\n", 1)[-1]
        await chat.dc.wait_for(
            lambda r: r.channel_id == world.channel_id and last_line in str((r.json or {}).get("content"))
        )
        messages = chat.dc.bot_messages(world.channel_id)
        assert len(messages) >= 5
        assert all(len(m["content"]) <= 2000 for m in messages)
        assert all(m["content"].count("```") % 2 == 0 for m in messages[:-1]), "fences closed at each split"
        lines = [line for m in messages for line in m["content"].split("\n") if line.startswith("let v")]
        assert lines == [line for line in text.split("\n") if line.startswith("let v")]
        assert (await chat.stored_turns(world.channel_id))[-1]["content"] == text


async def test_images_are_ignored_with_a_note_when_off_and_text_files_are_read(chat_bot, world) -> None:
    async with chat_bot(images={"enabled": False}) as chat:
        image = chat.dc.add_attachment(b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "cat.png", "image/png")
        notes = chat.dc.add_attachment(b"milk, eggs, flour\n", "list.txt", "text/plain; charset=utf-8")
        await chat.dc.post_message(
            world.channel_id,
            world.alice,
            f"<@{chat.me['id']}> what should I bake?",
            mentions=[chat.me],
            attachments=[image, notes],
        )
        expected_text = "what should I bake?\n\n[file list.txt]\nmilk, eggs, flour\n"
        await chat.answer(
            world.channel_id,
            f"echo: {expected_text.strip()}\n\n*(I can only read text, so I ignored cat.png.)*",
        )
        assert chat.model.requests[0].messages[-1]["content"] == expected_text.strip()

        only_image = chat.dc.add_attachment(b"\x89PNG\r\n", "dog.png", "image/png")
        await chat.dc.post_message(
            world.channel_id, world.alice, f"<@{chat.me['id']}>", mentions=[chat.me], attachments=[only_image]
        )
        await chat.answer(world.channel_id, "*(I can only read text, so I ignored dog.png.)*")
        assert len(chat.model.requests) == 1


async def test_a_channel_the_bot_cannot_send_to_is_logged_without_a_crash(chat_bot, world, caplog) -> None:
    async with chat_bot() as chat:
        chat.dc.deny_bot(world.channel_id)
        await chat.mention(world.channel_id, "can you hear me?")
        await chat.dc.wait_for(lambda r: r.route == "create_message" and r.status == 403)
        await chat.mention(world.thread_id, "and here?")  # the bot carries on elsewhere
        await chat.answer(world.thread_id, "echo: and here?")
        assert "Could not answer in channel" in caplog.text
        assert await chat.stored_turns(world.channel_id) == [], "an answer nobody saw is not history"


@pytest.mark.parametrize("policy", ["members", "nobody"])
async def test_dms_follow_the_configured_policy(chat_bot, world, policy) -> None:
    async with chat_bot(access={"dms": policy}) as chat:
        stranger = chat.dc.add_user("stranger")
        stranger_dm = int(chat.dc.open_dm(stranger)["id"])
        await chat.dc.post_message(stranger_dm, stranger, "hello bot")
        await chat.answer(stranger_dm, DM_REFUSED)
        await chat.dc.post_message(world.dm_channel_id, world.alice, "hi, we share a server")
        if policy == "members":
            await chat.answer(world.dm_channel_id, "echo: hi, we share a server")
        else:
            await chat.answer(world.dm_channel_id, DM_REFUSED)
        assert len(chat.model.requests) == (1 if policy == "members" else 0)


async def test_guilds_channels_and_roles_can_be_restricted(chat_bot, world) -> None:
    async with chat_bot(access={"channels": (world.channel_id,)}) as chat:
        await chat.mention(world.thread_id, "thread of an allowed channel")
        await chat.answer(world.thread_id, "echo: thread of an allowed channel")
        other = int(chat.dc.add_text_channel(world.guild_id, "off-limits")["id"])
        await chat.mention(other, "not here")
        await chat.mention(world.channel_id, "allowed")
        await chat.answer(world.channel_id, "echo: allowed")
        assert chat.dc.bot_messages(other) == []
    role = chat.dc.add_role(world.guild_id, "chatters")
    async with chat_bot(access={"roles": (int(role["id"]),)}) as chat:
        chat.model.reset()
        chat.dc.add_member(world.guild_id, world.bob, roles=[role])
        await chat.mention(world.channel_id, "no role", author=world.alice)
        await chat.mention(world.channel_id, "with role", author=world.bob)
        await chat.answer(world.channel_id, "echo: with role")
        assert [r.messages[-1]["content"] for r in chat.model.requests] == ["with role"]


async def test_secrets_never_reach_the_logs(chat_bot, world, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    async with chat_bot() as chat:
        await chat.mention(world.channel_id, "hello")
        await chat.answer(world.channel_id, "echo: hello")
        chat.model.script(Error(401))
        await chat.mention(world.channel_id, "again")
        await chat.dc.wait_for(lambda r: "API key" in str((r.json or {}).get("content")))
    logged = caplog.text + "".join(repr(r.args) for r in caplog.records)
    # The guard that the checks below check something: DEBUG records of the loggers that handle the
    # secrets were captured (discord.py's REST and gateway clients, which send the token, and the SDK's,
    # which sends the key), not merely any discord.* line.
    debug = {r.name for r in caplog.records if r.levelno == logging.DEBUG}
    assert {"discord.http", "discord.gateway", "openai._base_client"} <= debug, debug
    assert any(r.name == "discord.http" and "/messages" in r.getMessage() for r in caplog.records)
    assert TEST_DISCORD_TOKEN not in logged
    assert TEST_API_KEY not in logged


async def test_commands_answer_only_in_allowed_servers(chat_bot, world) -> None:
    from bot.app import NOT_IN_THIS_SERVER

    async with chat_bot(access={"guilds": (world.guild_id + 1,)}) as chat:
        refused = await chat.command("usage")
        assert refused.ephemeral and refused.content == NOT_IN_THIS_SERVER
        for name, subcommand in (("persona", "list"), ("forget", None), ("model", "list")):
            other = await chat.command(name, subcommand=subcommand, permissions=MANAGE_GUILD | MANAGE_MESSAGES)
            assert other.ephemeral and other.content == NOT_IN_THIS_SERVER, name
        in_dm = await chat.command("usage", channel_id=world.dm_channel_id)
        assert in_dm.content.startswith("**Your usage**"), "DMs follow the DM policy, not the server list"
        await chat.mention(world.channel_id, "hello?")
        await chat.dc.post_message(world.dm_channel_id, world.alice, "still here?")
        await chat.answer(world.dm_channel_id, "echo: still here?")
        assert [r.messages[-1]["content"] for r in chat.model.requests] == ["still here?"]


async def test_text_files_are_read_up_to_64_kb(chat_bot, world) -> None:
    """The README's cap: a 64 KB file is read, one byte more is left out with the note, undownloaded."""
    from cogs.chat import TEXT_FILE_MAX_BYTES

    assert TEXT_FILE_MAX_BYTES == 64 * 1024
    async with chat_bot() as chat:
        at_cap = chat.dc.add_attachment(b"a" * (64 * 1024 - 1) + b"\n", "at-cap.txt", "text/plain")
        over = chat.dc.add_attachment(b"b" * (64 * 1024 + 1), "over.txt", "text/plain")
        await chat.dc.post_message(
            world.channel_id,
            world.alice,
            f"<@{chat.me['id']}> read these",
            mentions=[chat.me],
            attachments=[at_cap, over],
        )
        [sent] = await chat.model.wait_for_requests(1, timeout=10)
        content = sent.messages[-1]["content"]
        assert content.startswith("read these\n\n[file at-cap.txt]\n" + "a" * 100)
        assert "a" * (64 * 1024 - 1) in content
        assert "over.txt" not in content and "bbbb" not in content
        await chat.dc.wait_for(lambda r: "over.txt" in str((r.json or {}).get("content")), timeout=10)
        assert chat.dc.cdn_downloads == 1, "the file over the cap is not downloaded"
