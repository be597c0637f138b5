"""Permission checks for slash commands, done on our side whatever Discord's default permissions say."""

from __future__ import annotations

import discord
from discord import app_commands

from bot.personas import Scope


def require(interaction: discord.Interaction, permission: str) -> None:
    """Raise MissingPermissions unless the member has ``permission`` in this channel."""
    if not getattr(interaction.permissions, permission):
        raise app_commands.MissingPermissions([permission])


def require_scope_permission(interaction: discord.Interaction, scope: Scope) -> None:
    """A server-wide setting (/persona, /model) needs Manage Server; a channel's override Manage Channels."""
    require(interaction, "manage_guild" if scope is Scope.GUILD else "manage_channels")
