"""In-memory Discord world for the stand-in: snowflakes, users, guilds, channels, messages.

Everything here is plain data (dicts shaped like Discord API objects) plus a few indexes so the
hot paths (posting, editing, looking up) stay O(1). Nothing in this module does any I/O; when the
world changes while a bot is connected, ``World.emit`` (set by the server) pushes gateway events.
"""

from __future__ import annotations

import datetime
import enum
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

DISCORD_EPOCH_MS = 1_420_070_400_000
USER_MENTION = re.compile(r"<@!?(\d+)>")
ROLE_MENTION = re.compile(r"<@&(\d+)>")


class Permission(enum.IntFlag):
    CREATE_INSTANT_INVITE = 1 << 0
    KICK_MEMBERS = 1 << 1
    BAN_MEMBERS = 1 << 2
    ADMINISTRATOR = 1 << 3
    MANAGE_CHANNELS = 1 << 4
    MANAGE_GUILD = 1 << 5
    ADD_REACTIONS = 1 << 6
    VIEW_CHANNEL = 1 << 10
    SEND_MESSAGES = 1 << 11
    MANAGE_MESSAGES = 1 << 13
    EMBED_LINKS = 1 << 14
    ATTACH_FILES = 1 << 15
    READ_MESSAGE_HISTORY = 1 << 16
    MENTION_EVERYONE = 1 << 17
    USE_EXTERNAL_EMOJIS = 1 << 18
    CHANGE_NICKNAME = 1 << 26
    MANAGE_ROLES = 1 << 28
    USE_APPLICATION_COMMANDS = 1 << 31
    MANAGE_THREADS = 1 << 34
    CREATE_PUBLIC_THREADS = 1 << 35
    CREATE_PRIVATE_THREADS = 1 << 36
    SEND_MESSAGES_IN_THREADS = 1 << 38
    SEND_VOICE_MESSAGES = 1 << 46


ALL_PERMISSIONS = (1 << 51) - 1
DEFAULT_PERMISSIONS = int(
    Permission.CREATE_INSTANT_INVITE
    | Permission.ADD_REACTIONS
    | Permission.VIEW_CHANNEL
    | Permission.SEND_MESSAGES
    | Permission.EMBED_LINKS
    | Permission.ATTACH_FILES
    | Permission.READ_MESSAGE_HISTORY
    | Permission.USE_EXTERNAL_EMOJIS
    | Permission.CHANGE_NICKNAME
    | Permission.USE_APPLICATION_COMMANDS
    | Permission.CREATE_PUBLIC_THREADS
    | Permission.CREATE_PRIVATE_THREADS
    | Permission.SEND_MESSAGES_IN_THREADS
    | Permission.SEND_VOICE_MESSAGES
)
THREAD_TYPES = frozenset({10, 11, 12})
THREAD_PARENT_TYPES = frozenset({0, 5})  # text and announcement channels hold threads started by REST
ARCHIVE_DURATIONS = frozenset({60, 1440, 4320, 10080})  # minutes, the only values Discord accepts
# Application flags: the privileged intents the portal grants (the _LIMITED ones: apps under review size).
GATEWAY_MESSAGE_CONTENT = 1 << 18
GATEWAY_MESSAGE_CONTENT_LIMITED = 1 << 19


class Snowflakes:
    """Real-looking, strictly increasing snowflakes: ``(ms since Discord epoch) << 22 | counter``."""

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> int:
        value = (int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22
        value = max(value, self._last + 1)
        self._last = value
        return value

    def for_shard(self, shard_id: int, shard_count: int) -> int:
        """A fresh id whose ``(id >> 22) % shard_count == shard_id`` (i.e. a guild on that shard)."""
        value = self.next()
        while (value >> 22) % shard_count != shard_id:
            value += 1 << 22
        self._last = max(self._last, value)
        return value


SNOWFLAKES = Snowflakes()  # process-wide so several stand-ins never hand out the same id


def snowflake_time(snowflake: int) -> str:
    ms = (snowflake >> 22) + DISCORD_EPOCH_MS
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).isoformat()


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()


def shard_of(guild_id: int | None, shard_count: int) -> int:
    return 0 if guild_id is None else (guild_id >> 22) % shard_count


def as_id(obj: dict[str, Any] | int | str) -> int:
    return int(obj["id"]) if isinstance(obj, dict) else int(obj)


