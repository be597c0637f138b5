"""The shared clients and services, opened once at start-up and closed on shutdown."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import openai
import redis.asyncio as aioredis

from bot.config import Settings
from bot.conversation import ChatService
from bot.history import HistoryStore
from bot.keys import Keys
from bot.limits import Limits
from bot.llm import ChatModel, build_client
from bot.personas import PersonaStore
from bot.storage import open_redis
from bot.tokens import TokenCounter, load_encoding
from bot.usage import UsageStore

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    redis: aioredis.Redis
    openai: openai.AsyncOpenAI
    keys: Keys
    history: HistoryStore
    personas: PersonaStore
    usage: UsageStore
    limits: Limits
    chat: ChatService


@contextlib.asynccontextmanager
async def open_services(settings: Settings) -> AsyncIterator[Services]:
    secrets = settings.secrets
    encoding = load_encoding(settings.model.name, allow_download=settings.tokens.download_encodings)
    async with open_redis(secrets.redis_url, settings.resolve_path(settings.redis.data_dir)) as redis_handle:
        log.info("Storage: %s", redis_handle.description)
        client = build_client(settings.model, secrets.openai_api_key, secrets.openai_base_url)
        try:
            yield build_services(settings, redis_handle.client, client, TokenCounter(encoding))
        finally:
            await client.close()


def build_services(
    settings: Settings,
    redis: aioredis.Redis,
    client: openai.AsyncOpenAI,
    counter: TokenCounter,
    clock: Callable[[], dt.datetime] | None = None,
) -> Services:
    """Wire the services around already-open clients (start-up, tests and the benchmark share this)."""
    keys = Keys(settings.redis.key_prefix)
    history = HistoryStore(
        keys,
        max_messages=settings.history.max_messages,
        ttl_days=settings.history.ttl_days,
        cache_size=settings.history.cache_conversations,
    )
    personas = PersonaStore(redis, keys, settings.personas)
    usage = UsageStore(redis, keys, settings.usage)
    limits = Limits(redis, keys, settings.limits)
    chat = ChatService(
        redis=redis,
        history=history,
        model=ChatModel(client, settings.model),
        counter=counter,
        context_window=settings.model.context_window,
        max_reply_tokens=settings.model.max_reply_tokens,
        margin=settings.tokens.margin,
        personas=personas,
        usage=usage,
        limits=limits,
        **({"clock": clock} if clock else {}),
    )
    return Services(settings, redis, client, keys, history, personas, usage, limits, chat)
