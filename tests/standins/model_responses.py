"""Turn a behaviour into an aiohttp response for the stand-in model server.

Faults that kill the connection abort the transport and return a fresh ``web.Response``:
aiohttp then fails to write it, gets a ``ConnectionError`` and drops it quietly.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from tests.standins.model_behaviours import (
    ChatBehaviour,
    Drop,
    Error,
    Malformed,
    MidStreamFault,
    Reply,
    Stall,
    StallMidStream,
    StreamError,
    Transcript,
    TranscriptionBehaviour,
    default_usage,
    error_body,
    split_text,
    usage_dict,
)
from tests.standins.model_records import RecordedRequest, RecordedTranscription

Sleep = Callable[[float], Awaitable[None]]
UsageSink = Callable[[RecordedRequest, dict[str, int]], None]


class ServerClosing(Exception):
    """Raised by the server's sleep when ``close()`` is called, to end in-flight handlers."""


def drop(request: web.BaseRequest) -> web.StreamResponse:
    """Abort the connection (no FIN handshake, unsent data discarded)."""
    if request.transport is not None:
        request.transport.abort()
    return web.Response()


def error_response(error: Error, request_id: str) -> web.Response:
    headers = {"x-request-id": request_id, **error.headers()}
    return web.json_response(error.body(), status=error.status, headers=headers)


def _dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


