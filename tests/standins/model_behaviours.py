"""Scripted behaviours for the stand-in OpenAI model server.

Each behaviour is a small frozen dataclass describing what the server does with ONE request.
Queue them with ``ModelServer.script(...)`` (chat) or ``ModelServer.script_transcriptions(...)``.

"Chunks" always means *content* chunks: a stream also carries a leading role chunk
(``delta={"role": "assistant", "content": ""}``), which is not counted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

SplitMode = Literal["chars", "words"]
UsageSpec = tuple[int, int] | Literal["auto"] | None

DEFAULT_FAULT_TEXT = "This reply is interrupted by the stand-in model server before it ends."


@dataclass(frozen=True)
class Reply:
    """A normal completion.

    ``usage``: ``(prompt_tokens, completion_tokens)``; ``"auto"`` (default) computes a
    deterministic value (see ``default_usage``); ``None`` sends no usage at all (no ``usage``
    field when not streaming, no usage chunk when streaming).
    ``chunk_size`` counts characters (``split="chars"``) or words (``split="words"``).
    """

    text: str
    chunk_size: int = 8
    split: SplitMode = "chars"
    finish_reason: str = "stop"
    usage: UsageSpec = "auto"
    first_chunk_delay: float = 0.0
    chunk_delay: float = 0.0

    def chunks(self) -> list[str]:
        return split_text(self.text, self.chunk_size, self.split)


@dataclass(frozen=True)
class Error:
    """An OpenAI-shaped HTTP error: ``{"error": {"message", "type", "param", "code"}}``.

    ``message``/``type_``/``code`` default from the status (see ``ERROR_DEFAULTS``).
    ``retry_after`` sets ``Retry-After`` (seconds), ``retry_after_ms`` sets ``retry-after-ms``
    (the SDK prefers the latter; handy for fast retry tests).
    """

    status: int
    message: str | None = None
    code: str | None = None
    type_: str | None = None
    retry_after: float | None = None
    retry_after_ms: float | None = None

    @classmethod
    def rate_limited(cls, retry_after: float | None = None) -> Error:
        return cls(429, retry_after=retry_after)

    @classmethod
    def insufficient_quota(cls) -> Error:
        return cls(
            429,
            message="You exceeded your current quota, please check your plan and billing details.",
            code="insufficient_quota",
            type_="insufficient_quota",
        )

    def body(self) -> dict[str, Any]:
        message, type_, code = ERROR_DEFAULTS.get(self.status, _FALLBACK_ERROR)
        return error_body(
            self.message if self.message is not None else message,
            self.type_ if self.type_ is not None else type_,
            self.code if self.code is not None else code,
        )

    def headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self.retry_after is not None:
            headers["Retry-After"] = _number(self.retry_after)
        if self.retry_after_ms is not None:
            headers["retry-after-ms"] = _number(self.retry_after_ms)
        return headers


@dataclass(frozen=True)
class Stall:
    """Accept the request, send nothing at all (no status line) for ``seconds``, then drop it."""

    seconds: float


@dataclass(frozen=True)
class StallMidStream:
    """Send headers, the role chunk and ``after_chunks`` content chunks, go silent for
    ``seconds``, then drop the connection. Not streaming: headers + half the JSON body."""

    after_chunks: int
    seconds: float
    text: str = DEFAULT_FAULT_TEXT
    chunk_size: int = 8


@dataclass(frozen=True)
class Cut:
    """Stream ``after_chunks`` content chunks, then end the body cleanly without a
    finish_reason, usage or ``[DONE]``. Not streaming: a cleanly ended, truncated JSON body."""

    after_chunks: int
    text: str = DEFAULT_FAULT_TEXT
    chunk_size: int = 8


@dataclass(frozen=True)
class Drop:
    """Abort the TCP connection. ``after_chunks=0``: before any byte of the response (with
    ``after_headers``: after the 200 headers and the role chunk, so the answer had begun but no text
    came); otherwise after headers, the role chunk and ``after_chunks`` content chunks
    (not streaming: after headers and half the JSON body)."""

    after_chunks: int = 0
    after_headers: bool = False
    text: str = DEFAULT_FAULT_TEXT
    chunk_size: int = 8


@dataclass(frozen=True)
class Malformed:
    """Stream ``after_chunks`` content chunks, then ``data: {not json`` and end the body.
    Not streaming: a 200 whose body is ``{not json``."""

    after_chunks: int = 0
    text: str = DEFAULT_FAULT_TEXT
    chunk_size: int = 8


@dataclass(frozen=True)
class StreamError:
    """Stream ``after_chunks`` content chunks, then an in-band ``data: {"error": {...}}``
    event (the SDK raises ``openai.APIError``), then end the body."""

    after_chunks: int
    message: str = "The server had an error while processing your request."
    type_: str = "server_error"
    code: str | None = None
    text: str = DEFAULT_FAULT_TEXT
    chunk_size: int = 8


@dataclass(frozen=True)
class Transcript:
    """A successful transcription after ``delay`` seconds. ``billed_seconds``: the usage OpenAI's json
    answer reports (``{"type": "duration", "seconds": ...}``); None sends no usage, like older servers."""

    text: str
    delay: float = 0.0
    language: str = "en"
    duration: float = 1.0
    billed_seconds: float | None = None


ChatBehaviour = Reply | Error | Stall | StallMidStream | Cut | Drop | Malformed | StreamError
TranscriptionBehaviour = Transcript | Reply | Error | Stall | Drop
Behaviour = ChatBehaviour | Transcript
# Behaviours that stream some content chunks before failing.
MidStreamFault = StallMidStream | Cut | Drop | Malformed | StreamError

ERROR_DEFAULTS: dict[int, tuple[str, str, str | None]] = {
    400: ("Invalid request.", "invalid_request_error", None),
    401: ("Incorrect API key provided", "invalid_request_error", "invalid_api_key"),
    403: ("You are not allowed to access this resource.", "permission_error", None),
    404: (
        "The model does not exist or you do not have access to it.",
        "invalid_request_error",
        "model_not_found",
    ),
    429: ("Rate limit reached for requests. Please try again later.", "requests", "rate_limit_exceeded"),
    500: ("The server had an error while processing your request.", "server_error", None),
    502: ("Bad gateway.", "server_error", None),
    503: ("The engine is currently overloaded, please try again later.", "server_error", None),
}
_FALLBACK_ERROR = ("Stand-in model server error.", "server_error", None)


def error_body(message: str, type_: str, code: str | None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def split_text(text: str, chunk_size: int, split: SplitMode = "chars") -> list[str]:
    """Split ``text`` into chunks whose concatenation is exactly ``text``.

    ``"words"`` keeps each word's trailing whitespace (leading whitespace joins the first chunk).
    """
    if chunk_size < 1:
        raise ValueError("chunk_size must be >= 1")
    if not text:
        return []
    if split == "chars":
        return [text[i : i + chunk_size] for i in range(0, len(text), chunk_size)]
    words = re.findall(r"\s*\S+\s*|\s+", text)
    return ["".join(words[i : i + chunk_size]) for i in range(0, len(words), chunk_size)]


def message_text(content: Any) -> str:
    """The text of a message's ``content``: a string, or a list of parts (text parts only)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        return "".join(str(text) for text in texts)
    return ""


def default_usage(body: dict[str, Any], chunk_count: int) -> tuple[int, int]:
    """Deterministic usage: prompt = characters of all message texts // 4 + number of messages;
    completion = number of content chunks."""
    messages = body.get("messages") or []
    characters = sum(len(message_text(m.get("content"))) for m in messages if isinstance(m, dict))
    return characters // 4 + len(messages), chunk_count


def usage_dict(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def echo_responder(body: dict[str, Any]) -> ChatBehaviour:
    """Default chat responder: ``Reply(f"echo: {last user message text}")``."""
    last = ""
    for message in body.get("messages") or []:
        if isinstance(message, dict) and message.get("role") == "user":
            last = message_text(message.get("content"))
    return Reply(f"echo: {last}")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
