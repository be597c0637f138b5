"""/chat: a conversation with the bot in a thread of its own. Every message in the bot's own threads
is for the bot (with the Message Content intent; without it, mentions and replies, as elsewhere)."""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.conversation import ChatRequest
from bot.errors import BotError
from cogs.utils.access import Access
from cogs.utils.audio import audio_attachment
from cogs.utils.budget import Priority
from cogs.utils.replies import answer
from cogs.utils.routes import thread_bucket

if TYPE_CHECKING:
    from bot.app import ChatBot
    from cogs.chat import Chat

log = logging.getLogger(__name__)

MAX_THREAD_NAME = 100  # Discord's limit
MAX_OPENING_CHARS = 1_800  # the opening message is quoted in the thread, within 2,000 characters
ARCHIVE_AFTER_MIN = 1_440  # a day without messages; a later message unarchives it
NEEDED = ("view_channel", "create_public_threads", "send_messages_in_threads")
NO_THREADS_HERE = (
    "I can't open a thread here: I need the View Channel, Create Public Threads and Send Messages in "
    "Threads permissions in this channel."
)
COULD_NOT_OPEN = "Discord didn't let me open the thread just now. Please try again in a moment."
YOU_CANT = "You need the Create Public Threads permission in this channel to start a chat."
TEXT_CHANNELS_ONLY = "Use /chat in a server's text channel: I open the thread there."
NOT_ENABLED = "I'm not enabled in this channel."
MENTION_TO_CONTINUE = (
    "Mention me or reply to me there to continue: this bot runs without Discord's Message Content intent, "
    "so it only sees messages addressed to it."
)
_MARKUP = re.compile(r"<(?:@[!&]?|#)\d+>|[`*_~|>]")
_SPACE = re.compile(r"\s+")


def thread_name(message: str | None, bot_name: str) -> str:
    """The message's first words, markup and mentions removed, within Discord's 100 characters."""
    name = _SPACE.sub(" ", _MARKUP.sub("", message or "")).strip()
    if not name:
        return f"Chat with {bot_name}"[:MAX_THREAD_NAME]
    return name if len(name) <= MAX_THREAD_NAME else name[: MAX_THREAD_NAME - 1].rstrip() + "…"


