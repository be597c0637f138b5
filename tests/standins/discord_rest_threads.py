"""The stand-in's REST routes that start threads (from a message or without one), with Discord's checks."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .discord_messages import Result, error
from .discord_permissions import Permission
from .discord_recorder import RecordedRequest
from .discord_rest_channels import ChannelRoutes
from .discord_world_channels import THREAD_TYPES
from .discord_world_threads import ARCHIVE_DURATIONS, THREAD_PARENT_TYPES


def form_error(field: str, message: str) -> Result:
    """Discord's 400 Invalid Form Body naming the field."""
    return error(400, 50035, "Invalid Form Body", {field: {"_errors": [{"code": "INVALID", "message": message}]}})


class ThreadRoutes(ChannelRoutes):
    """Part of ``RestApi``; finds the parent channel and message as ``ChannelRoutes`` does."""

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
