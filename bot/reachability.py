"""Why a server could not be reached, in a few words, and how long to wait before trying again.

Start-up talks to Discord before anything else works; when that fails, the operator reads one line
naming the cause (a name that does not resolve, a refused connection, no answer) instead of a chain of
tracebacks. No Discord import here: the causes are the transport's (aiohttp, sockets, timeouts).
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass

import aiohttp


def exception_chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and what caused it (``__cause__``, else ``__context__``), outermost first."""
    chain: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and all(link is not seen for seen in chain):  # chains can loop
        chain.append(link)
        link = link.__cause__ or link.__context__
    return chain


def network_cause(exc: BaseException, *, timeout_s: float | None = None) -> str | None:
    """A few words for a failure to reach a server, or None when ``exc`` is not one.

    The innermost transport error decides: aiohttp wraps the socket's, and the SDKs wrap aiohttp's."""
    chain = exception_chain(exc)
    if any(isinstance(link, socket.gaierror | aiohttp.ClientConnectorDNSError) for link in chain):
        hosts = [link.host for link in chain if isinstance(link, aiohttp.ClientConnectorError)]
        return f"the host name {hosts[0]} does not resolve" if hosts else "the host name does not resolve"
    for link in reversed(chain):
        if isinstance(link, ssl.SSLError | aiohttp.ClientSSLError):
            return f"TLS failed ({type(link).__name__})"
        if isinstance(link, ConnectionRefusedError):
            return "connection refused"
        if isinstance(link, aiohttp.ClientConnectorError):
            os_error = link.os_error
            if isinstance(os_error, ConnectionRefusedError):
                return "connection refused"
            return os_error.strerror or type(os_error).__name__
        if isinstance(link, aiohttp.ServerDisconnectedError | ConnectionResetError | aiohttp.ClientPayloadError):
            return "the server closed the connection before answering"
        if isinstance(link, aiohttp.WSServerHandshakeError):
            return f"the gateway answered HTTP {link.status} instead of opening a websocket"
        if isinstance(link, TimeoutError):
            return f"no answer within {timeout_s:g} s" if timeout_s else "no answer in time"
    for link in chain:
        if isinstance(link, OSError):
            return link.strerror or type(link).__name__
        if isinstance(link, aiohttp.ClientError):
            return f"{type(link).__name__}: {link}"
    return None


@dataclass
class Backoff:
    """Waits that double from ``first_s`` up to ``cap_s``: a server coming up is found quickly, one
    that stays down is not hammered."""

    first_s: float = 1.0
    cap_s: float = 60.0
    attempts: int = 0

    def next_delay(self) -> float:
        delay = min(self.cap_s, self.first_s * 2**self.attempts)
        self.attempts += 1
        return delay
