"""/model through discord.py and the stand-in Discord, checked against which model server the next
turn reaches (two servers, each with its own key)."""

from __future__ import annotations

from typing import Any

import pytest

from bot.catalog import ModelOption, Provider
from tests.conftest import SECOND_API_KEY, SECOND_MODEL
from tests.harness import MANAGE_CHANNELS, MANAGE_GUILD, MANAGE_MESSAGES
from tests.standins.model_server import ModelServer

AUTOCOMPLETE_RESULT = 8


def two_models(second: ModelServer) -> dict[str, Any]:
    """Settings sections offering SECOND_MODEL on the second server besides the default test-model."""
    local = ModelOption(
        SECOND_MODEL, label="Local Llama", provider="local", context_window=8_192, max_reply_tokens=512, images=False
    )
    return {
        "models": (local,),
        "providers": (Provider("local", second.base_url, "SECOND_KEY"),),
        "secrets": {"provider_keys": (("local", SECOND_API_KEY),)},
    }


async def model_of_next_turn(chat, second: ModelServer, channel_id: int) -> str:
    """Which server answered the next message in the channel, and with which model: "default:<model>"
    or "second:<model>". The other server must not have seen it."""
    before = (len(chat.model.requests), len(second.requests))
    text = f"which model {sum(before)}"
    if channel_id == chat.world.dm_channel_id:
        await chat.dc.post_message(channel_id, chat.world.alice, text)
    else:
        await chat.mention(channel_id, text)
    await chat.answer(channel_id, f"echo: {text}")
    after = (len(chat.model.requests), len(second.requests))
    assert sum(after) - sum(before) == 1, "exactly one server got the turn"
    if after[0] > before[0]:
        return f"default:{chat.model.requests[-1].body['model']}"
    assert second.requests[-1].authorization == f"Bearer {SECOND_API_KEY}"
    return f"second:{second.requests[-1].body['model']}"


async def test_guild_choice_channel_override_thread_and_resets(chat_bot, world, second_model_server) -> None:
    second = second_model_server
    async with chat_bot(**two_models(second)) as chat:
        assert await model_of_next_turn(chat, second, world.channel_id) == "default:test-model"

        reply = await chat.command("model", subcommand="set", options={"name": SECOND_MODEL}, permissions=MANAGE_GUILD)
        assert reply.ephemeral and reply.content.startswith("The model for this server is now **Local Llama**")
        assert await model_of_next_turn(chat, second, world.channel_id) == f"second:{SECOND_MODEL}"
        assert await model_of_next_turn(chat, second, world.thread_id) == f"second:{SECOND_MODEL}"
        assert await model_of_next_turn(chat, second, world.dm_channel_id) == "default:test-model", "DMs: default"

        reply = await chat.command(
            "model", subcommand="set", options={"name": "test-model", "scope": "channel"}, permissions=MANAGE_CHANNELS
        )
        assert "this channel" in reply.content
        assert await model_of_next_turn(chat, second, world.channel_id) == "default:test-model", "override wins"
        assert await model_of_next_turn(chat, second, world.thread_id) == "default:test-model", "thread follows"
        show = await chat.command("model", subcommand="show", channel_id=world.thread_id)
        assert show.ephemeral and show.content.startswith(
            "Model here: **test-model** (from the parent channel override)"
        )

        reply = await chat.command(
            "model", subcommand="reset", options={"scope": "channel"}, permissions=MANAGE_CHANNELS
        )
        assert reply.content == "This channel now follows the server's model."
        again = await chat.command(
            "model", subcommand="reset", options={"scope": "channel"}, permissions=MANAGE_CHANNELS
        )
        assert again.content == "This channel had no override."
        assert await model_of_next_turn(chat, second, world.channel_id) == f"second:{SECOND_MODEL}"
        reply = await chat.command("model", subcommand="reset", permissions=MANAGE_GUILD)
        assert reply.content == "This server now uses the default model (**test-model**)."
        assert await model_of_next_turn(chat, second, world.channel_id) == "default:test-model"
        show = await chat.command("model", subcommand="show")
        assert "(from the default)" in show.content


