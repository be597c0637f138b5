"""Long memory: stored turns that fall out of the window are folded into a rolling summary.

The summary is stored with the conversation (same hash tag and TTL, cleared by /forget), read in the
turn's one read round trip and put in the prompt right after the system prompt. Turns it covers are
not sent again. Folding is one model call made after the answer was delivered and stored, in a task
of its own, so never on the user's path; its write is its own round trip. When it fails it is logged
and tried again on a later turn: the turns it would have covered stay stored and are still read (the
history keeps them past ``max_messages`` until they are folded, up to twice that).

Which turns a summary covers is recorded as the id of the last user message folded in: Discord ids
grow with time and a conversation's turns are stored in message order, so every later turn has a
larger id.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from bot.batch import Batch
from bot.errors import BotError
from bot.history import Turn, Window
from bot.keys import Keys
from bot.llm import ChatModel, Finish, Usage
from bot.models import ServedModel
from bot.usage import UsageStore

log = logging.getLogger(__name__)

# Usage the bot spends on its own behalf (summaries) is recorded under the guild and this user id,
# so /usage for a server includes it and no member's own budget pays for it.
BOT_OWN_USER_ID = 0

INSTRUCTIONS = (
    "You keep the running summary of a Discord conversation for an assistant that can no longer see its "
    "older messages. Rewrite the summary so it also covers the new messages: who said what that matters, "
    "facts, names, decisions, preferences and open questions. Plain prose, no preamble, at most about "
    "{words} words. Answer with the summary only."
)
WRITTEN_REMEMBERED = 4_096
PROMPT_HEADING = "Summary of the earlier part of this conversation (older messages are not shown):"

# Only write a summary that covers more than the stored one: a stale task never overwrites a newer one.
# KEYS: summary. ARGV: the summary's JSON, the message id it covers through, ttl ms.
WRITE_LUA = """
local current = redis.call('GET', KEYS[1])
if current and tonumber(cjson.decode(current)['through']) >= tonumber(ARGV[2]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1
"""


@dataclass(frozen=True, slots=True)
class Summary:
    text: str
    tokens: int  # as a prompt message, counted once when written
    through: int  # the id of the last user message it covers

    def to_json(self) -> str:
        return json.dumps({"text": self.text, "tokens": self.tokens, "through": self.through}, ensure_ascii=False)

    @classmethod
    def from_json(cls, raw: bytes | str) -> Summary:
        return cls(**json.loads(raw))

    def to_message(self) -> dict[str, Any]:
        return {"role": "system", "content": f"{PROMPT_HEADING}\n{self.text}"}


def first_unsummarized(window: Window, summary: Summary | None) -> int:
    """The index of the first stored turn the summary does not cover."""
    if summary is None:
        return 0
    for index, turn in enumerate(window.turns):
        if turn.role == "user" and turn.message_id is not None and turn.message_id > summary.through:
            return index
    return len(window.turns)


@dataclass(frozen=True, slots=True)
class Fold:
    """Turns to fold into the summary after this turn."""

    turns: tuple[Turn, ...]
    through: int


def plan_fold(window: Window, first: int, shown_from: int, max_messages: int, input_budget: int) -> Fold | None:
    """Fold when a stored turn the summary does not cover was left out of this turn's prompt, or will be
    trimmed past ``max_messages`` now that the new exchange is stored. Then fold at least those and at
    least half of the turns not yet covered (so the next fold is some turns away), whole exchanges only,
    and no more than ``input_budget`` tokens of them."""
    turns = window.turns
    overflow = len(turns) + 2 - max_messages
    if shown_from <= first and overflow <= first:
        return None
    cut = max(shown_from, overflow, first + (len(turns) - first + 1) // 2)
    while cut < len(turns) and turns[cut].role != "user":  # an answer goes with its question
        cut += 1
    used = 0
    folded: list[Turn] = []
    for turn in turns[first:cut]:
        if used + turn.tokens > input_budget and folded:
            break
        used += turn.tokens
        folded.append(turn)
    while folded and folded[-1].role == "user":  # end on a whole exchange
        folded.pop()
    through = max((t.message_id for t in folded if t.role == "user" and t.message_id is not None), default=None)
    return Fold(tuple(folded), through) if through is not None else None


def summary_request(previous: Summary | None, turns: Sequence[Turn], max_tokens: int) -> list[dict[str, Any]]:
    """The messages of the summary call: the instructions, the summary so far and the new turns."""
    lines = [
        f"{turn.name or 'User'}: {turn.placeholder_text()}" if turn.role == "user" else f"Assistant: {turn.content}"
        for turn in turns
    ]
    so_far = previous.text if previous else "(none yet)"
    return [
        {"role": "system", "content": INSTRUCTIONS.format(words=max(20, max_tokens * 3 // 4))},
        {"role": "user", "content": f"Summary so far:\n{so_far}\n\nNew messages:\n" + "\n".join(lines)},
    ]


class SummaryStore:
    def __init__(self, keys: Keys, *, ttl_days: float) -> None:
        self.keys = keys
        self.ttl_ms = int(ttl_days * 86_400_000)

    def queue_read(self, conversation_id: int) -> Callable[[Pipeline], Callable[[list[Any]], Summary | None]]:
        """For ``Batch.add``: the conversation's summary, if it has one."""

        def queue(pipe: Pipeline) -> Callable[[list[Any]], Summary | None]:
            pipe.get(self.keys.summary(conversation_id))
            return lambda replies: Summary.from_json(replies[0]) if replies[0] else None

        return queue

    def queue_write(self, conversation_id: int, summary: Summary) -> Callable[[Pipeline], Callable[[list[Any]], bool]]:
        """For ``Batch.add``: store ``summary`` unless the stored one already covers as much."""

        def queue(pipe: Pipeline) -> Callable[[list[Any]], bool]:
            pipe.eval(WRITE_LUA, 1, self.keys.summary(conversation_id), summary.to_json(), summary.through, self.ttl_ms)
            return lambda replies: replies[0] == 1

        return queue


@dataclass(frozen=True, slots=True)
class SummaryJob:
    conversation_id: int
    guild_id: int | None
    day: str
    previous: Summary | None
    fold: Fold


class Summarizer:
    """Runs folds in the background, one at a time per conversation."""

    def __init__(
        self,
        redis: aioredis.Redis,
        store: SummaryStore,
        usage: UsageStore,
        *,
        max_tokens: int,
        model: Callable[[ServedModel], ServedModel],
        observe_redis: Callable[[float], None] | None = None,
    ) -> None:
        self.redis = redis
        self.store = store
        self.usage = usage
        self.max_tokens = max_tokens
        self.model = model  # the summary model, given the model that answered the turn
        self.observe_redis = observe_redis
        self._running: dict[int, asyncio.Task[None]] = {}
        # What the latest fold wrote, per conversation (bounded): a turn that read the summary before
        # it landed would fold the same turns again.
        self._written: OrderedDict[int, int] = OrderedDict()

    def busy(self, conversation_id: int) -> bool:
        return conversation_id in self._running

    def start(self, job: SummaryJob, served: ServedModel) -> None:
        """Fold with ``served`` in a task of its own (nothing waits for it); skipped while one runs for
        the conversation."""
        if self.busy(job.conversation_id):
            return
        read_through = job.previous.through if job.previous else 0
        if self._written.get(job.conversation_id, 0) > read_through:
            return  # this turn read an older summary: the next one reads the new one
        task = asyncio.create_task(self._run(job, served))
        self._running[job.conversation_id] = task
        task.add_done_callback(lambda _: self._running.pop(job.conversation_id, None))

    async def cancel(self, conversation_id: int) -> None:
        """Stop a fold in progress (``/forget``: its summary must not outlive the history)."""
        task = self._running.get(conversation_id)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def close(self) -> None:
        """Stop every fold in progress (shutdown: the model client is about to close)."""
        for conversation_id in list(self._running):
            await self.cancel(conversation_id)

    async def wait(self) -> None:
        """Let every fold in progress finish (tests, shutdown)."""
        while self._running:
            await asyncio.gather(*self._running.values(), return_exceptions=True)

    async def _run(self, job: SummaryJob, served: ServedModel) -> None:
        try:
            text, usage = await self._ask(served, job)
            message = Summary(text, 0, job.fold.through).to_message()["content"]
            summary = Summary(text, served.counter.message(message), job.fold.through)
            batch = Batch(self.redis, observe=self.observe_redis)  # the fold's own write round trip
            batch.add(self.store.queue_write(job.conversation_id, summary))
            batch.add(
                self.usage.queue_record(
                    guild_id=job.guild_id, user_id=BOT_OWN_USER_ID, model=served.name, day=job.day, usage=usage
                )
            )
            await batch.execute()
            self._written[job.conversation_id] = summary.through
            self._written.move_to_end(job.conversation_id)
            while len(self._written) > WRITTEN_REMEMBERED:
                self._written.popitem(last=False)
        except BotError as exc:  # the model or Redis failed: the turns stay, a later turn tries again
            log.warning("Summary of conversation %s failed (tried again later): %s", job.conversation_id, exc)
        except Exception:  # never let a background task die silently
            log.exception("Summary of conversation %s failed", job.conversation_id)

    async def _ask(self, served: ServedModel, job: SummaryJob) -> tuple[str, Usage]:
        chat = ChatModel(served.chat.client, dataclasses.replace(served.settings, max_reply_tokens=self.max_tokens))
        messages = summary_request(job.previous, job.fold.turns, self.max_tokens)
        parts: list[str] = []
        usage: Usage | None = None
        async for event in chat.stream(messages):
            if isinstance(event, Finish):
                usage = event.usage
            else:
                parts.append(event)
        text = "".join(parts).strip()
        if not text:
            raise BotError("the summary came back empty")
        tokens = served.counter.encoding.encode(text, disallowed_special=())
        if len(tokens) > self.max_tokens:  # a server that ignored the reply limit: keep what was asked for
            text = served.counter.encoding.decode(tokens[: self.max_tokens]).strip()
        prompt = sum(served.counter.message(str(m["content"])) for m in messages)
        return text, usage or Usage(prompt, served.counter.count(text), estimated=True)
