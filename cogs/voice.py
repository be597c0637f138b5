"""Voice messages: send the bot a voice message (or an audio file) where you would type to it, and it
shows what it heard, then answers; right-click any message > Apps > Transcribe to read its audio."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.conversation import ChatRequest
from bot.errors import AudioUnavailable, BotError, DownloadFailed, NotAudio
from bot.hearing import hear
from bot.splitting import DISCORD_MESSAGE_LIMIT, split_message
from bot.transcription import AudioFile, Transcription
from cogs.chat import Chat, readable_text
from cogs.utils.audio import audio_attachment
from cogs.utils.downloads import download
from cogs.utils.replies import answer
from cogs.utils.scope import parent_id
from cogs.utils.spoken_reply import spoken_reply_for

if TYPE_CHECKING:
    from bot.app import ChatBot

log = logging.getLogger(__name__)

VOICE_OFF = "I can't listen to voice messages here. Please type your message instead."
QUOTE = "> "


def quoted(text: str) -> list[str]:
    """``text`` as a Markdown quote, in as many messages as it needs (every line of each one quoted)."""
    lines = "\n".join(QUOTE + line for line in text.split("\n"))
    pieces = split_message(lines, DISCORD_MESSAGE_LIMIT - len(QUOTE))
    # A piece cut inside a long line starts mid-line: quote its first line too.
    return [piece if piece.startswith(QUOTE) else QUOTE + piece for piece in pieces]


class Voice(commands.Cog):
    """Voice messages and audio files, transcribed through the audio API."""

    def __init__(self, bot: ChatBot) -> None:
        self.bot = bot
        # Cogs cannot hold context menus as decorated methods: discord.py's documented way is to build
        # one and add it to the tree.
        self.menu = app_commands.ContextMenu(name="Transcribe", callback=self.transcribe_menu)

    async def cog_load(self) -> None:
        if self.bot.settings.voice.enabled:
            self.bot.tree.add_command(self.menu)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)

    async def accepts(self, message: discord.Message) -> bool:
        """The chat cog's rules (DMs, a mention, a reply with the ping; the [access] lists): a voice
        message is a chat turn, so it is answered where typed text is, and nowhere when chat is not loaded."""
        chat = self.bot.get_cog("Chat")
        return isinstance(chat, Chat) and await chat.accepts(message)

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        attachment = audio_attachment(message)
        if attachment is None or not await self.accepts(message):
            return
        try:
            await self.hear_and_answer(message, attachment)
        except discord.HTTPException as exc:
            # E.g. no permission to send here: there is no way left to tell the user, and nothing was
            # stored (a turn writes history only once its answer is out).
            log.warning("Could not answer a voice message in channel %s: %s", message.channel.id, exc)

    async def hear_and_answer(self, message: discord.Message, attachment: discord.Attachment) -> None:
        """Transcribe, show the transcript, then answer it as a chat turn; refusals get one sentence."""
        assert self.bot.user is not None
        try:
            # Claimed and checked (rate limit, budgets) before the slow, paid part: a replayed event or a
            # second process is dropped here instead of transcribing again (the turn skips its claim).
            services = self.bot.services
            guild_id = message.guild.id if message.guild else None
            await services.limits.admit(
                services.usage,
                message_id=message.id,
                guild_id=guild_id,
                user_id=message.author.id,
                now=services.chat.clock(),
            )
            if not self.bot.settings.voice.enabled:
                await self.bot.requests.reply(message, VOICE_OFF)
                return
            audio = self.accept(attachment)
            async with self.bot.requests.typing(message.channel, message.channel.id):
                heard = await self.transcribe(
                    attachment, audio, message.guild.id if message.guild else None, message.author.id
                )
        except BotError as exc:
            if exc.silent:
                log.debug("Voice message %s skipped: %s", message.id, exc)
                return
            log.info("Voice message %s not transcribed: %s", message.id, exc, exc_info=exc.__cause__ is not None)
            await self.bot.requests.reply(message, exc.user_message)
            return
        # Through the request budget, like every message the bot sends on its own (cogs/utils/budget.py).
        for index, piece in enumerate(quoted(heard.text)):
            if index == 0:
                await self.bot.requests.reply(message, piece)
            else:
                await self.bot.requests.post(message.channel, message.channel.id, piece)
        # An audio file may come with typed words ("what's this song about?"): they go first.
        typed = readable_text(message, self.bot.user.id)
        text = f"{typed}\n\n{heard.text}" if typed else heard.text
        # Spoken to, the bot may answer aloud too ([voice] reply, and the user's /spoken-replies).
        speak = await spoken_reply_for(self.bot, message)
        await answer(self.bot, message, self.chat_request(message, text), speak=speak)

    def chat_request(self, message: discord.Message, text: str) -> ChatRequest:
        """The turn for a transcribed message: as the chat cog builds it, marked as spoken."""
        assert self.bot.user is not None
        guild = message.guild
        return ChatRequest(
            conversation_id=message.channel.id,
            guild_id=guild.id if guild else None,
            author_id=message.author.id,
            author_name=message.author.display_name,
            message_id=message.id,
            text=text,
            bot_name=guild.me.display_name if guild else self.bot.user.display_name,
            guild_name=guild.name if guild else None,
            parent_id=parent_id(message.channel),
            spoken=True,
            claim=False,  # claimed before transcribing
        )

    async def transcribe_menu(self, interaction: discord.Interaction[ChatBot], message: discord.Message) -> None:
        """Show the transcript of a message's voice message or audio file. Errors reach the tree's
        handler, which answers with one short ephemeral sentence."""
        attachment = audio_attachment(message)
        if attachment is None:
            raise NotAudio(f"message {message.id} has no audio")
        audio = self.accept(attachment)  # limits are checked before acknowledging: refusals are instant
        # Ephemeral, like Discord's own Transcribe: the person who asked wants to read it; repeating the
        # message in the channel would be noise for everyone else (who can listen or ask themselves).
        # Deferred first: a transcription can take longer than the 3 s Discord allows for an answer.
        await interaction.response.defer(ephemeral=True, thinking=True)
        heard = await self.transcribe(attachment, audio, interaction.guild_id, interaction.user.id)
        for piece in quoted(heard.text):
            await interaction.followup.send(piece, ephemeral=True)

    def accept(self, attachment: discord.Attachment) -> AudioFile:
        """Apply the limits to what Discord says about the file (its size, and a voice message's
        length), so nothing too big or too long is downloaded."""
        return self.bot.services.transcriber.check(
            attachment.filename, attachment.content_type, size=attachment.size, seconds=attachment.duration
        )

    async def transcribe(
        self, attachment: discord.Attachment, audio: AudioFile, guild_id: int | None, user_id: int
    ) -> Transcription:
        """Download the attachment and hear it (``bot.hearing``, which records its audio seconds for the
        guild and the user)."""
        try:
            data = await download(attachment, timeout_s=self.bot.settings.discord.download_timeout_s)
        except DownloadFailed as exc:
            raise AudioUnavailable(f"attachment {attachment.id}: {exc}") from exc
        return await hear(
            self.bot.services, data, audio, guild_id=guild_id, user_id=user_id, seconds=attachment.duration
        )


async def setup(bot: ChatBot) -> None:
    await bot.add_cog(Voice(bot))
