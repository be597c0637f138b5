"""The model client's transport is aiohttp's, whose exceptions call every dropped or refused
connection a timeout: errors are classified by their cause instead (the end-to-end faults are in
test_conversation.py and test_faults_e2e.py; these pin the mapping itself)."""

from __future__ import annotations

import aiohttp
import httpx2
import openai
import pytest

from bot.errors import ModelError, ModelTimeout, ModelUnavailable
from bot.llm import Finish, MalformedChunk, Usage, _chunk_events, build_client, model_error, transport_cause
from bot.settings import ModelSettings

REQUEST = httpx2.Request("POST", "http://127.0.0.1/v1/chat/completions")


def as_sdk_raises(cause: BaseException) -> openai.APIConnectionError:
    """What the SDK raises for an aiohttp error: the vendored transport maps every
    ClientConnectionError to httpx2.ConnectTimeout, which the SDK reports as APITimeoutError."""
    try:
        try:
            try:
                raise cause
            except aiohttp.ClientError as exc:
                raise httpx2.ConnectTimeout(str(exc)) from exc
        except httpx2.TimeoutException as exc:
            raise openai.APITimeoutError(request=REQUEST) from exc
    except openai.APITimeoutError as exc:
        return exc


@pytest.mark.parametrize(
    ("cause", "expected"),
    [
        (aiohttp.ServerDisconnectedError(), ModelUnavailable),
        (aiohttp.ClientOSError(104, "Connection reset by peer"), ModelUnavailable),
        (aiohttp.ClientConnectionError("Connection closed"), ModelUnavailable),
        (aiohttp.SocketTimeoutError("Timeout on reading data from socket"), ModelTimeout),
        (aiohttp.ConnectionTimeoutError("Connection timeout to host"), ModelTimeout),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, type) else v.__name__,
)
def test_errors_are_classified_by_their_aiohttp_cause(cause: BaseException, expected: type[ModelError]) -> None:
    raised = as_sdk_raises(cause)
    assert transport_cause(raised) is cause
    error = model_error(raised)
    assert type(error) is expected
    assert "Traceback" not in error.user_message


def test_without_an_aiohttp_cause_the_sdk_class_decides() -> None:
    timeout = openai.APITimeoutError(request=REQUEST)
    assert transport_cause(timeout) is None
    assert type(model_error(timeout)) is ModelTimeout
    assert type(model_error(openai.APIConnectionError(request=REQUEST))) is ModelUnavailable


def test_a_cause_chain_that_loops_ends() -> None:
    first, second = ValueError("a"), ValueError("b")
    first.__context__, second.__context__ = second, first
    assert transport_cause(first) is None


async def test_the_client_streams_over_aiohttp() -> None:
    client = build_client(ModelSettings(name="m"), "key", "http://127.0.0.1:1/v1")
    try:
        transport = client._client._transport  # the SDK's own httpx2 client, wrapping the transport
        assert type(transport).__module__.endswith("httpx_aiohttp.transport")
    finally:
        await client.close()


def test_a_chunk_is_read_for_its_deltas_usage_and_finish() -> None:
    chunk = {
        "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}],
        "usage": None,
    }
    assert _chunk_events(chunk) == ["Hi"]
    last = {"choices": [{"delta": {}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 3, "completion_tokens": 1}}
    assert _chunk_events(last) == [Usage(3, 1), Finish("stop", None)]
    assert _chunk_events({"choices": [], "usage": None}) == []
    assert _chunk_events({"choices": [{"delta": None, "finish_reason": None}]}) == []


@pytest.mark.parametrize(
    "chunk",
    [[1, 2], "text", {"choices": "oops"}, {"choices": [{"delta": "x"}]}, {"usage": {"prompt_tokens": 1}}],
    ids=["list", "string", "choices not a list", "delta not an object", "usage incomplete"],
)
def test_a_chunk_of_the_wrong_shape_is_malformed(chunk: object) -> None:
    with pytest.raises(MalformedChunk):
        _chunk_events(chunk)
