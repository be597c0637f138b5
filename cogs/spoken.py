"""Spoken replies: each user chooses whether the bot answers their voice messages with a voice
message (``[voice] reply`` says how; this is the user's own off switch)."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.settings import SpokenReply

if TYPE_CHECKING:
    from bot.app import ChatBot

NOT_OFFERED = "I answer voice messages in text only here, so there is nothing to turn on or off."
TURN_HINT = "Change it with `/spoken-replies turn:{other}`."


class Turn(StrEnum):
    ON = "on"
    OFF = "off"


class SpokenReplies(commands.Cog):
    """Hear the bot's answers to your voice messages, or read them only."""

    def __init__(self, bot: ChatBot) -> None:
        self.bot = bot

    @app_commands.command(name="spoken-replies")
    @app_commands.describe(turn="on: answers to your voice messages are read out too; off: text only")
    async def spoken_replies(self, interaction: discord.Interaction, turn: Turn | None = None) -> None:
        """Turn voice replies to your voice messages on or off, for you only (none: show your choice)."""
        voice = self.bot.settings.voice
        if not voice.enabled or voice.reply is SpokenReply.TEXT:
            await interaction.response.send_message(NOT_OFFERED, ephemeral=True)
            return
        prefs = self.bot.services.spoken_prefs
        user_id = interaction.user.id
        if turn is None:
            on = await prefs.wants_voice(user_id)
            state = "on" if on else "off"
            text = f"Spoken replies are {state} for you. {TURN_HINT.format(other='off' if on else 'on')}"
        else:
            await prefs.choose(user_id, voice=turn is Turn.ON)
            if turn is Turn.OFF:
                text = "Done: I'll answer your voice messages in text only."
            elif voice.reply is SpokenReply.VOICE:
                text = "Done: I'll answer your voice messages with a voice message."
            else:
                text = "Done: I'll answer your voice messages in text and with a voice message."
        await interaction.response.send_message(text, ephemeral=True)


async def setup(bot: ChatBot) -> None:
    await bot.add_cog(SpokenReplies(bot))
