"""The world's second layer: guild text channels, DMs, permission overwrites and a channel's permissions."""

from __future__ import annotations

from typing import Any

from .discord_permissions import ALL_PERMISSIONS, DEFAULT_PERMISSIONS
from .discord_snowflakes import as_id
from .discord_world_guilds import GuildWorld

THREAD_TYPES = frozenset({10, 11, 12})  # a thread takes its permissions from its parent channel


class ChannelWorld(GuildWorld):
    """Guild text channels and DMs on top of the guilds, members and roles of ``GuildWorld``."""

    def __init__(self, bot_name: str = "StandinBot") -> None:
        super().__init__(bot_name)
        self.dm_by_user: dict[int, int] = {}

    def add_text_channel(self, guild_id: int, name: str, *, channel_id: int | None = None) -> dict[str, Any]:
        guild = self.guilds[guild_id]
        cid = channel_id or self.ids.next()
        channel = {
            "id": str(cid),
            "type": 0,
            "guild_id": str(guild_id),
            "name": name,
            "position": len(guild.channel_ids),
            "permission_overwrites": [],
            "topic": None,
            "nsfw": False,
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "parent_id": None,
            "flags": 0,
        }
        self.channels[cid] = channel
        guild.channel_ids.append(cid)
        self.emit("CHANNEL_CREATE", channel, guild_id)
        return channel

    def open_dm(self, user: dict[str, Any] | int) -> dict[str, Any]:
        uid = as_id(user)
        if uid in self.dm_by_user:
            return self.channels[self.dm_by_user[uid]]
        cid = self.ids.next()
        channel = {
            "id": str(cid),
            "type": 1,
            "recipients": [self.users[uid]],
            "last_message_id": None,
            "flags": 0,
        }
        self.channels[cid] = channel
        self.dm_by_user[uid] = cid
        return channel

    def set_overwrite(
        self,
        channel_id: int,
        target_id: int,
        *,
        allow: int = 0,
        deny: int = 0,
        member: bool,
    ) -> None:
        channel = self.channels[channel_id]
        overwrites = [o for o in channel["permission_overwrites"] if int(o["id"]) != target_id]
        kind = 1 if member else 0
        overwrites.append({"id": str(target_id), "type": kind, "allow": str(allow), "deny": str(deny)})
        channel["permission_overwrites"] = overwrites
        self.emit("CHANNEL_UPDATE", channel, int(channel["guild_id"]))

    def guild_of(self, channel_id: int) -> int | None:
        channel = self.channels.get(channel_id)
        return None if channel is None or "guild_id" not in channel else int(channel["guild_id"])

    def set_slowmode(self, channel_id: int, seconds: int) -> None:
        channel = self.channels[channel_id]
        channel["rate_limit_per_user"] = seconds
        self.emit("CHANNEL_UPDATE", channel, self.guild_of(channel_id))

    def channel_permissions(self, channel_id: int, user_id: int) -> int:
        channel = self.channels[channel_id]
        guild_id = self.guild_of(channel_id)
        if guild_id is None:
            return DEFAULT_PERMISSIONS
        perms = self.base_permissions(guild_id, user_id)
        if perms == ALL_PERMISSIONS:
            return perms
        if channel["type"] in THREAD_TYPES:
            channel = self.channels[int(channel["parent_id"])]
        member = self.guilds[guild_id].members.get(user_id)
        role_ids = set(member["roles"]) if member else set()
        overwrites = channel.get("permission_overwrites", [])
        groups = (
            [o for o in overwrites if o["type"] == 0 and o["id"] == str(guild_id)],
            [o for o in overwrites if o["type"] == 0 and o["id"] in role_ids],
            [o for o in overwrites if o["type"] == 1 and o["id"] == str(user_id)],
        )
        for group in groups:
            allow = deny = 0
            for o in group:
                allow |= int(o["allow"])
                deny |= int(o["deny"])
            perms = (perms & ~deny) | allow
        return perms
