"""One scheduler for every REST request the bot makes on its own (replies, streaming edits,
continuation messages, typing, threads, a DM's membership check; at start-up the log-in's requests and
the gateway lookup), spending the request budget instead of finding Discord's global limit by hitting it.

Usage (any cog)::

    message = await bot.requests.reply(source, "text")              # a one-off reply, first priority
    await bot.requests.send(Priority.URGENT, lambda: channel.send(text), bucket=create_bucket(channel.id))

``send`` waits for a slot, then runs the request in the caller's own task, so nothing runs unwatched
and its errors reach the caller. Slots go out at the budget's rate (bot/request_budget.py, shared by
every process on the token through Redis), most urgent first, FIFO within a priority:

- ``URGENT``: a request carrying an answer's complete text (its closing edit, or its first message
  once the answer is complete), a one-off reply;
- ``FIRST``: the first message of an answer still streaming. Below URGENT so that under overload the
  slots go to answers that are done (one request each) rather than to first texts that will need a
  closing edit later; at low load nothing waits and the first text goes out at once;
- ``UPDATE``: an intermediate streaming edit, only when nothing urgent waits. A streaming reply keeps at
  most one waiting and sends the newest text when it is granted (coalescing); if the answer completes
  first, the ticket is promoted and carries the closing text instead (the intermediate edit is dropped);
- ``TYPING``: the typing indicator, only from a nearly full bucket (so ten conversations starting
  together post their first text at once rather than ten typing indicators), skipped when anything
  else waits or when no slot comes within a second.

A request is only granted when discord.py's own bucket for its route and channel has room (read from
discord.py's rate-limit state), so a granted slot is spent at once instead of waiting there, and
the tokens granted in any second are the requests sent in that second. At low load a slot is granted
at once. Interaction responses do not come here: Discord exempts them from the global limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from types import SimpleNamespace
from typing import TYPE_CHECKING, TypeVar

import aiohttp
import discord

from bot.request_budget import RequestBudget
from cogs.utils.routes import SCHEDULED_PATH, Bucket, bucket_room, create_bucket, typing_bucket

if TYPE_CHECKING:
    import redis.asyncio as aioredis
    from discord.http import HTTPClient

    from bot.keys import Keys
    from bot.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")
TYPING_PATIENCE_S = 1.0  # a typing indicator that cannot go out within this is pointless
TYPING_REFRESH_S = 8.0  # Discord shows "typing" for about 10 s per request
TYPING_RETRY_S = 2.0  # after a typing indicator was skipped for want of budget
# Granted requests still on their way to the socket. A congested event loop (a burst of a thousand
# conversations) can hold granted requests back and then write them together, so Discord would see
# them bunched in one second; no more slots are granted while this many are unwritten.
MAX_UNWRITTEN = 3
UNWRITTEN_TTL_S = 0.5  # a granted slot its holder never used (nothing left to send) stops counting
# A token bucket spends at most burst + rate in any second only if each token goes out on time. Tokens
# from the shared bucket that come this late (a congested event loop waking the scheduler late) are
# not spent: Discord would count them in one second with the other processes' tokens due then. Up to
# this late they are (3 more at the default 32 per second, inside the margin to 50). The bucket in
# memory has no other process to crowd: it shifts its clock instead (RequestBudget.spend_late).
LATE_S = 0.1
# A request written later than LATE_S after its token's time (its task resumed late in a congested
# loop: granted on time, on the wire 0.3 s later next to the tokens due then; or written again, a
# retry) is paid for afterwards: the next lease reserves one token more and leaves it unspent, so the
# bucket's next second makes room for the request that came late. A debt older than this no longer
# shares a second with what comes next and is forgiven.
DEBT_TTL_S = 1.0
# What discord.py's log-in sends by itself: GET /users/@me and GET /oauth2/applications/@me.
LOGIN_REQUESTS = 2


async def event_or_timeout(event: asyncio.Event, seconds: float) -> None:
    """Wait until ``event`` is set, at most ``seconds``. Not ``asyncio.wait_for``: on Python 3.11 it
    swallows a cancellation that comes as the event is set, and the cancelled task (the scheduler at
    close, a reply's pump) would carry on as if nothing had happened."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()


class Priority(enum.IntEnum):
    URGENT = 0  # a request that carries an answer's final text, a one-off reply
    FIRST = 1  # the first message of an answer still streaming
    UPDATE = 2
    TYPING = 3


class RequestSkipped(Exception):
    """The request was not sent: the budget had no room for something this unimportant (typing)."""


class Ticket:
    """A place in the queue; ``await scheduler.wait(ticket)`` returns once it is granted."""

    __slots__ = ("bucket", "deadline", "granted", "priority")

    def __init__(self, priority: Priority, bucket: Bucket | None, deadline: float | None) -> None:
        self.priority = priority
        self.bucket = bucket
        self.deadline = deadline
        self.granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def promote(self, priority: Priority, scheduler: RequestScheduler) -> None:
        """Move a waiting ticket up (e.g. an intermediate edit that now carries the closing text)."""
        if not self.granted.done() and priority < self.priority:
            self.priority = priority
            scheduler._enqueue(self)  # the old entry is skipped: its priority no longer matches


class RequestScheduler:
    """Grants REST requests slots from the budget; ``budget`` None sends everything at once (off)."""

    def __init__(self, budget: RequestBudget | None, http: HTTPClient) -> None:
        self.budget = budget
        self.http = http
        self._queues: list[deque[Ticket]] = [deque() for _ in Priority]
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.granted = [0] * len(Priority)  # slots granted per priority
        self.skipped = 0  # typing indicators not sent
        self.late = 0  # tokens not spent because they came later than LATE_S after their time
        self.late_writes = 0  # requests written later than LATE_S after their token's time
        self.paid = 0  # tokens leased and left unspent for them
        # (when granted, when due) of each granted slot until its request is written (time.monotonic())
        self._unwritten: deque[tuple[float, float]] = deque()
        self._debt: deque[float] = deque()  # when each late request was written, until paid for
        self._written = asyncio.Event()
        if budget is not None and getattr(http, "http_trace", None) is None:
            http.http_trace = self._trace()  # read by discord.py when it opens its session (login)

    def _trace(self) -> aiohttp.TraceConfig:
        """Tells the scheduler when a request of the kinds it grants has been written to the socket."""
        trace = aiohttp.TraceConfig()

        async def written(session: object, context: SimpleNamespace, params: object) -> None:
            url = getattr(params, "url", None)
            if url is not None and SCHEDULED_PATH.search(url.path):
                self.wrote()

        trace.on_request_headers_sent.append(written)
        return trace

    def wrote(self) -> None:
        """A granted request has been written to its socket (called by discord.py's session trace);
        one written late, or with no slot waiting for it (a retry), is owed to the budget."""
        now = time.monotonic()
        due = self._unwritten.popleft()[1] if self._unwritten else None
        if due is None or now - due > LATE_S:
            self.late_writes += 1
            self._debt.append(now)
        self._written.set()

    def _writes_pending(self, now: float) -> bool:
        while self._unwritten and now - self._unwritten[0][0] > UNWRITTEN_TTL_S:
            self._unwritten.popleft()
        return len(self._unwritten) >= MAX_UNWRITTEN

    def _owed(self, now: float) -> int:
        while self._debt and now - self._debt[0] > DEBT_TTL_S:
            self._debt.popleft()
        return len(self._debt)

    def _pay(self, tokens: int) -> int:
        """Pay the debt from ``tokens`` leased; returns the tokens left for requests."""
        paid = min(tokens, len(self._debt))
        for _ in range(paid):
            self._debt.popleft()
        self.paid += paid
        return tokens - paid

    @property
    def enabled(self) -> bool:
        return self.budget is not None

    @property
    def waiting(self) -> int:
        return sum(1 for queue in self._queues for t in queue if not t.granted.done())

    # ---- the API ------------------------------------------------------------------------------
    async def send(self, priority: Priority, request: Callable[[], Awaitable[T]], *, bucket: Bucket | None = None) -> T:
        """Wait for a slot, then run ``request()`` here; RequestSkipped if a TYPING slot never came."""
        await self.wait(self.submit(priority, bucket=bucket))
        return await request()

    async def reply(self, source: discord.Message, text: str) -> discord.Message:
        """A one-off reply to ``source`` at the first priority (it pings no one: the bot's allowed_mentions)."""
        return await self.send(
            Priority.URGENT,
            lambda: source.reply(text, mention_author=False),
            bucket=create_bucket(source.channel.id),
        )

    async def post(self, channel: discord.abc.Messageable, channel_id: int, text: str) -> discord.Message:
        """A one-off message in a channel at the first priority."""
        return await self.send(Priority.URGENT, lambda: channel.send(text), bucket=create_bucket(channel_id))

    async def admit(self, requests: int) -> None:
        """Wait for slots for requests that discord.py sends by itself (the log-in's): a process that
        starts beside busy ones on the same token adds nothing to their second."""
        tickets = [self.submit(Priority.URGENT) for _ in range(requests)]
        await asyncio.gather(*(self.wait(ticket) for ticket in tickets))

    @contextlib.asynccontextmanager
    async def typing(self, channel: discord.abc.Messageable, channel_id: int) -> AsyncIterator[None]:
        """Show "typing" in a channel while the block runs, through the budget (skipped when it is
        short); the indicator's task is stopped and awaited when the block ends."""
        task = asyncio.create_task(self.keep_typing(channel, channel_id))
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def keep_typing(self, channel: discord.abc.Messageable, channel_id: int) -> None:
        """Typing every TYPING_REFRESH_S until cancelled; a failed indicator ends it (it is cosmetic)."""
        try:
            while True:
                try:
                    await self.send(Priority.TYPING, channel.typing, bucket=typing_bucket(channel_id))
                except RequestSkipped:  # the budget is short: messages come first
                    await asyncio.sleep(TYPING_RETRY_S)
                else:
                    await asyncio.sleep(TYPING_REFRESH_S)
        except discord.HTTPException as exc:
            log.debug("Typing indicator failed in %s: %s", channel_id, exc)

    def submit(self, priority: Priority, *, bucket: Bucket | None = None) -> Ticket:
        """Queue for a slot without waiting yet (see Ticket.promote); TYPING is refused when busy."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TYPING_PATIENCE_S if priority is Priority.TYPING else None
        ticket = Ticket(priority, bucket, deadline)
        if self.budget is None:
            ticket.granted.set_result(None)
        elif priority is Priority.TYPING and any(self._queues[p] for p in Priority if p is not Priority.TYPING):
            self._skip(ticket)
        else:
            self._enqueue(ticket)
        return ticket

    async def wait(self, ticket: Ticket) -> None:
        try:
            await ticket.granted
        except asyncio.CancelledError:
            ticket.granted.cancel()  # the waiter gave up: its ticket leaves the queue
            raise

    def promote(self, ticket: Ticket, priority: Priority) -> None:
        ticket.promote(priority, self)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for queue in self._queues:
            for ticket in queue:
                ticket.granted.cancel()
            queue.clear()
        if self.budget is not None:
            await self.budget.close()

    # ---- the dispatcher ------------------------------------------------------------------------
    def _enqueue(self, ticket: Ticket) -> None:
        self._queues[ticket.priority].append(ticket)
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="discord-request-scheduler")

    def _skip(self, ticket: Ticket) -> None:
        self.skipped += 1
        ticket.granted.set_exception(RequestSkipped())
        ticket.granted.exception()  # retrieved here: a waiter that went away must not log it

    async def _run(self) -> None:
        assert self.budget is not None
        while True:
            try:
                if self._writes_pending(time.monotonic()):
                    self._written.clear()
                    await event_or_timeout(self._written, UNWRITTEN_TTL_S)
                    continue
                # Judged once, before the lease: the lease itself takes the bucket below "nearly full".
                spare = self.budget.nearly_full()
                ready, soonest = self._pick(self.budget.burst, take=False, spare=spare)
                if not ready:
                    self._wake.clear()
                    if soonest is None and not any(self._queues):
                        await self._wake.wait()
                    else:
                        await event_or_timeout(self._wake, soonest if soonest is not None else 0.05)
                    continue
                # ``due`` is when the bucket's refill covers the tokens (placed on this process's
                # clock from Redis's), however long the lease took to be asked and read.
                granted, due = await self.budget.lease(len(ready) + self._owed(time.monotonic()))
                if time.monotonic() < due:
                    await asyncio.sleep(due - time.monotonic())
                late = time.monotonic() - due
                granted = self._pay(granted)  # the debt first: its requests went out already
                if late > LATE_S and not self.budget.spend_late(late):
                    self.late += granted
                    log.debug("Discord request budget: %d tokens came %.2f s late, not spent", granted, late)
                    continue
                # Picked again: meanwhile a ticket may have been promoted, cancelled or added. A token
                # nobody is ready for is not kept: spent later, it could crowd a later second.
                for ticket in self._pick(granted, take=True, spare=spare)[0]:
                    self.granted[ticket.priority] += 1
                    self._unwritten.append((time.monotonic(), due))
                    ticket.granted.set_result(None)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug here must not leave every request waiting forever
                log.exception("Discord request scheduler failed; carrying on")
                await asyncio.sleep(0.1)

    def _pick(self, n: int, *, take: bool, spare: bool) -> tuple[list[Ticket], float | None]:
        """Up to ``n`` tickets whose buckets have room, most urgent first (removed if ``take``), and
        the seconds until the soonest blocked one may go; a typing indicator only if ``spare``."""
        loop_time = asyncio.get_running_loop().time()
        picked: list[Ticket] = []
        soonest: float | None = None
        room: dict[Bucket, int] = {}
        for priority, queue in enumerate(self._queues):
            keep: deque[Ticket] = deque()
            while queue:
                if len(picked) >= n:
                    keep.extend(queue)
                    queue.clear()
                    break
                ticket = queue.popleft()
                if ticket.granted.done() or ticket.priority != priority:
                    continue  # cancelled, or promoted (queued again at its new priority)
                if ticket.deadline is not None and loop_time > ticket.deadline:
                    self._skip(ticket)
                    continue
                if ticket.priority is Priority.TYPING:
                    if not spare:
                        keep.append(ticket)  # waits (until its deadline) for a nearly full bucket
                        continue
                    spare = False  # one per lease: the next one looks at the bucket again
                left, wait = self._room(ticket.bucket, room, loop_time)
                if left > 0:
                    picked.append(ticket)
                    if ticket.bucket is not None:
                        room[ticket.bucket] = left - 1
                    if take:
                        continue
                else:
                    soonest = wait if soonest is None else min(soonest, wait)
                keep.append(ticket)
            self._queues[priority] = keep
        return picked, soonest

    def _room(self, bucket: Bucket | None, room: dict[Bucket, int], now: float) -> tuple[int, float]:
        if bucket is None:
            return 1, 0.0
        if bucket in room:
            return room[bucket], 0.05
        return bucket_room(self.http, bucket, now)


def build_scheduler(settings: Settings, redis: aioredis.Redis, keys: Keys, http: HTTPClient) -> RequestScheduler:
    """The bot's scheduler: off when ``[discord] requests_per_second`` is 0. A process that runs only
    some of the shards (SHARD_IDS) shares the budget with the others through Redis; one that runs them
    all is alone on its token and keeps the bucket in memory."""
    rate = settings.discord.requests_per_second
    if rate <= 0:
        return RequestScheduler(None, http)
    secrets = settings.secrets
    shared = secrets.shard_ids is not None and secrets.shard_count is not None
    share = len(secrets.shard_ids) / secrets.shard_count if shared else 1.0  # type: ignore[arg-type]
    budget = RequestBudget(redis if shared else None, keys.request_budget(), rate=rate, share=share)
    return RequestScheduler(budget, http)