@dataclass
class Guild:
    data: dict[str, Any]
    roles: dict[int, dict[str, Any]] = field(default_factory=dict)
    members: dict[int, dict[str, Any]] = field(default_factory=dict)
    channel_ids: list[int] = field(default_factory=list)
    thread_ids: list[int] = field(default_factory=list)


@dataclass
class StoredAttachment:
    data: bytes
    content_type: str
    payload: dict[str, Any]
    downloads: int = 0
    # How the CDN serves it: None (whole), "hang" (never answers) or "cut" (announces every byte in
    # Content-Length, sends ``cut_after`` of them, then closes the connection).
    fault: str | None = None
    cut_after: int = 16


class World:
    """The data model. ``emit(event, data, guild_id)`` is called for changes after connect."""

    def __init__(self, bot_name: str = "StandinBot") -> None:
        self.ids = SNOWFLAKES
        self.cdn_base = "http://127.0.0.1:0"
        self.emit: Callable[[str, dict[str, Any], int | None], None] = lambda *_: None
        self.users: dict[int, dict[str, Any]] = {}
        self.guilds: dict[int, Guild] = {}
        self.channels: dict[int, dict[str, Any]] = {}
        self.messages: dict[int, dict[str, Any]] = {}
        self.channel_messages: dict[int, list[int]] = {}
        self.bot_message_ids: dict[int, list[int]] = {}
        self.edits: dict[int, list[dict[str, Any]]] = {}
        self.deleted: set[int] = set()
        self.attachments: dict[int, StoredAttachment] = {}
        self.dm_by_user: dict[int, int] = {}
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

    # ---- channels ----------------------------------------------------------------------------
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

    def add_thread(
        self,
        parent_channel_id: int,
        name: str,
        *,
        owner_id: int | None = None,
        thread_id: int | None = None,
        thread_type: int = 11,
        auto_archive_duration: int = 1440,
        rate_limit_per_user: int = 0,
    ) -> dict[str, Any]:
        parent = self.channels[parent_channel_id]
        guild_id = int(parent["guild_id"])
        tid = thread_id or self.ids.next()
        stamp = now_iso()
        thread = {
            "id": str(tid),
            "type": thread_type,
            "guild_id": str(guild_id),
            "parent_id": str(parent_channel_id),
            "owner_id": str(owner_id or self.bot_id),
            "name": name,
            "last_message_id": None,
            "rate_limit_per_user": rate_limit_per_user,
            "message_count": 0,
            "member_count": 1,
            "total_message_sent": 0,
            "flags": 0,
            "applied_tags": [],
            "thread_metadata": {
                "archived": False,
                "auto_archive_duration": auto_archive_duration,
                "archive_timestamp": stamp,
                "locked": False,
                "create_timestamp": stamp,
                "invitable": True,
            },
        }
        self.channels[tid] = thread
        self.guilds[guild_id].thread_ids.append(tid)
        self.emit("THREAD_CREATE", {**thread, "newly_created": True}, guild_id)
        return thread

    def set_archived(self, thread_id: int, archived: bool, *, locked: bool = False) -> dict[str, Any]:
        """Archive (or unarchive) a thread: THREAD_UPDATE, as Discord sends when it auto-archives one
        or when a message unarchives it."""
        thread = self.channels[thread_id]
        metadata = thread["thread_metadata"]
        metadata.update(archived=archived, locked=locked and archived, archive_timestamp=now_iso())
        guild_id = int(thread["guild_id"])
        self.emit("THREAD_UPDATE", thread, guild_id)
        return thread

    def unarchive_for_message(self, channel_id: int) -> None:
        """A message sent in an archived (unlocked) thread unarchives it first, as on Discord."""
        channel = self.channels.get(channel_id)
        if channel is not None and channel.get("thread_metadata", {}).get("archived"):
            self.set_archived(channel_id, False)

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

    # ---- permissions -------------------------------------------------------------------------
    def base_permissions(self, guild_id: int, user_id: int) -> int:
        guild = self.guilds[guild_id]
        if int(guild.data["owner_id"]) == user_id:
            return ALL_PERMISSIONS
        perms = int(guild.roles[guild_id]["permissions"])
        member = guild.members.get(user_id)
        for role_id in member["roles"] if member else ():
            perms |= int(guild.roles[int(role_id)]["permissions"])
        return ALL_PERMISSIONS if perms & Permission.ADMINISTRATOR else perms

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

    # ---- payloads ----------------------------------------------------------------------------
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

    def mentioned_user_ids(self, content: str) -> list[int]:
        return [u for u in dict.fromkeys(map(int, USER_MENTION.findall(content or ""))) if u in self.users]

    def user_with_member(self, user_id: int, guild_id: int | None) -> dict[str, Any]:
        user = self.users[user_id]
        member = None if guild_id is None else self.partial_member(guild_id, user_id)
        return user if member is None else {**user, "member": member}

    def build_message(
        self,
        channel_id: int,
        author: dict[str, Any] | int,
        content: str,
        *,
        mentions: Iterable[dict[str, Any] | int] = (),
        reply_to: dict[str, Any] | None = None,
        attachments: Iterable[dict[str, Any]] = (),
        flags: int = 0,
        message_id: int | None = None,
        extra: dict[str, Any] | None = None,
        parse_mentions: bool = True,
    ) -> dict[str, Any]:
        """A MESSAGE_CREATE-shaped message. With ``parse_mentions``, known users written as ``<@id>``
        in the content count as mentioned, like on Discord."""
        author_id = as_id(author)
        guild_id = self.guild_of(channel_id)
        mention_ids = dict.fromkeys([as_id(m) for m in mentions])
        if parse_mentions:
            mention_ids.update((u, None) for u in self.mentioned_user_ids(content))
        mid = message_id or self.ids.next()
        msg: dict[str, Any] = {
            "id": str(mid),
            "channel_id": str(channel_id),
            "author": self.users[author_id],
            "content": content,
            "timestamp": snowflake_time(mid),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [self.user_with_member(u, guild_id) for u in mention_ids],
            "mention_roles": ROLE_MENTION.findall(content),
            "attachments": list(attachments),
            "embeds": [],
            "components": [],
            "pinned": False,
            "type": 0,
            "flags": flags,
        }
        if guild_id is not None:
            msg["guild_id"] = str(guild_id)
            member = self.partial_member(guild_id, author_id)
            if member is not None:
                msg["member"] = member
        if reply_to is not None:
            ref_id = int(reply_to["id"])
            referenced = {k: v for k, v in self.messages.get(ref_id, reply_to).items() if k != "referenced_message"}
            msg["type"] = 19
            msg["message_reference"] = {
                "type": 0,
                "message_id": str(ref_id),
                "channel_id": referenced["channel_id"],
                "fail_if_not_exists": False,
                **({"guild_id": str(guild_id)} if guild_id else {}),
            }
            msg["referenced_message"] = referenced
        if extra:
            msg.update(extra)
        return msg

    def store_message(self, msg: dict[str, Any]) -> dict[str, Any]:
        mid, cid = int(msg["id"]), int(msg["channel_id"])
        self.messages[mid] = msg
        self.channel_messages.setdefault(cid, []).append(mid)
        if int(msg["author"]["id"]) == self.bot_id:
            self.bot_message_ids.setdefault(cid, []).append(mid)
        if cid in self.channels:
            self.channels[cid]["last_message_id"] = str(mid)
        return msg

    def edit_message(self, message_id: int, changes: dict[str, Any]) -> dict[str, Any]:
        msg = self.messages[message_id]
        msg.update(changes)
        msg["edited_timestamp"] = now_iso()
        self.edits.setdefault(message_id, []).append(
            {"content": msg.get("content"), "at": time.monotonic(), "timestamp": msg["edited_timestamp"]}
        )
        return msg

    # ---- attachments -------------------------------------------------------------------------
    def add_attachment(
        self,
        data: bytes,
        filename: str,
        content_type: str,
        *,
        channel_id: int = 0,
        duration_secs: float | None = None,
        waveform: str | None = None,
    ) -> dict[str, Any]:
        aid = self.ids.next()
        url = f"{self.cdn_base}/attachments/{channel_id}/{aid}/{quote(filename)}?ex={aid % 0xFFFFFF:x}&is=0&hm=00&"
        payload: dict[str, Any] = {
            "id": str(aid),
            "filename": filename,
            "size": len(data),
            "url": url,
            "proxy_url": url,
            "content_type": content_type,
        }
        if duration_secs is not None:
            payload["duration_secs"] = duration_secs
        if waveform is not None:
            payload["waveform"] = waveform
        self.attachments[aid] = StoredAttachment(data, content_type, payload)
        return payload
