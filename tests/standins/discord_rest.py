"""The stand-in's REST API (prefix /api/v10) and CDN, with recording, auth, faults and latency."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import zlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .discord_messages import BotMessages, Result, error
from .discord_permissions import Permission
from .discord_recorder import RecordedRequest, mention_violation, rate_limit_headers
from .discord_voice import CANNOT_SEND_VOICE_MESSAGES, IS_VOICE_MESSAGE, voice_message_problem
from .discord_world import World
from .discord_world_channels import THREAD_TYPES
from .discord_world_threads import ARCHIVE_DURATIONS, THREAD_PARENT_TYPES

if TYPE_CHECKING:
    from .discord_standin import DiscordStandin

log = logging.getLogger("standin.discord.rest")

API = "/api/v10"
Handler = Callable[[web.Request, RecordedRequest, Any, list[dict[str, Any]]], Awaitable[Result]]


def form_error(field: str, message: str) -> Result:
    """Discord's 400 Invalid Form Body naming the field."""
    return error(400, 50035, "Invalid Form Body", {field: {"_errors": [{"code": "INVALID", "message": message}]}})


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


class RestApi:
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

    def audit(self, rec: RecordedRequest, payload: Any) -> None:
        problem = mention_violation(f"{rec.method} {rec.path}", payload)
        if problem is not None:
            self.s.mention_violations.append(problem)

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

    # ---- misc routes --------------------------------------------------------------------------
    async def unknown(self, request: web.Request, rec: RecordedRequest, body: Any, files: list) -> Result:
        log.warning("stand-in Discord: unknown route %s %s", request.method, request.path)
        self.s.unknown_routes.append(f"{request.method} {request.path}")
        return error(404, 0, "404: Not Found")

    async def get_gateway(self, request: web.Request, rec: RecordedRequest, body: Any, files: list) -> Result:
        return 200, {"url": self.s.gateway_url}

    async def get_gateway_bot(self, request: web.Request, rec: RecordedRequest, body: Any, files: list) -> Result:
        limit = {"total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1}
        return 200, {"url": self.s.gateway_url, "shards": self.s.shards, "session_start_limit": limit}

    async def get_current_user(self, request: web.Request, rec: RecordedRequest, body: Any, files: list) -> Result:
        return 200, {**self.world.bot_user, "verified": True, "mfa_enabled": False}

    async def get_user(self, request: web.Request, rec: RecordedRequest, body: Any, files: list) -> Result:
        user = self.world.users.get(int(request.match_info["user_id"]))
        return (200, user) if user else error(404, 10013, "Unknown User")

    async def create_dm(self, request: web.Request, rec: RecordedRequest, body: Any, files: list) -> Result:
        uid = int(body["recipient_id"])
        if uid not in self.world.users:
            return error(400, 50007, "Cannot send messages to this user")
        return 200, self.world.open_dm(uid)

    async def get_application(self, request: web.Request, rec: RecordedRequest, body: Any, files: list) -> Result:
        world = self.world
        return 200, {
            "id": str(world.bot_id),
            "name": world.bot_user["username"],
            "icon": None,
            "description": "",
            "summary": "",
            "type": None,
            "bot_public": True,
            "bot_require_code_grant": False,
            "owner": self.s.owner,
            "team": None,
            "verify_key": "0" * 64,
            "flags": self.s.application_flags,
            "hook": True,
            "bot": world.bot_user,
            "tags": [],
            "redirect_uris": [],
            "rpc_origins": [],
            "interactions_endpoint_url": None,
            "approximate_guild_count": len(world.guilds),
        }

    async def get_guild(self, request: web.Request, rec: RecordedRequest, body: Any, files: list) -> Result:
        guild = self.world.guilds.get(int(request.match_info["guild_id"]))
        if guild is None:
            return error(404, 10004, "Unknown Guild")
        return 200, {**guild.data, "roles": list(guild.roles.values()), "emojis": [], "stickers": []}

    async def get_member(self, request: web.Request, rec: RecordedRequest, body: Any, files: list) -> Result:
        guild = self.world.guilds.get(int(request.match_info["guild_id"]))
        member = guild and guild.members.get(int(request.match_info["user_id"]))
        return (200, member) if member else error(404, 10007, "Unknown Member")

    async def cdn(self, request: web.Request, rec: RecordedRequest, body: Any, files: list) -> Result:
        stored = self.world.attachments.get(int(request.match_info["attachment_id"]))
        if stored is None:
            return 404, web.Response(status=404, text="Not Found")
        stored.downloads += 1
        self.s.cdn_downloads += 1
        # Set as a header: aiohttp refuses a charset inside content_type= ("text/plain; charset=utf-8").
        headers = {"Content-Type": stored.content_type}
        if stored.fault == "hang":
            # Headers never come; released when the stand-in closes, so its shutdown is not held up.
            await self.s.cdn_released.wait()
            return 200, web.Response(status=503)
        if stored.fault == "cut":
            response = web.StreamResponse(headers={**headers, "Content-Length": str(len(stored.data))})
            await response.prepare(request)
            await response.write(stored.data[: stored.cut_after])
            assert request.transport is not None
            request.transport.close()  # mid-body, as when a CDN edge drops the connection
            return 200, response
        return 200, web.Response(body=stored.data, headers=headers)

    # ---- channels & messages -----------------------------------------------------------------
    def _channel(self, request: web.Request) -> dict[str, Any] | None:
        return self.world.channels.get(int(request.match_info["channel_id"]))

    def _message(self, request: web.Request) -> dict[str, Any] | None:
        mid = int(request.match_info["message_id"])
        msg = self.world.messages.get(mid)
        if msg is None or mid in self.world.deleted or msg["channel_id"] != request.match_info["channel_id"]:
            return None
        return msg

    async def get_channel(self, request: web.Request, rec: RecordedRequest, body: Any, files: list) -> Result:
        channel = self._channel(request)
        return (200, channel) if channel else error(404, 10003, "Unknown Channel")

    async def list_messages(self, request: web.Request, rec: RecordedRequest, body: Any, files: list) -> Result:
        if self._channel(request) is None:
            return error(404, 10003, "Unknown Channel")
        world, q = self.world, request.query
        ids = [m for m in world.channel_messages.get(rec.channel_id or 0, []) if m not in world.deleted]
        if "before" in q:
            ids = [m for m in ids if m < int(q["before"])]
        if "after" in q:
            ids = [m for m in ids if m > int(q["after"])]
        limit = int(q.get("limit", 50))
        chosen = ids[:limit] if "after" in q else ids[-limit:]
        return 200, [world.messages[m] for m in reversed(chosen)]  # newest first, like Discord

    async def get_message(self, request: web.Request, rec: RecordedRequest, body: Any, files: list) -> Result:
        msg = self._message(request)
        return (200, msg) if msg else error(404, 10008, "Unknown Message")

    async def create_message(self, request: web.Request, rec: RecordedRequest, body: Any, files: list) -> Result:
        channel = self._channel(request)
        if channel is None:
            return error(404, 10003, "Unknown Channel")
        payload = body if isinstance(body, dict) else {}
        self.audit(rec, payload)
        needed = Permission.SEND_MESSAGES_IN_THREADS if channel["type"] in THREAD_TYPES else Permission.SEND_MESSAGES
        perms = self.world.channel_permissions(int(channel["id"]), self.world.bot_id)
        if not perms & Permission.VIEW_CHANNEL or not perms & needed:
            return error(403, 50013, "Missing Permissions")
        if int(payload.get("flags") or 0) & IS_VOICE_MESSAGE:
            refused = self._refuse_voice_message(int(channel["id"]), perms, payload, files)
            if refused is not None:
                return refused
        metadata = channel.get("thread_metadata") or {}
        if metadata.get("locked") and not perms & Permission.MANAGE_THREADS:
            return error(400, 50083, "Thread is locked")  # an archived, locked thread stays shut
        self.world.unarchive_for_message(int(channel["id"]))
        return self.messages.create(int(channel["id"]), payload, files)

    def _refuse_voice_message(
        self, channel_id: int, perms: int, payload: dict[str, Any], files: list[dict[str, Any]]
    ) -> Result | None:
        if not perms & Permission.SEND_VOICE_MESSAGES:
            return error(403, 50013, "Missing Permissions")
        if channel_id in self.s.voice_messages_refused:
            return error(400, CANNOT_SEND_VOICE_MESSAGES, "Cannot send voice messages in this channel")
        problem = voice_message_problem(payload, files)
        if problem is None:
            return None
        self.s.voice_message_violations.append(problem)
        return error(400, 50035, "Invalid Form Body", {"attachments": {"_errors": [{"message": problem}]}})

    async def edit_message(self, request: web.Request, rec: RecordedRequest, body: Any, files: list) -> Result:
        msg = self._message(request)
        if msg is None:
            return error(404, 10008, "Unknown Message")
        if int(msg["author"]["id"]) != self.world.bot_id:
            return error(403, 50005, "Cannot edit a message authored by another user")
        payload = body if isinstance(body, dict) else {}
        self.audit(rec, payload)
        return self.messages.edit(msg, payload, files)

    async def delete_message(self, request: web.Request, rec: RecordedRequest, body: Any, files: list) -> Result:
        msg = self._message(request)
        if msg is None:
            return error(404, 10008, "Unknown Message")
        return self.messages.delete(msg)

    async def typing(self, request: web.Request, rec: RecordedRequest, body: Any, files: list) -> Result:
        return (204, None) if self._channel(request) else error(404, 10003, "Unknown Channel")

    async def reaction(self, request: web.Request, rec: RecordedRequest, body: Any, files: list) -> Result:
        if self._message(request) is None:
            return error(404, 10008, "Unknown Message")
        return 204, None

    async def create_thread(self, request: web.Request, rec: RecordedRequest, body: Any, files: list) -> Result:
        """Start Thread from Message / without Message, with Discord's checks."""
        channel = self._channel(request)
        if channel is None:
            return error(404, 10003, "Unknown Channel")
        if channel["type"] not in THREAD_PARENT_TYPES:
            return error(400, 50024, "Cannot execute action on this channel type")
        payload = body if isinstance(body, dict) else {}
        mid = request.match_info.get("message_id")
        if mid is not None:  # from a message: always public (or an announcement thread)
            message = self._message(request)
            if message is None:
                return error(404, 10008, "Unknown Message")
            if int(mid) in self.world.channels:
                return error(400, 160004, "A thread has already been created for this message")
            thread_type = 10 if channel["type"] == 5 else 11
        else:  # without a message: the type defaults to a private thread in API v10
            thread_type = payload.get("type", 12)
            if thread_type not in THREAD_TYPES or (thread_type == 10) != (channel["type"] == 5):
                return form_error("type", "Announcement channels take announcement threads (10), others 11 or 12.")
        name = payload.get("name")
        if not isinstance(name, str) or not 1 <= len(name.strip()) <= 100 or len(name) > 100:
            return form_error("name", "Must be between 1 and 100 in length.")
        duration = payload.get("auto_archive_duration") or 4320
        if duration not in ARCHIVE_DURATIONS:
            return form_error("auto_archive_duration", "Value must be one of {60, 1440, 4320, 10080}.")
        slowmode = payload.get("rate_limit_per_user") or 0
        if not isinstance(slowmode, int) or not 0 <= slowmode <= 21_600:
            return form_error("rate_limit_per_user", "int value should be less than or equal to 21600.")
        needed = Permission.CREATE_PRIVATE_THREADS if thread_type == 12 else Permission.CREATE_PUBLIC_THREADS
        perms = self.world.channel_permissions(int(channel["id"]), self.world.bot_id)
        if not perms & Permission.VIEW_CHANNEL or not perms & needed:
            return error(403, 50013, "Missing Permissions")
        thread = self.world.add_thread(
            int(channel["id"]),
            name,
            thread_id=int(mid) if mid else None,
            thread_type=thread_type,
            auto_archive_duration=duration,
            rate_limit_per_user=slowmode,
        )
        if mid is not None:
            self.world.messages[int(mid)]["thread"] = thread
        return 201, thread

    # ---- application commands ----------------------------------------------------------------
    def _scope(self, request: web.Request) -> int | None:
        gid = request.match_info.get("guild_id")
        return int(gid) if gid else None

    def _command(self, request: web.Request, data: dict[str, Any], old: dict[str, Any] | None) -> dict:
        return self.command_object(self._scope(request), data, old)

    def command_object(self, scope: int | None, data: dict[str, Any], old: dict[str, Any] | None) -> dict:
        """A registered command as Discord stores it (ids, version, defaults), in ``scope`` (a guild)."""
        cmd = {
            "type": 1,
            "description": "",
            "options": [],
            "default_member_permissions": None,
            "dm_permission": True,
            "nsfw": False,
            "contexts": None,
            "integration_types": [0],
            **data,
        }
        cmd.update(
            id=old["id"] if old else str(self.world.ids.next()),
            application_id=str(self.world.bot_id),
            version=str(self.world.ids.next()),
        )
        if scope is not None:
            cmd["guild_id"] = str(scope)
        return cmd

    async def get_commands(self, request: web.Request, rec: RecordedRequest, body: Any, files: list) -> Result:
        return 200, self.s.commands.get(self._scope(request), [])

    async def put_commands(self, request: web.Request, rec: RecordedRequest, body: Any, files: list) -> Result:
        old = {(c["name"], c["type"]): c for c in self.s.commands.get(self._scope(request), [])}
        cmds = [self._command(request, d, old.get((d["name"], d.get("type", 1)))) for d in body or []]
        self.s.commands[self._scope(request)] = cmds
        return 200, cmds

    async def create_command(self, request: web.Request, rec: RecordedRequest, body: Any, files: list) -> Result:
        current = self.s.commands.setdefault(self._scope(request), [])
        old = next((c for c in current if c["name"] == body["name"]), None)
        cmd = self._command(request, body, old)
        current[:] = [c for c in current if c is not old] + [cmd]
        return (200 if old else 201), cmd
