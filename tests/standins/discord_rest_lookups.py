"""The stand-in's REST routes for who is who: the gateway URL, users and DM channels, the application,
guilds and members."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from .discord_messages import Result, error
from .discord_recorder import RecordedRequest
from .discord_world import World

if TYPE_CHECKING:
    from .discord_standin import DiscordStandin


class LookupRoutes:
    """Part of ``RestApi`` (tests/standins/discord_rest.py), which sets these attributes."""

    s: DiscordStandin
    world: World

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
