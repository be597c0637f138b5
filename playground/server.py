"""``python -m bot playground``: the engine's services, the page, and a web server in one event loop.

Gradio's app is mounted on a FastAPI app served by uvicorn in this process's own loop, so the page's
handlers use the same Redis and model clients the services opened. It listens on loopback unless told
otherwise, and anywhere else only behind a login (PLAYGROUND_PASSWORD).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import logging
import secrets
import signal
import socket
import sys
from collections.abc import Callable, Iterator

import gradio as gr
import uvicorn
from fastapi import FastAPI

from bot.errors import BotError
from bot.keys import Keys
from bot.services import Services, open_services
from bot.settings import Settings
from bot.storage import guarded
from playground.session import Playground
from playground.ui import build

log = logging.getLogger(__name__)

EXIT_REFUSED = 2
LOGIN_MESSAGE = "Log in with any user name and the password in PLAYGROUND_PASSWORD."


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def login(password: str) -> Callable[[str, str], bool]:
    """Gradio's login check: any user name, the password compared in constant time."""
    expected = password.encode()
    return lambda _user, given: hmac.compare_digest(given.encode(), expected)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn re-raises SIGTERM once it has stopped, which would end the process before the services
        # close; the playground installs its own handlers instead (see serve()).
        yield


async def browser_secret(services: Services) -> str:
    """The key browsers' session ids are encrypted with, made once and kept in Redis: a restarted
    playground still reads the ids browsers stored, so their conversations carry on."""
    key = services.keys.browser_secret()
    await guarded(lambda: services.redis.set(key, secrets.token_urlsafe(24), nx=True))
    value = await guarded(lambda: services.redis.get(key))
    return value.decode()


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


async def serve(settings: Settings, sock: socket.socket) -> None:
    host, port = sock.getsockname()[:2]
    password = settings.secrets.playground_password
    keys = Keys(settings.redis.key_prefix).playground()
    try:
        async with open_services(settings, keys) as services:
            demo = build(Playground(services), await browser_secret(services))
            app = gr.mount_gradio_app(
                FastAPI(docs_url=None, redoc_url=None, openapi_url=None),
                demo,
                "/",
                server_name=host,
                server_port=port,
                footer_links=["api"],
                run_history=False,
                auth=(lambda _user, given: hmac.compare_digest(given.encode(), password.encode()))
                if password
                else None,
                auth_message=LOGIN_MESSAGE if password else None,
                show_error=False,
                ssr_mode=False,
                mcp_server=False,
                pwa=False,
                enable_monitoring=False,
            )
            demo.queue(default_concurrency_limit=16)
            config = uvicorn.Config(
                app, log_level="warning", timeout_graceful_shutdown=3, lifespan="on", access_log=False
            )
            server = _Server(config)
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
            shown_host = f"[{host}]" if ":" in host else host
            print(f"Playground: http://{shown_host}:{port}/ (Ctrl+C stops it)", flush=True)
            await server.serve(sockets=[sock])
    finally:
        sock.close()


def main(settings: Settings, host: str, port: int) -> int:
    if not is_loopback(host) and not settings.secrets.playground_password:
        print(
            f"Refusing to listen on {host}: anyone who can reach it could use your model. Set "
            "PLAYGROUND_PASSWORD to require a login, or leave --host at 127.0.0.1.",
            file=sys.stderr,
        )
        return EXIT_REFUSED
    try:
        sock = bind(host, port)
    except OSError as exc:
        print(f"Can't listen on {host}:{port}: {exc.strerror or exc}. Pick another --port.", file=sys.stderr)
        return 1
    try:
        asyncio.run(serve(settings, sock))
    except BotError as exc:
        print(exc.user_message, file=sys.stderr)
        return 1
    return 0