class ChatResponder:
    """Writes one chat completion response (streaming or not) for one behaviour."""

    def __init__(self, request: web.BaseRequest, record: RecordedRequest, sleep: Sleep, on_usage: UsageSink) -> None:
        self.request = request
        self.record = record
        self.sleep = sleep
        self.on_usage = on_usage
        self.request_id = f"req_standin_{record.index}"
        self.id = f"chatcmpl-standin-{record.index}"
        self.created = int(time.time())
        self.model = str(record.body.get("model", ""))

    async def respond(self, behaviour: ChatBehaviour) -> web.StreamResponse:
        try:
            if isinstance(behaviour, Error):
                self.record.status = behaviour.status
                return error_response(behaviour, self.request_id)
            if isinstance(behaviour, Stall):
                await self.sleep(behaviour.seconds)
                return drop(self.request)
            if isinstance(behaviour, Drop) and behaviour.after_chunks == 0 and not behaviour.after_headers:
                return drop(self.request)
            if self.record.stream:
                return await self._stream(behaviour)
            return await self._complete(behaviour)
        except ServerClosing:
            return drop(self.request)

    # -- streaming ----------------------------------------------------------------------------

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }
        if self.record.include_usage:
            chunk["usage"] = None  # like OpenAI: every chunk but the last carries usage: null
        return chunk

    async def _send(self, response: web.StreamResponse, data: dict[str, Any] | str) -> None:
        payload = data if isinstance(data, str) else _dumps(data)
        await response.write(f"data: {payload}\n\n".encode())

    async def _stream(self, behaviour: Reply | MidStreamFault) -> web.StreamResponse:
        chunks = _content_chunks(behaviour)
        limit = len(chunks) if isinstance(behaviour, Reply) else behaviour.after_chunks
        first_delay = behaviour.first_chunk_delay if isinstance(behaviour, Reply) else 0.0
        chunk_delay = behaviour.chunk_delay if isinstance(behaviour, Reply) else 0.0
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                "x-request-id": self.request_id,
            }
        )
        try:
            await response.prepare(self.request)
            self.record.status = 200
            await self.sleep(first_delay)
            await self._send(response, self._chunk({"role": "assistant", "content": ""}))
            for i, piece in enumerate(chunks[:limit]):
                if i:
                    await self.sleep(chunk_delay)
                await self._send(response, self._chunk({"content": piece}))
                if not self.record.sent_text:
                    self.record.first_chunk_at = time.monotonic()
                self.record.sent_text += piece
            if isinstance(behaviour, StallMidStream):
                await self.sleep(behaviour.seconds)
                return drop(self.request)
            if isinstance(behaviour, Drop):
                return drop(self.request)
            if isinstance(behaviour, Malformed):
                await self._send(response, "{not json")
            elif isinstance(behaviour, StreamError):
                body = error_body(behaviour.message, behaviour.type_, behaviour.code)
                await self._send(response, body)
            elif isinstance(behaviour, Reply):
                await self._finish_stream(response, behaviour, len(chunks))
            await response.write_eof()  # Cut ends here: no finish_reason, usage or [DONE]
            self.record.last_chunk_at = time.monotonic()
        except ConnectionError:
            pass  # the client went away; aiohttp ignores the failed write_eof too
        return response

    async def _finish_stream(self, response: web.StreamResponse, reply: Reply, chunk_count: int) -> None:
        await self._send(response, self._chunk({}, reply.finish_reason))
        usage = self._usage(reply, chunk_count)
        if usage is not None and self.record.include_usage:
            chunk = {**self._chunk({}), "choices": [], "usage": usage}
            await self._send(response, chunk)
            self.on_usage(self.record, usage)
        await self._send(response, "[DONE]")

    def _usage(self, reply: Reply, chunk_count: int) -> dict[str, int] | None:
        if reply.usage is None:
            return None
        if reply.usage == "auto":
            return usage_dict(*default_usage(self.record.body, chunk_count))
        return usage_dict(*reply.usage)

    # -- not streaming ------------------------------------------------------------------------

    def _completion(self, text: str, finish_reason: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": finish_reason,
                }
            ],
        }

    async def _complete(self, behaviour: Reply | MidStreamFault) -> web.StreamResponse:
        headers = {"x-request-id": self.request_id}
        if isinstance(behaviour, Reply):
            chunks = behaviour.chunks()
            await self.sleep(behaviour.first_chunk_delay + behaviour.chunk_delay * max(len(chunks) - 1, 0))
            body = self._completion(behaviour.text, behaviour.finish_reason)
            usage = self._usage(behaviour, len(chunks))
            if usage is not None:
                body["usage"] = usage
                self.on_usage(self.record, usage)
            self.record.status = 200
            self.record.sent_text = behaviour.text
            return web.json_response(body, headers=headers, dumps=_dumps)
        if isinstance(behaviour, StreamError):
            error = Error(500, message=behaviour.message, type_=behaviour.type_, code=behaviour.code)
            self.record.status = 500
            return error_response(error, self.request_id)
        self.record.status = 200
        if isinstance(behaviour, Malformed):
            return web.Response(text="{not json", content_type="application/json", headers=headers)
        # Cut / Drop / StallMidStream: headers, then half of a would-be body.
        full = _dumps(self._completion(behaviour.text, "stop")).encode()
        response = web.StreamResponse(headers={**headers, "Content-Type": "application/json"})
        try:
            await response.prepare(self.request)
            await response.write(full[: len(full) // 2])
            if isinstance(behaviour, StallMidStream):
                await self.sleep(behaviour.seconds)
            if isinstance(behaviour, StallMidStream | Drop):
                return drop(self.request)
            await response.write_eof()
        except ConnectionError:
            pass
        return response


def _content_chunks(behaviour: Reply | MidStreamFault) -> list[str]:
    if isinstance(behaviour, Reply):
        return behaviour.chunks()
    return split_text(behaviour.text, behaviour.chunk_size)


async def respond_transcription(
    request: web.BaseRequest, record: RecordedTranscription, behaviour: TranscriptionBehaviour, sleep: Sleep
) -> web.StreamResponse:
    request_id = f"req_standin_t{record.index}"
    try:
        if isinstance(behaviour, Error):
            record.status = behaviour.status
            return error_response(behaviour, request_id)
        if isinstance(behaviour, Stall):
            await sleep(behaviour.seconds)
            return drop(request)
        if isinstance(behaviour, Drop):
            return drop(request)
        transcript = behaviour if isinstance(behaviour, Transcript) else Transcript(behaviour.text)
        await sleep(transcript.delay)
    except ServerClosing:
        return drop(request)
    record.status = 200
    record.sent_text = transcript.text
    headers = {"x-request-id": request_id}
    response_format = record.response_format or "json"
    if response_format in ("text", "srt", "vtt"):
        return web.Response(text=transcript.text, headers=headers)
    body: dict[str, Any] = {"text": transcript.text}
    if transcript.billed_seconds is not None:
        body["usage"] = {"type": "duration", "seconds": transcript.billed_seconds}
    if response_format == "verbose_json":
        body = {
            "task": "transcribe",
            "language": transcript.language,
            "duration": transcript.duration,
            "text": transcript.text,
            "segments": [],
        }
    return web.json_response(body, headers=headers, dumps=_dumps)
