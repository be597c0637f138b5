"""The bot's settings: one frozen dataclass per config.toml section, the enums and limits they use, and
the built-in defaults (personas, prices).

The comments on each field are the documentation of that setting. Reading and validating config.toml and
the environment into these is ``bot/config.py``'s job.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path

from bot.catalog import ModelOption, Provider

# Discord's text inputs take at most 4,000 characters; a custom prompt is capped at or below that.
MAX_CUSTOM_PROMPT_CHARS = 4_000


@dataclass(frozen=True)
class ModelSettings:
    name: str = "gpt-5.4-mini"
    context_window: int = 128_000
    max_reply_tokens: int = 1_024
    temperature: float | None = None  # omitted from requests unless set: some models reject it
    timeout_s: float = 60.0  # the whole answer, retries included
    idle_timeout_s: float = 30.0  # longest silence allowed between two stream chunks
    connect_timeout_s: float = 5.0
    max_retries: int = 1
    images: bool = True  # False: a text-only model; image attachments are ignored with a note


@dataclass(frozen=True)
class HistorySettings:
    max_messages: int = 200
    ttl_days: float = 30.0
    cache_conversations: int = 1_000  # parsed windows kept in memory (LRU), validated against Redis
    summarize: bool = True  # fold turns that leave the window into a rolling summary (one model call)
    summary_max_tokens: int = 400  # the summary's length (the summary call's reply limit)
    summary_model: str = ""  # a model on offer ([model] or [[models]]); "": the model that answered


class ImageDetail(enum.StrEnum):
    """The vision API's ``detail``: ``low`` is a fixed 85 tokens at 512 px, ``high`` reads 512 px tiles."""

    AUTO = "auto"
    LOW = "low"
    HIGH = "high"


# OpenAI takes images of at most 20 MB each (before our downscaling, which shrinks them far below that).
MAX_IMAGE_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True)
class ImageSettings:
    enabled: bool = True  # False: image attachments are ignored with a note, as for a text-only model
    max_per_message: int = 4
    max_bytes: int = 10 * 1024 * 1024  # checked against the size Discord reports, before downloading
    max_side: int = 1568  # longest side in pixels after downscaling
    detail: ImageDetail = ImageDetail.AUTO
    keep_in_history: int = 4  # newest images of a conversation kept (in Redis) for follow-up turns


@dataclass(frozen=True)
class RedisSettings:
    key_prefix: str = "dcb"
    data_dir: str = "data"  # the embedded server's folder, relative to the config file


@dataclass(frozen=True)
class StreamSettings:
    edit_interval_s: float = 1.0


@dataclass(frozen=True)
class DiscordSettings:
    """How the bot uses Discord itself."""

    download_timeout_s: float = 30.0  # an attachment's whole download from Discord's CDN (aiohttp's default: 300 s)
    # Discord's privileged Message Content intent, as toggled in the developer portal: on, every
    # message in the bot's own /chat threads is answered without a mention.
    message_content: bool = False
    # Each attempt to reach Discord (the REST login, a gateway connection) gives up after this long;
    # `python -m bot` then tries again with backoff, `sync` and `check` report it and stop.
    connect_timeout_s: float = 10.0
    # The request budget: Discord allows a bot token about 50 REST requests per second in total. The
    # bot's own requests are paced to this many per second plus a burst (at 32: a burst of 10, at most
    # 42 in any one second, leaving room for delays on the way to Discord), shared by every process on
    # the token. 0 turns the scheduler off.
    requests_per_second: float = 32.0


@dataclass(frozen=True)
class TokenSettings:
    download_encodings: bool = True  # False: never fetch tiktoken data; use the bundled cl100k_base
    margin: int = 64  # slack for per-message overhead the count may miss


class DMPolicy(enum.StrEnum):
    EVERYONE = "everyone"
    MEMBERS = "members"  # only users who share a server with the bot
    NOBODY = "nobody"


@dataclass(frozen=True)
class AccessSettings:
    """Where the bot answers. Empty lists allow everything."""

    guilds: tuple[int, ...] = ()
    channels: tuple[int, ...] = ()  # a thread is allowed when its parent channel is listed
    roles: tuple[int, ...] = ()  # in servers, members need one of these roles
    dms: DMPolicy = DMPolicy.EVERYONE


# OpenAI's audio API takes files of at most 25 MB.
MAX_AUDIO_BYTES = 25 * 1024 * 1024
# OpenAI's speech API reads out at most 4,096 characters per request.
MAX_SPEECH_CHARS = 4_096


class SpokenReply(enum.StrEnum):
    """How the bot answers someone who spoke to it (typed messages always get text)."""

    TEXT = "text"  # text only
    VOICE = "voice"  # a voice message; the text is posted only when it cannot be spoken
    BOTH = "both"  # the text, then the same answer as a voice message


class SpeechFormat(enum.StrEnum):
    """What the speech server is asked for; anything but OGG Opus is transcoded for Discord."""

    OPUS = "opus"
    MP3 = "mp3"
    WAV = "wav"
    FLAC = "flac"
    AAC = "aac"


@dataclass(frozen=True)
class VoiceSettings:
    enabled: bool = True
    model: str = "whisper-1"
    max_bytes: int = MAX_AUDIO_BYTES
    max_seconds: float = 300.0  # checked against the length Discord reports (voice messages)
    timeout_s: float = 60.0  # the whole transcription, retries included
    reply: SpokenReply = SpokenReply.BOTH  # for spoken input; each user may turn voice replies off
    tts_model: str = "gpt-4o-mini-tts"
    tts_voice: str = "alloy"
    tts_format: SpeechFormat = SpeechFormat.OPUS
    tts_max_chars: int = 1_000  # longer answers: the first part is read out, and the reply says so
    tts_timeout_s: float = 60.0  # the whole speech request, retries included


