"""The models a turn can use, and which one each server, channel or thread has chosen.

``ModelRegistry`` holds one ``ChatModel`` per offered model (on its provider's shared client) and its
token counter. ``ModelChoices`` keeps the choices in one Redis hash per guild, read in a turn's single
read round trip, like the persona: a thread's override, then its parent channel's, then the guild's,
then the default. A choice naming a model no longer in the config falls through to the next level,
and the answer says which name was skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from bot.batch import Batch
from bot.catalog import ModelOption
from bot.errors import BotError
from bot.keys import Keys
from bot.llm import ChatModel
from bot.personas import Scope, Source
from bot.settings import ModelSettings
from bot.storage import guarded
from bot.tokens import TokenCounter

GUILD_FIELD = "guild"


@dataclass(frozen=True, slots=True)
class ServedModel:
    option: ModelOption
    chat: ChatModel  # on its provider's client
    counter: TokenCounter  # the model's own encoding (the bundled cl100k_base for unknown models)

    @property
    def name(self) -> str:
        return self.option.name

    @property
    def settings(self) -> ModelSettings:
        return self.chat.settings


class ModelRegistry:
    def __init__(self, models: Iterable[ServedModel], default: str) -> None:
        self._models = {served.name: served for served in models}
        self.default = self._models[default]

    def serve(self, served: ServedModel) -> None:
        """Put ``served`` in place of the model of the same name (the benchmark swaps a ChatModel)."""
        self._models[served.name] = served
        if served.name == self.default.name:
            self.default = served

    def get(self, name: str) -> ServedModel | None:
        return self._models.get(name)

    def __iter__(self) -> Iterator[ServedModel]:
        return iter(self._models.values())

    @property
    def names(self) -> list[str]:
        return list(self._models)


class UnknownModel(BotError):
    def __init__(self, name: str, available: list[str]) -> None:
        super().__init__(
            f"unknown model {name!r}",
            user_message=f"There is no model called “{name[:50]}”. Available: {', '.join(available)}.",
        )


@dataclass(frozen=True, slots=True)
class ActiveModel:
    model: ServedModel
    source: Source
    missing: str | None = None  # a chosen model that is no longer offered, skipped for this one


def _field(channel_id: int) -> str:
    return f"channel:{channel_id}"


class ModelChoices:
    def __init__(self, redis: aioredis.Redis, keys: Keys, registry: ModelRegistry) -> None:
        self.redis = redis
        self.keys = keys
        self.registry = registry

    def queue_active(
        self, guild_id: int | None, channel_id: int, parent_id: int | None = None
    ) -> Callable[[Pipeline], Callable[[list[Any]], ActiveModel]]:
        """For ``Batch.add``: the model of a channel (its override, its parent's, the guild's, default)."""

        def queue(pipe: Pipeline) -> Callable[[list[Any]], ActiveModel]:
            if guild_id is None:  # DMs use the default
                return lambda replies: ActiveModel(self.registry.default, Source.DEFAULT)
            pipe.hmget(self.keys.models(guild_id), [_field(channel_id), _field(parent_id or channel_id), GUILD_FIELD])
            return lambda replies: self._resolve([v.decode() if v else None for v in replies[0]])

        return queue

    def _resolve(self, values: list[str | None]) -> ActiveModel:
        missing = None
        for name, source in zip(values, (Source.CHANNEL, Source.PARENT, Source.GUILD), strict=True):
            if not name:
                continue
            served = self.registry.get(name)
            if served is not None:
                return ActiveModel(served, source, missing)
            missing = missing or name  # removed from the config: the next level decides
        return ActiveModel(self.registry.default, Source.DEFAULT, missing)

    async def active(self, guild_id: int | None, channel_id: int, parent_id: int | None = None) -> ActiveModel:
        batch = Batch(self.redis)
        active = batch.add(self.queue_active(guild_id, channel_id, parent_id))
        await batch.execute()
        return active.value

    async def choose(self, guild_id: int, name: str, scope: Scope, channel_id: int) -> ServedModel:
        """Make ``name`` the guild's model, or this channel's override."""
        served = self.registry.get(name)
        if served is None:
            raise UnknownModel(name, self.registry.names)
        field = GUILD_FIELD if scope is Scope.GUILD else _field(channel_id)
        await guarded(lambda: self.redis.hset(self.keys.models(guild_id), field, name))
        return served

    async def reset(self, guild_id: int, scope: Scope, channel_id: int) -> bool:
        """Back to the default (guild) or drop this channel's override; False if there was nothing to reset."""
        field = GUILD_FIELD if scope is Scope.GUILD else _field(channel_id)
        return bool(await guarded(lambda: self.redis.hdel(self.keys.models(guild_id), field)))
