"""Models: choose which configured model answers in this server or one channel (Manage Server /
Manage Channels, as for /persona)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.personas import Scope
from cogs.utils.scope import require_scope_permission, reset_reply, scope_name, scoped_group, where_asked
from cogs.utils.text import bounded

if TYPE_CHECKING:
    from bot.app import ChatBot
    from bot.models import ActiveModel, ModelChoices, ServedModel


def describe(served: ServedModel) -> str:
    option = served.option
    facts = [f"{option.context_window:,}-token window", "reads images" if option.images else "text only"]
    named = f"**{option.title}**" + (f" (`{option.name}`)" if option.label else "")
    return f"{named}: {', '.join(facts)}"


def where_from(active: ActiveModel) -> str:
    text = f"**{active.model.option.title}** (from the {active.source})"
    if active.missing:
        return f"{text}. “{active.missing[:50]}” was chosen but is no longer offered, so this one answers instead"
    return text


class Models(commands.Cog):
    """Choose the model that answers in this server, or in one channel."""

    model = scoped_group("model", "Choose the model that answers in this server")

    def __init__(self, bot: ChatBot) -> None:
        self.bot = bot

    @property
    def store(self) -> ModelChoices:
        return self.bot.services.models

    @model.command(name="list")
    async def model_list(self, interaction: discord.Interaction) -> None:
        """List the models this server can use."""
        active = await self.store.active(*where_asked(interaction))
        default = self.store.registry.default.name
        lines = [
            f"• {describe(served)}"
            + (" (default)" if served.name == default else "")
            + (" ← active here" if served.name == active.model.name else "")
            for served in self.store.registry
        ]
        await interaction.response.send_message(bounded("\n".join(lines)), ephemeral=True)  # many models

    @model.command(name="show")
    async def model_show(self, interaction: discord.Interaction) -> None:
        """Show the model that answers in this channel, and where that choice comes from."""
        active = await self.store.active(*where_asked(interaction))
        await interaction.response.send_message(
            bounded(f"Model here: {where_from(active)}.\n{describe(active.model)}"), ephemeral=True
        )

    @model.command(name="set")
    @app_commands.describe(name="The model to use", scope="The whole server (default) or only this channel")
    async def model_set(self, interaction: discord.Interaction, name: str, scope: Scope = Scope.GUILD) -> None:
        """Choose the model for this server, or for this channel only."""
        require_scope_permission(interaction, scope)
        assert interaction.guild_id is not None and interaction.channel_id is not None
        served = await self.store.choose(interaction.guild_id, name, scope, interaction.channel_id)
        await interaction.response.send_message(
            f"The model for {scope_name(scope)} is now **{served.option.title}**. It applies from the next message.",
            ephemeral=True,
        )

    @model_set.autocomplete("name")
    async def model_name_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        needle = current.lower()
        return [
            app_commands.Choice(name=served.option.title[:100], value=served.name)
            for served in self.store.registry
            if needle in served.name.lower() or needle in served.option.title.lower()
        ][:25]

    @model.command(name="reset")
    @app_commands.describe(scope="The server's model (default) or this channel's override")
    async def model_reset(self, interaction: discord.Interaction, scope: Scope = Scope.GUILD) -> None:
        """Go back to the default model, or remove this channel's override."""
        require_scope_permission(interaction, scope)
        assert interaction.guild_id is not None and interaction.channel_id is not None
        removed = await self.store.reset(interaction.guild_id, scope, interaction.channel_id)
        default = self.store.registry.default.option.title
        await interaction.response.send_message(reset_reply("model", scope, removed, default), ephemeral=True)


async def setup(bot: ChatBot) -> None:
    await bot.add_cog(Models(bot))
