"""Cost control through discord.py and the stand-in Discord: duplicates, budgets, rate limits, /usage."""

from __future__ import annotations

import contextlib

from tests.harness import MANAGE_GUILD, Chat, start_bot
from tests.standins.model_server import Reply


async def test_the_same_message_delivered_twice_is_answered_once(chat_bot, world) -> None:
    async with chat_bot() as chat:
        message = await chat.mention(world.channel_id, "hello once")
        await chat.answer(world.channel_id, "echo: hello once")
        await chat.dc.dispatch("MESSAGE_CREATE", message)  # a gateway replay
        await chat.mention(world.channel_id, "next")  # same conversation: handled after the replay
        await chat.answer(world.channel_id, "echo: next")
        assert [r.messages[-1]["content"] for r in chat.model.requests] == ["hello once", "next"]
        assert len(chat.dc.bot_messages(world.channel_id)) == 2


async def test_two_bot_processes_with_one_token_answer_once(
    discord_standin, model_server, world, make_settings
) -> None:
    discord_standin.gateway.allow_concurrent_sessions = True
    settings = make_settings()
    async with contextlib.AsyncExitStack() as stack:
        first = await stack.enter_async_context(start_bot(settings, discord_standin))
        await stack.enter_async_context(start_bot(settings, discord_standin))
        chat = Chat(discord_standin, model_server, first, world)
        for text in ("one", "two", "three"):
            await chat.mention(world.channel_id, text)
            await chat.answer(world.channel_id, f"echo: {text}")
        assert [r.messages[-1]["content"] for r in model_server.requests] == ["one", "two", "three"]
        assert len(discord_standin.bot_messages(world.channel_id)) == 3


async def test_a_spent_budget_gets_a_polite_refusal_without_a_model_request(chat_bot, world) -> None:
    async with chat_bot(limits={"guild_daily_tokens": 50}) as chat:
        chat.model.script(Reply("expensive", usage=(45, 10)))
        await chat.mention(world.channel_id, "first")
        await chat.answer(world.channel_id, "expensive")
        await chat.mention(world.channel_id, "second")
        refusal = await chat.dc.wait_for(lambda r: r.route == "create_message" and "budget" in r.json["content"])
        assert refusal.json["content"].startswith("This server's daily budget for the model is used up. It resets <t:")
        assert len(chat.model.requests) == 1
        typing = [r for r in chat.dc.requests if r.route == "typing"]
        assert len(typing) == 1, "no typing indicator for a refused turn"


async def test_a_rate_limited_user_is_told_once_per_window(chat_bot, world) -> None:
    async with chat_bot(limits={"user_turns": 1, "user_window_s": 600}) as chat:
        await chat.mention(world.channel_id, "one")
        await chat.answer(world.channel_id, "echo: one")
        await chat.mention(world.channel_id, "two")
        await chat.mention(world.channel_id, "three")
        await chat.mention(world.channel_id, "from bob", author=world.bob)  # queued after alice's
        await chat.answer(world.channel_id, "echo: from bob")
        contents = [m["content"] for m in chat.dc.bot_messages(world.channel_id)]
        assert contents[0] == "echo: one" and contents[-1] == "echo: from bob"
        [notice] = contents[1:-1]
        assert notice.startswith("You're sending messages faster than I can answer. Please wait")
        assert [r.messages[-1]["content"] for r in chat.model.requests] == ["one", "from bob"]


async def test_usage_command_reports_tokens_and_cost(chat_bot, world) -> None:
    prices = ({"model": "test-model", "input_per_million": 1000.0, "output_per_million": 2000.0},)
    from bot.settings import Price

    async with chat_bot(usage={"prices": tuple(Price(**p) for p in prices)}) as chat:
        chat.model.script(Reply("a", usage=(100, 20)), Reply("b", usage=(50, 5)))
        await chat.mention(world.channel_id, "one")
        await chat.answer(world.channel_id, "a")
        await chat.mention(world.channel_id, "two", author=world.bob)
        await chat.answer(world.channel_id, "b")

        mine = await chat.command("usage", options={"days": 1})
        assert mine.ephemeral
        assert "Today: 120 tokens (100 in, 20 out), 1 request, about $0.1400" in mine.content

        refused = await chat.command("usage", options={"scope": "guild"}, permissions=0)
        assert refused.content == "You need the Manage Server permission to do that."
        guild = await chat.command("usage", options={"scope": "guild"}, permissions=MANAGE_GUILD)
        assert "This server's usage" in guild.content
        assert "Today: 175 tokens (150 in, 25 out), 2 requests, about $0.2000" in guild.content

        in_dm = await chat.command("usage", options={"scope": "guild"}, channel_id=world.dm_channel_id)
        assert in_dm.content == "This command only works in a server."
