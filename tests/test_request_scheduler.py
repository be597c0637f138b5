"""The request scheduler's rules: priorities, coalescing by promotion, typing skipped under pressure,
the rate in any one-second window, and discord.py's own bucket state read correctly."""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import time

import discord
import pytest
import redis.asyncio as aioredis
from discord.http import HTTPClient

from bot.keys import Keys
from bot.request_budget import RequestBudget, burst_for
from cogs.utils.budget import LATE_S, Priority, RequestScheduler, RequestSkipped
from cogs.utils.routes import bucket_room, create_bucket, edit_bucket, typing_bucket
from tests.standins.discord_fixtures import STANDIN_TOKEN, discord_standin_fixture, running_bot  # noqa: F401
from tests.standins.discord_standin import DiscordStandin
from tests.test_request_budget import busiest_second
from tests.test_standin_discord import make_bot

pytestmark = pytest.mark.timeout(30)


def scheduler(rate: float) -> RequestScheduler:
    http = HTTPClient(asyncio.get_running_loop())  # never connects: only its (empty) bucket state is read
    return RequestScheduler(RequestBudget(None, "unused", rate=rate), http)


async def grants(s: RequestScheduler, tickets: dict[str, object]) -> list[str]:
    order: list[str] = []

    async def wait(name: str, ticket: object) -> None:
        await s.wait(ticket)  # type: ignore[arg-type]
        order.append(name)

    await asyncio.gather(*(wait(name, ticket) for name, ticket in tickets.items()))
    return order


async def send_urgent(s: RequestScheduler, count: int, stamps: list[float]) -> None:
    """``count`` requests at once through ``s``, each stamped (time.monotonic) as it goes out."""

    async def one() -> None:
        await s.send(Priority.URGENT, lambda: asyncio.sleep(0))
        stamps.append(time.monotonic())  # list.append is atomic: threads may share the list
        s.wrote()  # as discord.py's session trace reports a request written

    await asyncio.gather(*(one() for _ in range(count)))


async def congest_loop() -> None:
    """Block the event loop for 0.8 s every second, as a burst of turns congests it."""
    while True:
        await asyncio.sleep(1.0)
        time.sleep(0.8)  # noqa: ASYNC251 (blocking the loop is the point)


async def test_urgent_requests_go_before_waiting_updates_in_arrival_order() -> None:
    s = scheduler(rate=3)  # a burst of 1: one slot at a time
    tickets = {f"edit{i}": s.submit(Priority.UPDATE) for i in range(4)}
    tickets |= {f"first{i}": s.submit(Priority.URGENT) for i in range(3)}
    try:
        assert await grants(s, tickets) == ["first0", "first1", "first2", "edit0", "edit1", "edit2", "edit3"]
        assert s.granted[Priority.URGENT] == 3 and s.granted[Priority.UPDATE] == 4
    finally:
        await s.close()


async def test_complete_answers_go_before_first_texts_of_answers_still_streaming() -> None:
    """Under overload a slot is better spent on an answer that is done (one request) than on a first
    text that will need its closing edit later."""
    s = scheduler(rate=3)
    tickets = {f"streaming{i}": s.submit(Priority.FIRST) for i in range(2)}
    tickets |= {f"complete{i}": s.submit(Priority.URGENT) for i in range(2)}
    tickets["edit"] = s.submit(Priority.UPDATE)
    try:
        order = await grants(s, tickets)
        assert order == ["complete0", "complete1", "streaming0", "streaming1", "edit"]
    finally:
        await s.close()


async def test_a_promoted_update_goes_with_the_urgent_requests() -> None:
    s = scheduler(rate=3)
    tickets = {f"edit{i}": s.submit(Priority.UPDATE) for i in range(3)}
    tickets["first"] = s.submit(Priority.URGENT)
    s.promote(tickets["edit2"], Priority.URGENT)  # e.g. the answer completed: its closing edit
    try:
        assert await grants(s, tickets) == ["first", "edit2", "edit0", "edit1"]
        assert s.granted[Priority.URGENT] == 2, "a promoted ticket is granted once"
    finally:
        await s.close()


async def test_typing_is_skipped_while_anything_else_waits() -> None:
    s = scheduler(rate=20)  # a burst of 6: typing waits until 5 are back
    try:
        waiting = [s.submit(Priority.URGENT) for _ in range(3)]
        with pytest.raises(RequestSkipped):
            await s.send(Priority.TYPING, lambda: asyncio.sleep(0))
        for ticket in waiting:
            await s.wait(ticket)
        sent = await s.send(Priority.TYPING, lambda: asyncio.sleep(0, result="typed"))
        assert sent == "typed", "with nothing waiting, typing goes out (once the bucket is nearly full)"
        assert s.skipped == 1
    finally:
        await s.close()


