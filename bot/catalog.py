"""The models on offer (``[[models]]``) and the servers that run them (``[[providers]]``).

``[model]`` stays the default model, on the default provider (``OPENAI_BASE_URL`` and
``OPENAI_API_KEY``): a config without ``[[models]]`` offers exactly that one model, as before. A
``[[models]]`` table with the default model's name describes it instead. Each provider names the
environment variable that holds its key (``api_key_env``), so keys still come only from the
environment; a variable that is unset stops the bot at start-up with one line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from bot.errors import ConfigError

if TYPE_CHECKING:
    from bot.settings import ModelSettings

DEFAULT_PROVIDER = "default"  # OPENAI_BASE_URL + OPENAI_API_KEY
KEYLESS = "not-needed"  # the SDK wants some key; keyless servers (Ollama, LM Studio) ignore it
# Discord shows at most 100 characters of an autocomplete choice.
MAX_LABEL_CHARS = 80


@dataclass(frozen=True)
class ModelOption:
    """One ``[[models]]`` table: a model a server may choose with /model."""

    name: str  # as the provider's API knows it
    label: str = ""  # shown in /model; the name when empty
    provider: str = DEFAULT_PROVIDER
    context_window: int = 128_000
    max_reply_tokens: int = 1_024
    images: bool = True  # whether the model accepts images
    input_per_million: float | None = None  # dollars; unset: priced by [[usage.prices]], if listed
    output_per_million: float | None = None

    @property
    def title(self) -> str:
        return self.label or self.name


@dataclass(frozen=True)
class Provider:
    """One ``[[providers]]`` table: an OpenAI-compatible server."""

    name: str
    base_url: str
    api_key_env: str = ""  # the NAME of the environment variable holding the key; "" for keyless servers


def offered_models(default: ModelSettings, models: Sequence[ModelOption]) -> tuple[ModelOption, ...]:
    """Every model on offer, the default first. ``[model]`` is the default unless ``[[models]]`` lists
    a model of the same name, which then describes it."""
    if any(option.name == default.name for option in models):
        listed = next(option for option in models if option.name == default.name)
        return (listed, *(option for option in models if option is not listed))
    implicit = ModelOption(
        name=default.name,
        context_window=default.context_window,
        max_reply_tokens=default.max_reply_tokens,
        images=default.images,
    )
    return (implicit, *models)


def model_settings(default: ModelSettings, option: ModelOption) -> ModelSettings:
    """A model's request settings: its own name and sizes, ``[model]``'s timeouts and retries."""
    return dataclasses.replace(
        default,
        name=option.name,
        context_window=option.context_window,
        max_reply_tokens=option.max_reply_tokens,
        images=option.images,
    )


def check_catalog(
    default: ModelSettings,
    models: Sequence[ModelOption],
    providers: Sequence[Provider],
    margin: int,
    file: str,
) -> None:
    """Raise ConfigError on the first problem: duplicates, unknown providers, sizes, URLs."""
    model_names = [m.name for m in models]
    if len(set(model_names)) != len(model_names):
        raise ConfigError(f"{file}: [[models]] lists a model name twice")
    provider_names = [p.name for p in providers]
    if len(set(provider_names)) != len(provider_names):
        raise ConfigError(f"{file}: [[providers]] lists a provider name twice")
    for i, provider in enumerate(providers):
        where = f"providers[{i}]"
        if not provider.name or provider.name == DEFAULT_PROVIDER:
            raise ConfigError(
                f"{file}: {where}.name must be set and not {DEFAULT_PROVIDER!r} (that is OPENAI_BASE_URL's server)"
            )
        url = urlsplit(provider.base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ConfigError(f"{file}: {where}.base_url must be an http(s) URL, got {provider.base_url!r}")
        if provider.api_key_env and not provider.api_key_env.replace("_", "").isalnum():
            raise ConfigError(f"{file}: {where}.api_key_env must be an environment variable's name")
    known = {DEFAULT_PROVIDER, *provider_names}
    for i, option in enumerate(models):
        where = f"models[{i}]"
        if not option.name:
            raise ConfigError(f"{file}: {where}.name must be set")
        if option.provider not in known:
            raise ConfigError(
                f"{file}: {where}.provider {option.provider!r} is not a [[providers]] name "
                f"(known: {', '.join(sorted(known))})"
            )
        if len(option.title) > MAX_LABEL_CHARS:
            raise ConfigError(f"{file}: {where}.label must be at most {MAX_LABEL_CHARS} characters")
        for key in ("context_window", "max_reply_tokens"):
            if getattr(option, key) <= 0:
                raise ConfigError(f"{file}: {where}.{key} must be greater than 0, got {getattr(option, key)}")
        if option.max_reply_tokens + margin >= option.context_window:
            raise ConfigError(f"{file}: {where}.max_reply_tokens must leave room for a prompt in its context_window")
        for key in ("input_per_million", "output_per_million"):
            value = getattr(option, key)
            if value is not None and value < 0:
                raise ConfigError(f"{file}: {where}.{key} must be 0 or more, got {value}")


def uses_default_provider(default: ModelSettings, models: Sequence[ModelOption]) -> bool:
    return any(option.provider == DEFAULT_PROVIDER for option in offered_models(default, models))


def provider_keys(providers: Sequence[Provider], env: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """(provider name, key) for every provider, read from the variables they name. An unset variable
    is a config error: better refused at start-up than a 401 on some server's first message."""
    keys = []
    for provider in providers:
        if not provider.api_key_env:
            keys.append((provider.name, KEYLESS))
            continue
        value = env.get(provider.api_key_env, "").strip()
        if not value:
            raise ConfigError(
                f"{provider.api_key_env} is not set: put the key of provider {provider.name!r} in it "
                f'(its api_key_env), or set api_key_env = "" for a keyless server'
            )
        keys.append((provider.name, value))
    return tuple(keys)
