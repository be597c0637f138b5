"""Typed settings from config.toml plus secrets from the environment.

Every problem is reported as one ``ConfigError`` naming the key and what it expects, so start-up can
print a single line and exit with code 2 instead of a traceback. The settings themselves (each section's
dataclass and its defaults) are in ``bot/settings.py``.
"""

from __future__ import annotations

import dataclasses
import enum
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bot.catalog import ModelOption, Provider, check_catalog, provider_keys, uses_default_provider
from bot.deployment import check_discord_api_base, check_redis_url, log_level, parse_shards
from bot.errors import ConfigError
from bot.settings import (
    MAX_AUDIO_BYTES,
    MAX_CUSTOM_PROMPT_CHARS,
    MAX_IMAGE_BYTES,
    MAX_SPEECH_CHARS,
    ImageSettings,
    LoggingSettings,
    ModelSettings,
    Persona,
    PersonaSettings,
    Price,
    Secrets,
    Settings,
    TokenSettings,
    UsageSettings,
    VoiceSettings,
)

ENV_VARS = {
    "DISCORD_TOKEN": "the bot token from the Discord developer portal (required)",
    "OPENAI_API_KEY": "the model server's API key (required unless OPENAI_BASE_URL points at a keyless server)",
    "OPENAI_BASE_URL": "an OpenAI-compatible server, e.g. http://localhost:11434/v1 for Ollama",
    "REDIS_URL": (
        "redis://host:port/db, rediss://... (TLS), unix:///path/redis.sock, or a Redis Cluster node: "
        "redis+cluster://host:port (rediss+cluster:// for TLS); unset: an embedded Redis stores data next "
        "to the config"
    ),
    "DISCORD_API_BASE": (
        "a Discord-compatible server, e.g. Spacebar: its root, .../api or .../api/v9|v10 (default Discord's)"
    ),
    "DISCORD_GATEWAY_URL": "a Discord-compatible gateway URL (default Discord's)",
    "TRANSCRIPTION_BASE_URL": "an OpenAI-compatible server for voice messages (default: the chat model's)",
    "TRANSCRIPTION_API_KEY": "that server's API key (default: none with TRANSCRIPTION_BASE_URL, else OPENAI_API_KEY)",
    "TTS_BASE_URL": "an OpenAI-compatible speech server for spoken replies (default: the chat model's)",
    "TTS_API_KEY": "that server's API key (default: none with TTS_BASE_URL, else OPENAI_API_KEY)",
    "SHARD_COUNT": "total number of shards across all processes (default: Discord's recommendation)",
    "SHARD_IDS": "the shards this process runs, e.g. 0,1 (needs SHARD_COUNT; default: all)",
    "LOG_LEVEL": "DEBUG, INFO, WARNING or ERROR; overrides logging.level",
    "PLAYGROUND_PASSWORD": "the playground's login password (required when it listens beyond 127.0.0.1)",
}

_TYPE_NAMES = {int: "a whole number", float: "a number", str: "a string", bool: "true or false"}


