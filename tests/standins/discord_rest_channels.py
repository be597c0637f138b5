"""The stand-in's REST routes for channels and messages: read, post (with Discord's permission and
voice-message checks), edit, delete, typing and reactions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from .discord_messages import BotMessages, Result, error
from .discord_permissions import Permission
from .discord_recorder import RecordedRequest, mention_violation
from .discord_voice import CANNOT_SEND_VOICE_MESSAGES, IS_VOICE_MESSAGE, voice_message_problem
from .discord_world import World
from .discord_world_channels import THREAD_TYPES

if TYPE_CHECKING:
    from .discord_standin import DiscordStandin


class ChannelRoutes:
    """Part of ``RestApi`` (tests/standins/discord_rest.py), which sets these attributes."""

    s: DiscordStandin
    world: World
    messages: BotMessages

    def audit(self, rec: RecordedRequest, payload: Any) -> None:
        problem = mention_violation(f"{rec.method} {rec.path}", payload)
        if problem is not None:
            self.s.mention_violations.append(problem)

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
