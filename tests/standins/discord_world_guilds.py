"""The world's first layer: users, guilds, roles and members (and the guild-level permissions they give).

``GuildWorld`` also holds what every later layer shares: the snowflake source, the ``emit`` hook the
server sets to push gateway events for changes after connect, and the channel table (GUILD_CREATE lists
a guild's channels and threads).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .discord_permissions import ALL_PERMISSIONS, DEFAULT_PERMISSIONS, Permission
from .discord_snowflakes import SNOWFLAKES, as_id, now_iso


@dataclass
class Guild:
    data: dict[str, Any]
    roles: dict[int, dict[str, Any]] = field(default_factory=dict)
    members: dict[int, dict[str, Any]] = field(default_factory=dict)
    channel_ids: list[int] = field(default_factory=list)
    thread_ids: list[int] = field(default_factory=list)


class GuildWorld:
    """Users, guilds, roles and members. ``emit(event, data, guild_id)`` is called for changes after connect."""

    def __init__(self, bot_name: str = "StandinBot") -> None:
        self.ids = SNOWFLAKES
        self.emit: Callable[[str, dict[str, Any], int | None], None] = lambda *_: None
        self.users: dict[int, dict[str, Any]] = {}
        self.guilds: dict[int, Guild] = {}
        self.channels: dict[int, dict[str, Any]] = {}
        self.bot_user = self.add_user(bot_name, bot=True)

    @property
    def bot_id(self) -> int:
        return int(self.bot_user["id"])

    # ---- users, guilds, roles, members -------------------------------------------------------
    def add_user(self, name: str, *, bot: bool = False, user_id: int | None = None) -> dict[str, Any]:
        uid = user_id or self.ids.next()
        user = {
            "id": str(uid),
            "username": name,
            "global_name": None if bot else name,
            "discriminator": "0",
            "avatar": None,
            "bot": bot,
            "public_flags": 0,
            "flags": 0,
            "banner": None,
            "accent_color": None,
            "avatar_decoration_data": None,
        }
        self.users[uid] = user
        return user

    def add_guild(
        self,
        name: str,
        *,
        owner_id: int | None = None,
        guild_id: int | None = None,
    ) -> dict[str, Any]:
        gid = guild_id or self.ids.next()
        if owner_id is None:
            owner_id = as_id(self.add_user(f"{name}-owner"))
        data = {
            "id": str(gid),
            "name": name,
            "icon": None,
            "owner_id": str(owner_id),
            "features": [],
            "preferred_locale": "en-US",
            "verification_level": 0,
            "default_message_notifications": 1,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "system_channel_id": None,
            "afk_timeout": 300,
            "description": None,
        }
        guild = self.guilds[gid] = Guild(data)
        guild.roles[gid] = self._role(gid, "@everyone", DEFAULT_PERMISSIONS, position=0)
        for uid in dict.fromkeys((owner_id, self.bot_id)):
            guild.members[uid] = self.member_payload(uid, (), None)
        self.emit("GUILD_CREATE", self.guild_create_payload(gid), gid)
        return data

    def _role(self, role_id: int, name: str, permissions: int, *, position: int) -> dict[str, Any]:
        return {
            "id": str(role_id),
            "name": name,
            "permissions": str(permissions),
            "position": position,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "managed": False,
            "mentionable": False,
            "icon": None,
            "unicode_emoji": None,
            "flags": 0,
        }

    def add_role(self, guild_id: int, name: str, permissions: int = 0) -> dict[str, Any]:
        guild = self.guilds[guild_id]
        role = self._role(self.ids.next(), name, int(permissions), position=len(guild.roles))
        guild.roles[int(role["id"])] = role
        self.emit("GUILD_ROLE_CREATE", {"guild_id": str(guild_id), "role": role}, guild_id)
        return role

    def add_member(
        self,
        guild_id: int,
        user: dict[str, Any] | int,
        *,
        roles: Iterable[dict[str, Any] | int] = (),
        nick: str | None = None,
    ) -> dict[str, Any]:
        uid = as_id(user)
        member = self.guilds[guild_id].members[uid] = self.member_payload(uid, roles, nick)
        self.emit("GUILD_MEMBER_ADD", {**member, "guild_id": str(guild_id)}, guild_id)
        return member

    def member_payload(self, user_id: int, roles: Iterable[dict[str, Any] | int], nick: str | None) -> dict:
        return {
            "user": self.users[user_id],
            "roles": [str(as_id(r)) for r in roles],
            "nick": nick,
            "avatar": None,
            "banner": None,
            "joined_at": now_iso(),
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "communication_disabled_until": None,
        }

    def partial_member(self, guild_id: int, user_id: int) -> dict[str, Any] | None:
        member = self.guilds[guild_id].members.get(user_id)
        if member is None:
            return None
        return {k: v for k, v in member.items() if k != "user"}

    def user_with_member(self, user_id: int, guild_id: int | None) -> dict[str, Any]:
        user = self.users[user_id]
        member = None if guild_id is None else self.partial_member(guild_id, user_id)
        return user if member is None else {**user, "member": member}

    def base_permissions(self, guild_id: int, user_id: int) -> int:
        guild = self.guilds[guild_id]
        if int(guild.data["owner_id"]) == user_id:
            return ALL_PERMISSIONS
        perms = int(guild.roles[guild_id]["permissions"])
        member = guild.members.get(user_id)
        for role_id in member["roles"] if member else ():
            perms |= int(guild.roles[int(role_id)]["permissions"])
        return ALL_PERMISSIONS if perms & Permission.ADMINISTRATOR else perms

    def guild_create_payload(self, guild_id: int) -> dict[str, Any]:
        guild = self.guilds[guild_id]
        return {
            **guild.data,
            "unavailable": False,
            "large": False,
            "member_count": len(guild.members),
            "joined_at": guild.members[self.bot_id]["joined_at"],
            "roles": list(guild.roles.values()),
            "channels": [self.channels[c] for c in guild.channel_ids],
            "threads": [self.channels[t] for t in guild.thread_ids],
            "members": list(guild.members.values()),
            "emojis": [],
            "stickers": [],
            "presences": [],
            "voice_states": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }
