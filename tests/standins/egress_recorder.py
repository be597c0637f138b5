"""A stand-in for "the internet": an HTTP proxy on 127.0.0.1 that records every request sent through it
and forwards none. Point HTTP(S)_PROXY (or a browser's --proxy-server) at it and anything that tries to
reach a host beyond loopback shows up in ``attempts`` instead of leaving the machine."""

from __future__ import annotations

import asyncio
from types import TracebackType


class EgressRecorder:
    def __init__(self) -> None:
        self.attempts: list[str] = []  # request lines, e.g. "CONNECT api.gradio.app:443 HTTP/1.1"
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> EgressRecorder:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), timeout=5)
            if line:
                self.attempts.append(line.decode("latin-1").strip())
            writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
