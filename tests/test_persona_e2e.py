"""/persona and /forget through discord.py and the stand-in Discord, checked against the next chat
turn's system message."""

from __future__ import annotations

import pytest

from bot.settings import BUILTIN_PERSONAS
from tests.harness import MANAGE_CHANNELS, MANAGE_GUILD, MANAGE_MESSAGES

ASSISTANT, JOKER = BUILTIN_PERSONAS
MODAL = 9
AUTOCOMPLETE_RESULT = 8


async def system_prompt_of_next_turn(chat, channel_id: int, *, author=None) -> str:
    before = len(chat.model.requests)
    if channel_id == chat.world.dm_channel_id:
        await chat.dc.post_message(channel_id, chat.world.alice, "hello")
    else:
        await chat.mention(channel_id, "hello", author=author)
    requests = await chat.model.wait_for_requests(before + 1)
    await chat.answer(channel_id, "echo: hello")
    return requests[before].messages[0]["content"]


def starts_like(prompt: str, persona) -> bool:
    return prompt.startswith(persona.prompt.split("{bot_name}")[0]) and persona.prompt.split(". ")[-1] in prompt


async def test_guild_persona_then_channel_override_then_resets(chat_bot, world) -> None:
    async with chat_bot() as chat:
        assert starts_like(await system_prompt_of_next_turn(chat, world.channel_id), ASSISTANT)

        reply = await chat.command("persona", subcommand="set", options={"name": "joker"}, permissions=MANAGE_GUILD)
        assert reply.ephemeral and "now **joker**" in reply.content
        joker_prompt = await system_prompt_of_next_turn(chat, world.channel_id)
        assert joker_prompt.startswith("You are StandinBot, a joke bot in the Discord server Testers.")
        assert "{" not in joker_prompt
        assert starts_like(await system_prompt_of_next_turn(chat, world.thread_id), JOKER), "threads follow the guild"

        reply = await chat.command(
            "persona",
            subcommand="set",
            options={"name": "assistant", "scope": "channel"},
            permissions=MANAGE_CHANNELS,
        )
        assert "this channel" in reply.content
        assert starts_like(await system_prompt_of_next_turn(chat, world.channel_id), ASSISTANT), "override wins"
        show = await chat.command("persona", subcommand="show", permissions=0)
        assert show.ephemeral and "**assistant** (from the channel override)" in show.content
        assert starts_like(await system_prompt_of_next_turn(chat, world.thread_id), ASSISTANT), "thread inherits"

        reply = await chat.command(
            "persona", subcommand="reset", options={"scope": "channel"}, permissions=MANAGE_CHANNELS
        )
        assert "follows the server's persona" in reply.content
        assert starts_like(await system_prompt_of_next_turn(chat, world.channel_id), JOKER)

        reply = await chat.command("persona", subcommand="reset", permissions=MANAGE_GUILD)
        assert "default persona (**assistant**)" in reply.content
        assert starts_like(await system_prompt_of_next_turn(chat, world.channel_id), ASSISTANT)
        show = await chat.command("persona", subcommand="show")
        assert "(from the default)" in show.content


async def test_dms_use_the_default_persona(chat_bot, world) -> None:
    async with chat_bot() as chat:
        await chat.command("persona", subcommand="set", options={"name": "joker"}, permissions=MANAGE_GUILD)
        prompt = await system_prompt_of_next_turn(chat, world.dm_channel_id)
        assert starts_like(prompt, ASSISTANT)
        assert prompt.startswith(f"You are {chat.me['username']}, a helpful assistant in a Discord direct message. ")
        assert "server" not in prompt, "a DM names no server"
        guild_prompt = await system_prompt_of_next_turn(chat, world.channel_id)
        assert "a joke bot in the Discord server Testers." in guild_prompt


def test_a_custom_prompt_naming_the_server_reads_well_in_a_dm() -> None:
    import datetime as dt

    from bot.personas import ActivePersona

    custom = ActivePersona("custom", "You answer for {guild_name} in the Discord server {guild_name}.", "guild")
    today = dt.date(2026, 1, 2)
    assert custom.render(bot_name="B", guild_name=None, today=today) == (
        "You answer for a direct message in a Discord direct message."
    )
    assert custom.render(bot_name="B", guild_name="Testers", today=today) == (
        "You answer for Testers in the Discord server Testers."
    )


@pytest.mark.parametrize(
    ("options", "permissions", "needed"),
    [
        ({"name": "joker"}, 0, "Manage Server"),
        ({"name": "joker"}, MANAGE_CHANNELS, "Manage Server"),
        ({"name": "joker", "scope": "channel"}, MANAGE_MESSAGES, "Manage Channels"),
    ],
)
async def test_changing_the_persona_needs_permission(chat_bot, world, options, permissions, needed) -> None:
    async with chat_bot() as chat:
        reply = await chat.command("persona", subcommand="set", options=options, permissions=permissions)
        assert reply.ephemeral and reply.content == f"You need the {needed} permission to do that."
        for subcommand in ("reset", "custom"):
            refused = await chat.command("persona", subcommand=subcommand, permissions=0)
            assert refused.ephemeral and "You need the Manage Server permission" in refused.content
        assert starts_like(await system_prompt_of_next_turn(chat, world.channel_id), ASSISTANT)


