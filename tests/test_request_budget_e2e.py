"""The bot's requests under Discord's real limits (the stand-in enforcing them): no 429 at any load,
the first message and the closing edit first, intermediate edits coalesced, typing skipped, and a
failed edit that stops the streaming into a reply without losing the turn."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bot.request_budget import burst_for
from tests.standins.discord_limits import EXEMPT_ROUTES
from tests.standins.model_server import Reply

pytestmark = pytest.mark.timeout(90)

STREAMED = " ".join(f"word{i}" for i in range(40))  # ~280 characters
OWN_ROUTES = ("create_message", "edit_message", "typing")


def own_requests(dc, channel_id: int) -> list:
    return [r for r in dc.requests if r.channel_id == channel_id and r.route in OWN_ROUTES]


async def test_over_budget_every_answer_lands_complete_without_a_429(chat_bot, world) -> None:
    rate, conversations = 5.0, 15
    async with chat_bot(discord={"requests_per_second": rate}, stream={"edit_interval_s": 0.05}) as chat:
        dc = chat.dc
        dc.limits.enforce()
        channels = [int(dc.add_text_channel(world.guild_id, f"busy-{i}")["id"]) for i in range(conversations)]
        # ~1 s of streaming each: unpaced, ~20 edits per answer
        chat.model.responder = lambda body: Reply(STREAMED, chunk_size=14, chunk_delay=0.05)
        for channel_id in channels:
            await chat.mention(channel_id, "tell me")
        await asyncio.gather(*(chat.answer(c, STREAMED, timeout=60) for c in channels))
        assert dc.limits.four_twenty_nines == 0
        assert dc.limits.peak_per_second <= rate + burst_for(rate)
        for channel_id in channels:
            [message] = dc.bot_messages(channel_id)
            assert message["content"] == STREAMED
            assert [t["content"] for t in await chat.stored_turns(channel_id)] == ["tell me", STREAMED]
            creates = [r for r in own_requests(dc, channel_id) if r.route == "create_message"]
            assert len(creates) == 1, "one message per answer"
        sent = sum(len(own_requests(dc, c)) for c in channels)
        assert sent / conversations <= 3, f"{sent / conversations:.1f} requests per turn: edits coalesced"
        typing = sum(1 for c in channels for r in own_requests(dc, c) if r.route == "typing")
        assert typing < conversations / 2, f"typing gave way to the answers under pressure ({typing} sent)"


async def test_an_answer_complete_before_its_slot_is_posted_once(chat_bot, world) -> None:
    async with chat_bot(discord={"requests_per_second": 2.0}) as chat:
        dc = chat.dc
        dc.limits.enforce()
        channels = [int(dc.add_text_channel(world.guild_id, f"quick-{i}")["id"]) for i in range(6)]
        for i, channel_id in enumerate(channels):
            await chat.mention(channel_id, f"quick {i}")
        await asyncio.gather(*(chat.answer(c, f"echo: quick {i}", timeout=30) for i, c in enumerate(channels)))
        for channel_id in channels:
            sends = [r.route for r in own_requests(dc, channel_id) if r.route != "typing"]
            assert sends == ["create_message"], "complete by its first slot: one request, no edit"
        assert dc.limits.four_twenty_nines == 0


async def test_at_low_load_nothing_waits(chat_bot, world) -> None:
    """One answer at a time: the first text at once, then throttled edits, then the closing edit."""
    async with chat_bot(stream={"edit_interval_s": 0.2}) as chat:
        chat.dc.limits.enforce()
        budget = chat.bot.requests.budget
        assert budget is not None
        async with asyncio.timeout(5):  # low load: the log-in's slots refilled (a few tens of ms)
            while not budget.nearly_full():  # noqa: ASYNC110 (the bucket's state, polled)
                await asyncio.sleep(0.01)
        chat.model.script(Reply(STREAMED, chunk_size=14, chunk_delay=0.03))
        await chat.mention(world.channel_id, "stream")
        await chat.answer(world.channel_id, STREAMED)
        routes = [r.route for r in own_requests(chat.dc, world.channel_id)]
        assert routes[0] == "typing" and routes[1] == "create_message"
        assert routes.count("edit_message") >= 2, "intermediate edits went out: nothing was short"
        assert chat.bot.requests.skipped == 0 and chat.dc.limits.four_twenty_nines == 0


async def test_every_request_the_bot_sends_on_its_own_spends_the_budget(chat_bot, world) -> None:
    """What Discord counts against the global limit is what the budget granted: the log-in's requests,
    the gateway lookup, a DM's membership check and an answer's messages, edits and typing alike."""
    async with chat_bot(access={"dms": "members"}, stream={"edit_interval_s": 0.05}) as chat:
        chat.model.script(Reply(STREAMED, chunk_size=14, chunk_delay=0.03))
        await chat.dc.post_message(world.dm_channel_id, world.alice, "stream")
        await chat.answer(world.dm_channel_id, STREAMED)
        counted = [r.route for r in chat.dc.requests if r.route not in EXEMPT_ROUTES]
        assert {"get_current_user", "get_application", "get_member", "create_message"} <= set(counted), counted
        # A slot may go unused (a typing indicator stopped as the answer completed), never the reverse.
        assert len(counted) <= sum(chat.bot.requests.granted), counted


def moderator_deletes(chat) -> None:
    message = chat.dc.bot_messages(chat.world.channel_id)[0]
    chat.dc.rest.messages.delete(chat.dc.world.messages[int(message["id"])])


@pytest.mark.parametrize("fault", ["deleted", 403, 503])
async def test_a_failed_edit_stops_the_streaming_and_the_turn_completes(chat_bot, world, caplog, fault) -> None:
    async with chat_bot(stream={"edit_interval_s": 0.05}) as chat:
        dc = chat.dc
        chat.model.script(Reply(STREAMED, chunk_size=14, chunk_delay=0.05))
        with caplog.at_level(logging.WARNING):
            await chat.mention(world.channel_id, "stream")
            first = await dc.wait_for_route("create_message", channel_id=world.channel_id)
            if fault == "deleted":
                moderator_deletes(chat)
            else:
                dc.fail("PATCH", "edit_message", fault, {"message": "no", "code": 50001}, times=-1)
            failed = await dc.wait_for(lambda r: r.route == "edit_message" and r.status >= 400, start=first.index)
            await chat.settled(world.channel_id)
            await asyncio.sleep(0.2)  # time for any stray edit a broken reply would still send
        stored = await chat.stored_turns(world.channel_id)
        assert [t["content"] for t in stored] == ["stream", STREAMED], "the turn completed and was stored"
        later = [r for r in dc.requests[failed.index + 1 :] if r.route in ("edit_message", "create_message")]
        assert later == [], "nothing more is sent into a broken reply"
        stopped = [r for r in caplog.records if "Stopped streaming" in r.getMessage()]
        assert len(stopped) == 1, "logged once"
        assert "never retrieved" not in caplog.text and "Traceback" not in caplog.text
        await chat.mention(world.thread_id, "still there?")
        await chat.answer(world.thread_id, "echo: still there?")