async def test_a_cancelled_wait_gives_up_its_place() -> None:
    s = scheduler(rate=3)
    try:
        first = s.submit(Priority.URGENT)
        waiter = asyncio.create_task(s.wait(s.submit(Priority.URGENT)))
        last = s.submit(Priority.URGENT)
        await asyncio.sleep(0)
        waiter.cancel()
        order = await grants(s, {"first": first, "last": last})
        assert order == ["first", "last"] and s.granted[Priority.URGENT] == 2
    finally:
        await s.close()


async def test_no_one_second_window_gets_more_than_burst_plus_rate() -> None:
    rate = 30
    s = scheduler(rate=rate)
    assert s.budget is not None
    stamps: list[float] = []
    try:
        await send_urgent(s, 70, stamps)
    finally:
        await s.close()
    assert busiest_second(stamps) <= s.budget.burst + rate
    assert len(stamps) == 70


async def test_close_returns_when_a_write_is_reported_as_it_closes() -> None:
    """The scheduler waits for its grants to be written; a write reported just as the bot closes must
    not swallow the cancellation (asyncio.wait_for on Python 3.11 would, and close() never return)."""
    s = scheduler(rate=30)
    for ticket in [s.submit(Priority.URGENT) for _ in range(5)]:
        await s.wait(ticket)
    await asyncio.sleep(0)  # five granted, none written yet: the scheduler waits for the writes
    s.wrote()
    async with asyncio.timeout(2) as limit:
        await s.close()
    assert not limit.expired(), "close() returned on its own (not cut short by the timeout)"


async def test_off_sends_at_once() -> None:
    s = RequestScheduler(None, HTTPClient(asyncio.get_running_loop()))
    sends = (s.send(Priority.UPDATE, lambda i=i: asyncio.sleep(0, result=i)) for i in range(100))
    results = await asyncio.gather(*sends)
    assert results == list(range(100)) and not s.enabled


async def test_discordpy_bucket_state_is_read_for_the_routes_the_bot_uses(discord_standin: DiscordStandin) -> None:
    """bucket_room reads discord.py's private rate-limit state: this fails if an upgrade renames it or
    changes how it keys a channel's message routes."""
    dc = discord_standin
    dc.limits.enforce(create_message=(3, 5.0), edit_message=(3, 5.0))
    guild_id = int(dc.add_guild("Buckets")["id"])
    channel_id, other_id = (int(dc.add_text_channel(guild_id, name)["id"]) for name in ("a", "b"))
    bot = make_bot()
    async with running_bot(bot, STANDIN_TOKEN):
        channel = bot.get_channel(channel_id)
        assert isinstance(channel, discord.TextChannel)
        now = asyncio.get_running_loop().time
        assert bucket_room(bot.http, create_bucket(channel_id), now())[0] > 0, "unknown bucket: room"
        message = await channel.send("one")
        assert bucket_room(bot.http, create_bucket(channel_id), now())[0] == 2
        await channel.send("two")
        # The request that empties a bucket holds its caller until the bucket resets (discord.py's
        # Ratelimit.__aexit__): look at the state meanwhile.
        third = asyncio.create_task(channel.send("three"))
        await dc.wait_for_route("create_message", channel_id=channel_id, start=dc.requests[-1].index + 1)
        for _ in range(100):  # the client reads the answer's headers a moment after the stand-in sent it
            room, wait = bucket_room(bot.http, create_bucket(channel_id), now())
            if room == 0:
                break
            await asyncio.sleep(0.01)
        assert room == 0 and 0 < wait <= 5.0
        third.cancel()
        assert bucket_room(bot.http, create_bucket(other_id), now())[0] > 0, "buckets are per channel"
        await message.edit(content="edited")
        assert bucket_room(bot.http, edit_bucket(channel_id), now())[0] == 2, "edits have a bucket of their own"
    assert dc.limits.four_twenty_nines == 0


async def test_typing_leaves_the_burst_to_first_messages() -> None:
    """Ten conversations start together: their typing indicators must not spend the burst that their
    first messages need a moment later."""
    s = scheduler(rate=32)  # a burst of 10
    try:
        typing = [asyncio.create_task(s.send(Priority.TYPING, lambda: asyncio.sleep(0))) for _ in range(10)]
        await asyncio.sleep(0.01)
        firsts = {f"first{i}": s.submit(Priority.URGENT) for i in range(10)}
        await asyncio.wait_for(grants(s, firsts), timeout=0.2)  # all from the burst, no refill wait
        assert s.granted[Priority.TYPING] <= 2, "typing only from a nearly full bucket"
        await asyncio.gather(*typing, return_exceptions=True)
    finally:
        await s.close()


