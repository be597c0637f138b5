"""Posting a Discord voice message, which discord.py 2.7 has no API for.

A voice message is an ordinary message create (``POST /channels/{id}/messages``, multipart) with the
``IS_VOICE_MESSAGE`` flag (1 << 13), no content, and exactly one attachment: an OGG Opus file
(``files[0]``) whose entry in ``payload_json``'s ``attachments`` carries ``duration_secs`` and a base64
``waveform``; the file part says ``audio/ogg``, because Discord respects those two fields only for an
attachment whose Content-Type begins with ``audio/`` (discord.py declares every file
``application/octet-stream``). It goes through discord.py's own HTTP client:
``handle_message_parameters`` builds the multipart body from a ``discord.File`` that describes itself
with those two fields, and
``HTTPClient.send_message`` sends it on discord.py's ``Route``, with its rate limiting and retries,
once the bot's request budget (cogs/utils/budget.py) grants it a slot like any other message.
"""

from __future__ import annotations

import base64
import io
import logging
from typing import TYPE_CHECKING, Any

import discord
from discord.http import handle_message_parameters

from bot.audio import VoiceAudio
from bot.errors import VoiceMessageRefused
from cogs.utils.budget import Priority
from cogs.utils.routes import create_bucket

if TYPE_CHECKING:
    from bot.app import ChatBot

log = logging.getLogger(__name__)

FILENAME = "voice-message.ogg"
CONTENT_TYPE = "audio/ogg"
CANNOT_SEND_VOICE_MESSAGES = 50173  # "Cannot send voice messages in this channel"
MISSING_PERMISSIONS = 50013


class VoiceMessageFile(discord.File):
    """The OGG Opus file of a voice message; its attachment entry adds the length and waveform."""

    def __init__(self, audio: VoiceAudio) -> None:
        super().__init__(io.BytesIO(audio.ogg), filename=FILENAME)
        self.duration_secs = audio.seconds
        self.waveform = base64.b64encode(audio.waveform).decode("ascii")

    def to_dict(self, index: int) -> dict[str, Any]:
        return {**super().to_dict(index), "duration_secs": self.duration_secs, "waveform": self.waveform}


def may_send_voice_messages(channel: discord.abc.Messageable) -> bool:
    """False where the bot lacks Send Voice Messages (checked first: a refused request counts toward
    Discord's invalid-request limit). DMs allow them."""
    guild = getattr(channel, "guild", None)
    if guild is None or not isinstance(channel, discord.abc.GuildChannel | discord.Thread):
        return True
    return channel.permissions_for(guild.me).send_voice_messages


async def send_voice_message(bot: ChatBot, source: discord.Message, audio: VoiceAudio) -> dict[str, Any]:
    """Post ``audio`` as a voice message replying to ``source``; returns Discord's message object.

    Raises VoiceMessageRefused where the channel takes no voice messages from the bot, and
    discord.HTTPException for any other failure."""
    channel = source.channel
    if not may_send_voice_messages(channel):
        raise VoiceMessageRefused(f"no Send Voice Messages permission in channel {channel.id}")
    params = handle_message_parameters(
        file=VoiceMessageFile(audio),
        flags=discord.MessageFlags(voice=True),
        allowed_mentions=discord.AllowedMentions.none(),
        message_reference=source.to_reference(fail_if_not_exists=False).to_dict(),
        mention_author=False,
    )
    for part in params.multipart:
        if part["name"] == "files[0]":
            part["content_type"] = CONTENT_TYPE
    with params:  # closes the file
        try:
            # First priority, like an answer's first message: it is the rest of an answer already shown.
            return await bot.requests.send(
                Priority.URGENT,
                lambda: bot.http.send_message(channel.id, params=params),
                bucket=create_bucket(channel.id),
            )
        except discord.HTTPException as exc:
            if exc.code in (CANNOT_SEND_VOICE_MESSAGES, MISSING_PERMISSIONS):
                raise VoiceMessageRefused(f"channel {channel.id}: {exc.status} {exc.code} {exc.text}") from exc
            raise
