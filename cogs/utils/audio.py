"""Which attachment of a message is audio: shared by the chat cog (which leaves such messages alone)
and the voice cog (which transcribes them)."""

from __future__ import annotations

import discord

from bot.transcription import looks_like_audio


def audio_attachment(message: discord.Message) -> discord.Attachment | None:
    """The message's first voice message or audio attachment (a voice message is its only one), or None."""
    for attachment in message.attachments:
        if attachment.is_voice_message() or looks_like_audio(attachment.filename, attachment.content_type):
            return attachment
    return None
