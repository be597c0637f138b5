"""Servers that cannot be used, on loopback: a port nothing listens on, a host that accepts
connections and never answers, and a name that never resolves.

No traffic leaves 127.0.0.1: the unresolvable name is under ``.invalid``, which RFC 2606 reserves so that
it never resolves (``resolves_fast`` checks that the local resolver says so at once).
"""

from __future__ import annotations

import asyncio
import socket
import time

UNRESOLVABLE_HOST = "discord-standin.invalid"


def unused_port() -> int:
    """A loopback port just released: nothing listens there, so connecting is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def resolves_fast(host: str = UNRESOLVABLE_HOST, within_s: float = 1.0) -> bool:
    """True when looking ``host`` up fails within ``within_s`` (a resolver that waits on a network
    timeout would make a test of it slow rather than meaningful)."""
    started = time.monotonic()
    try:
        socket.getaddrinfo(host, 80)
    except socket.gaierror:
        return time.monotonic() - started < within_s
    return False  # it resolved: something rewrites .invalid here, so the test is meaningless


class SilentServer:
    """Accepts TCP connections on 127.0.0.1, reads what is sent and never answers a byte."""

    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._peers: set[asyncio.StreamWriter] = set()
        self.connections = 0

    async def __aenter__(self) -> SilentServer:
        self._server = await asyncio.start_server(self._hold, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._peers:
            writer.close()
        await self._server.wait_closed()

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._peers.add(writer)
        try:
            while await reader.read(65536):
                pass
        except ConnectionError:
            pass
        finally:
            self._peers.discard(writer)
            writer.close()
