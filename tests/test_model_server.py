"""The stand-in model server, driven by the real ``openai.AsyncOpenAI`` client (no mocks).

SDK behaviours observed (openai 3.51.0 on httpx2), asserted below:
- HTTP errors map by status: 400 BadRequestError, 401 AuthenticationError, 429 RateLimitError
  (also for ``insufficient_quota``; tell them apart by ``err.code``), 5xx InternalServerError.
- Stall (no status line) -> APITimeoutError (cause httpx2.ReadTimeout) after ``timeout``.
- The ``timeout`` is per socket operation, not a deadline: while iterating a stream, each read
  may wait up to ``timeout`` (APITimeoutError from the ``async for`` when a gap is longer), but a
  stream whose chunks keep arriving may run for much longer than ``timeout`` in total.
- Cut (body ends cleanly, no [DONE]) -> no exception: iteration just stops.
- Drop -> APIConnectionError (cause httpx2.RemoteProtocolError), before the response from
  ``create()``, mid-stream from the ``async for``.
- Malformed SSE data -> json.JSONDecodeError (not wrapped) from the ``async for``.
- In-band ``data: {"error": ...}`` -> openai.APIError.
- Nothing listening -> APIConnectionError (cause httpx2.ConnectError).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionChunk

from tests.standins.model_behaviours import default_usage, split_text
from tests.standins.model_server import (
    Cut,
    Drop,
    Error,
    Malformed,
    ModelServer,
    Reply,
    Stall,
    StallMidStream,
    StreamError,
    Transcript,
    unused_base_url,
)

API_KEY = "test-key"
MODEL = "test-model"
MESSAGES: list[Any] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Say hello"},
]


@pytest.fixture
async def server() -> AsyncIterator[ModelServer]:
    async with ModelServer(api_key=API_KEY, models=(MODEL, "other-model")) as model_server:
        yield model_server


def make_client(server: ModelServer, *, timeout: float = 5.0, max_retries: int = 0) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=server.base_url, api_key=API_KEY, timeout=timeout, max_retries=max_retries)


@pytest.fixture
async def client(server: ModelServer) -> AsyncIterator[AsyncOpenAI]:
    async with make_client(server) as openai_client:
        yield openai_client


async def stream_chunks(client: AsyncOpenAI, received: list[ChatCompletionChunk] | None = None, **kwargs: Any):
    """Stream a chat completion; chunks go into ``received`` (kept if iteration raises)."""
    chunks = received if received is not None else []
    stream = await client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True, **kwargs)
    async with stream:
        async for chunk in stream:
            chunks.append(chunk)
    return chunks


def content_of(chunks: list[ChatCompletionChunk]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def finish_reasons(chunks: list[ChatCompletionChunk]) -> list[str]:
    return [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]


# -- replies -------------------------------------------------------------------------------------


async def test_stream_assembles_text_and_parses_usage_chunk(server: ModelServer, client: AsyncOpenAI) -> None:
    server.script(Reply("Hello from the stand-in model!", chunk_size=5, usage=(11, 7)))
    chunks = await stream_chunks(client, stream_options={"include_usage": True})

    assert content_of(chunks) == "Hello from the stand-in model!"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) == 6
    assert finish_reasons(chunks) == ["stop"]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (11, 7)
    assert chunks[-1].usage.total_tokens == 18
    assert all(c.usage is None for c in chunks[:-1])
    expected = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
    assert server.reported_usage == [expected]
    assert server.requests[0].usage == expected


async def test_stream_without_include_usage_sends_no_usage(server: ModelServer, client: AsyncOpenAI) -> None:
    chunks = await stream_chunks(client)
    assert content_of(chunks) == "echo: Say hello"
    assert finish_reasons(chunks) == ["stop"]
    assert all(c.usage is None for c in chunks)
    assert server.reported_usage == []
    assert server.requests[0].usage is None


async def test_words_split_and_stream_usage_none(server: ModelServer, client: AsyncOpenAI) -> None:
    text = "one two  three four five"
    assert split_text(text, 2, "words") == ["one two  ", "three four ", "five"]
    server.script(Reply(text, chunk_size=2, split="words", usage=None, finish_reason="length"))
    chunks = await stream_chunks(client, stream_options={"include_usage": True})
    assert [c.choices[0].delta.content for c in chunks if c.choices][1:4] == split_text(text, 2, "words")
    assert finish_reasons(chunks) == ["length"]
    assert all(c.usage is None for c in chunks)
    assert server.reported_usage == []


async def test_non_streaming_reply_and_default_usage(server: ModelServer, client: AsyncOpenAI) -> None:
    completion = await client.chat.completions.create(model="other-model", messages=MESSAGES)
    assert completion.object == "chat.completion"
    assert completion.model == "other-model"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == "echo: Say hello"
    assert completion.choices[0].finish_reason == "stop"
    record = server.requests[0]
    chunk_count = len(split_text("echo: Say hello", 8))
    prompt, completion_tokens = default_usage(record.body, chunk_count)
    assert prompt == (len("You are terse.") + len("Say hello")) // 4 + 2
    assert completion.usage is not None
    assert completion.usage.model_dump(include={"prompt_tokens", "completion_tokens", "total_tokens"}) == {
        "prompt_tokens": prompt,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt + completion_tokens,
    }
    assert server.reported_usage == [record.usage]


async def test_request_is_recorded(server: ModelServer, client: AsyncOpenAI) -> None:
    before = time.monotonic()
    await client.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_completion_tokens=50, temperature=0.5, user="u1"
    )
    [record] = await server.wait_for_requests(1)
    assert record.path == "/v1/chat/completions"
    assert record.messages == MESSAGES
    assert record.model == MODEL
    assert record.body["max_completion_tokens"] == 50
    assert record.body["temperature"] == 0.5
    assert record.stream is False
    assert record.headers["Authorization"] == f"Bearer {API_KEY}"
    assert record.api_key == API_KEY
    assert before <= record.arrived_at <= time.monotonic()
    assert record.status == 200
    assert record.sent_text == "echo: Say hello"
    assert record.finished.is_set()


async def test_responder_can_be_replaced(server: ModelServer, client: AsyncOpenAI) -> None:
    server.responder = lambda body: Reply(f"{len(body['messages'])} messages")
    completion = await client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert completion.choices[0].message.content == "2 messages"


async def test_models_list(server: ModelServer, client: AsyncOpenAI) -> None:
    models = await client.models.list()
    assert [m.id for m in models.data] == [MODEL, "other-model"]


# -- errors --------------------------------------------------------------------------------------


async def test_wrong_api_key_is_401(server: ModelServer) -> None:
    async with AsyncOpenAI(base_url=server.base_url, api_key="wrong", max_retries=0) as bad_client:
        with pytest.raises(openai.AuthenticationError) as caught:
            await bad_client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert caught.value.status_code == 401
    assert caught.value.code == "invalid_api_key"
    assert caught.value.body == {
        "message": "Incorrect API key provided",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }
    assert server.requests[0].authorized is False
    assert server.requests[0].api_key == "wrong"


@pytest.mark.parametrize(
    ("behaviour", "exception", "code"),
    [
        (Error(400), openai.BadRequestError, None),
        (Error(429, retry_after=1), openai.RateLimitError, "rate_limit_exceeded"),
        (Error.insufficient_quota(), openai.RateLimitError, "insufficient_quota"),
        (Error(500), openai.InternalServerError, None),
        (Error(503, message="overloaded"), openai.InternalServerError, None),
    ],
)
async def test_http_errors(
    server: ModelServer, client: AsyncOpenAI, behaviour: Error, exception: type[openai.APIStatusError], code: str
) -> None:
    server.script(behaviour)
    with pytest.raises(exception) as caught:
        await stream_chunks(client)
    assert caught.value.status_code == behaviour.status
    assert caught.value.code == code
    if behaviour.retry_after is not None:
        assert caught.value.response.headers["retry-after"] == "1"
    if behaviour.message is not None:
        assert caught.value.message == f"Error code: {behaviour.status} - {behaviour.message}"


async def test_sdk_retries_after_retry_after_ms(server: ModelServer) -> None:
    server.script(Error(429, retry_after_ms=10), Reply("second time lucky"))
    async with make_client(server, max_retries=1) as retrying:
        completion = await retrying.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert completion.choices[0].message.content == "second time lucky"
    assert [r.status for r in server.requests] == [429, 200]
    assert server.requests[1].headers["x-stainless-retry-count"] == "1"


# -- faults --------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False])
async def test_stall_times_out(server: ModelServer, stream: bool) -> None:
    server.script(Stall(30))
    async with make_client(server, timeout=0.3) as impatient:
        started = time.monotonic()
        with pytest.raises(openai.APITimeoutError):
            await impatient.chat.completions.create(model=MODEL, messages=MESSAGES, stream=stream)
    assert 0.25 < time.monotonic() - started < 2.0
    assert server.requests[0].status is None  # not even a status line was sent


async def test_stall_mid_stream_times_out_during_iteration(server: ModelServer) -> None:
    server.script(StallMidStream(after_chunks=2, seconds=30, text="abcdefghijklmnop", chunk_size=4))
    received: list[ChatCompletionChunk] = []
    async with make_client(server, timeout=0.3) as impatient:
        with pytest.raises(openai.APITimeoutError):
            await stream_chunks(impatient, received)
    assert content_of(received) == "abcdefgh"


async def test_timeout_applies_per_read_not_to_the_whole_stream(server: ModelServer) -> None:
    server.script(Reply("abcdefgh", chunk_size=2, chunk_delay=0.15))  # ~0.45 s in total
    async with make_client(server, timeout=0.3) as impatient:
        started = time.monotonic()
        chunks = await stream_chunks(impatient)
    assert time.monotonic() - started > 0.4
    assert content_of(chunks) == "abcdefgh"


async def test_cut_ends_iteration_without_finish_reason_or_usage(server: ModelServer, client: AsyncOpenAI) -> None:
    server.script(Cut(after_chunks=2, text="abcdefghijkl", chunk_size=4))
    chunks = await stream_chunks(client, stream_options={"include_usage": True})
    assert content_of(chunks) == "abcdefgh"
    assert finish_reasons(chunks) == []
    assert all(c.usage is None for c in chunks)
    assert server.requests[0].sent_text == "abcdefgh"


async def test_drop_before_response_is_connection_error(server: ModelServer, client: AsyncOpenAI) -> None:
    # The SDK raises APIConnectionError (cause: httpx2.RemoteProtocolError "Server disconnected").
    server.script(Drop())
    with pytest.raises(openai.APIConnectionError) as caught:
        await stream_chunks(client)
    assert not isinstance(caught.value, openai.APITimeoutError)


async def test_drop_mid_stream_is_connection_error(server: ModelServer, client: AsyncOpenAI) -> None:
    # APIConnectionError raised by the `async for` (cause: RemoteProtocolError, incomplete chunked read).
    server.script(Drop(after_chunks=2, text="abcdefgh", chunk_size=2))
    received: list[ChatCompletionChunk] = []
    with pytest.raises(openai.APIConnectionError):
        await stream_chunks(client, received)
    assert content_of(received) == "abcd"


async def test_malformed_chunk_raises_json_decode_error(server: ModelServer, client: AsyncOpenAI) -> None:
    server.script(Malformed(after_chunks=1, text="abcd", chunk_size=2))
    received: list[ChatCompletionChunk] = []
    with pytest.raises(json.JSONDecodeError):
        await stream_chunks(client, received)
    assert content_of(received) == "ab"


async def test_in_band_stream_error_raises_api_error(server: ModelServer, client: AsyncOpenAI) -> None:
    server.script(StreamError(after_chunks=1, message="model crashed"))
    with pytest.raises(openai.APIError, match="model crashed"):
        await stream_chunks(client)


async def test_refused_connections_and_restart(server: ModelServer, client: AsyncOpenAI) -> None:
    await client.models.list()  # leaves a keep-alive connection in the client's pool
    port = server.port
    await server.refuse_connections()
    with pytest.raises(openai.APIConnectionError) as caught:
        await client.models.list()
    # The pooled connection was closed too, so this is a real refusal, not a broken reuse.
    assert type(caught.value.__cause__).__name__ == "ConnectError"
    await server.restart()
    assert server.port == port
    assert len((await client.models.list()).data) == 2


async def test_nothing_listening_is_connection_error() -> None:
    async with AsyncOpenAI(base_url=unused_base_url(), api_key=API_KEY, max_retries=0) as lonely:
        with pytest.raises(openai.APIConnectionError):
            await lonely.models.list()


async def test_close_ends_stalled_handlers_promptly() -> None:
    model_server = await ModelServer(api_key=API_KEY).start()
    model_server.script(Stall(60))
    async with make_client(model_server, timeout=0.2) as impatient:
        with pytest.raises(openai.APITimeoutError):
            await impatient.chat.completions.create(model=MODEL, messages=MESSAGES)
    started = time.monotonic()
    await model_server.close()
    assert time.monotonic() - started < 1.0


# -- transcriptions ------------------------------------------------------------------------------


async def test_transcription_receives_exact_file(server: ModelServer, client: AsyncOpenAI) -> None:
    audio = bytes(range(256)) * 4
    server.script_transcriptions(Transcript("bonjour"))
    result = await client.audio.transcriptions.create(
        model="whisper-1", file=("voice-message.ogg", audio, "audio/ogg"), language="fr", prompt="greeting"
    )
    assert result.text == "bonjour"
    [record] = await server.wait_for_transcriptions(1)
    assert record.file == audio
    assert record.filename == "voice-message.ogg"
    assert record.content_type == "audio/ogg"
    assert (record.model, record.language, record.prompt) == ("whisper-1", "fr", "greeting")
    assert record.api_key == API_KEY


async def test_transcription_text_format_default_and_errors(server: ModelServer, client: AsyncOpenAI) -> None:
    text = await client.audio.transcriptions.create(
        model="whisper-1", file=("a.mp3", b"abc", "audio/mpeg"), response_format="text"
    )
    assert text == "transcript of a.mp3 (3 bytes)"  # plain-text body; the SDK returns a str
    server.script_transcriptions(Error(429))
    with pytest.raises(openai.RateLimitError):
        await client.audio.transcriptions.create(model="whisper-1", file=("a.mp3", b"abc", "audio/mpeg"))
    assert len(server.transcriptions) == 2


# -- waiting, concurrency, several servers --------------------------------------------------------


async def test_wait_for_requests_times_out(server: ModelServer) -> None:
    with pytest.raises(TimeoutError, match="got 0"):
        await server.wait_for_requests(1, timeout=0.05)


async def test_fifty_concurrent_streams(server: ModelServer, client: AsyncOpenAI) -> None:
    server.latency = 0.2

    async def one(i: int) -> str:
        stream = await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": f"n{i}"}], stream=True
        )
        async with stream:
            return content_of([chunk async for chunk in stream])

    waiter = asyncio.create_task(server.wait_for_requests(50))
    started = time.monotonic()
    replies = await asyncio.gather(*(one(i) for i in range(50)))
    assert replies == [f"echo: n{i}" for i in range(50)]
    assert time.monotonic() - started < 2.0  # serially this would take 10 s
    assert len(await waiter) == 50


async def test_several_servers_at_once() -> None:
    async with ModelServer(api_key="a") as first, ModelServer(api_key="b") as second:
        assert first.port != second.port
        first.script(Reply("from first"))
        second.script(Reply("from second"))
        async with (
            AsyncOpenAI(base_url=first.base_url, api_key="a", max_retries=0) as client_a,
            AsyncOpenAI(base_url=second.base_url, api_key="b", max_retries=0) as client_b,
        ):
            a, b = await asyncio.gather(
                client_a.chat.completions.create(model=MODEL, messages=MESSAGES),
                client_b.chat.completions.create(model=MODEL, messages=MESSAGES),
            )
    assert (a.choices[0].message.content, b.choices[0].message.content) == ("from first", "from second")
