"""Load through discord.py and the stand-in Discord: a burst in one channel, and many channels at once."""

from __future__ import annotations

import asyncio
import gc

import pytest

from bot.conversation import ChatRequest, TurnDone
from tests.standins.model_server import Reply

BURST = 200


async def test_a_burst_in_one_channel_is_answered_in_order_without_loss(chat_bot, world) -> None:
    async with chat_bot(history={"max_messages": 2 * BURST}) as chat:
        # Discord's global limit; the channel's message bucket is widened (at Discord's 5 per 5 s,
        # 200 answers in one channel take 200 s: that is Discord's pace, not something to test).
        chat.dc.limits.enforce(create_message=(BURST, 5.0))
        questions = [await chat.mention(world.channel_id, f"message {i}") for i in range(BURST)]
        await chat.answer(world.channel_id, f"echo: message {BURST - 1}", timeout=30)
        answers = chat.dc.bot_messages(world.channel_id)
        assert len(answers) == BURST, "one answer per message, none lost, none doubled"
        assert chat.dc.limits.four_twenty_nines == 0
        for question, answer in zip(questions, answers, strict=True):
            assert int(answer["message_reference"]["message_id"]) == int(question["id"])
            assert answer["content"] == f"echo: {question['content'].split('> ', 1)[1]}"
        users = [t["content"] for t in await chat.stored_turns(world.channel_id) if t["role"] == "user"]
        assert users == [f"message {i}" for i in range(BURST)], "history in message order"


async def test_many_channels_are_answered_concurrently(chat_bot, world) -> None:
    channels = 200
    async with chat_bot() as chat:
        chat.dc.limits.enforce()  # Discord's limits: 50 requests per second in all
        ids = [int(chat.dc.add_text_channel(world.guild_id, f"room-{i}")["id"]) for i in range(channels)]
        chat.model.responder = lambda body: Reply(f"echo: {body['messages'][-1]['content']}", first_chunk_delay=0.5)
        for i, channel_id in enumerate(ids):
            await chat.mention(channel_id, f"hello room {i}")
        await asyncio.gather(*(chat.answer(c, f"echo: hello room {i}", timeout=20) for i, c in enumerate(ids)))
        arrivals = sorted(r.arrived_at for r in chat.model.requests)
        assert len(arrivals) == channels
        assert arrivals[-1] - arrivals[0] < 0.5, "every request was sent before the first answer came back"
        assert chat.dc.limits.four_twenty_nines == 0, "the answers queued for the budget instead of hitting it"


@pytest.mark.timeout(180)
async def test_memory_stays_flat_over_many_turns(services_factory, make_settings, model_server) -> None:
    """10,000 turns over 10,000 conversations: the bot's caches stay bounded and the number
    of live Python objects does not grow with the number of turns."""
    services = services_factory(make_settings(history={"cache_conversations": 100}))

    async def turns(start: int, count: int) -> int:
        for i in range(start, start + count):
            request = ChatRequest(
                conversation_id=1_000_000 + i,
                guild_id=1,
                author_id=i % 50,
                author_name=f"user{i % 50}",
                message_id=5_000_000 + i,
                text=f"turn {i}",
            )
            async for event in services.chat.turn(request):
                if isinstance(event, TurnDone):
                    assert event.text == f"echo: turn {i}"
        model_server.reset()  # the stand-in records every request: not the bot's memory
        gc.collect()
        return len(gc.get_objects())

    await turns(0, 1000)  # warm-up: caches fill to their bounds, pools and interned objects settle
    after_2000 = await turns(1000, 1000)
    after_10000 = await turns(2000, 8000)
    growth = after_10000 - after_2000
    assert growth < 1000, f"{growth} more live objects after 8,000 more turns: something keeps per-turn state"
    assert len(services.history._cache) == 100
    assert len(services.chat.locks) == 0
