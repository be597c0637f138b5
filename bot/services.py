"""The shared clients and services, opened once at start-up and closed on shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field

import openai
import redis.asyncio as aioredis

from bot.catalog import DEFAULT_PROVIDER, model_settings, offered_models
from bot.conversation import ChatService
from bot.history import HistoryStore
from bot.keys import Keys
from bot.limits import Limits
from bot.llm import ChatModel, build_client
from bot.metrics import Metrics
from bot.models import ModelChoices, ModelRegistry, ServedModel
from bot.personas import PersonaStore
from bot.settings import Settings
from bot.speech import Speaker
from bot.speech_prefs import SpokenReplyPrefs
from bot.storage import open_redis
from bot.summary import Summarizer, SummaryStore
from bot.threads import BotThreads
from bot.tokens import TokenCounter, load_encoding
from bot.transcription import Transcriber
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
    transcriber: Transcriber
    metrics: Metrics
    speaker: Speaker
    spoken_prefs: SpokenReplyPrefs
    models: ModelChoices
    threads: BotThreads
    clients: Mapping[str, openai.AsyncOpenAI] = field(default_factory=dict)  # provider name -> its client


@contextlib.asynccontextmanager
async def open_services(settings: Settings, keys: Keys | None = None) -> AsyncIterator[Services]:
    """``keys``: another key space for everything the services store (the playground's); default: the
    configured prefix."""
    secrets = settings.secrets
    # The first use of a model's encoding may download it: off the event loop.
    counters = await asyncio.to_thread(load_counters, settings)
    async with open_redis(secrets.redis_url, settings.resolve_path(settings.redis.data_dir)) as redis_handle:
        log.info("Storage: %s", redis_handle.description)
        clients = build_provider_clients(settings)
        audio_client = build_transcription_client(settings)
        speech_client = build_speech_client(settings)
        services: Services | None = None
        try:
            services = build_services(
                settings,
                redis_handle.client,
                clients[DEFAULT_PROVIDER],
                counters[settings.model.name],
                transcription_client=audio_client,
                speech_client=speech_client,
                clients=clients,
                counters=counters,
                keys=keys,
            )
            yield services
        finally:
            if services is not None and services.chat.summarizer is not None:
                await services.chat.summarizer.close()  # a summary being made is dropped (retried later)
            for client in clients.values():
                await client.close()
            for extra in (audio_client, speech_client):
                if extra is not None:
                    await extra.close()


def load_counters(settings: Settings) -> dict[str, TokenCounter]:
    """A token counter per offered model, each with its model's encoding (blocking: may download)."""
    allow = settings.tokens.download_encodings
    return {
        option.name: TokenCounter(load_encoding(option.name, allow_download=allow))
        for option in offered_models(settings.model, settings.models)
    }


def build_provider_clients(settings: Settings) -> dict[str, openai.AsyncOpenAI]:
    """One shared client per provider: the default one (OPENAI_BASE_URL, OPENAI_API_KEY), which voice
    messages use too, and one per [[providers]] table, each with its own key."""
    secrets = settings.secrets
    clients = {DEFAULT_PROVIDER: build_client(settings.model, secrets.openai_api_key, secrets.openai_base_url)}
    for provider in settings.providers:
        clients[provider.name] = build_client(settings.model, secrets.provider_key(provider.name), provider.base_url)
    return clients


def build_transcription_client(settings: Settings) -> openai.AsyncOpenAI | None:
    """A client of its own when TRANSCRIPTION_BASE_URL or TRANSCRIPTION_API_KEY is set; None: voice
    messages go through the chat model's client."""
    secrets = settings.secrets
    if not (secrets.transcription_base_url or secrets.transcription_api_key):
        return None
    # The chat server's key is never sent to another server: a keyless one gets a placeholder (the SDK
    # wants some key).
    return build_client(
        settings.model,
        secrets.transcription_api_key or "not-needed",
        secrets.transcription_base_url or secrets.openai_base_url,
    )


def build_speech_client(settings: Settings) -> openai.AsyncOpenAI | None:
    """A client of its own when TTS_BASE_URL or TTS_API_KEY is set; None: spoken replies go through
    the chat model's client. As for transcription, the chat server's key never goes elsewhere."""
    secrets = settings.secrets
    if not (secrets.tts_base_url or secrets.tts_api_key):
        return None
    return build_client(
        settings.model, secrets.tts_api_key or "not-needed", secrets.tts_base_url or secrets.openai_base_url
    )


def build_services(
    settings: Settings,
    redis: aioredis.Redis,
    client: openai.AsyncOpenAI,
    counter: TokenCounter,
    clock: Callable[[], dt.datetime] | None = None,
    transcription_client: openai.AsyncOpenAI | None = None,
    speech_client: openai.AsyncOpenAI | None = None,
    *,
    clients: Mapping[str, openai.AsyncOpenAI] | None = None,
    counters: Mapping[str, TokenCounter] | None = None,
    keys: Keys | None = None,
) -> Services:
    """Wire the services around already-open clients (start-up, tests and the benchmark share this).
    ``client`` is the default provider's; ``clients`` maps every provider to its own (missing ones
    use ``client``), ``counters`` every model to its counter (missing ones use ``counter``); ``keys``
    another key space (the playground's) instead of the configured prefix."""
    keys = keys or Keys(settings.redis.key_prefix)
    clients = {DEFAULT_PROVIDER: client, **(clients or {})}
    registry = ModelRegistry(
        (
            ServedModel(
                option,
                ChatModel(clients.get(option.provider, client), model_settings(settings.model, option)),
                (counters or {}).get(option.name, counter),
            )
            for option in offered_models(settings.model, settings.models)
        ),
        default=settings.model.name,
    )
    models = ModelChoices(redis, keys, registry)
    metrics = Metrics()
    history = HistoryStore(
        keys,
        max_messages=settings.history.max_messages,
        ttl_days=settings.history.ttl_days,
        cache_size=settings.history.cache_conversations,
        keep_images=settings.images.keep_in_history,
        summarized=settings.history.summarize,
    )
    personas = PersonaStore(redis, keys, settings.personas)
    usage = UsageStore(redis, keys, settings.usage)
    limits = Limits(redis, keys, settings.limits)
    threads = BotThreads(redis, keys, ttl_days=settings.history.ttl_days)
    summaries = SummaryStore(keys, ttl_days=settings.history.ttl_days) if settings.history.summarize else None
    summarizer = None
    if summaries is not None:
        named = registry.get(settings.history.summary_model) if settings.history.summary_model else None
        summarizer = Summarizer(
            redis,
            summaries,
            usage,
            max_tokens=settings.history.summary_max_tokens,
            model=lambda answered_by: named or answered_by,
            observe_redis=metrics.redis_latency,
        )
    chat = ChatService(
        redis=redis,
        history=history,
        models=models,
        margin=settings.tokens.margin,
        personas=personas,
        usage=usage,
        limits=limits,
        threads=threads,
        **({"clock": clock} if clock else {}),
        observe_redis=metrics.redis_latency,
        image_detail=settings.images.detail.value,
        summaries=summaries,
        summarizer=summarizer,
    )
    transcriber = Transcriber(
        transcription_client or client, settings.voice, connect_timeout_s=settings.model.connect_timeout_s
    )
    speaker = Speaker(
        speech_client or client,
        settings.voice,
        usage=usage,
        limits=limits,
        connect_timeout_s=settings.model.connect_timeout_s,
        clock=chat.clock,
    )
    return Services(
        settings,
        redis,
        client,
        keys,
        history,
        personas,
        usage,
        limits,
        chat,
        transcriber,
        metrics,
        speaker,
        SpokenReplyPrefs(redis, keys),
        models,
        threads,
        clients,
    )
