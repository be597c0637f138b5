"""Runs ``python -m bot playground`` as a real process for the tests, and drives it with Gradio's own
Python client (gradio_client), whose blocking calls run in a thread so the loopback model server in the
test's event loop keeps serving."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import TEST_API_KEY
from tests.standins.egress_recorder import EgressRecorder
from tests.standins.model_server import ModelServer

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 60  # importing Gradio takes seconds on a busy 2-core machine


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_config(folder: Path, key_prefix: str, extra: str = "") -> Path:
    path = folder / "config.toml"
    path.write_text(
        f'[model]\nname = "test-model"\n\n[redis]\nkey_prefix = "{key_prefix}"\n\n'
        f"[tokens]\ndownload_encodings = false\n\n{extra}",
        encoding="utf-8",
    )
    return path


def playground_env(model: ModelServer, redis_url: str, egress: EgressRecorder, **extra: str) -> dict[str, str]:
    """No DISCORD_TOKEN: the playground needs none. Every proxy variable points at the egress recorder,
    so any HTTP request Gradio (or a library under it) makes beyond loopback is caught and recorded."""
    proxies = {name: egress.url for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")}
    proxies |= {name.lower(): url for name, url in proxies.items()}
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "OPENAI_API_KEY": TEST_API_KEY,
        "OPENAI_BASE_URL": model.base_url,
        "REDIS_URL": redis_url,
        "TIKTOKEN_CACHE_DIR": os.environ["TIKTOKEN_CACHE_DIR"],
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        **proxies,
        **extra,
    }


@dataclass
class PlaygroundProcess:
    process: asyncio.subprocess.Process
    url: str
    output: list[str] = field(default_factory=list)
    _reader: asyncio.Task[None] | None = None

    @property
    def log(self) -> str:
        return "".join(self.output)

    async def stop(self) -> int:
        """SIGTERM, as a terminal's Ctrl+C or a service manager would; the exit code."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), timeout=20)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self._reader is not None:
            await self._reader
        return self.process.returncode or 0


async def run_cli(*args: str, env: dict[str, str], timeout: float = START_TIMEOUT_S) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout=timeout)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return process.returncode or 0, output.decode()


@contextlib.asynccontextmanager
async def running_playground(
    config: Path, env: dict[str, str], port: int | None = None
) -> AsyncIterator[PlaygroundProcess]:
    """The playground on a free loopback port, ready once it prints its URL; stopped afterwards."""
    port = port or free_port()
    env = {"GRADIO_TEMP_DIR": str(config.parent / "gradio-files"), **env}  # uploads stay in the test's folder
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "playground", "--config", str(config), "--port", str(port), cwd=ROOT,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    running = PlaygroundProcess(process, f"http://127.0.0.1:{port}/")
    ready = asyncio.Event()

    async def read() -> None:
        assert process.stdout is not None
        async for line in process.stdout:
            running.output.append(line.decode(errors="replace"))
            if line.startswith(b"Playground: http://"):
                ready.set()

    running._reader = asyncio.create_task(read())
    try:
        waiter = asyncio.create_task(ready.wait())
        done, _ = await asyncio.wait(
            {waiter, running._reader}, timeout=START_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
        )
        if waiter not in done:
            waiter.cancel()
            raise AssertionError(f"the playground did not start:\n{running.log}")
        yield running
    finally:
        await running.stop()


class GradioPage:
    """gradio_client against the running playground: each call as a browser's event would make it."""

    def __init__(self, client: Any) -> None:
        self.client = client

    @classmethod
    async def open(cls, url: str, auth: tuple[str, str] | None = None) -> GradioPage:
        from gradio_client import Client

        return cls(await asyncio.to_thread(Client, url, auth=auth, verbose=False))

    async def job(self, api_name: str, *args: Any) -> Any:
        """Run one event to its end; the job keeps every streamed output (``job.outputs()``)."""

        def run() -> Any:
            job = self.client.submit(*args, api_name=api_name)
            job.result(timeout=30)
            return job

        return await asyncio.to_thread(run)

    async def call(self, api_name: str, *args: Any) -> Any:
        return (await self.job(api_name, *args)).outputs()[-1]

    async def start(self, session: int | None = None) -> dict[str, Any]:
        names = ("session", "chat", "persona", "custom", "model", "costs", "status")
        return dict(zip(names, await self.call("/start", session), strict=True))


def text(message: dict[str, Any]) -> str:
    """A chat message's text from gradio_client's messages (content as a list of parts)."""
    content = message["content"]
    return content if isinstance(content, str) else "".join(part.get("text", "") for part in content)


def transcript(chat: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(m["role"], text(m)) for m in chat]
