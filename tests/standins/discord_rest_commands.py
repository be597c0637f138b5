"""The stand-in's REST routes for application commands (global and per guild): list, overwrite, create."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from .discord_messages import Result
from .discord_recorder import RecordedRequest
from .discord_world import World

if TYPE_CHECKING:
    from .discord_standin import DiscordStandin


class CommandRoutes:
    """Part of ``RestApi`` (tests/standins/discord_rest.py), which sets these attributes."""

    s: DiscordStandin
    world: World

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
