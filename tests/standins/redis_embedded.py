"""A real Redis for tests and the benchmark: REDIS_URL when set, else the bot's own embedded server
(bot/embedded_redis.py) in a temporary folder."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from bot.embedded_redis import EmbeddedRedis


@contextlib.contextmanager
def embedded_redis(name: str = "test", folder: Path | None = None) -> Iterator[str]:
    """Yield a Redis URL: REDIS_URL when set, else a fresh embedded server (AOF on) in ``folder`` (a new
    temporary folder by default, removed afterwards), stopped on exit."""
    if url := os.environ.get("REDIS_URL"):
        yield url
        return
    own_folder = folder is None
    data_dir = Path(tempfile.mkdtemp(prefix=f"{name}-redis-")) if folder is None else folder
    server = EmbeddedRedis(data_dir)
    try:
        server.start()
        yield server.url
    finally:
        server.stop()
        if own_folder:
            shutil.rmtree(data_dir, ignore_errors=True)