class Threads(commands.Cog):
    """Open a conversation with the bot in its own thread."""

    def __init__(self, bot: ChatBot) -> None:
        self.bot = bot
        self.access = Access(bot, bot.settings.access)

    @property
    def chat_cog(self) -> Chat:
        cog = self.bot.get_cog("Chat")
        assert cog is not None, "cogs.chat is loaded before cogs.threads"
        return cog  # type: ignore[return-value]

    @app_commands.command(name="chat")
    @app_commands.guild_only()
    @app_commands.describe(message="What to ask; the thread is named after it (optional)")
    async def chat(
        self, interaction: discord.Interaction, message: app_commands.Range[str, 1, MAX_OPENING_CHARS] | None = None
    ) -> None:
        """Start a conversation with the bot in a new thread."""
        channel = interaction.channel
        message = (message or "").strip() or None
        # Everything before the deferral is local, so Discord hears back well within its 3 seconds.
        if not isinstance(channel, discord.TextChannel):
            raise BotError("/chat outside a text channel", user_message=TEXT_CHANNELS_ONLY)
        if not interaction.permissions.create_public_threads:
            raise BotError("/chat without Create Public Threads", user_message=YOU_CANT)
        if not all(getattr(interaction.app_permissions, name) for name in NEEDED):
            raise BotError("/chat where the bot can't open threads", user_message=NO_THREADS_HERE)
        if not await self.access.allows_in(interaction.guild, channel, interaction.user):
            raise BotError("/chat outside [access]", user_message=NOT_ENABLED)
        await interaction.response.defer(ephemeral=True, thinking=True)
        await self._respect_slowmode(interaction, channel)
        me = interaction.guild.me if interaction.guild else None
        bot_name = me.display_name if me else "the bot"
        try:
            # Through the request scheduler, like every REST request the bot makes on its own.
            thread = await self.bot.requests.send(
                Priority.URGENT,
                lambda: channel.create_thread(
                    name=thread_name(message, bot_name),
                    # An announcement channel holds announcement threads only.
                    type=discord.ChannelType.news_thread if channel.is_news() else discord.ChannelType.public_thread,
                    auto_archive_duration=ARCHIVE_AFTER_MIN,
                    # The channel's slowmode carries over to the conversation's thread.
                    slowmode_delay=channel.slowmode_delay or None,
                    reason=f"/chat by {interaction.user} ({interaction.user.id})",
                ),
                bucket=thread_bucket(channel.id),
            )
        except discord.Forbidden:
            raise BotError("thread creation forbidden", user_message=NO_THREADS_HERE) from None
        except discord.HTTPException as exc:
            raise BotError(f"thread creation failed: {exc}", user_message=COULD_NOT_OPEN) from exc
        await self.bot.services.threads.remember(thread.id, interaction.user.id)
        hint = "" if self.bot.settings.discord.message_content else f"\n{MENTION_TO_CONTINUE}"
        await interaction.followup.send(f"Let's talk in {thread.mention}.{hint}", ephemeral=True)
        await self._open(interaction, thread, message, bot_name)

    async def _respect_slowmode(self, interaction: discord.Interaction, channel: discord.TextChannel) -> None:
        """Slowmode limits thread creation too (one per interval); moderators are exempt, as on Discord."""
        perms = interaction.permissions
        if not channel.slowmode_delay or perms.manage_messages or perms.manage_channels:
            return
        wait = await self.bot.services.threads.take_slowmode(channel.id, interaction.user.id, channel.slowmode_delay)
        if wait is not None:
            raise BotError(
                "/chat under slowmode",
                user_message=f"This channel has slowmode on: you can start another chat in {wait:.0f} s.",
            )

    async def _open(
        self, interaction: discord.Interaction, thread: discord.Thread, message: str | None, bot_name: str
    ) -> None:
        """The thread's first messages: the question (quoted, so the thread reads on its own) and the
        answer to it; or a greeting when /chat came without a message."""
        user = interaction.user
        try:
            if not message:
                greeting = f"Hi {user.display_name}! What would you like to talk about?"
                await self.bot.requests.post(thread, thread.id, greeting)
                return
            opening = await self.bot.requests.post(thread, thread.id, f"**{user.display_name}** asked:\n{message}")
            assert interaction.guild is not None and interaction.guild_id is not None
            request = ChatRequest(
                conversation_id=thread.id,
                guild_id=interaction.guild_id,
                author_id=user.id,
                author_name=user.display_name,
                message_id=interaction.id,
                text=message,
                bot_name=bot_name,
                guild_name=interaction.guild.name,
                parent_id=thread.parent_id,
                bot_thread=True,
            )
            await answer(self.bot, opening, request)
        except discord.HTTPException as exc:
            log.warning("Could not post in new thread %s: %s", thread.id, exc)

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        """With Message Content: any message in one of the bot's threads is for the bot. Mentions and
        replies there are the chat cog's, as everywhere; without the intent other messages arrive
        empty, so there is nothing to answer."""
        if not self.bot.settings.discord.message_content or not isinstance(message.channel, discord.Thread):
            return
        if audio_attachment(message) is not None:  # cogs/voice.py hears it (Chat.accepts lets it in)
            return
        chat = self.chat_cog
        if chat.is_addressed(message) or not await chat.in_own_thread_with_content(message):
            return
        await chat.respond(message, bot_thread=True)

    @commands.Cog.listener()
    async def on_raw_thread_delete(self, payload: discord.RawThreadDeleteEvent) -> None:
        """Raw: Discord sends THREAD_DELETE for threads discord.py has no longer cached (archived ones)
        too. Whatever the bot kept about the thread goes with it; every thread, not only /chat's: a
        conversation held by mentions in a member's thread can never continue either."""
        try:
            await self.bot.services.chat.forget_thread(payload.guild_id, payload.thread_id)
        except BotError as exc:  # storage down: the marker and the history still expire ([history] ttl_days)
            log.warning("Could not forget deleted thread %s: %s", payload.thread_id, exc)


async def setup(bot: ChatBot) -> None:
    await bot.add_cog(Threads(bot))