def load_settings(path: str | Path, env: Mapping[str, str], *, discord: bool = True) -> Settings:
    """Read and validate config.toml and the environment; raise ConfigError on the first problem.
    ``discord=False`` (the playground) does without DISCORD_TOKEN."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    sections = {f.name: f.type for f in dataclasses.fields(Settings) if f.name not in ("secrets", "base_dir")}
    hints = typing.get_type_hints(Settings)
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in sections:
            raise ConfigError(f"{path.name}: unknown section [{key}] (expected one of: {', '.join(sections)})")
        if key in TABLE_LISTS:
            values[key] = _tables(TABLE_LISTS[key], value, key, path.name)
        else:
            values[key] = _build(hints[key], value, key, path.name)
    if level := env.get("LOG_LEVEL", "").strip():  # the environment wins: raise verbosity without editing files
        values["logging"] = dataclasses.replace(values.get("logging", LoggingSettings()), level=log_level(level))
    model, models = values.get("model", ModelSettings()), values.get("models", ())
    check_catalog(model, models, values.get("providers", ()), values.get("tokens", TokenSettings()).margin, path.name)
    values["usage"] = _with_model_prices(values.get("usage", UsageSettings()), models)
    secrets = dataclasses.replace(
        _secrets(env, needs_openai=uses_default_provider(model, models), discord=discord),
        provider_keys=provider_keys(values.get("providers", ()), env),
    )
    settings = Settings(**values, secrets=secrets, base_dir=path.resolve().parent)
    _check_ranges(settings, path.name)
    return settings


# Top-level arrays of tables ([[models]]) rather than tables of settings.
TABLE_LISTS: dict[str, type] = {"models": ModelOption, "providers": Provider}


def _with_model_prices(usage: UsageSettings, models: tuple[ModelOption, ...]) -> UsageSettings:
    """Prices given in [[models]] come first, so they win over [[usage.prices]] for the same model."""
    priced = tuple(
        Price(m.name, input_per_million=m.input_per_million or 0.0, output_per_million=m.output_per_million or 0.0)
        for m in models
        if m.input_per_million is not None or m.output_per_million is not None
    )
    return dataclasses.replace(usage, prices=priced + usage.prices) if priced else usage


def _build(cls: type, value: Any, where: str, file: str) -> Any:
    if not isinstance(value, dict):
        raise ConfigError(f"{file}: [{where}] must be a table of settings")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, item in value.items():
        if key not in known:
            raise ConfigError(f"{file}: unknown key {where}.{key} (expected one of: {', '.join(sorted(known))})")
        if cls is PersonaSettings and key == "builtin":
            kwargs[key] = _personas(item, f"{where}.{key}", file)
        elif cls is UsageSettings and key == "prices":
            kwargs[key] = _tables(Price, item, f"{where}.{key}", file)
        else:
            kwargs[key] = _check_type(item, hints[key], f"{where}.{key}", file)
    for f in dataclasses.fields(cls):
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if required and f.name not in kwargs:
            raise ConfigError(f"{file}: {where} is missing the key {f.name!r}")
    return cls(**kwargs)


def _tables(cls: type, value: Any, where: str, file: str) -> tuple[Any, ...]:
    if not isinstance(value, list):
        raise ConfigError(f"{file}: {where} must be a list of [[{where}]] tables")
    return tuple(_build(cls, item, f"{where}[{i}]", file) for i, item in enumerate(value))


def _personas(value: Any, where: str, file: str) -> tuple[Persona, ...]:
    personas = _tables(Persona, value, where, file)
    if not personas:
        raise ConfigError(f"{file}: {where} must be one or more [[{where}]] tables")
    for i, persona in enumerate(personas):
        if not persona.name or not persona.prompt:
            raise ConfigError(f"{file}: {where}[{i}] needs a name and a prompt")
    names = [p.name for p in personas]
    if len(set(names)) != len(names):
        raise ConfigError(f"{file}: {where} has two personas with the same name")
    if "custom" in names:
        raise ConfigError(f"{file}: {where}: 'custom' is reserved for each guild's own prompt")
    return personas


def _check_type(value: Any, expected: Any, where: str, file: str) -> Any:
    allowed = typing.get_args(expected) if isinstance(expected, types.UnionType) else (expected,)
    allowed = tuple(t for t in allowed if t is not type(None))
    for kind in allowed:
        if typing.get_origin(kind) is tuple and isinstance(value, list):
            item_type = typing.get_args(kind)[0]
            return tuple(_check_type(item, item_type, f"{where}[{i}]", file) for i, item in enumerate(value))
        if isinstance(kind, type) and issubclass(kind, enum.Enum):
            choices = [member.value for member in kind]
            if value in choices:
                return kind(value)
            raise ConfigError(f"{file}: {where} must be one of {', '.join(map(repr, choices))}, got {value!r}")
        if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind in (str, bool) and isinstance(value, kind):
            return value
    names = " or ".join(_TYPE_NAMES.get(k, "a list" if typing.get_origin(k) is tuple else str(k)) for k in allowed)
    raise ConfigError(f"{file}: {where} must be {names}, got {value!r}")


def _check_ranges(s: Settings, file: str) -> None:
    positive = {
        "model.context_window": s.model.context_window,
        "model.max_reply_tokens": s.model.max_reply_tokens,
        "model.timeout_s": s.model.timeout_s,
        "model.idle_timeout_s": s.model.idle_timeout_s,
        "model.connect_timeout_s": s.model.connect_timeout_s,
        "discord.connect_timeout_s": s.discord.connect_timeout_s,
        "history.max_messages": s.history.max_messages,
        "history.ttl_days": s.history.ttl_days,
        "history.cache_conversations": s.history.cache_conversations,
        "stream.edit_interval_s": s.stream.edit_interval_s,
        "discord.download_timeout_s": s.discord.download_timeout_s,
    }
    for key, value in positive.items():
        if value <= 0:
            raise ConfigError(f"{file}: {key} must be greater than 0, got {value}")
    not_negative = {
        "limits.guild_daily_tokens": s.limits.guild_daily_tokens,
        "limits.user_daily_tokens": s.limits.user_daily_tokens,
        "limits.user_turns": s.limits.user_turns,
        "tokens.margin": s.tokens.margin,
        "discord.requests_per_second": s.discord.requests_per_second,
        **{
            f"usage.prices[{p.model}]": min(
                p.input_per_million, p.output_per_million, p.audio_per_minute, p.tts_per_million_chars
            )
            for p in s.usage.prices
        },
    }
    for key, value in not_negative.items():
        if value < 0:
            raise ConfigError(f"{file}: {key} must be 0 or more, got {value}")
    for key, value in {
        "limits.user_window_s": s.limits.user_window_s,
        "limits.duplicate_ttl_s": s.limits.duplicate_ttl_s,
        "usage.retention_days": s.usage.retention_days,
    }.items():
        if value <= 0:
            raise ConfigError(f"{file}: {key} must be greater than 0, got {value}")
    if s.model.max_retries < 0:
        raise ConfigError(f"{file}: model.max_retries must be 0 or more, got {s.model.max_retries}")
    if s.model.max_reply_tokens + s.tokens.margin >= s.model.context_window:
        raise ConfigError(f"{file}: model.max_reply_tokens must leave room for a prompt in model.context_window")
    if s.logging.level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"{file}: logging.level must be DEBUG, INFO, WARNING or ERROR, got {s.logging.level!r}")
    if s.personas.get(s.personas.default) is None:
        names = ", ".join(p.name for p in s.personas.builtin)
        raise ConfigError(f"{file}: personas.default must name a persona ({names}), got {s.personas.default!r}")
    if not 1 <= s.personas.custom_max_chars <= MAX_CUSTOM_PROMPT_CHARS:
        raise ConfigError(f"{file}: personas.custom_max_chars must be between 1 and {MAX_CUSTOM_PROMPT_CHARS}")
    if not s.redis.key_prefix or any(c in s.redis.key_prefix for c in "{} "):
        raise ConfigError(f"{file}: redis.key_prefix must be non-empty, without spaces or braces")
    _check_voice(s.voice, file)
    _check_images(s.images, file)
    if not 32 <= s.history.summary_max_tokens <= 4_096:
        raise ConfigError(f"{file}: history.summary_max_tokens must be between 32 and 4096")
    offered = [s.model.name, *(m.name for m in s.models)]
    if s.history.summary_model and s.history.summary_model not in offered:
        raise ConfigError(f"{file}: history.summary_model must name a model on offer ({', '.join(offered)})")
    if not 0 <= s.health.port <= 65_535:
        raise ConfigError(f"{file}: health.port must be between 0 and 65535, got {s.health.port}")


def _check_voice(v: VoiceSettings, file: str) -> None:
    if not v.model:
        raise ConfigError(f"{file}: voice.model must name a transcription model, e.g. 'whisper-1'")
    if not 1 <= v.max_bytes <= MAX_AUDIO_BYTES:
        raise ConfigError(f"{file}: voice.max_bytes must be between 1 and {MAX_AUDIO_BYTES} (25 MB), got {v.max_bytes}")
    if not v.tts_model or not v.tts_voice:
        raise ConfigError(f"{file}: voice.tts_model and voice.tts_voice must name a speech model and voice")
    if not 1 <= v.tts_max_chars <= MAX_SPEECH_CHARS:
        raise ConfigError(
            f"{file}: voice.tts_max_chars must be between 1 and {MAX_SPEECH_CHARS}, got {v.tts_max_chars}"
        )
    timeouts = {"max_seconds": v.max_seconds, "timeout_s": v.timeout_s, "tts_timeout_s": v.tts_timeout_s}
    for key, value in {f"voice.{name}": value for name, value in timeouts.items()}.items():
        if value <= 0:
            raise ConfigError(f"{file}: {key} must be greater than 0, got {value}")


def _check_images(i: ImageSettings, file: str) -> None:
    if not 1 <= i.max_bytes <= MAX_IMAGE_BYTES:
        raise ConfigError(
            f"{file}: images.max_bytes must be between 1 and {MAX_IMAGE_BYTES} (20 MB), got {i.max_bytes}"
        )
    if not 1 <= i.max_per_message <= 10:  # Discord allows 10 attachments per message
        raise ConfigError(f"{file}: images.max_per_message must be between 1 and 10, got {i.max_per_message}")
    if not 64 <= i.max_side <= 8192:
        raise ConfigError(f"{file}: images.max_side must be between 64 and 8192 pixels, got {i.max_side}")
    if i.keep_in_history < 0:
        raise ConfigError(f"{file}: images.keep_in_history must be 0 or more, got {i.keep_in_history}")


def _secrets(env: Mapping[str, str], *, needs_openai: bool = True, discord: bool = True) -> Secrets:
    def get(name: str) -> str | None:
        value = env.get(name, "").strip()
        return value or None

    token = get("DISCORD_TOKEN")
    if not token and discord:
        raise ConfigError("DISCORD_TOKEN is not set: put the bot token from the Discord developer portal in it")
    base_url = get("OPENAI_BASE_URL")
    api_key = get("OPENAI_API_KEY")
    if not api_key:
        if not base_url and needs_openai:
            raise ConfigError("OPENAI_API_KEY is not set: put your model server's API key in it")
        api_key = "not-needed"  # local servers (Ollama, LM Studio) ignore the key but the SDK wants one
    shard_count, shard_ids = parse_shards(get("SHARD_COUNT"), get("SHARD_IDS"))
    redis_url = get("REDIS_URL")
    return Secrets(
        discord_token=token or "",
        openai_api_key=api_key,
        openai_base_url=base_url,
        redis_url=check_redis_url(redis_url) if redis_url else None,
        discord_api_base=check_discord_api_base(api_base) if (api_base := get("DISCORD_API_BASE")) else None,
        discord_gateway_url=get("DISCORD_GATEWAY_URL"),
        transcription_base_url=get("TRANSCRIPTION_BASE_URL"),
        transcription_api_key=get("TRANSCRIPTION_API_KEY"),
        tts_base_url=get("TTS_BASE_URL"),
        tts_api_key=get("TTS_API_KEY"),
        shard_count=shard_count,
        shard_ids=shard_ids,
        playground_password=get("PLAYGROUND_PASSWORD"),
    )
