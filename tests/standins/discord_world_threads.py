"""The world's third layer: threads (created, archived, unarchived by a message, deleted) with Discord's
constants."""

from __future__ import annotations

from typing import Any

from .discord_snowflakes import now_iso
from .discord_world_channels import ChannelWorld

THREAD_PARENT_TYPES = frozenset({0, 5})  # text and announcement channels hold threads started by REST
ARCHIVE_DURATIONS = frozenset({60, 1440, 4320, 10080})  # minutes, the only values Discord accepts


class ThreadWorld(ChannelWorld):
    """Threads in the text channels of ``ChannelWorld``; a thread is a channel with ``thread_metadata``."""

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

    def delete_thread(self, thread_id: int) -> dict[str, Any]:
        """Someone deletes a thread: it is gone (REST on it answers Unknown Channel) and THREAD_DELETE
        carries, as on Discord, only a subset of the channel: ``id``, ``guild_id``, ``parent_id``, ``type``."""
        thread = self.channels.pop(thread_id)
        guild_id = int(thread["guild_id"])
        self.guilds[guild_id].thread_ids.remove(thread_id)
        event = {key: thread[key] for key in ("id", "guild_id", "parent_id", "type")}
        self.emit("THREAD_DELETE", event, guild_id)
        return event

    def unarchive_for_message(self, channel_id: int) -> None:
        """A message sent in an archived (unlocked) thread unarchives it first, as on Discord."""
        channel = self.channels.get(channel_id)
        if channel is not None and channel.get("thread_metadata", {}).get("archived"):
            self.set_archived(channel_id, False)
