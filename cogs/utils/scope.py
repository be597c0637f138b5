"""What /persona and /model share: a setting each server chooses for itself, or for one channel (a
thread follows its parent channel's choice)."""

from __future__ import annotations

import discord
from discord import app_commands

from bot.personas import Scope
from cogs.utils.checks import require


def scoped_group(name: str, description: str) -> app_commands.Group:
    """The command group of a server-or-channel setting."""
    return app_commands.Group(
        name=name,
        description=description,
        guild_only=True,
        # Hidden from members who could not use any subcommand; each subcommand checks again.
        default_permissions=discord.Permissions(manage_channels=True),
    )


def parent_id(channel: object) -> int | None:
    """A thread's parent channel, whose choice the thread follows; None for any other channel."""
    return getattr(channel, "parent_id", None) if isinstance(channel, discord.Thread) else None


def where_asked(interaction: discord.Interaction) -> tuple[int, int, int | None]:
    """The guild, channel and parent channel (in a thread) a command was used in, as the stores'
    ``active`` takes them. The groups are guild-only, so both ids are there."""
    assert interaction.guild_id is not None and interaction.channel_id is not None
    return interaction.guild_id, interaction.channel_id, parent_id(interaction.channel)


def scope_name(scope: Scope) -> str:
    return "this server" if scope is Scope.GUILD else "this channel"


def reset_reply(setting: str, scope: Scope, removed: bool, default: str) -> str:
    """The answer to ``/<setting> reset``: ``removed``, whether the channel had an override to
    remove; ``default``, the name of what the server falls back to."""
    if scope is Scope.GUILD:
        return f"This server now uses the default {setting} (**{default}**)."
    return f"This channel now follows the server's {setting}." if removed else "This channel had no override."


def require_scope_permission(interaction: discord.Interaction, scope: Scope) -> None:
    """A server-wide setting needs Manage Server; a channel's override Manage Channels."""
    require(interaction, "manage_guild" if scope is Scope.GUILD else "manage_channels")
