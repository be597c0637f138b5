"""The chat model: AsyncOpenAI streaming, with timeouts and the SDK's errors turned into ours."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx2
import openai

from bot.errors import (
    ModelAuthError,
    ModelError,
    ModelQuotaExceeded,
    ModelRateLimited,
    ModelRejected,
    ModelTimeout,
    ModelUnavailable,
    StreamInterrupted,
)
from bot.settings import ModelSettings

log = logging.getLogger(__name__)

RAW_CHUNKS = openai.AsyncStream[object]  # the SDK's stream, yielding each chunk's JSON (see stream())


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    estimated: bool = False  # True when the server sent no usage and we counted with tiktoken


@dataclass(frozen=True, slots=True)
class Finish:
    """The end of a successful stream."""

    reason: str  # "stop", "length", "content_filter", ...
    usage: Usage | None


def build_client(settings: ModelSettings, api_key: str, base_url: str | None) -> openai.AsyncOpenAI:
    """The one shared client. The SDK's own timeout guards each attempt; ``ChatModel`` adds the idle
    limit between chunks and the overall deadline.

    The transport is the SDK's aiohttp one (``DefaultAioHttpClient``) rather than its default httpx2/
    httpcore2: about half the CPU per streamed request (httpcore2's pool re-checks every open connection
    on each request), which is what limits one event loop under many concurrent turns. Its errors say
    "timeout" for a refused or dropped connection; ``model_error`` classifies by the cause instead."""
    return openai.AsyncOpenAI(
        api_key=api_key,
        base_url=base_url,
        max_retries=settings.max_retries,
        timeout=openai.Timeout(settings.timeout_s, connect=settings.connect_timeout_s),
        http_client=openai.DefaultAioHttpClient(),
    )


# The SDK's retry rules (retryable statuses, its backoff: 0.5 s doubling up to 8 s), applied by ChatModel.
RETRY_STATUSES = frozenset({408, 409, 429})
RETRY_FIRST_WAIT_S = 0.5
RETRY_MAX_WAIT_S = 8.0


class ChatModel:
    def __init__(self, client: openai.AsyncOpenAI, settings: ModelSettings) -> None:
        # Retries are ChatModel's, not the SDK's: the SDK sleeps out a Retry-After even past the
        # answer's deadline (the user then hears "took too long" instead of "rate-limited"), and cannot
        # retry a stream whose connection dropped after the 200 but before any text.
        self.client = client.with_options(max_retries=0)
        self.settings = settings

    def request_params(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": self.settings.name,
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_completion_tokens": self.settings.max_reply_tokens,
            # The SDK walks every param recursively before sending (its _transform_recursive), which
            # costs ~0.15 ms per message on the event loop. Messages are plain JSON already, so they go
            # through extra_body, which the SDK merges into the body untouched; the body is identical.
            "messages": [],
            "extra_body": {"messages": messages},
        }
        if self.settings.temperature is not None:
            params["temperature"] = self.settings.temperature
        return params

    async def stream(self, messages: list[dict[str, Any]]) -> AsyncIterator[str | Finish]:
        """Yield text deltas, then one ``Finish``. Raises a ``ModelError`` subclass on any failure,
        including a stream that ends without a finish reason (the SDK raises nothing for that).

        A failed attempt is retried (up to ``max_retries``) while nothing has been shown and the wait
        fits before the deadline; a wait that does not fit (a long Retry-After) fails at once."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.timeout_s
        for attempt in range(self.settings.max_retries + 1):
            shown = False
            try:
                async with contextlib.aclosing(self._attempt(messages, deadline)) as events:
                    async for event in events:
                        shown = shown or isinstance(event, str)
                        yield event
                return
            except ModelError as error:
                wait = None if shown or attempt == self.settings.max_retries else retry_wait(error, attempt)
                if wait is None or loop.time() + wait >= deadline:
                    raise
                log.info("Model request failed (%s); retry %d of %d in %.1f s", error, attempt + 1,
                         self.settings.max_retries, wait)  # fmt: skip
            await asyncio.sleep(wait)

    async def _attempt(self, messages: list[dict[str, Any]], deadline: float) -> AsyncIterator[str | Finish]:
        """One request and its stream, within the answer's deadline."""
        loop = asyncio.get_running_loop()
        finish_reason: str | None = None
        usage: Usage | None = None
        streaming = False
        try:
            async with contextlib.AsyncExitStack() as exits:
                # Timeouts wrap each await, never a yield: a timer left running while the consumer
                # holds a yielded delta would cancel the consumer's own work.
                async with asyncio.timeout_at(deadline):
                    response = await exits.enter_async_context(
                        self.client.chat.completions.with_streaming_response.create(**self.request_params(messages))
                    )
                streaming = True
                # The SDK's own stream class (its SSE decoding, mid-stream error events and transport
                # error mapping), told to hand over each chunk's JSON as it is instead of building a
                # ChatCompletionChunk: ~55 us per chunk, and a real answer streams a chunk per token
                # (~25 ms of CPU for 500 tokens). The request, its retries and status errors are the
                # ordinary call's; parse(to=AsyncStream[...]) is the SDK's documented way to choose
                # the chunk type. We read four fields, checked below.
                stream = await response.parse(to=RAW_CHUNKS)
                chunks = aiter(stream)
                while True:
                    async with asyncio.timeout_at(min(deadline, loop.time() + self.settings.idle_timeout_s)):
                        chunk = await anext(chunks, None)
                    if chunk is None:
                        break
                    for delta in _chunk_events(chunk):
                        if isinstance(delta, Usage):
                            usage = delta
                        elif isinstance(delta, Finish):
                            finish_reason = delta.reason
                        else:
                            yield delta
        except TimeoutError as exc:
            raise ModelTimeout(f"no answer within the model's time limits ({self.settings.name})") from exc
        except (openai.APIError, httpx2.HTTPError, aiohttp.ClientError, json.JSONDecodeError, MalformedChunk) as exc:
            if streaming:  # the answer had begun: whatever broke, it is an interrupted answer
                raise StreamInterrupted(f"{type(exc).__name__}: {exc}") from exc
            raise model_error(exc) from exc
        if finish_reason is None:
            raise StreamInterrupted("the stream ended without a finish reason")
        yield Finish(finish_reason, usage)