@dataclass(frozen=True)
class Persona:
    name: str
    description: str
    prompt: str  # may use {date}, {bot_name} and {guild_name}


BUILTIN_PERSONAS = (
    Persona(
        "assistant",
        "A helpful, concise assistant",
        "You are {bot_name}, a helpful assistant in the Discord server {guild_name}. Today is {date}. "
        "Answer clearly and concisely. Several people may talk to you in one channel: each user message "
        "carries the speaker's name.",
    ),
    Persona(
        "joker",
        "Answers only with jokes about your subject",
        "You are {bot_name}, a joke bot in the Discord server {guild_name}. Whatever the user says, reply "
        "only with a short, friendly joke about the subject they mention, and nothing else.",
    ),
)


@dataclass(frozen=True)
class PersonaSettings:
    default: str = "assistant"
    custom_max_chars: int = 2_000
    builtin: tuple[Persona, ...] = BUILTIN_PERSONAS

    def get(self, name: str) -> Persona | None:
        return next((p for p in self.builtin if p.name == name), None)


@dataclass(frozen=True)
class Price:
    """What a model costs, in dollars: per million input/output tokens, per minute of audio heard,
    per million characters read out."""

    model: str
    input_per_million: float = 0.0
    output_per_million: float = 0.0
    audio_per_minute: float = 0.0
    tts_per_million_chars: float = 0.0


DEFAULT_PRICES = (
    Price("gpt-5.4-mini", input_per_million=0.75, output_per_million=4.5),
    Price("whisper-1", audio_per_minute=0.006),
    # OpenAI's list prices per character read out; gpt-4o-mini-tts is billed in tokens, about
    # $0.015 a minute, which is close to this per character of English.
    Price("tts-1", tts_per_million_chars=15.0),
    Price("tts-1-hd", tts_per_million_chars=30.0),
    Price("gpt-4o-mini-tts", tts_per_million_chars=15.0),
)


@dataclass(frozen=True)
class UsageSettings:
    retention_days: int = 90  # daily usage records are kept this long
    prices: tuple[Price, ...] = DEFAULT_PRICES

    def price(self, model: str) -> Price | None:
        return next((p for p in self.prices if p.model == model), None)


@dataclass(frozen=True)
class LimitSettings:
    """0 turns a limit off."""

    guild_daily_tokens: int = 0
    user_daily_tokens: int = 0
    user_turns: int = 0  # turns a user may start per window...
    user_window_s: float = 60.0  # ...a sliding window, shared by every process on the same Redis
    duplicate_ttl_s: int = 86_400  # how long a handled message id is remembered (replays, 2nd process)


@dataclass(frozen=True)
class HealthSettings:
    """The optional HTTP endpoint for /healthz and /metrics (Prometheus)."""

    enabled: bool = False
    host: str = "127.0.0.1"  # "0.0.0.0" in a container, so the orchestrator can reach it
    port: int = 8080


@dataclass(frozen=True)
class LoggingSettings:
    level: str = "INFO"


@dataclass(frozen=True)
class Secrets:
    """Deployment settings and secrets: from the environment only, never from config.toml."""

    discord_token: str
    openai_api_key: str
    openai_base_url: str | None = None
    redis_url: str | None = None
    discord_api_base: str | None = None
    discord_gateway_url: str | None = None
    transcription_base_url: str | None = None  # unset: the chat model's server
    transcription_api_key: str | None = None
    tts_base_url: str | None = None  # unset: the chat model's server
    tts_api_key: str | None = None
    shard_count: int | None = None  # unset: Discord's recommended count
    shard_ids: tuple[int, ...] | None = None  # unset: every shard in this process
    playground_password: str | None = None  # required when the playground listens beyond loopback
    provider_keys: tuple[tuple[str, str], ...] = ()  # [[providers]] name -> key, from their api_key_env

    def provider_key(self, provider: str) -> str:
        return dict(self.provider_keys)[provider]

    def __repr__(self) -> str:  # never let a secret reach a log through repr()
        return "Secrets(<redacted>)"


@dataclass(frozen=True)
class Settings:
    model: ModelSettings = field(default_factory=ModelSettings)
    history: HistorySettings = field(default_factory=HistorySettings)
    images: ImageSettings = field(default_factory=ImageSettings)
    redis: RedisSettings = field(default_factory=RedisSettings)
    stream: StreamSettings = field(default_factory=StreamSettings)
    discord: DiscordSettings = field(default_factory=DiscordSettings)
    tokens: TokenSettings = field(default_factory=TokenSettings)
    access: AccessSettings = field(default_factory=AccessSettings)
    voice: VoiceSettings = field(default_factory=VoiceSettings)
    personas: PersonaSettings = field(default_factory=PersonaSettings)
    usage: UsageSettings = field(default_factory=UsageSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    health: HealthSettings = field(default_factory=HealthSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    models: tuple[ModelOption, ...] = ()  # [[models]]: offered besides [model] (see bot/catalog.py)
    providers: tuple[Provider, ...] = ()  # [[providers]]
    secrets: Secrets = field(default_factory=lambda: Secrets("", ""))
    base_dir: Path = field(default_factory=Path.cwd)

    def resolve_path(self, value: str) -> Path:
        """Relative paths in config.toml are relative to the config file's folder."""
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.base_dir / path
