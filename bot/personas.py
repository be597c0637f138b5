"""Personas: the system prompt of each conversation.

Built-ins come from config.toml; each guild picks one (or writes its own custom prompt), and a channel
or thread may override the guild's choice. Choices live in one Redis hash per guild, read as part of
a turn's single read round trip. DMs use the default persona.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from bot.batch import Batch
from bot.errors import BotError
from bot.keys import Keys
from bot.settings import Persona, PersonaSettings
from bot.storage import guarded

CUSTOM = "custom"
GUILD_FIELD = "guild"
CUSTOM_FIELD = "custom"


class Scope(StrEnum):
    GUILD = "guild"
    CHANNEL = "channel"


class Source(StrEnum):
    CHANNEL = "channel override"
    PARENT = "parent channel override"
    GUILD = "guild setting"
    DEFAULT = "default"


class UnknownPersona(BotError):
    def __init__(self, name: str, available: list[str]) -> None:
        super().__init__(
            f"unknown persona {name!r}",
            user_message=f"There is no persona called “{name[:50]}”. Available: {', '.join(available)}.",
        )


class NoCustomPrompt(BotError):
    user_message = "This server has no custom prompt yet: write one with /persona custom first."


class PersonaTooLong(BotError):
    def __init__(self, length: int, limit: int) -> None:
        super().__init__(
            f"custom prompt of {length} characters over the cap of {limit}",
            user_message=f"That prompt is {length:,} characters; the limit is {limit:,}. Please shorten it.",
        )


@dataclass(frozen=True, slots=True)
class ActivePersona:
    name: str
    prompt: str  # the template, placeholders not yet filled
    source: Source

    def render(self, *, bot_name: str, guild_name: str | None, today: dt.date) -> str:
        # Plain replacement, not str.format: custom prompts may contain braces of their own.
        prompt = self.prompt.replace("{date}", today.isoformat()).replace("{bot_name}", bot_name)
        if guild_name is None:  # a DM: "in the Discord server {guild_name}" must not name a server
            prompt = prompt.replace(DM_PHRASE_IN, DM_PHRASE_OUT).replace("{guild_name}", "a direct message")
        return prompt.replace("{guild_name}", guild_name or "")


# How the built-in prompts (and prompts written like them) say where the bot is, and its DM wording.
DM_PHRASE_IN = "the Discord server {guild_name}"
DM_PHRASE_OUT = "a Discord direct message"


def _field(channel_id: int) -> str:
    return f"channel:{channel_id}"


class PersonaStore:
    def __init__(self, redis: aioredis.Redis, keys: Keys, settings: PersonaSettings) -> None:
        self.redis = redis
        self.keys = keys
        self.settings = settings

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.settings.builtin]

    @property
    def default(self) -> Persona:
        persona = self.settings.get(self.settings.default)
        assert persona is not None  # validated with the config
        return persona

    def queue_active(
        self, guild_id: int | None, channel_id: int, parent_id: int | None = None
    ) -> Callable[[Pipeline], Callable[[list[Any]], ActivePersona]]:
        """For ``Batch.add``: the persona of a channel (thread override, then its parent's, then guild)."""

        def queue(pipe: Pipeline) -> Callable[[list[Any]], ActivePersona]:
            if guild_id is None:
                return lambda replies: ActivePersona(self.default.name, self.default.prompt, Source.DEFAULT)
            fields = [_field(channel_id), _field(parent_id or channel_id), GUILD_FIELD, CUSTOM_FIELD]
            pipe.hmget(self.keys.personas(guild_id), fields)
            return lambda replies: self._resolve([v.decode() if v else None for v in replies[0]])

        return queue

    def _resolve(self, values: list[str | None]) -> ActivePersona:
        channel, parent, guild, custom = values
        for name, source in ((channel, Source.CHANNEL), (parent, Source.PARENT), (guild, Source.GUILD)):
            if name == CUSTOM and custom:
                return ActivePersona(CUSTOM, custom, source)
            persona = self.settings.get(name) if name else None
            if persona is not None:  # a persona removed from the config falls through to the next level
                return ActivePersona(persona.name, persona.prompt, source)
        return ActivePersona(self.default.name, self.default.prompt, Source.DEFAULT)

    async def active(self, guild_id: int | None, channel_id: int, parent_id: int | None = None) -> ActivePersona:
        batch = Batch(self.redis)
        active = batch.add(self.queue_active(guild_id, channel_id, parent_id))
        await batch.execute()
        return active.value

    async def custom_prompt(self, guild_id: int) -> str | None:
        value = await guarded(lambda: self.redis.hget(self.keys.personas(guild_id), CUSTOM_FIELD))
        return value.decode() if value else None

    async def choose(self, guild_id: int, name: str, scope: Scope, channel_id: int) -> None:
        """Make ``name`` the guild's persona, or this channel's override."""
        key = self.keys.personas(guild_id)
        if name == CUSTOM:
            if not await guarded(lambda: self.redis.hexists(key, CUSTOM_FIELD)):
                raise NoCustomPrompt()
        elif name not in self.names:
            raise UnknownPersona(name, [*self.names, CUSTOM])
        await guarded(lambda: self.redis.hset(key, GUILD_FIELD if scope is Scope.GUILD else _field(channel_id), name))

    async def save_custom(self, guild_id: int, prompt: str) -> None:
        """Store the guild's own prompt and make it the guild's persona."""
        prompt = prompt.strip()
        if len(prompt) > self.settings.custom_max_chars:
            raise PersonaTooLong(len(prompt), self.settings.custom_max_chars)
        if not prompt:
            raise BotError("empty custom prompt", user_message="The custom prompt can't be empty.")
        mapping = {CUSTOM_FIELD: prompt, GUILD_FIELD: CUSTOM}
        await guarded(lambda: self.redis.hset(self.keys.personas(guild_id), mapping=mapping))

    async def reset(self, guild_id: int, scope: Scope, channel_id: int) -> bool:
        """Back to the default (guild) or drop this channel's override; False if there was nothing to reset."""
        field = GUILD_FIELD if scope is Scope.GUILD else _field(channel_id)
        return bool(await guarded(lambda: self.redis.hdel(self.keys.personas(guild_id), field)))
