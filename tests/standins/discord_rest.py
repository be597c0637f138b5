"""The stand-in's REST API (prefix /api/v10) and CDN, with recording, auth, faults and latency.

This module is the plumbing (every request recorded, checked against Discord's rate limits and the
injected faults, delayed by the configured latency) and the route table; the handlers live by
resource in ``discord_rest_lookups`` (gateway, users, application, guilds), ``discord_rest_channels``
(channels and messages), ``discord_rest_threads``, ``discord_rest_commands`` and ``discord_cdn``.
Interaction callbacks and webhooks are ``discord_webhooks``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import zlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .discord_cdn import CdnRoutes
from .discord_messages import BotMessages, Result, error
from .discord_recorder import RecordedRequest, rate_limit_headers
from .discord_rest_commands import CommandRoutes
from .discord_rest_lookups import LookupRoutes
from .discord_rest_threads import ThreadRoutes
from .discord_world import World

if TYPE_CHECKING:
    from .discord_standin import DiscordStandin

log = logging.getLogger("standin.discord.rest")

API = "/api/v10"
Handler = Callable[[web.Request, RecordedRequest, Any, list[dict[str, Any]]], Awaitable[Result]]


def json_response(status: int, body: Any, headers: dict[str, str]) -> web.Response:
    if status == 204 or body is None:
        return web.Response(status=status, headers=headers)
    # bytes + content_type gives exactly "application/json"; discord.py parses nothing else as JSON
    return web.Response(status=status, body=json.dumps(body).encode(), content_type="application/json", headers=headers)


async def read_body(request: web.Request) -> tuple[Any, list[dict[str, Any]]]:
    """(JSON payload, file parts) for both JSON and multipart/form-data (payload_json) bodies."""
    if request.content_type == "multipart/form-data":
        payload: Any = None
        files: list[dict[str, Any]] = []
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if part.name == "payload_json":
                payload = json.loads(await part.text())  # type: ignore[union-attr]
            else:
                data = await part.read(decode=False)  # type: ignore[union-attr]
                files.append(
                    {
                        "name": part.name,
                        "filename": part.filename,
                        "data": bytes(data),
                        "content_type": part.headers.get("Content-Type", "application/octet-stream"),
                    }
                )
        return payload, files
    raw = await request.read()
    if not raw:
        return None, []
    try:
        return json.loads(raw), []
    except ValueError:
        return raw.decode("utf-8", "replace"), []


class RestApi(LookupRoutes, ThreadRoutes, CommandRoutes, CdnRoutes):
    def __init__(self, standin: DiscordStandin) -> None:
        self.s = standin
        self.world: World = standin.world
        self.messages = BotMessages(standin.world, standin.gateway)

    # ---- plumbing ---------------------------------------------------------------------------------
    def add(
        self,
        router: web.UrlDispatcher,
        method: str,
        template: str,
        name: str,
        handler: Handler,
        *,
        auth: bool = True,
        prefix: str = API,
    ) -> None:
        router.add_route(method, prefix + template, self._endpoint(name, template, handler, auth))

    def _endpoint(self, name: str, template: str, handler: Handler, auth: bool) -> Any:
        async def endpoint(request: web.Request) -> web.StreamResponse:
            arrived = time.monotonic()
            body, files = await read_body(request)
            path = request.path[len(API) :] if request.path.startswith(API) else request.path
            meta = [{k: v for k, v in f.items() if k != "data"} | {"size": len(f["data"])} for f in files]
            rec = RecordedRequest(request.method, path, name, template, dict(request.query), body, meta, arrived)
            if "channel_id" in request.match_info:
                rec.channel_id = int(request.match_info["channel_id"])
            try:
                status, out, headers = await self._run(request, rec, handler, body, files, auth)
            except Exception as exc:  # 503, not 500: discord.py would retry a 500 with 1 s+ sleeps
                log.exception("stand-in handler %s crashed", name)
                self.s.internal_errors.append(f"{request.method} {request.path}: {exc!r}")
                (status, out), headers = error(503, 0, f"stand-in error: {exc!r}"), {}
            rec.status, rec.response, rec.done_at = status, out, time.monotonic()
            self.s.limits.note_status(status)
            self.s.recorder.add(rec)
            return out if isinstance(out, web.StreamResponse) else json_response(status, out, headers)

        return endpoint

    async def _run(
        self,
        request: web.Request,
        rec: RecordedRequest,
        handler: Handler,
        body: Any,
        files: list[dict[str, Any]],
        auth: bool,
    ) -> tuple[int, Any, dict[str, str]]:
        if auth and request.headers.get("Authorization") != f"Bot {self.s.token}":
            return 401, {"message": "401: Unauthorized", "code": 0}, {}
        # Counted when the request arrives, as Discord counts it, before any configured latency.
        limited = self.s.limits.check(rec.route, rec.channel_id, rec.at)
        if limited is not None:
            return limited
        delay = self.s.latency + self.s.route_latency.get(rec.route, 0.0)
        if delay > 0:
            await asyncio.sleep(delay)  # configured artificial latency, not synchronisation
        bucket = f"{zlib.crc32(rec.route.encode()):08x}"
        fault = self.s.faults.take(rec.method, rec.route, rec.template, rec.path)
        if fault is not None:
            headers = rate_limit_headers(bucket, fault) if fault.status == 429 else {}
            return fault.status, fault.body, headers
        status, out = await handler(request, rec, body, files)
        return status, out, self.s.limits.headers(rec.route, rec.channel_id, rec.at)

    def install(self, app: web.Application) -> None:
        r, add = app.router, self.add
        add(r, "GET", "/gateway", "get_gateway", self.get_gateway)
        add(r, "GET", "/gateway/bot", "get_gateway_bot", self.get_gateway_bot)
        add(r, "GET", "/users/@me", "get_current_user", self.get_current_user)
        add(r, "POST", "/users/@me/channels", "create_dm", self.create_dm)
        add(r, "GET", "/users/{user_id}", "get_user", self.get_user)
        add(r, "GET", "/applications/@me", "get_application", self.get_application)
        add(r, "GET", "/oauth2/applications/@me", "get_application", self.get_application)
        add(r, "GET", "/channels/{channel_id}", "get_channel", self.get_channel)
        add(r, "GET", "/channels/{channel_id}/messages", "list_messages", self.list_messages)
        add(r, "POST", "/channels/{channel_id}/messages", "create_message", self.create_message)
        add(r, "GET", "/channels/{channel_id}/messages/{message_id}", "get_message", self.get_message)
        add(r, "PATCH", "/channels/{channel_id}/messages/{message_id}", "edit_message", self.edit_message)
        add(r, "DELETE", "/channels/{channel_id}/messages/{message_id}", "delete_message", self.delete_message)
        add(r, "POST", "/channels/{channel_id}/typing", "typing", self.typing)
        reaction = "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me"
        add(r, "PUT", reaction, "add_reaction", self.reaction)
        add(r, "DELETE", reaction, "remove_reaction", self.reaction)
        add(r, "POST", "/channels/{channel_id}/messages/{message_id}/threads", "create_thread", self.create_thread)
        add(r, "POST", "/channels/{channel_id}/threads", "create_thread", self.create_thread)
        add(r, "GET", "/guilds/{guild_id}", "get_guild", self.get_guild)
        add(r, "GET", "/guilds/{guild_id}/members/{user_id}", "get_member", self.get_member)
        for scope in ("", "/guilds/{guild_id}"):
            template = "/applications/{app_id}" + scope + "/commands"
            add(r, "GET", template, "get_commands", self.get_commands)
            add(r, "PUT", template, "put_commands", self.put_commands)
            add(r, "POST", template, "create_command", self.create_command)
        self.s.webhooks.install(app)
        add(
            r,
            "GET",
            "/attachments/{channel_id}/{attachment_id}/{filename}",
            "cdn_attachment",
            self.cdn,
            auth=False,
            prefix="",
        )
        r.add_route("*", "/{tail:.*}", self._endpoint("unknown", "*", self.unknown, False))

    # ---- unknown routes ------------------------------------------------------------------------
    async def unknown(self, request: web.Request, rec: RecordedRequest, body: Any, files: list) -> Result:
        log.warning("stand-in Discord: unknown route %s %s", request.method, request.path)
        self.s.unknown_routes.append(f"{request.method} {request.path}")
        return error(404, 0, "404: Not Found")