class MalformedChunk(ValueError):
    """A chunk that is JSON but not a chat completion chunk."""


def _chunk_events(chunk: object) -> list[str | Usage | Finish]:
    """A chunk's text deltas, usage and finish reason (a ``Finish`` without usage), in order."""
    if not isinstance(chunk, dict):
        raise MalformedChunk(f"a chunk that is not an object: {chunk!r:.100}")
    events: list[str | Usage | Finish] = []
    try:
        if (usage := chunk.get("usage")) is not None:
            events.append(Usage(int(usage["prompt_tokens"]), int(usage["completion_tokens"])))
        for choice in chunk.get("choices") or ():
            content = (choice.get("delta") or {}).get("content")
            if content:
                events.append(str(content))
            if reason := choice.get("finish_reason"):
                events.append(Finish(str(reason), None))
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise MalformedChunk(f"{type(exc).__name__}: {exc} in {chunk!r:.100}") from exc
    return events


def model_error(exc: BaseException) -> ModelError:
    """Map an SDK (or transport) exception to the error the user hears about."""
    cause = transport_cause(exc)
    if cause is not None:
        if isinstance(cause, TimeoutError):  # aiohttp's connect and socket-read timeouts
            return ModelTimeout(f"{type(cause).__name__}: {cause}")
        return ModelUnavailable(f"cannot reach the model server: {type(cause).__name__}: {cause}")
    if isinstance(exc, openai.APITimeoutError):
        return ModelTimeout(str(exc))
    if isinstance(exc, openai.APIConnectionError):
        return ModelUnavailable(f"cannot reach the model server: {exc}")
    if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
        return ModelAuthError(f"{exc.status_code}: {exc.message}")
    if isinstance(exc, openai.RateLimitError):
        if exc.code == "insufficient_quota":
            return ModelQuotaExceeded(exc.message)
        return ModelRateLimited(exc.message, retry_after=_retry_after(exc.response))
    if isinstance(exc, openai.BadRequestError | openai.NotFoundError | openai.UnprocessableEntityError):
        return ModelRejected(f"{exc.status_code}: {exc.message}")
    if isinstance(exc, openai.APIStatusError):
        return ModelError(f"{exc.status_code}: {exc.message}")
    return ModelError(f"{type(exc).__name__}: {exc}")


def transport_cause(exc: BaseException) -> aiohttp.ClientError | None:
    """The aiohttp error behind an SDK one, if any (the deepest in the ``__cause__``/``__context__``
    chain). The aiohttp transport turns every ``ClientConnectionError`` (refused, reset, server
    disconnected) into httpx2.ConnectTimeout, which the SDK reports as APITimeoutError: only the
    original says whether it was a timeout."""
    found: aiohttp.ClientError | None = None
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:  # chains can loop through __context__
        seen.add(id(link))
        if isinstance(link, aiohttp.ClientError):
            found = link
        link = link.__cause__ or link.__context__
    return found


def retry_wait(error: ModelError, attempt: int) -> float | None:
    """How long to wait before trying a failed attempt again, or None when trying again cannot help.
    Retried, as the SDK would: a connection that failed or dropped before any text (also after the 200
    headers), 408, 409, 429 (not out of quota), 5xx. Not retried: our own timeouts, refusals, and a
    stream that broke any other way."""
    cause = error.__cause__
    backoff = min(RETRY_MAX_WAIT_S, RETRY_FIRST_WAIT_S * 2**attempt)
    if isinstance(error, ModelQuotaExceeded) or isinstance(cause, TimeoutError):
        return None
    if isinstance(cause, openai.APIStatusError):
        if cause.response.headers.get("x-should-retry") == "false":
            return None
        if cause.status_code in RETRY_STATUSES or cause.status_code >= 500:
            after = _retry_after(cause.response)
            return backoff if after is None else after
        return None
    if transport_cause(error) is not None or isinstance(cause, openai.APIConnectionError):
        return backoff
    return None


def _retry_after(response: httpx2.Response) -> float | None:
    """The server's wait, from ``retry-after-ms`` (OpenAI's) or ``Retry-After`` in seconds."""
    for header, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            return float(response.headers.get(header, "")) * scale
        except ValueError:
            continue
    return None
