"""The playground's side of the engine: a browser session as a conversation, with no web code.

Every browser session is one conversation and one persona choice in the playground's own key space
(``Keys.playground``), so it survives a restart and never meets a Discord conversation. The session
stands where Discord has a guild and a channel: the persona store, the turn and the budgets see it as
both. All playground sessions share one user id, so ``[limits]`` (the user's budget and rate limit)
cover everything typed into the playground together.

A browser session may never come back, so its persona and model choices expire like its history
(``[history] ttl_days`` after the session's last message or choice), where a guild's are kept.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from bot.batch import Batch
from bot.conversation import ChatRequest, TurnDone
from bot.errors import BotError
from bot.hearing import hear
from bot.personas import CUSTOM, Scope
from bot.services import Services
from bot.storage import guarded
from bot.transcription import Transcription
from bot.usage import UsageTotals

PLAYGROUND_USER_ID = 1  # one user for every browser session: [limits] apply to them together
USER_NAME = "you"
BOT_NAME = "the bot"
PLACE_NAME = "the playground"
MAX_SESSION_ID = 2**53 - 1  # survives a round trip through JavaScript numbers
_DISCORD_TIME = re.compile(r"<t:(\d+)(?::[tTdDfFR])?>")


def new_session_id() -> int:
    return secrets.randbelow(MAX_SESSION_ID) + 1


def valid_session(value: object) -> int | None:
    """A session id from the browser, or None when it is missing or not one of ours."""
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_SESSION_ID:
        return value
    return None


def plain_sentence(error: BotError) -> str:
    """The sentence Discord shows, with Discord's timestamp markup written out for a web page."""

    def when(match: re.Match[str]) -> str:
        moment = dt.datetime.fromtimestamp(int(match[1]), dt.UTC)
        return f"at {moment:%H:%M} UTC"

    return _DISCORD_TIME.sub(when, error.user_message)


@dataclass(frozen=True, slots=True)
class Costs:
    """What one request cost, and the playground's total for today (UTC)."""

    turn: UsageTotals | None
    today: UsageTotals


class Playground:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.ttl_ms = int(services.settings.history.ttl_days * 86_400_000)

    async def _keep(self, session: int) -> None:
        """(Re)start the expiry of the session's persona and model choices, as a turn does its history's."""
        keys = self.services.keys
        pipe = self.services.redis.pipeline(transaction=False)
        pipe.pexpire(keys.personas(session), self.ttl_ms)
        pipe.pexpire(keys.models(session), self.ttl_ms)
        await guarded(pipe.execute)

    @property
    def persona_names(self) -> list[str]:
        return [*self.services.personas.names, CUSTOM]

    @property
    def model_names(self) -> list[str]:
        return self.services.models.registry.names

    async def model(self, session: int) -> str:
        return (await self.services.models.active(session, session)).model.name

    async def choose_model(self, session: int, name: str) -> None:
        """One of the configured models ([model], [[models]]) from the next message on."""
        await self.services.models.choose(session, name, Scope.GUILD, session)
        await self._keep(session)

    def _today(self) -> dt.date:
        return self.services.chat.clock().astimezone(dt.UTC).date()

    async def history(self, session: int) -> list[dict[str, str]]:
        """The stored conversation, oldest first, as role and text."""
        batch = Batch(self.services.redis)
        read = batch.add(self.services.history.queue_read(session))
        await batch.execute()
        return [{"role": turn.role, "content": turn.content} for turn in read.value.turns]

    async def persona(self, session: int) -> tuple[str, str]:
        """(the active persona's name, the session's custom prompt or '')."""
        active = await self.services.personas.active(session, session)
        return active.name, await self.services.personas.custom_prompt(session) or ""

    async def choose(self, session: int, name: str) -> None:
        """A built-in persona from the next message on (a stored custom prompt is kept for later)."""
        await self.services.personas.choose(session, name, Scope.GUILD, session)
        await self._keep(session)

    async def save_custom(self, session: int, prompt: str) -> None:
        """The session's own prompt, active from the next message; the persona store's cap applies."""
        await self.services.personas.save_custom(session, prompt)
        await self._keep(session)

    async def forget(self, session: int) -> int:
        return await self.services.chat.forget(session)

    async def costs(self, turn: UsageTotals | None = None) -> Costs:
        [(_, today)] = await self.services.usage.report(today=self._today(), days=1, user_id=PLAYGROUND_USER_ID)
        return Costs(turn, today)

    def request(self, session: int, text: str, *, spoken: bool = False, message_id: int | None = None) -> ChatRequest:
        return ChatRequest(
            conversation_id=session,
            guild_id=session,
            author_id=PLAYGROUND_USER_ID,
            author_name=USER_NAME,
            message_id=message_id or new_session_id(),
            text=text,
            bot_name=BOT_NAME,
            guild_name=PLACE_NAME,
            spoken=spoken,
            claim=not spoken,  # a spoken turn was admitted (and claimed) before transcribing
        )

    async def turn(self, request: ChatRequest) -> AsyncIterator[str | UsageTotals]:
        """The engine's turn: text deltas, then the priced usage of the turn. Raises ``BotError``."""
        async for event in self.services.chat.turn(request):
            if isinstance(event, str):
                yield event
            elif isinstance(event, TurnDone):
                await self._keep(request.conversation_id)  # the history was just written: same lifetime
                yield self.services.usage.request_totals(event.model, event.usage)

    async def hear(self, session: int, path: str | Path, message_id: int) -> tuple[Transcription, UsageTotals]:
        """Transcribe an uploaded or recorded file as the voice cog does a voice message: admitted first
        (rate limit, budgets), the limits checked, then heard through the same transcriber."""
        services = self.services
        await services.limits.admit(
            services.usage,
            message_id=message_id,
            guild_id=session,
            user_id=PLAYGROUND_USER_ID,
            now=services.chat.clock(),
        )
        if not services.settings.voice.enabled:
            raise BotError("voice disabled", user_message="Voice input is turned off ([voice] enabled = false).")
        file = Path(path)
        size = (await asyncio.to_thread(file.stat)).st_size
        audio = services.transcriber.check(file.name, None, size=size, seconds=None)
        data = await asyncio.to_thread(file.read_bytes)
        heard = await hear(services, data, audio, guild_id=session, user_id=PLAYGROUND_USER_ID, seconds=None)
        return heard, services.usage.request_totals(services.transcriber.model, audio_seconds=heard.seconds)
