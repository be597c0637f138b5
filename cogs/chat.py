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
from bot.errors import BotError, DownloadFailed
from bot.images import PreparedImage, Skipped
from cogs.utils.access import Access
from cogs.utils.audio import audio_attachment
from cogs.utils.checks import require
from cogs.utils.downloads import download_all
from cogs.utils.images import ONLY_MENTIONED, fetch, select, skipped_note
from cogs.utils.replies import answer
from cogs.utils.scope import parent_id
from cogs.utils.text import bounded, name_list

if TYPE_CHECKING:
    from bot.app import ChatBot

log = logging.getLogger(__name__)

DM_REFUSED = "Sorry, I don't answer direct messages from here. Talk to me in a server we share."
EMPTY_MENTION_HINT = "Hi! Mention me with a question or a request, e.g. *@me what's a good name for a cat?*"
CHAT_MESSAGE_TYPES = (discord.MessageType.default, discord.MessageType.reply)
_USER_MENTION = re.compile(r"<@!?(\d+)>")
_ROLE_MENTION = re.compile(r"<@&(\d+)>")
_CHANNEL_MENTION = re.compile(r"<#(\d+)>")
# Text attachments the model reads along with the message; anything larger or binary is ignored.
TEXT_FILE_MAX_BYTES = 64 * 1024
TEXT_FILE_SUFFIXES = (".txt", ".md", ".py", ".js", ".ts", ".json", ".toml", ".yaml", ".yml", ".csv", ".log")


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


def is_text_file(attachment: discord.Attachment) -> bool:
    content_type = (attachment.content_type or "").split(";")[0]
    return content_type.startswith("text/") or attachment.filename.lower().endswith(TEXT_FILE_SUFFIXES)


async def read_text_files(attachments: list[discord.Attachment], *, timeout_s: float) -> tuple[list[str], list[str]]:
    """(the text files' contents, each headed by its name; the names of attachments left out).
    The files are downloaded at once, each within ``timeout_s``; DownloadFailed if any did not arrive."""
    wanted = [a for a in attachments if is_text_file(a) and a.size <= TEXT_FILE_MAX_BYTES]
    ignored = [a.filename for a in attachments if a not in wanted]
    texts: list[str] = []
    for attachment, data in zip(wanted, await download_all(wanted, timeout_s=timeout_s), strict=True):
        try:
            if len(data) > TEXT_FILE_MAX_BYTES:  # the CDN sent more than Discord said
                raise ValueError(f"{len(data)} bytes")
            content = data.decode("utf-8")
        except ValueError:  # UnicodeDecodeError included: not text after all
            ignored.append(attachment.filename)
            continue
        texts.append(f"[file {attachment.filename}]\n{content.strip()}")
    return texts, ignored