async def test_typing_from_a_bucket_one_below_full_goes_out() -> None:
    """ "Nearly full" is judged before the lease: the typing indicator's own token must not take the
    bucket below it and leave the indicator waiting until it is skipped."""
    s = scheduler(rate=30)  # a burst of 10
    try:
        await s.send(Priority.URGENT, lambda: asyncio.sleep(0))  # 9 left: still nearly full
        s.wrote()
        await s.send(Priority.TYPING, lambda: asyncio.sleep(0))
        assert s.granted[Priority.TYPING] == 1 and s.skipped == 0
        assert s.budget is not None and s.budget.granted == 2, "no token leased for it and left unspent"
    finally:
        await s.close()


async def test_a_request_written_late_is_paid_for_by_the_next_lease() -> None:
    """Granted on time but written later (its task resumed late in a congested loop), a request goes
    out next to the tokens due then: the next lease reserves a token more and leaves it unspent. A
    write with no slot waiting for it (discord.py retrying) is paid for the same way."""
    s = scheduler(rate=30)
    assert s.budget is not None
    try:
        await s.send(Priority.URGENT, lambda: asyncio.sleep(0))
        time.sleep(LATE_S + 0.05)  # noqa: ASYNC251 (the congested loop holding the write back)
        s.wrote()
        s.wrote()  # a retry: no slot was granted for it
        assert s.late_writes == 2
        await s.send(Priority.URGENT, lambda: asyncio.sleep(0))
        s.wrote()
        assert s.late_writes == 2, "written on time"
        assert s.paid == 2 and s.budget.granted == 4, "two slots and the two tokens owed"
    finally:
        await s.close()


def test_buckets_are_per_channel_and_route() -> None:
    assert len({create_bucket(1), create_bucket(2), edit_bucket(1), typing_bucket(1)}) == 4
    assert create_bucket(7) == ("POST /channels/{channel_id}/messages", "7")


def test_tokens_that_come_late_are_not_spent(redis_url: str, key_prefix: str) -> None:
    """Two processes on one budget, one of them congested: its event loop wakes its scheduler late,
    when the tokens it holds were due a while ago. Spent then, Discord would count them in one second
    with the other process's tokens due now; they are dropped instead, so no one-second window gets
    more than burst + rate (plus what LATE_S of lateness allows)."""
    rate, per_process = 32.0, 90  # the default rate
    key = Keys(key_prefix).request_budget()
    stamps: list[float] = []  # when each request went out, both processes (list.append is atomic)

    def process(congested: bool) -> int:
        """A bot process's scheduler on its own event loop (a thread here), spending the shared budget."""

        async def main() -> int:
            client = aioredis.Redis.from_url(redis_url)
            s = RequestScheduler(RequestBudget(client, key, rate=rate), HTTPClient(asyncio.get_running_loop()))
            stalls = asyncio.create_task(congest_loop()) if congested else None
            try:
                await send_urgent(s, per_process, stamps)
            finally:
                if stalls is not None:
                    stalls.cancel()
                await s.close()
                await client.aclose()
            return s.late

        return asyncio.run(main())

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        congested, steady = pool.submit(process, True), pool.submit(process, False)
        late = congested.result(timeout=60)
        assert steady.result(timeout=60) == 0
    assert late > 0, "the congested process dropped tokens that came late"
    assert len(stamps) == 2 * per_process, "every request still went out"
    assert busiest_second(stamps) <= burst_for(rate) + rate + math.ceil(rate * LATE_S)


async def test_a_congested_process_alone_on_its_token_spends_late_tokens_without_a_burst() -> None:
    """Alone on its token (the bucket in memory) a late scheduler spends its tokens when it wakes, and
    the bucket's clock moves on with it: no catch-up burst after a stall, nothing dropped."""
    rate = 32.0
    s = scheduler(rate=rate)
    assert s.budget is not None
    stamps: list[float] = []
    stalls = asyncio.create_task(congest_loop())
    try:
        await send_urgent(s, 120, stamps)
    finally:
        stalls.cancel()
        await s.close()
    assert s.late == 0 and len(stamps) == 120
    assert busiest_second(stamps) <= s.budget.burst + rate
