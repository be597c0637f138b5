"""In-memory Discord world for the stand-in: users, guilds, channels, threads, DMs, messages, attachments.

Everything here is plain data (dicts shaped like Discord API objects) plus a few indexes so the
hot paths (posting, editing, looking up) stay O(1). Nothing in the world does any I/O; when it
changes while a bot is connected, ``World.emit`` (set by the server) pushes gateway events.

The world is built in layers, each a module and each extending the one below:
``discord_world_guilds`` (users, guilds, roles, members), ``discord_world_channels`` (text channels,
DMs, overwrites, channel permissions), ``discord_world_threads`` (threads) and
``discord_world_messages`` (messages, attachments). Ids and timestamps come from
``discord_snowflakes``, permission bits from ``discord_permissions``.
"""

from __future__ import annotations

from .discord_world_messages import MessageWorld


class World(MessageWorld):
    """The whole data model: every layer. ``emit(event, data, guild_id)`` is called for changes after connect."""
