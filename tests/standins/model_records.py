"""What the stand-in model server received and sent, plus an event-based "wait for n" helper."""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from multidict import CIMultiDictProxy, MultiDictProxy
from PIL import Image, UnidentifiedImageError

from tests.standins.model_behaviours import Behaviour


@dataclass(frozen=True)
class RecordedImage:
    """An ``image_url`` part of a chat message, decoded as a vision model would."""

    message_index: int  # in the request's messages
    part_index: int  # in that message's content parts (text parts count too: it gives the order)
    mime: str  # from the data URL
    format: str  # what Pillow found in the bytes
    width: int
    height: int
    size: int  # decoded bytes
    detail: str | None
    data: bytes = field(repr=False, default=b"")


class InvalidImage(ValueError):
    """An image part OpenAI would refuse (400 invalid_image_url / image_parse_error)."""


def image_parts(messages: list[dict[str, Any]]) -> list[RecordedImage]:
    """Every image part of ``messages``, in order; raises InvalidImage for one a server could not read."""
    found: list[RecordedImage] = []
    for m_index, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for p_index, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "image_url":
                continue
            image_url = part.get("image_url")
            url = image_url.get("url") if isinstance(image_url, dict) else None
            if not isinstance(url, str) or not url.startswith("data:") or ";base64," not in url:
                raise InvalidImage("image_url must be a base64 data URL here (the stand-in has no internet)")
            mime, _, encoded = url.removeprefix("data:").partition(";base64,")
            try:
                data = base64.b64decode(encoded, validate=True)
                with Image.open(io.BytesIO(data)) as image:
                    image.load()
                    fmt, width, height = image.format or "", image.width, image.height
            except (binascii.Error, UnidentifiedImageError, OSError) as exc:
                raise InvalidImage(f"could not decode an image: {exc}") from exc
            detail = image_url.get("detail") if isinstance(image_url, dict) else None
            found.append(RecordedImage(m_index, p_index, mime, fmt, width, height, len(data), detail, data))
    return found


@dataclass
class RecordedRequest:
    """One ``POST /v1/chat/completions`` (recorded on arrival, before the auth check)."""

    index: int
    path: str
    body: dict[str, Any]
    headers: CIMultiDictProxy[str]
    arrived_at: float  # time.monotonic()
    authorized: bool = True
    behaviour: Behaviour | None = None
    status: int | None = None  # HTTP status sent (None: no status line was sent)
    sent_text: str = ""  # content actually sent (joined content deltas / message content)
    usage: dict[str, int] | None = None  # the usage object actually sent, if any
    first_chunk_at: float | None = None  # time.monotonic() once the first content chunk was written
    last_chunk_at: float | None = None  # ...once the stream's last byte ([DONE] or a cut) was written
    finished: asyncio.Event = field(default_factory=asyncio.Event, repr=False)  # handler done

    @property
    def model(self) -> str | None:
        return self.body.get("model")

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages") or [])

    @property
    def images(self) -> list[RecordedImage]:
        """The image parts of every message, decoded, in order."""
        return image_parts(self.messages)

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))

    @property
    def include_usage(self) -> bool:
        options = self.body.get("stream_options") or {}
        return bool(isinstance(options, dict) and options.get("include_usage"))

    @property
    def authorization(self) -> str | None:
        return self.headers.get("Authorization")

    @property
    def api_key(self) -> str | None:
        value = self.authorization
        if value is None or not value.startswith("Bearer "):
            return None
        return value.removeprefix("Bearer ")


@dataclass
class RecordedTranscription:
    """One ``POST /v1/audio/transcriptions``: the file part and the other form fields."""

    index: int
    path: str
    headers: CIMultiDictProxy[str]
    arrived_at: float
    file: bytes | None = None
    filename: str | None = None
    content_type: str | None = None  # of the file part
    fields: MultiDictProxy[str] | None = None  # every non-file form field, as text
    authorized: bool = True
    behaviour: Behaviour | None = None
    status: int | None = None
    sent_text: str | None = None
    finished: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def field(self, name: str) -> str | None:
        return None if self.fields is None else self.fields.get(name)

    @property
    def model(self) -> str | None:
        return self.field("model")

    @property
    def response_format(self) -> str | None:
        return self.field("response_format")

    @property
    def language(self) -> str | None:
        return self.field("language")

    @property
    def prompt(self) -> str | None:
        return self.field("prompt")

    @property
    def api_key(self) -> str | None:
        value = self.headers.get("Authorization")
        return value.removeprefix("Bearer ") if value and value.startswith("Bearer ") else None


class CountWaiter:
    """Wake waiters when a count reaches their target. ``notify`` is synchronous (no polling)."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    def notify(self, count: int) -> None:
        for target, future in self._waiters:
            if count >= target and not future.done():
                future.set_result(None)

    async def wait(self, target: int, count: Callable[[], int], timeout: float) -> None:
        if count() >= target:
            return
        entry = (target, asyncio.get_running_loop().create_future())
        self._waiters.append(entry)
        try:
            await asyncio.wait_for(entry[1], timeout)
        except TimeoutError:
            raise TimeoutError(f"waited {timeout}s for {target} {self._what}, got {count()}") from None
        finally:
            self._waiters.remove(entry)
