"""One real redis-server process that a test can stop and start again on the same port and data folder
(AOF ``appendfsync everysec``, as production should run), to play a Redis outage."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from pathlib import Path

import redis

from bot.embedded_redis import NO_BINARY
from tests.standins.redis_cluster import redis_server_binary

READY_TIMEOUT_S = 10.0


class RedisProcess:
    def __init__(self, folder: Path) -> None:
        binary = redis_server_binary()
        if binary is None:
            raise FileNotFoundError(NO_BINARY)
        self.binary = binary
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder)]
        args += ["--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--daemonize", "no"]
        self._process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_timeout=1)
        deadline = time.monotonic() + READY_TIMEOUT_S
        # An external process has no event to wait on: poll PING until it answers.
        while True:
            with contextlib.suppress(redis.ConnectionError):
                if client.ping():
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start within {READY_TIMEOUT_S}s")
            time.sleep(0.02)
        client.close()

    def stop(self) -> None:
        """A clean shutdown (what `systemctl stop redis` does): AOF flushed, port closed."""
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None

    def kill(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout=10)
            self._process = None
