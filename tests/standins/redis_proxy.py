"""A TCP proxy in front of Redis that counts round trips.

A round trip is one burst of client bytes followed by the server's answer: the proxy counts how often
traffic switches from server->client back to client->server. redis-py sends a pipeline in one write
and reads all replies, so a pipeline counts once, as it costs once on the wire. ``upstream_delay``
holds each burst of client bytes back that long, as a slow network or a busy server would.
"""

from __future__ import annotations

import asyncio
import contextlib


class RoundTripProxy:
    def __init__(self, unix_socket: str | None = None, host: str | None = None, port: int | None = None) -> None:
        self._target = (unix_socket, host, port)
        self._server: asyncio.Server | None = None
        self.round_trips = 0
        self.upstream_delay = 0.0  # seconds
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"redis://{host}:{port}/0"

    async def start(self) -> RoundTripProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        unix_socket, host, port = self._target
        if unix_socket:
            server_reader, server_writer = await asyncio.open_unix_connection(unix_socket)
        else:
            server_reader, server_writer = await asyncio.open_connection(host, port)
        awaiting_answer = False

        async def upstream() -> None:
            nonlocal awaiting_answer
            while data := await client_reader.read(65536):
                if not awaiting_answer:
                    self.round_trips += 1
                    awaiting_answer = True
                if self.upstream_delay > 0:
                    await asyncio.sleep(self.upstream_delay)  # configured latency, not synchronisation
                server_writer.write(data)
                await server_writer.drain()
            server_writer.close()

        async def downstream() -> None:
            nonlocal awaiting_answer
            while data := await server_reader.read(65536):
                awaiting_answer = False
                client_writer.write(data)
                await client_writer.drain()
            client_writer.close()

        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await asyncio.gather(upstream(), downstream())
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            for writer in (client_writer, server_writer):
                with contextlib.suppress(Exception):
                    writer.close()
