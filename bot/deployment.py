"""Deployment settings read from the environment: shards, the kind of Redis, the log level.

Each parser raises one ``ConfigError`` naming the variable, like the rest of the configuration.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from bot.errors import ConfigError

# A Redis Cluster (or a managed cluster-mode Redis/Valkey) is named by its scheme, so one variable,
# REDIS_URL, still says everything about storage: "redis+cluster://host:port" is any one node.
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
REDIS_SCHEMES = ("redis", "rediss", "unix", *CLUSTER_SCHEMES)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def parse_shards(count: str | None, ids: str | None) -> tuple[int | None, tuple[int, ...] | None]:
    """``SHARD_COUNT`` and ``SHARD_IDS`` ("0,1"): (None, None) lets Discord recommend a count and this
    process take every shard."""
    shard_count = None
    if count is not None:
        if not count.isdigit() or int(count) < 1:
            raise ConfigError(f"SHARD_COUNT must be a whole number of 1 or more, got {count!r}")
        shard_count = int(count)
    if ids is None:
        return shard_count, None
    if shard_count is None:
        # Without the total, a process cannot know which guilds its shards own.
        raise ConfigError("SHARD_IDS needs SHARD_COUNT: set both, e.g. SHARD_COUNT=4 SHARD_IDS=0,1")
    parts = [part.strip() for part in ids.split(",")]
    if not all(part.isdigit() for part in parts):
        raise ConfigError(f"SHARD_IDS must be shard numbers separated by commas, e.g. 0,1; got {ids!r}")
    shard_ids = tuple(int(part) for part in parts)
    if len(set(shard_ids)) != len(shard_ids):
        raise ConfigError(f"SHARD_IDS lists a shard twice: {ids!r}")
    if too_big := [n for n in shard_ids if n >= shard_count]:
        raise ConfigError(f"SHARD_IDS {too_big} out of range: shards are numbered 0 to {shard_count - 1}")
    return shard_count, shard_ids


def check_redis_url(url: str) -> str:
    """Refuse a REDIS_URL redis-py would misread (a typo'd scheme or port would otherwise fail much
    later, as a traceback)."""
    parts = urlsplit(url)
    if parts.scheme not in REDIS_SCHEMES:
        expected = ", ".join(f"{s}://" for s in REDIS_SCHEMES)
        raise ConfigError(f"REDIS_URL must start with one of {expected} (got {parts.scheme or 'no'} scheme)")
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when asked for it
    except ValueError:
        port = parts.netloc.rpartition("@")[2].rpartition(":")[2]
        raise ConfigError(f"REDIS_URL has a port that is not a number from 0 to 65535: {port!r}") from None
    return url


# DISCORD_API_BASE may name the server's root, its /api, or a versioned /api/vN (Spacebar's docs give
# that form); discord.py wants the versioned one.
_API_VERSION = re.compile(r"/api/v\d+$")
DISCORD_API_VERSION = "v10"


def discord_rest_base(api_base: str) -> str:
    """The REST base discord.py's routes hang off, from any of the forms DISCORD_API_BASE accepts."""
    base = api_base.rstrip("/")
    if _API_VERSION.search(base):
        return base
    if base.endswith("/api"):
        return f"{base}/{DISCORD_API_VERSION}"
    return f"{base}/api/{DISCORD_API_VERSION}"


def check_discord_api_base(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"DISCORD_API_BASE must be an http:// or https:// URL, got {value!r}")
    return value


def discord_site(api_base: str | None) -> str:
    """The web address invite links start with: Discord's, or the Discord-compatible server's root."""
    if not api_base:
        return "https://discord.com"
    parts = urlsplit(api_base)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def is_cluster_url(url: str | None) -> bool:
    return bool(url) and urlsplit(url).scheme in CLUSTER_SCHEMES


def plain_redis_url(url: str) -> str:
    """The URL redis-py's cluster client takes: ``redis+cluster://`` becomes ``redis://``."""
    scheme, rest = url.split("://", 1)
    return f"{CLUSTER_SCHEMES.get(scheme, scheme)}://{rest}"


def log_level(value: str) -> str:
    level = value.strip().upper()
    if level not in LOG_LEVELS:
        raise ConfigError(f"LOG_LEVEL must be {', '.join(LOG_LEVELS[:-1])} or {LOG_LEVELS[-1]}, got {value!r}")
    return level
