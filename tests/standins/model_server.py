"""A stand-in OpenAI HTTP API on 127.0.0.1 for tests and benchmarks, driven by the real SDK.

    async with ModelServer(api_key="test-key") as server:
        client = openai.AsyncOpenAI(base_url=server.base_url, api_key="test-key", max_retries=0)
        server.script(Reply("hi"), Error(429, retry_after=1), Stall(5))
        ...
        await server.wait_for_requests(3)

Chat requests get the next scripted behaviour (FIFO), else ``server.responder(body)``
(default: ``Reply(f"echo: {last user message}")``). Transcriptions have their own queue and
``server.transcriber``. Speech (``/v1/audio/speech``) is ``server.speech`` (tests/standins/model_speech.py).
Everything is asyncio in the event loop; only the speech endpoint encodes its audio in a thread.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import deque
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

from aiohttp import BodyPartReader, web
from multidict import MultiDict, MultiDictProxy

from tests.standins.model_behaviours import (
    ChatBehaviour,
    Cut,
    Drop,
    Error,
    Malformed,
    Reply,
    Stall,
    StallMidStream,
    StreamError,
    Transcript,
    TranscriptionBehaviour,
    echo_responder,
)
from tests.standins.model_records import (
    CountWaiter,
    InvalidImage,
    RecordedImage,
    RecordedRequest,
    RecordedTranscription,
    image_parts,
)
from tests.standins.model_responses import (
    ChatResponder,
    ServerClosing,
    drop,
    error_response,
    respond_transcription,
)
from tests.standins.model_speech import Garbage, Speech, SpeechEndpoint

__all__ = [
    "Cut",
    "Drop",
    "Error",
    "Garbage",
    "Malformed",
    "ModelServer",
    "RecordedImage",
    "RecordedRequest",
    "RecordedTranscription",
    "Reply",
    "Speech",
    "Stall",
    "StallMidStream",
    "StreamError",
    "Transcript",
    "unused_base_url",
]

MAX_REQUEST_BYTES = 64 * 1024 * 1024


def default_transcriber(record: RecordedTranscription) -> TranscriptionBehaviour:
    """Default: ``Transcript(f"transcript of {filename} ({n} bytes)")``."""
    return Transcript(f"transcript of {record.filename} ({len(record.file or b'')} bytes)")


def unused_base_url(host: str = "127.0.0.1") -> str:
    """A base_url where (almost surely) nothing listens: a port just bound and released."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port = sock.getsockname()[1]
    return f"http://{host}:{port}/v1"


