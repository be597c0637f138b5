"""The stand-in model server's speech endpoint, ``POST /v1/audio/speech`` (text to speech).

Like OpenAI's: a JSON body (``model``, ``input``, ``voice``, ``response_format``: mp3 by default) and
the audio's bytes as the response. The audio is real, made with PyAV when asked for (see
``tests/standins/audio_samples.py``): a tone whose length follows the text. Faults are queued with
``server.speech.script(...)``: ``Error(500)``, ``Stall(seconds)`` (a timeout), ``Garbage(...)`` (bytes
that are not audio, with an audio content type), or a ``Speech`` in another format than asked.

    server.speech.script(Speech(response_format="wav"), Error(500), Stall(5), Garbage())
    [record] = await server.speech.wait_for(1)
    record.input, record.api_key, record.sent
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from multidict import CIMultiDictProxy

from tests.standins.audio_samples import tone
from tests.standins.model_behaviours import Error, Stall
from tests.standins.model_records import CountWaiter
from tests.standins.model_responses import ServerClosing, drop, error_response

CONTENT_TYPES = {"opus": "audio/ogg", "mp3": "audio/mpeg", "wav": "audio/wav", "flac": "audio/flac", "aac": "audio/aac"}
SECONDS_PER_CHAR = 0.02  # a short tone per character keeps tests quick; real speech is ~0.07 s
MAX_INPUT_CHARS = 4_096  # OpenAI's limit


@dataclass(frozen=True)
class Speech:
    """Real audio: in ``response_format`` (default: what the request asked for), ``seconds`` long
    (default: from the text's length)."""

    response_format: str | None = None
    seconds: float | None = None


@dataclass(frozen=True)
class Garbage:
    """200 with bytes that are not audio, labelled as audio."""

    data: bytes = b"\x00not audio at all\xff" * 64
    content_type: str = "audio/ogg"


SpeechBehaviour = Speech | Garbage | Error | Stall


@dataclass
class RecordedSpeech:
    index: int
    headers: CIMultiDictProxy[str]
    body: dict[str, Any]
    arrived_at: float
    authorized: bool
    behaviour: SpeechBehaviour | None = None
    status: int | None = None
    sent: bytes = b""  # the audio bytes answered
    sent_format: str | None = None
    finished: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def input(self) -> str:
        return str(self.body.get("input", ""))

    @property
    def api_key(self) -> str | None:
        value = self.headers.get("Authorization")
        return value.removeprefix("Bearer ") if value and value.startswith("Bearer ") else None


class SpeechEndpoint:
    def __init__(self, authorized: Callable[[web.BaseRequest], bool], sleep: Callable[[float], Awaitable[None]]):
        self._authorized = authorized
        self._sleep = sleep
        self.requests: list[RecordedSpeech] = []
        self._script: deque[SpeechBehaviour] = deque()
        self._waiter = CountWaiter("speech requests")

    def script(self, *behaviours: SpeechBehaviour) -> None:
        """Queue behaviours for the next speech requests (FIFO); then ``Speech()``."""
        self._script.extend(behaviours)

    def reset(self) -> None:
        self.requests.clear()
        self._script.clear()

    async def wait_for(self, n: int, timeout: float = 5.0) -> list[RecordedSpeech]:
        await self._waiter.wait(n, lambda: len(self.requests), timeout)
        return list(self.requests)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError:
            body = None
        record = RecordedSpeech(
            len(self.requests),
            request.headers,
            body if isinstance(body, dict) else {},
            time.monotonic(),
            self._authorized(request),
        )
        self.requests.append(record)
        self._waiter.notify(len(self.requests))
        try:
            return await self._respond(request, record, body)
        finally:
            record.finished.set()

    async def _respond(self, request: web.Request, record: RecordedSpeech, body: Any) -> web.StreamResponse:
        request_id = f"req_standin_s{record.index}"
        problem = None if record.authorized else Error(401)
        if problem is None and not isinstance(body, dict):
            problem = Error(400, message="Request body is not a JSON object.")
        elif problem is None and not all(isinstance(body.get(k), str) and body[k] for k in ("model", "input", "voice")):
            problem = Error(400, message="'model', 'input' and 'voice' are required.")
        elif problem is None and len(record.input) > MAX_INPUT_CHARS:
            problem = Error(400, message=f"'input' is longer than {MAX_INPUT_CHARS} characters.")
        elif problem is None and body.get("response_format", "mp3") not in CONTENT_TYPES:
            problem = Error(400, message="Unsupported response_format.")
        behaviour = problem or (self._script.popleft() if self._script else Speech())
        record.behaviour = behaviour
        if isinstance(behaviour, Error):
            record.status = behaviour.status
            return error_response(behaviour, request_id)
        try:
            if isinstance(behaviour, Stall):
                await self._sleep(behaviour.seconds)
                return drop(request)
        except ServerClosing:
            return drop(request)
        if isinstance(behaviour, Garbage):
            data, content_type = behaviour.data, behaviour.content_type
        else:
            fmt = behaviour.response_format or body.get("response_format", "mp3")
            seconds = behaviour.seconds or max(0.3, len(record.input) * SECONDS_PER_CHAR)
            data = await asyncio.to_thread(tone, seconds, fmt)  # encoding is CPU work: off the loop
            content_type = CONTENT_TYPES[fmt]
            record.sent_format = fmt
        record.status, record.sent = 200, data
        return web.Response(body=data, headers={"Content-Type": content_type, "x-request-id": request_id})
