"""Personas: choose who the bot is in this server or channel (Manage Server / Manage Channels)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.personas import CUSTOM, Scope
from cogs.utils.scope import require_scope_permission, reset_reply, scope_name, scoped_group, where_asked
from cogs.utils.text import bounded, shorten

if TYPE_CHECKING:
    from bot.app import ChatBot
    from bot.personas import PersonaStore

log = logging.getLogger(__name__)

PROMPT_PREVIEW_CHARS = 1_500  # keeps /persona show within one 2,000-character message


class CustomPromptModal(discord.ui.Modal, title="Custom persona"):
    def __init__(self, cog: Personas, current: str | None, limit: int) -> None:
        super().__init__()
        self.cog = cog
        self.prompt = discord.ui.TextInput(
            style=discord.TextStyle.paragraph,
            default=current,
            # Discord enforces this in the form; the store checks again for clients that don't.
            max_length=limit,
            placeholder="You are {bot_name}, a pirate who answers every question in pirate speak…",
        )
        self.add_item(
            discord.ui.Label(
                text="System prompt",
                description="May use {date}, {bot_name} and {guild_name}.",
                component=self.prompt,
            )
        )

    async def on_submit(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        await self.cog.bot.services.personas.save_custom(interaction.guild_id, self.prompt.value)
        await interaction.response.send_message(
            f"Saved. This server's persona is now its custom prompt ({len(self.prompt.value.strip()):,} characters).",
            ephemeral=True,
        )

    async def on_error(self, interaction: discord.Interaction, error: Exception, /) -> None:
        await self.cog.bot.tree.report(interaction, error)


class Personas(commands.Cog):
    """Choose the bot's persona (its system prompt) for this server or one channel."""

    persona = scoped_group("persona", "Choose who the bot is in this server")

    def __init__(self, bot: ChatBot) -> None:
        self.bot = bot

    @property
    def store(self) -> PersonaStore:
        return self.bot.services.personas

    @persona.command(name="list")
    async def persona_list(self, interaction: discord.Interaction) -> None:
        """List the personas this server can use."""
        guild_id, channel_id, parent_id = where_asked(interaction)
        active = await self.store.active(guild_id, channel_id, parent_id)
        has_custom = await self.store.custom_prompt(guild_id) is not None
        lines = [
            f"• **{p.name}**: {p.description}" + (" ← active here" if p.name == active.name else "")
            for p in self.bot.settings.personas.builtin
        ]
        if has_custom:
            lines.append(
                f"• **{CUSTOM}**: this server's own prompt" + (" ← active here" if active.name == CUSTOM else "")
            )
        await interaction.response.send_message(bounded("\n".join(lines)), ephemeral=True)

    @persona.command(name="show")
    async def persona_show(self, interaction: discord.Interaction) -> None:
        """Show the persona active in this channel, where it comes from, and its prompt."""
        active = await self.store.active(*where_asked(interaction))
        prompt = active.prompt
        if len(prompt) > PROMPT_PREVIEW_CHARS:
            prompt = prompt[:PROMPT_PREVIEW_CHARS] + "…"
        prompt = prompt.replace("```", "'''")  # keep the quote block intact
        name = shorten(active.name, 100)  # a configured name may be long; the prompt is cut above
        await interaction.response.send_message(
            f"Active persona here: **{name}** (from the {active.source}).\n```\n{prompt}\n```", ephemeral=True
        )

    @persona.command(name="set")
    @app_commands.describe(name="The persona to use", scope="The whole server (default) or only this channel")
    async def persona_set(self, interaction: discord.Interaction, name: str, scope: Scope = Scope.GUILD) -> None:
        """Choose the persona for this server, or for this channel only."""
        require_scope_permission(interaction, scope)
        assert interaction.guild_id is not None and interaction.channel_id is not None
        await self.store.choose(interaction.guild_id, name, scope, interaction.channel_id)
        await interaction.response.send_message(
            f"The persona for {scope_name(scope)} is now **{name}**. It applies from the next message.", ephemeral=True
        )

    @persona_set.autocomplete("name")
    async def persona_name_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        needle = current.lower()
        choices = [
            app_commands.Choice(name=f"{p.name}: {p.description}"[:100], value=p.name)
            for p in self.bot.settings.personas.builtin
            if needle in p.name.lower()
        ]
        if needle in CUSTOM:
            choices.append(app_commands.Choice(name="custom: this server's own prompt", value=CUSTOM))
        return choices[:25]

    @persona.command(name="custom")
    async def persona_custom(self, interaction: discord.Interaction) -> None:
        """Write this server's own persona prompt."""
        require_scope_permission(interaction, Scope.GUILD)
        assert interaction.guild_id is not None
        current = await self.store.custom_prompt(interaction.guild_id)
        limit = self.bot.settings.personas.custom_max_chars
        await interaction.response.send_modal(CustomPromptModal(self, current, limit))

    @persona.command(name="reset")
    @app_commands.describe(scope="The server's persona (default) or this channel's override")
    async def persona_reset(self, interaction: discord.Interaction, scope: Scope = Scope.GUILD) -> None:
        """Go back to the default persona, or remove this channel's override."""
        require_scope_permission(interaction, scope)
        assert interaction.guild_id is not None and interaction.channel_id is not None
        removed = await self.store.reset(interaction.guild_id, scope, interaction.channel_id)
        default = self.store.default.name
        await interaction.response.send_message(reset_reply("persona", scope, removed, default), ephemeral=True)


async def setup(bot: ChatBot) -> None:
    await bot.add_cog(Personas(bot))