async def test_list_marks_the_active_persona_and_unknown_names_are_refused(chat_bot, world) -> None:
    async with chat_bot() as chat:
        listing = await chat.command("persona", subcommand="list")
        assert listing.ephemeral
        assert f"**assistant**: {ASSISTANT.description} ← active here" in listing.content
        assert f"**joker**: {JOKER.description}" in listing.content and "custom" not in listing.content
        reply = await chat.command("persona", subcommand="set", options={"name": "pirate"}, permissions=MANAGE_GUILD)
        assert reply.ephemeral and reply.content.startswith("There is no persona called “pirate”")
        reply = await chat.command("persona", subcommand="set", options={"name": "custom"}, permissions=MANAGE_GUILD)
        assert "no custom prompt yet" in reply.content


async def test_autocomplete_offers_matching_personas(chat_bot, world) -> None:
    async with chat_bot() as chat:
        payload = await chat.dc.send_autocomplete(
            "persona", "name", "jo", user=world.alice, channel_id=world.channel_id, subcommand="set"
        )
        reply = await chat.response_to(payload)
        assert reply.type == AUTOCOMPLETE_RESULT
        assert [c["value"] for c in reply.data["choices"]] == ["joker"]


async def test_custom_prompt_through_the_modal(chat_bot, world) -> None:
    async with chat_bot() as chat:
        opened = await chat.command("persona", subcommand="custom", permissions=MANAGE_GUILD)
        assert opened.type == MODAL
        [[text_input]] = [[c["component"]] for c in opened.data["components"] if c.get("type") == 18]
        assert text_input["max_length"] == 2000 and text_input["style"] == 2
        custom = "You are {bot_name}, a pirate. Answer in pirate speak. {not a placeholder}"
        submit = await chat.dc.send_modal_submit(
            opened.data["custom_id"], {text_input["custom_id"]: custom}, user=world.alice, channel_id=world.channel_id
        )
        saved = await chat.response_to(submit)
        assert saved.ephemeral and saved.content.startswith("Saved.")
        prompt = await system_prompt_of_next_turn(chat, world.channel_id)
        assert prompt == "You are StandinBot, a pirate. Answer in pirate speak. {not a placeholder}"
        show = await chat.command("persona", subcommand="show")
        assert "**custom** (from the guild setting)" in show.content

        # Reopening the modal shows the saved prompt.
        reopened = await chat.command("persona", subcommand="custom", permissions=MANAGE_GUILD)
        assert reopened.data["components"][0]["component"]["value"] == custom


async def test_a_custom_prompt_over_the_cap_is_refused(chat_bot, world) -> None:
    async with chat_bot(personas={"custom_max_chars": 100}) as chat:
        opened = await chat.command("persona", subcommand="custom", permissions=MANAGE_GUILD)
        input_id = opened.data["components"][0]["component"]["custom_id"]
        # A client that ignores the form's max_length: the server side checks again.
        submit = await chat.dc.send_modal_submit(
            opened.data["custom_id"], {input_id: "x" * 150}, user=world.alice, channel_id=world.channel_id
        )
        refused = await chat.response_to(submit)
        assert (
            refused.ephemeral
            and refused.content == "That prompt is 150 characters; the limit is 100. Please shorten it."
        )
        assert starts_like(await system_prompt_of_next_turn(chat, world.channel_id), ASSISTANT)


async def test_forget_clears_exactly_this_conversation(chat_bot, world) -> None:
    async with chat_bot() as chat:
        for channel in (world.channel_id, world.thread_id):
            await chat.mention(channel, "remember me")
            await chat.answer(channel, "echo: remember me")
        reply = await chat.command("forget", permissions=MANAGE_MESSAGES)
        assert not reply.ephemeral and reply.content == "Done: I forgot this conversation (2 messages)."
        assert await chat.stored_turns(world.channel_id) == []
        assert len(await chat.stored_turns(world.thread_id)) == 2
        await chat.mention(world.channel_id, "fresh start")
        await chat.answer(world.channel_id, "echo: fresh start")
        assert [m["content"] for m in chat.model.requests[-1].messages[1:]] == ["fresh start"]
        again = await chat.command("forget", channel_id=world.dm_channel_id)
        assert again.content == "There was nothing to forget here."


async def test_forget_needs_manage_messages_except_in_your_own_thread(chat_bot, world) -> None:
    async with chat_bot() as chat:
        await chat.mention(world.thread_id, "thread talk", author=world.bob)
        await chat.answer(world.thread_id, "echo: thread talk")
        refused = await chat.command("forget", user=world.bob, permissions=0)
        assert refused.ephemeral and refused.content == "You need the Manage Messages permission to do that."
        not_owner = await chat.command("forget", user=world.alice, channel_id=world.thread_id, permissions=0)
        assert "Manage Messages" in not_owner.content
        assert len(await chat.stored_turns(world.thread_id)) == 2
        own = await chat.command("forget", user=world.bob, channel_id=world.thread_id, permissions=0)
        assert own.content.startswith("Done")
        assert await chat.stored_turns(world.thread_id) == []


async def test_forget_in_a_dm_needs_no_permission(chat_bot, world) -> None:
    async with chat_bot() as chat:
        await chat.dc.post_message(world.dm_channel_id, world.alice, "secret")
        await chat.answer(world.dm_channel_id, "echo: secret")
        reply = await chat.command("forget", channel_id=world.dm_channel_id, permissions=None)
        assert reply.content.startswith("Done")
        assert await chat.stored_turns(world.dm_channel_id) == []
