"""Request recording, event-based waiting, fault injection and the allowed-mentions audit."""

from __future__ import annotations

import asyncio
import fnmatch
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class RecordedRequest:
    """One HTTP request the stand-in answered (REST, interaction/webhook or CDN)."""

    method: str
    path: str  # without the /api/v10 prefix
    route: str  # route name, e.g. "create_message", "edit_message", "interaction_callback", "unknown"
    template: str  # e.g. "/channels/{channel_id}/messages/{message_id}"
    query: dict[str, str]
    json: Any  # parsed JSON body, or the payload_json part of a multipart body
    files: list[dict[str, Any]]  # multipart file parts: name, filename, content_type, size
    at: float  # time.monotonic() when the request arrived
    channel_id: int | None = None
    status: int = 0
    response: Any = None
    done_at: float = 0.0
    index: int = -1  # position in the recorder's request list

    def is_(self, method: str | None = None, route: str | None = None, channel_id: int | None = None) -> bool:
        return (
            (method is None or self.method == method)
            and (route is None or self.route == route)
            and (channel_id is None or self.channel_id == channel_id)
        )

    def __str__(self) -> str:
        body = repr(self.json)
        body = body if len(body) <= 120 else body[:117] + "..."
        return f"{self.method} {self.path} [{self.route}] -> {self.status} {body}"


Predicate = Callable[[RecordedRequest], bool]
Key = tuple[str, int | None]  # (route, channel_id); channel_id None = any channel
Waiter = tuple[Predicate, "asyncio.Future[RecordedRequest]"]


class Recorder:
    """Keeps every request and wakes waiters the moment a matching one is recorded.

    Waiters with a ``key`` (route, channel) are only offered requests with that key, so thousands of
    concurrent keyed waits stay cheap; unkeyed predicates see every request."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._by_key: dict[Key, list[RecordedRequest]] = {}
        self._waiters: list[Waiter] = []
        self._keyed: dict[Key, list[Waiter]] = {}

    def add(self, request: RecordedRequest) -> None:
        request.index = len(self.requests)
        self.requests.append(request)
        for key in dict.fromkeys(((request.route, request.channel_id), (request.route, None))):
            self._by_key.setdefault(key, []).append(request)
            if key in self._keyed:
                self._keyed[key] = self._offer(self._keyed[key], request)
                if not self._keyed[key]:
                    del self._keyed[key]
        if self._waiters:
            self._waiters = self._offer(self._waiters, request)

    @staticmethod
    def _offer(waiters: list[Waiter], request: RecordedRequest) -> list[Waiter]:
        still_waiting = []
        for predicate, future in waiters:
            if future.done():
                continue
            try:
                matched = predicate(request)
            except Exception as exc:  # surface broken predicates in the waiting test
                future.set_exception(exc)
                continue
            if matched:
                future.set_result(request)
            else:
                still_waiting.append((predicate, future))
        return still_waiting

    async def wait_for(
        self, predicate: Predicate, *, timeout: float = 5.0, start: int = 0, key: Key | None = None
    ) -> RecordedRequest:
        """First request (index >= ``start``, with ``key`` if given) matching ``predicate``;
        AssertionError with a summary of recent requests after ``timeout``."""
        seen = self.requests[start:] if key is None else self._by_key.get(key, ())
        for request in seen:
            if request.index >= start and predicate(request):
                return request
        future: asyncio.Future[RecordedRequest] = asyncio.get_running_loop().create_future()
        if key is None:
            self._waiters.append((predicate, future))
        else:
            self._keyed.setdefault(key, []).append((predicate, future))
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise AssertionError(
                f"no matching Discord request within {timeout}s; recent requests:\n{self.summary()}"
            ) from None

    def summary(self, last: int = 20) -> str:
        recent = self.requests[-last:]
        return "\n".join(f"  {r}" for r in recent) or "  (none)"


# ---- fault injection -----------------------------------------------------------------------------
@dataclass
class Fault:
    method: str
    pattern: str
    status: int
    body: Any
    times: int  # remaining uses; < 0 means forever
    retry_after: float = 0.0
    global_: bool = False
    headers: dict[str, str] = field(default_factory=dict)

    def matches(self, method: str, route: str, template: str, path: str) -> bool:
        if self.method not in ("*", method):
            return False
        return self.pattern in (route, template) or fnmatch.fnmatchcase(path, self.pattern)


class Faults:
    def __init__(self) -> None:
        self.rules: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        self.rules.append(fault)
        return fault

    def take(self, method: str, route: str, template: str, path: str) -> Fault | None:
        for fault in self.rules:
            if fault.times != 0 and fault.matches(method, route, template, path):
                fault.times -= 1
                return fault
        return None


def rate_limit_fault(method: str, pattern: str, *, retry_after: float, times: int, global_: bool) -> Fault:
    body = {"message": "You are being rate limited.", "retry_after": retry_after, "global": global_}
    if not global_:
        body["code"] = 0
    return Fault(method, pattern, 429, body, times, retry_after=retry_after, global_=global_)


def rate_limit_headers(bucket: str, fault: Fault) -> dict[str, str]:
    """The headers of an injected 429, as Discord sends them. discord.py only trusts a 429 that carries
    a ``Via`` header (otherwise it assumes a Cloudflare ban). Accepted requests get their bucket
    headers from tests.standins.discord_limits."""
    headers = {
        "Retry-After": str(math.ceil(fault.retry_after)),
        "Via": "1.1 google",
        "X-RateLimit-Scope": "global" if fault.global_ else "user",
    }
    if fault.global_:
        headers["X-RateLimit-Global"] = "true"
    else:
        headers.update(
            {
                "X-RateLimit-Limit": "5",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset-After": f"{fault.retry_after:.3f}",
                "X-RateLimit-Reset": f"{time.time() + fault.retry_after:.3f}",
                "X-RateLimit-Bucket": bucket,
            }
        )
    return headers


# ---- allowed-mentions audit ------------------------------------------------------------------------
def mention_violation(where: str, payload: Any) -> str | None:
    """Describe why a message payload could ping someone, or None if it pings nobody.

    Only payloads carrying non-empty ``content`` are audited. The safe setting is
    ``{"parse": [], "replied_user": False}``; ``replied_user`` may be absent (falsy)."""
    if not isinstance(payload, dict) or not payload.get("content"):
        return None
    allowed = payload.get("allowed_mentions")
    problems = []
    if not isinstance(allowed, dict):
        problems.append("allowed_mentions missing (Discord then parses every mention)")
    else:
        if allowed.get("parse") != []:
            problems.append(f"parse={allowed.get('parse')!r}")
        for key in ("users", "roles"):
            if allowed.get(key):
                problems.append(f"{key}={allowed[key]!r}")
        if allowed.get("replied_user"):
            problems.append("replied_user=True")
    if not problems:
        return None
    content = payload["content"]
    return f"{where}: {', '.join(problems)}; content={content[:60]!r}"