@pytest.mark.parametrize(
    ("subcommand", "options", "permissions", "needed"),
    [
        ("set", {"name": SECOND_MODEL}, 0, "Manage Server"),
        ("set", {"name": SECOND_MODEL}, MANAGE_CHANNELS, "Manage Server"),
        ("set", {"name": SECOND_MODEL, "scope": "channel"}, MANAGE_MESSAGES, "Manage Channels"),
        ("reset", {}, MANAGE_CHANNELS, "Manage Server"),
        ("reset", {"scope": "channel"}, 0, "Manage Channels"),
    ],
)
async def test_changing_the_model_needs_permission(
    chat_bot, world, second_model_server, subcommand, options, permissions, needed
) -> None:
    async with chat_bot(**two_models(second_model_server)) as chat:
        reply = await chat.command("model", subcommand=subcommand, options=options, permissions=permissions)
        assert reply.ephemeral and reply.content == f"You need the {needed} permission to do that."
        assert await model_of_next_turn(chat, second_model_server, world.channel_id) == "default:test-model"


async def test_list_marks_the_active_model_and_unknown_names_are_refused(chat_bot, world, second_model_server) -> None:
    async with chat_bot(**two_models(second_model_server)) as chat:
        listing = await chat.command("model", subcommand="list")
        assert listing.ephemeral
        assert "• **test-model**: 128,000-token window, reads images (default) ← active here" in listing.content
        assert f"• **Local Llama** (`{SECOND_MODEL}`): 8,192-token window, text only" in listing.content
        reply = await chat.command("model", subcommand="set", options={"name": "gpt-9"}, permissions=MANAGE_GUILD)
        assert reply.ephemeral and reply.content == (
            f"There is no model called “gpt-9”. Available: test-model, {SECOND_MODEL}."
        )
        assert await model_of_next_turn(chat, second_model_server, world.channel_id) == "default:test-model"


async def test_autocomplete_offers_matching_models_by_name_or_label(chat_bot, world, second_model_server) -> None:
    async with chat_bot(**two_models(second_model_server)) as chat:
        for typed, expected in (
            ("llama", [SECOND_MODEL]),
            ("LOCAL", [SECOND_MODEL]),
            ("", ["test-model", SECOND_MODEL]),
        ):
            payload = await chat.dc.send_autocomplete(
                "model", "name", typed, user=world.alice, channel_id=world.channel_id, subcommand="set"
            )
            reply = await chat.response_to(payload)
            assert reply.type == AUTOCOMPLETE_RESULT
            assert [c["value"] for c in reply.data["choices"]] == expected


async def test_a_model_removed_from_the_config_falls_back_and_show_says_so(
    chat_bot, world, second_model_server
) -> None:
    async with chat_bot(**two_models(second_model_server)) as chat:
        await chat.command("model", subcommand="set", options={"name": SECOND_MODEL}, permissions=MANAGE_GUILD)
    async with chat_bot() as chat:  # restarted without the second model
        show = await chat.command("model", subcommand="show")
        assert show.content.startswith(
            f"Model here: **test-model** (from the default). “{SECOND_MODEL}” was chosen but is no longer offered"
        )
        assert await model_of_next_turn(chat, second_model_server, world.channel_id) == "default:test-model"


async def test_a_long_model_list_fits_one_message(chat_bot, world, second_model_server) -> None:
    sections = two_models(second_model_server)
    many = tuple(
        ModelOption(f"model-{i:02d}-" + "x" * 60, label="A model with a rather long label " * 2, provider="local")
        for i in range(40)
    )
    async with chat_bot(**{**sections, "models": many}) as chat:
        reply = await chat.command("model", subcommand="list")
        assert reply.ephemeral and 1_000 < len(reply.content) <= 2_000 and reply.content.endswith("…")
