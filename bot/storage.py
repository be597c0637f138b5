"""The Redis connection: ``REDIS_URL`` when set, otherwise the embedded server (bot/embedded_redis.py).

The embedded server keeps its data under the configured data folder with AOF ``appendfsync everysec``,
the same durability a production Redis should be configured with.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import redis.asyncio as aioredis
from redis.asyncio import BlockingConnectionPool
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisClusterException, RedisError

from bot.deployment import is_cluster_url, plain_redis_url
from bot.embedded_redis import EmbeddedRedis
from bot.errors import StorageUnavailable

log = logging.getLogger(__name__)

# A stalled or stopped Redis must not hang a turn: fail within about a second and tell the user.
SOCKET_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 1.0
RETRIES = 2
# Turns beyond this many Redis calls at once wait for a free connection instead of failing. A call holds
# its connection well under a millisecond of Redis time, but under a CPU-saturated event loop (a burst
# of a thousand conversations) it may hold it for seconds of wall time: waiters queue for up to
# POOL_WAIT_S, as long as a model answer may take, rather than report storage as down.
MAX_CONNECTIONS = 128
POOL_WAIT_S = 60.0
T = TypeVar("T")


@dataclass
class RedisHandle:
    client: aioredis.Redis
    description: str


def connect(redis_url: str | None = None, *, unix_socket_path: str | None = None) -> aioredis.Redis:
    """A client that retries briefly (a restarted Redis is picked up again) and then gives up."""
    options: dict[str, Any] = {
        "socket_timeout": SOCKET_TIMEOUT_S,
        "socket_connect_timeout": CONNECT_TIMEOUT_S,
        "retry": Retry(ExponentialBackoff(cap=0.2, base=0.02), RETRIES),
    }
    if is_cluster_url(redis_url):
        return connect_cluster(plain_redis_url(redis_url or ""), options)
    pool = BlockingConnectionPool.from_url(
        redis_url or f"unix://{unix_socket_path}", max_connections=MAX_CONNECTIONS, timeout=POOL_WAIT_S, **options
    )
    return aioredis.Redis.from_pool(pool)  # the client owns the pool: aclose() closes its connections


def connect_cluster(url: str, options: dict[str, Any]) -> aioredis.Redis:
    """A Redis Cluster client from any one node's URL; it discovers the others and follows MOVED.

    Every script and multi-key command the bot sends stays within one hash slot (keys share a hash
    tag), and a pipeline spanning slots is split per node by redis-py, so the stores work unchanged:
    the cluster client offers the same command API, hence the (typing-only) cast."""
    return cast(aioredis.Redis, RedisCluster.from_url(url, **options))


def own_connection(client: aioredis.Redis) -> aioredis.Redis:
    """A client holding one connection of its own from ``client``'s pool, for a call that must not
    queue behind the others for a free connection (``aclose()`` gives it back). A cluster client has
    no single pool: it is returned as it is."""
    if isinstance(client, aioredis.Redis):
        return client.client()
    return client


@contextlib.asynccontextmanager
async def open_redis(redis_url: str | None, data_dir: Path) -> AsyncIterator[RedisHandle]:
    """Yield a connected client; close it (and stop the embedded server) on exit."""
    if redis_url:
        client = connect(redis_url)
        try:
            yield RedisHandle(client, "REDIS_URL (cluster)" if is_cluster_url(redis_url) else "REDIS_URL")
        finally:
            await client.aclose()
        return
    server = EmbeddedRedis(data_dir)
    try:
        # In a thread, since it waits for the server; if this task is cancelled meanwhile (SIGTERM during
        # start-up), the stop below waits for the start to finish and then stops the server.
        await asyncio.to_thread(server.start)
        client = connect(unix_socket_path=str(server.socket_path))
        try:
            yield RedisHandle(client, server.description)
        finally:
            await client.aclose()
    finally:
        # The thread finishes the stop even if this task is cancelled again: asyncio.run waits for it.
        await asyncio.to_thread(server.stop)


async def guarded(call: Callable[[], Awaitable[T]]) -> T:
    """Run a Redis call, turning connection failures into StorageUnavailable for the user."""
    try:
        return await call()
    except (RedisError, RedisClusterException, OSError) as exc:  # a cluster's is not a RedisError
        raise StorageUnavailable(f"redis: {type(exc).__name__}: {exc}") from exc
