"""Usage: what the bot's model calls cost, for you or for this server."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.usage import UsageTotals
from cogs.utils.checks import require
from cogs.utils.text import bounded, name_list

if TYPE_CHECKING:
    from bot.app import ChatBot

MAX_DAYS = 30


class UsageScope(StrEnum):
    ME = "me"
    GUILD = "guild"


def describe(totals: UsageTotals) -> str:
    if not totals.requests:
        return "nothing"
    parts = [
        f"{totals.tokens:,} tokens ({totals.input_tokens:,} in, {totals.output_tokens:,} out)",
        f"{totals.requests:,} request{'s' if totals.requests != 1 else ''}",
    ]
    if totals.audio_seconds:
        parts.append(f"{totals.audio_seconds:,.0f} s of audio")
    if totals.spoken_chars:
        parts.append(f"{totals.spoken_chars:,} characters read out")
    text = ", ".join(parts) + f", about ${totals.cost:,.4f}"
    if totals.estimated_requests:
        text += f" ({totals.estimated_requests} estimated: the server reported no usage)"
    if totals.unpriced_models:
        text += f" (no price configured for {name_list(sorted(totals.unpriced_models))})"
    return text


class Usage(commands.Cog):
    """See how many tokens the bot used, and what they cost."""

    def __init__(self, bot: ChatBot) -> None:
        self.bot = bot

    @app_commands.command(name="usage")
    @app_commands.describe(
        scope="Your own usage (default), or this server's (Manage Server)",
        days=f"How many days back, today included (1-{MAX_DAYS}, default 7)",
    )
    async def usage(
        self,
        interaction: discord.Interaction,
        scope: UsageScope = UsageScope.ME,
        days: app_commands.Range[int, 1, MAX_DAYS] = 7,
    ) -> None:
        """Tokens, requests and estimated cost, today and over the last days (UTC)."""
        if scope is UsageScope.GUILD:
            if interaction.guild_id is None:
                raise app_commands.NoPrivateMessage()
            require(interaction, "manage_guild")
        today = self.bot.services.chat.clock().date()
        report = await self.bot.services.usage.report(
            today=today,
            days=days,
            guild_id=interaction.guild_id if scope is UsageScope.GUILD else None,
            user_id=interaction.user.id if scope is UsageScope.ME else None,
        )
        total = UsageTotals()
        for _, day in report:
            total.add(day)
        whose = "Your usage" if scope is UsageScope.ME else "This server's usage"
        lines = [
            f"**{whose}** (UTC days)",
            f"Today: {describe(report[0][1])}",
            f"Last {days} day{'s' if days != 1 else ''}: {describe(total)}",
        ]
        if days > 1:
            lines += [f"- {date:%b %d}: {describe(day)}" for date, day in report if day.requests][:10]
        await interaction.response.send_message(bounded("\n".join(lines)), ephemeral=True)


async def setup(bot: ChatBot) -> None:
    await bot.add_cog(Usage(bot))