class ModelServer:
    def __init__(
        self,
        *,
        api_key: str | None = "test-key",
        models: Sequence[str] = ("test-model",),
        latency: float = 0.0,
        reject_unknown_models: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
        backlog: int = 4096,
    ) -> None:
        """``api_key=None`` accepts any key. ``latency``: seconds before any response byte.
        ``reject_unknown_models``: chat requests for a model not in ``models`` get a 404."""
        self.api_key = api_key
        self.models = list(models)
        self.latency = latency
        self.reject_unknown_models = reject_unknown_models
        self.host = host
        self.backlog = backlog
        self.responder: Callable[[dict[str, Any]], ChatBehaviour] = echo_responder
        self.transcriber: Callable[[RecordedTranscription], TranscriptionBehaviour] = default_transcriber
        self.requests: list[RecordedRequest] = []
        self.transcriptions: list[RecordedTranscription] = []
        self.reported_usage: list[dict[str, int]] = []  # usage objects actually sent, in order
        self._port = port
        self._chat_script: deque[ChatBehaviour] = deque()
        self._transcription_script: deque[TranscriptionBehaviour] = deque()
        self._chat_waiter = CountWaiter("chat requests")
        self._transcription_waiter = CountWaiter("transcription requests")
        self._runner: web.AppRunner | None = None
        self._site: web.SockSite | None = None
        self._closing = asyncio.Event()
        self._busy: set[web.RequestHandler] = set()  # connections with a chat/transcription in flight
        self.speech = SpeechEndpoint(self._authorized, self._sleep)

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> ModelServer:
        if self._runner is not None:
            raise RuntimeError("ModelServer already started")
        app = web.Application(client_max_size=MAX_REQUEST_BYTES)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/audio/transcriptions", self._transcription)
        app.router.add_post("/v1/audio/speech", self.speech.handle)
        app.router.add_get("/v1/models", self._list_models)
        app.router.add_get("/v1/models/{model}", self._get_model)
        self._closing = asyncio.Event()
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        await self._listen()
        return self

    async def close(self) -> None:
        """Stop listening, end in-flight handlers (stalls included) and close every connection."""
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
        self._runner = None
        self._site = None

    async def __aenter__(self) -> ModelServer:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def refuse_connections(self) -> None:
        """Stop listening (new connections are refused) and close idle keep-alive connections,
        so the client cannot reuse them. In-flight responses finish, then their connection closes."""
        if self._site is not None:
            await self._site.stop()
            self._site = None
        if self._runner is not None and self._runner.server is not None:
            for connection in self._runner.server.connections:
                if connection in self._busy:
                    connection.close()  # closes once the response is done
                else:
                    connection.force_close()
            # One loop turn runs the transports' scheduled close, so the sockets are closed (and
            # the client sees EOF on its pooled connections) when this returns.
            await asyncio.sleep(0)

    async def restart(self) -> None:
        """Listen again on the same port after ``refuse_connections()``."""
        if self._runner is None:
            raise RuntimeError("ModelServer not started")
        if self._site is None:
            await self._listen()

    async def _listen(self) -> None:
        assert self._runner is not None
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self._port))
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        self._port = sock.getsockname()[1]
        self._site = web.SockSite(self._runner, sock, backlog=self.backlog)
        await self._site.start()

    @property
    def port(self) -> int:
        if self._runner is None:
            raise RuntimeError("ModelServer not started")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    # -- scripting and waiting ----------------------------------------------------------------

    def script(self, *behaviours: ChatBehaviour) -> None:
        """Queue behaviours for the next chat requests (FIFO)."""
        self._chat_script.extend(behaviours)

    def script_transcriptions(self, *behaviours: TranscriptionBehaviour) -> None:
        """Queue behaviours for the next transcription requests (FIFO)."""
        self._transcription_script.extend(behaviours)

    @property
    def pending_script(self) -> int:
        """Chat behaviours queued and not yet used."""
        return len(self._chat_script)

    def reset(self) -> None:
        """Forget recorded requests, reported usage and queued behaviours."""
        self.requests.clear()
        self.transcriptions.clear()
        self.reported_usage.clear()
        self._chat_script.clear()
        self._transcription_script.clear()
        self.speech.reset()

    async def wait_for_requests(self, n: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Wait until at least ``n`` chat requests have arrived (TimeoutError otherwise)."""
        await self._chat_waiter.wait(n, lambda: len(self.requests), timeout)
        return list(self.requests)

    async def wait_for_transcriptions(
        self,
        n: int,
        timeout: float = 5.0,
    ) -> list[RecordedTranscription]:
        """Wait until at least ``n`` transcription requests have been received in full."""
        await self._transcription_waiter.wait(n, lambda: len(self.transcriptions), timeout)
        return list(self.transcriptions)

    # -- handlers -----------------------------------------------------------------------------

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but raise ServerClosing as soon as ``close()`` is called."""
        if self._closing.is_set():
            raise ServerClosing
        if seconds <= 0:
            return
        try:
            await asyncio.wait_for(self._closing.wait(), seconds)
        except TimeoutError:
            return
        raise ServerClosing

    def _authorized(self, request: web.BaseRequest) -> bool:
        return self.api_key is None or request.headers.get("Authorization") == f"Bearer {self.api_key}"

    def _report_usage(self, record: RecordedRequest, usage: dict[str, int]) -> None:
        record.usage = usage
        self.reported_usage.append(usage)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        arrived_at = time.monotonic()
        self._busy.add(request.protocol)
        try:
            body = await request.json()
        except ValueError:
            body = None
        record = RecordedRequest(
            index=len(self.requests),
            path=request.path,
            body=body if isinstance(body, dict) else {},
            headers=request.headers,
            arrived_at=arrived_at,
            authorized=self._authorized(request),
        )
        self.requests.append(record)
        self._chat_waiter.notify(len(self.requests))
        request_id = f"req_standin_{record.index}"
        try:
            if not record.authorized:
                record.status = 401
                return error_response(Error(401), request_id)
            if not isinstance(body, dict):
                record.status = 400
                return error_response(Error(400, message="Request body is not a JSON object."), request_id)
            if self.reject_unknown_models and record.model not in self.models:
                record.status = 404
                message = f"The model `{record.model}` does not exist or you do not have access to it."
                return error_response(Error(404, message=message), request_id)
            try:
                image_parts(record.messages)
            except InvalidImage as exc:  # OpenAI answers 400 invalid_image_url before any scripted behaviour
                record.status = 400
                return error_response(Error(400, message=f"Invalid image: {exc}"), request_id)
            behaviour = self._chat_script.popleft() if self._chat_script else self.responder(record.body)
            record.behaviour = behaviour
            try:
                await self._sleep(self.latency)
            except ServerClosing:
                return drop(request)
            return await ChatResponder(request, record, self._sleep, self._report_usage).respond(behaviour)
        finally:
            self._busy.discard(request.protocol)
            record.finished.set()

    async def _transcription(self, request: web.Request) -> web.StreamResponse:
        record = RecordedTranscription(
            index=len(self.transcriptions),
            path=request.path,
            headers=request.headers,
            arrived_at=time.monotonic(),
            authorized=self._authorized(request),
        )
        request_id = f"req_standin_t{record.index}"
        self._busy.add(request.protocol)
        try:
            fields: MultiDict[str] = MultiDict()
            try:
                async for part in await request.multipart():
                    if not isinstance(part, BodyPartReader):
                        continue
                    if part.filename is not None:
                        record.file = bytes(await part.read())
                        record.filename = part.filename
                        record.content_type = part.headers.get("Content-Type")
                    elif part.name is not None:
                        fields.add(part.name, await part.text())
            except (AssertionError, ValueError):  # not multipart, or a broken body
                record.status = 400
                return error_response(Error(400, message="Expected a multipart/form-data body."), request_id)
            finally:
                record.fields = MultiDictProxy(fields)
                self.transcriptions.append(record)
                self._transcription_waiter.notify(len(self.transcriptions))
            if not record.authorized:
                record.status = 401
                return error_response(Error(401), request_id)
            if record.file is None:
                record.status = 400
                return error_response(Error(400, message="Missing the 'file' part."), request_id)
            if self._transcription_script:
                behaviour = self._transcription_script.popleft()
            else:
                behaviour = self.transcriber(record)
            record.behaviour = behaviour
            try:
                await self._sleep(self.latency)
            except ServerClosing:
                return drop(request)
            return await respond_transcription(request, record, behaviour, self._sleep)
        finally:
            self._busy.discard(request.protocol)
            record.finished.set()

    def _model_object(self, name: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": 0, "owned_by": "standin"}

    async def _list_models(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return error_response(Error(401), "req_standin_models")
        return web.json_response({"object": "list", "data": [self._model_object(m) for m in self.models]})

    async def _get_model(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return error_response(Error(401), "req_standin_models")
        name = request.match_info["model"]
        if name not in self.models:
            message = f"The model `{name}` does not exist or you do not have access to it."
            return error_response(Error(404, message=message), "req_standin_models")
        return web.json_response(self._model_object(name))
