"""Permission checks for slash commands, done on our side whatever Discord's default permissions say."""

from __future__ import annotations

import discord
from discord import app_commands


def require(interaction: discord.Interaction, permission: str) -> None:
    """Raise MissingPermissions unless the member has ``permission`` in this channel."""
    if not getattr(interaction.permissions, permission):
        raise app_commands.MissingPermissions([permission])
