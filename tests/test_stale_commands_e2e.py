"""Slash commands from a stale command list (after an upgrade, before ``python -m bot sync``): the
stand-in delivers exactly what Discord would for the commands as registered, and each case gets one
clear ephemeral sentence, no traceback at ERROR, and the sync advice in the log at WARNING once."""

from __future__ import annotations

import copy
import logging
from typing import Any

import pytest

from bot.app import STALE_COMMANDS
from tests.standins.discord_interactions import AUTOCOMPLETE, NotDeliverable


def registered(chat: Any, name: str) -> dict[str, Any]:
    return copy.deepcopy(next(c for c in chat.dc.commands[None] if c["name"] == name))


def option(command: dict[str, Any], name: str) -> dict[str, Any]:
    return next(o for o in command["options"] if o["name"] == name)


async def synced(chat: Any) -> None:
    await chat.bot.tree.sync()  # what `python -m bot sync` registers


async def test_discord_never_sends_what_the_current_commands_rule_out(chat_bot, world) -> None:
    async with chat_bot() as chat:
        await synced(chat)
        for options in ({"days": -5}, {"days": 10**9}, {"scope": "everyone"}, {"days": "week"}, {"weeks": 2}):
            with pytest.raises(NotDeliverable):
                await chat.command("usage", options=options)
        with pytest.raises(NotDeliverable):
            await chat.command("persona", subcommand="list", channel_id=world.dm_channel_id)
        ok = await chat.command("usage", options={"days": 2, "scope": "me"})
        assert ok.content.startswith("**Your usage**")


async def test_out_of_range_and_unknown_values_get_one_clear_sentence(chat_bot, world, caplog) -> None:
    caplog.set_level(logging.INFO)
    async with chat_bot() as chat:
        await synced(chat)
        old = registered(chat, "usage")  # an older /usage: no bounds on days, no choices for scope
        for key in ("min_value", "max_value"):
            option(old, "days").pop(key, None)
        option(old, "scope").pop("choices", None)
        chat.dc.register_commands([old, *(c for c in chat.dc.commands[None] if c["name"] != "usage")])
        answers = {}
        for options in ({"days": -5}, {"days": 10**9}, {"days": 0}, {"scope": "everyone"}):
            reply = await chat.command("usage", options=options)
            assert reply.ephemeral
            answers[str(options)] = reply.content
        assert answers == {
            "{'days': -5}": "`days` must be between 1 and 30.",
            "{'days': 1000000000}": "`days` must be between 1 and 30.",
            "{'days': 0}": "`days` must be between 1 and 30.",
            "{'scope': 'everyone'}": "`scope` must be one of: me, guild.",
        }
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_guild_only_command_from_a_stale_list_in_a_dm_says_so(chat_bot, world, caplog) -> None:
    async with chat_bot() as chat:
        await synced(chat)
        old = registered(chat, "persona")  # as if it had once been offered in DMs
        old.update(dm_permission=True, contexts=None)
        chat.dc.register_commands([old, *(c for c in chat.dc.commands[None] if c["name"] != "persona")])
        reply = await chat.command("persona", subcommand="list", channel_id=world.dm_channel_id)
        assert reply.ephemeral and reply.content == "This command only works in a server."
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_changed_or_unknown_commands_say_the_list_is_out_of_date(chat_bot, world, caplog) -> None:
    caplog.set_level(logging.INFO)
    async with chat_bot() as chat:
        await synced(chat)
        current = [c for c in chat.dc.commands[None] if c["name"] not in ("usage", "forget")]
        usage = registered(chat, "usage")
        option(usage, "days").update(type=3, min_value=None, max_value=None)  # days was once text
        forget = registered(chat, "forget")
        forget["options"] = [{"type": 5, "name": "confirm", "description": "Really?", "required": True}]
        gone = {"name": "summarize", "type": 1, "description": "Removed since", "options": []}
        chat.dc.register_commands([*current, usage, forget, gone])
        replies = [
            await chat.command("usage", options={"days": "week"}),
            await chat.command("forget", options={"confirm": True}, permissions=1 << 13),
            await chat.command("summarize"),
            await chat.command("summarize"),
        ]
        assert [(r.content, r.ephemeral) for r in replies] == [(STALE_COMMANDS, True)] * 4
        assert await chat.stored_turns(world.channel_id) == [], "/forget did not run"
        # Autocomplete for a command the bot no longer has: an empty list of suggestions.
        payload = await chat.dc.send_autocomplete(
            "summarize", "topic", "ca", user=world.alice, channel_id=world.channel_id
        )
        callback = await chat.dc.wait_for(lambda r: r.route == "interaction_callback" and payload["id"] in r.path)
        assert payload["type"] == AUTOCOMPLETE and callback.json == {"type": 8, "data": {"choices": []}}
    stale = [r for r in caplog.records if "python -m bot sync" in r.getMessage()]
    assert [r.levelno for r in stale] == [logging.WARNING] + [logging.INFO] * (len(stale) - 1)
    assert len(stale) == 5
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