class Chat(commands.Cog):
    """Talk to the model by mentioning the bot, replying to it, or sending it a DM."""

    def __init__(self, bot: ChatBot) -> None:
        self.bot = bot
        self.access = Access(bot, bot.settings.access)

    async def accepts(self, message: discord.Message) -> bool:
        """Is this message for the bot, and may it answer here? With Message Content, every message
        in the bot's own /chat threads is (voice messages too)."""
        if not self.is_addressed(message) and not await self.in_own_thread_with_content(message):
            return False
        return await self.access.allows(message)

    async def in_own_thread_with_content(self, message: discord.Message) -> bool:
        """An unaddressed message the bot may still read and answer: one of its threads, with the intent."""
        if not self.bot.settings.discord.message_content or message.author.bot:
            return False
        return message.type in CHAT_MESSAGE_TYPES and await self.in_bot_thread(message)

    def is_addressed(self, message: discord.Message) -> bool:
        me = self.bot.user
        if me is None or message.author.bot or message.type not in CHAT_MESSAGE_TYPES:
            return False
        if message.guild is None:
            return True
        # Not mentioned_in(): that is also true for @everyone, which must not wake the bot.
        return any(user.id == me.id for user in message.mentions)

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        # Voice messages and audio files belong to cogs/voice.py, which answers them once transcribed.
        if audio_attachment(message) is not None or not self.is_addressed(message):
            return
        await self.respond(message, bot_thread=await self.in_bot_thread(message))

    async def in_bot_thread(self, message: discord.Message) -> bool:
        """Is this message in a thread the bot opened with /chat? (Redis knows, across restarts and
        processes; only threads the bot owns are looked up.)"""
        channel, me = message.channel, self.bot.user
        if not isinstance(channel, discord.Thread) or me is None or channel.owner_id != me.id:
            return False
        try:
            return await self.bot.services.threads.is_ours(channel.id)
        except BotError as exc:  # storage down: the turn itself will say so
            log.warning("Could not look up thread %s: %s", channel.id, exc)
            return False

    async def respond(self, message: discord.Message, *, bot_thread: bool = False) -> None:
        """Answer a message that is for the bot: a mention, a reply, a DM, or (``bot_thread``) any
        message in one of its own /chat threads."""
        try:
            await self.handle(message, bot_thread=bot_thread)
        except discord.HTTPException as exc:
            # E.g. no permission to send here: there is no one to tell, and nothing was stored (a turn
            # writes its history only once its answer has streamed out).
            log.warning("Could not answer in channel %s: %s", message.channel.id, exc)

    async def handle(self, message: discord.Message, *, bot_thread: bool = False) -> None:
        """Answer an addressed message exactly once: a turn, or one reply that starts none. In the
        bot's own threads a message with nothing to read gets no hint: it may not be for the bot."""
        if not await self.access.allows(message):
            if message.guild is None:  # a DM deserves to know why; in servers the bot simply stays out
                await self.reply_once(message, DM_REFUSED)
            return
        assert self.bot.user is not None
        settings = self.bot.settings
        # Images, unless off or no model on offer reads them (then they are ignored like other files).
        # The turn knows which model answers: a text-only one sees none and the answer says so.
        sees_images = settings.images.enabled and any(m.settings.images for m in self.bot.services.chat.registry)
        selection = select(message, self.bot, settings.images) if sees_images else None
        others = selection.others if selection else message.attachments
        claimed = False
        files: list[str] = []
        ignored: list[str] = []
        images: list[PreparedImage] = []
        skipped: list[Skipped] = []
        if message.attachments or (selection and selection.wanted):
            # Claimed before the downloads: a replayed event does not fetch them again.
            if not await self.claim(message):
                return
            claimed = True
            timeout_s = settings.discord.download_timeout_s
            try:
                files, ignored = await read_text_files(others, timeout_s=timeout_s)
                if selection:
                    images, skipped = await fetch(selection, settings.images, timeout_s=timeout_s)
            except DownloadFailed as exc:  # nothing asked, nothing stored: the user may simply send it again
                log.info("Message %s not answered: %s", message.id, exc)
                await self.bot.requests.reply(message, exc.user_message)
                return
        text = "\n\n".join(part for part in (readable_text(message, self.bot.user.id), *files) if part)
        notes = [
            f"*(I can only read text, so I ignored {name_list(ignored)}.)*" if ignored else None,
            skipped_note(skipped),
            ONLY_MENTIONED if selection and selection.blind_reply else None,
        ]
        note = "\n".join(n for n in notes if n) or None
        if text or images:
            request = self.chat_request(message, text, claim=not claimed, bot_thread=bot_thread, images=tuple(images))
            await answer(self.bot, message, request, note=note)
        elif note or not bot_thread:
            await self.reply_once(message, note or EMPTY_MENTION_HINT, claimed=claimed)

    async def claim(self, message: discord.Message) -> bool:
        """Claim the message through the turn's duplicate guard: False when it is already answered (or
        being answered elsewhere). When storage is down the user hears so, and it counts as answered."""
        try:
            await self.bot.services.limits.claim(message.id)
        except BotError as exc:
            if exc.silent:
                log.debug("Message %s skipped: %s", message.id, exc)
            else:
                log.warning("Could not claim message %s: %s", message.id, exc)
                await self.bot.requests.reply(message, exc.user_message)
            return False
        return True

    async def reply_once(self, message: discord.Message, text: str, *, claimed: bool = False) -> None:
        """A reply that starts no turn (a hint, a note, a refusal), claimed first like a turn, so a
        replayed event or a second process never answers it twice."""
        if claimed or await self.claim(message):
            await self.bot.requests.reply(message, bounded(text))

    def chat_request(
        self,
        message: discord.Message,
        text: str,
        *,
        claim: bool = True,
        bot_thread: bool = False,
        images: tuple[PreparedImage, ...] = (),
    ) -> ChatRequest:
        me = message.guild.me if message.guild else self.bot.user
        assert me is not None
        return ChatRequest(
            conversation_id=message.channel.id,
            guild_id=message.guild.id if message.guild else None,
            author_id=message.author.id,
            author_name=message.author.display_name,
            message_id=message.id,
            text=text,
            bot_name=me.display_name,
            guild_name=message.guild.name if message.guild else None,
            parent_id=parent_id(message.channel),
            claim=claim,
            bot_thread=bot_thread,
            images=images,
        )

    async def _started_by(self, channel: object, user_id: int) -> bool:
        """Is this a thread the user started, themselves or with /chat (then the bot owns it)?"""
        if not isinstance(channel, discord.Thread):
            return False
        if channel.owner_id == user_id:
            return True
        me = self.bot.user
        if me is None or channel.owner_id != me.id:
            return False
        return await self.bot.services.threads.opened_by(channel.id) == user_id

    @app_commands.command(name="forget")
    async def forget(self, interaction: discord.Interaction) -> None:
        """Clear this conversation's history (channel, thread or DM)."""
        channel = interaction.channel
        if interaction.guild_id is not None and not await self._started_by(channel, interaction.user.id):
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
