"""The stand-in's world builders (guilds, channels, members, threads, DMs, attachments, what the bot may
do) and what its users do (post and edit messages), each dispatched to a connected bot as Discord does."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .discord_gateway import Gateway
from .discord_permissions import Permission
from .discord_snowflakes import UserRef, as_id
from .discord_world import World


class WorldControls:
    """Part of ``DiscordStandin`` (tests/standins/discord_standin.py), which sets these attributes."""

    world: World
    gateway: Gateway
    voice_messages_refused: set[int]

    def add_user(self, name: str, *, bot: bool = False, user_id: int | None = None) -> dict[str, Any]:
        return self.world.add_user(name, bot=bot, user_id=user_id)

    def guild_id_for_shard(self, shard_id: int, shard_count: int) -> int:
        """A fresh snowflake for a guild that lands on ``shard_id`` of ``shard_count``."""
        return self.world.ids.for_shard(shard_id, shard_count)

    def add_guild(self, name: str, *, owner_id: int | None = None, guild_id: int | None = None) -> dict[str, Any]:
        """A guild with an @everyone role (id = guild id, default permissions), the bot as a member and
        an owner (``owner_id``, or a new "<name>-owner" user). Use ``guild_id_for_shard`` to pick a shard."""
        return self.world.add_guild(name, owner_id=owner_id, guild_id=guild_id)

    def add_role(self, guild_id: int, name: str, permissions: int = 0) -> dict[str, Any]:
        return self.world.add_role(guild_id, name, permissions)

    def add_member(
        self, guild_id: int, user: UserRef, *, roles: Iterable[UserRef] = (), nick: str | None = None
    ) -> dict[str, Any]:
        return self.world.add_member(guild_id, user, roles=roles, nick=nick)

    def add_text_channel(self, guild_id: int, name: str, *, channel_id: int | None = None) -> dict[str, Any]:
        return self.world.add_text_channel(guild_id, name, channel_id=channel_id)

    def add_thread(self, parent_channel_id: int, name: str, *, owner_id: int | None = None) -> dict[str, Any]:
        return self.world.add_thread(parent_channel_id, name, owner_id=owner_id)

    def archive_thread(self, thread_id: int, *, locked: bool = False) -> dict[str, Any]:
        """Discord archives an idle thread: THREAD_UPDATE (archived). A later message unarchives it."""
        return self.world.set_archived(thread_id, True, locked=locked)

    def delete_thread(self, thread_id: int) -> dict[str, Any]:
        """A member or moderator deletes a thread: THREAD_DELETE (id, guild_id, parent_id, type)."""
        return self.world.delete_thread(thread_id)

    def set_slowmode(self, channel_id: int, seconds: int) -> None:
        """A channel's slowmode (``rate_limit_per_user``): CHANNEL_UPDATE."""
        self.world.set_slowmode(channel_id, seconds)

    def open_dm(self, user: UserRef) -> dict[str, Any]:
        return self.world.open_dm(user)

    def deny_bot(self, channel_id: int, permissions: int = Permission.SEND_MESSAGES) -> None:
        """Add a member overwrite denying the bot ``permissions`` (default SEND_MESSAGES) in a channel;
        POST messages there then answers 403 {"code": 50013, "message": "Missing Permissions"}."""
        self.world.set_overwrite(channel_id, self.world.bot_id, deny=int(permissions), member=True)

    def refuse_voice_messages(self, channel_id: int) -> None:
        """Voice messages posted in this channel get Discord's 400 {"code": 50173, "message": "Cannot
        send voice messages in this channel"}."""
        self.voice_messages_refused.add(channel_id)

    def add_attachment(
        self,
        data: bytes,
        filename: str,
        content_type: str,
        *,
        duration_secs: float | None = None,
        waveform: str | None = None,
        channel_id: int = 0,
    ) -> dict[str, Any]:
        """Store bytes on the CDN; returns the attachment object (voice messages: flags=8192)."""
        return self.world.add_attachment(
            data, filename, content_type, channel_id=channel_id, duration_secs=duration_secs, waveform=waveform
        )

    def hang_download(self, attachment: dict[str, Any]) -> None:
        """The CDN never answers for this attachment (until the stand-in closes)."""
        self.world.attachments[as_id(attachment)].fault = "hang"

    def cut_download(self, attachment: dict[str, Any], *, after: int = 16) -> None:
        """The CDN announces the whole attachment in Content-Length, sends ``after`` bytes of it, then
        closes the connection (aiohttp: ClientPayloadError)."""
        stored = self.world.attachments[as_id(attachment)]
        stored.fault, stored.cut_after = "cut", after

    async def post_message(
        self,
        channel_id: int,
        author: UserRef,
        content: str,
        *,
        mentions: Iterable[UserRef] = (),
        reply_to: dict[str, Any] | None = None,
        attachments: Iterable[dict[str, Any]] = (),
        flags: int = 0,
        message_id: int | None = None,
    ) -> dict[str, Any]:
        """A user's message: stored and dispatched as MESSAGE_CREATE. Known users written as
        ``<@id>`` count as mentioned; pass the replied-to author in ``mentions`` to ping them."""
        msg = self.world.build_message(
            channel_id,
            author,
            content,
            mentions=mentions,
            reply_to=reply_to,
            attachments=attachments,
            flags=flags,
            message_id=message_id,
        )
        self.world.unarchive_for_message(channel_id)
        self.world.store_message(msg)
        self.gateway.route("MESSAGE_CREATE", msg, guild_id=self.world.guild_of(channel_id))
        return msg

    async def edit_user_message(self, message: dict[str, Any], content: str) -> dict[str, Any]:
        """A user edits their message: MESSAGE_UPDATE with the new content."""
        msg = self.world.edit_message(int(message["id"]), {"content": content})
        self.gateway.route("MESSAGE_UPDATE", msg, guild_id=self.world.guild_of(int(msg["channel_id"])))
        return msg
