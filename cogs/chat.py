"""Chat: mention the bot (or reply to it with the ping on, or DM it) and it answers with the channel's
conversation in mind."""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.conversation import ChatRequest
from cogs.utils.audio import audio_attachment
from cogs.utils.checks import require
from cogs.utils.replies import answer

if TYPE_CHECKING:
    from bot.app import ChatBot

log = logging.getLogger(__name__)

EMPTY_MENTION_HINT = "Hi! Mention me with a question or a request, e.g. *@me what's a good name for a cat?*"
CHAT_MESSAGE_TYPES = (discord.MessageType.default, discord.MessageType.reply)
_USER_MENTION = re.compile(r"<@!?(\d+)>")
_ROLE_MENTION = re.compile(r"<@&(\d+)>")
_CHANNEL_MENTION = re.compile(r"<#(\d+)>")


def readable_text(message: discord.Message, bot_id: int) -> str:
    """The message as the model should read it: our own mention removed, other mentions as names."""
    users = {user.id: user.display_name for user in message.mentions}
    roles = {role.id: role.name for role in message.role_mentions}
    guild = message.guild

    def user(match: re.Match[str]) -> str:
        user_id = int(match[1])
        return "" if user_id == bot_id else f"@{users.get(user_id, 'someone')}"

    def channel(match: re.Match[str]) -> str:
        found = guild.get_channel_or_thread(int(match[1])) if guild else None
        return f"#{found.name}" if found else "#channel"

    text = _USER_MENTION.sub(user, message.content)
    text = _ROLE_MENTION.sub(lambda m: f"@{roles.get(int(m[1]), 'role')}", text)
    return _CHANNEL_MENTION.sub(channel, text).strip()


class Chat(commands.Cog):
    """Talk to the model by mentioning the bot, replying to it, or sending it a DM."""

    def __init__(self, bot: ChatBot) -> None:
        self.bot = bot

    def is_addressed(self, message: discord.Message) -> bool:
        me = self.bot.user
        if me is None or message.author.bot or message.type not in CHAT_MESSAGE_TYPES:
            return False
        if message.guild is None:
            return self.bot.settings.chat.allow_dms
        # Not mentioned_in(): that is also true for @everyone, which must not wake the bot.
        return any(user.id == me.id for user in message.mentions)

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        # Voice messages and audio files belong to cogs/voice.py, which answers them once transcribed.
        if not self.is_addressed(message) or audio_attachment(message) is not None:
            return
        assert self.bot.user is not None
        text = readable_text(message, self.bot.user.id)
        if not text:
            await message.reply(EMPTY_MENTION_HINT, mention_author=False)
            return
        request = ChatRequest(
            conversation_id=message.channel.id,
            guild_id=message.guild.id if message.guild else None,
            author_id=message.author.id,
            author_name=message.author.display_name,
            message_id=message.id,
            text=text,
            bot_name=message.guild.me.display_name if message.guild else self.bot.user.display_name,
            guild_name=message.guild.name if message.guild else None,
            parent_id=message.channel.parent_id if isinstance(message.channel, discord.Thread) else None,
        )
        await answer(self.bot, message, request)

    @app_commands.command(name="forget")
    async def forget(self, interaction: discord.Interaction) -> None:
        """Clear this conversation's history (channel, thread or DM)."""
        channel = interaction.channel
        if interaction.guild_id is not None:
            own_thread = isinstance(channel, discord.Thread) and channel.owner_id == interaction.user.id
            if not own_thread:
                require(interaction, "manage_messages")
        assert interaction.channel_id is not None
        # Waits for an answer still being written in this conversation: acknowledge first.
        await interaction.response.defer(thinking=True)
        removed = await self.bot.services.chat.forget(interaction.channel_id)
        if removed:
            text = f"Done: I forgot this conversation ({removed} message{'s' if removed != 1 else ''})."
        else:
            text = "There was nothing to forget here."
        await interaction.followup.send(text)


async def setup(bot: ChatBot) -> None:
    await bot.add_cog(Chat(bot))
