"""Image attachments for the chat cog: which ones to take (the message's, and the replied-to message's
when Discord provides them), checked against ``[images]`` before any download, then downloaded (bounded,
by cogs.utils.downloads) and prepared by the engine (bot.images)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import discord

from bot.images import ImageInput, PreparedImage, Skipped, is_image_name, is_supported, prepare_all
from bot.settings import ImageSettings
from cogs.utils.downloads import download_all
from cogs.utils.text import name_list

log = logging.getLogger(__name__)

ONLY_MENTIONED = "*(I can only see images posted with my mention, so I couldn't see the message you replied to.)*"


@dataclass
class Selection:
    """A message's images to download, the ones left out already, and the attachments that are not images."""

    wanted: list[discord.Attachment] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    others: list[discord.Attachment] = field(default_factory=list)  # text files and the rest
    blind_reply: bool = False  # the replied-to message came without its content (see ONLY_MENTIONED)


def is_image(attachment: discord.Attachment) -> bool:
    return is_image_name(attachment.filename, attachment.content_type)


def replied_to(message: discord.Message) -> discord.Message | None:
    """The message this one replies to, when Discord sent it along (it is not fetched)."""
    reference = message.reference
    resolved = reference.resolved if reference is not None else None
    return resolved if isinstance(resolved, discord.Message) else None


def content_withheld(message: discord.Message, bot: discord.Client) -> bool:
    """Did Discord blank this message for lack of the Message Content intent? It does so for messages
    in servers that do not mention the bot and are not its own. A message cannot be empty, so one with no
    content, attachments, embeds or stickers was blanked."""
    if bot.intents.message_content or message.guild is None or message.author == bot.user:
        return False
    return not (message.content or message.attachments or message.embeds or message.stickers)


def select(message: discord.Message, bot: discord.Client, settings: ImageSettings) -> Selection:
    """Sort the message's attachments, then the replied-to message's images, in order. Sizes are
    checked from what Discord reports: nothing is downloaded here."""
    found = Selection()
    candidates: list[discord.Attachment] = []
    for attachment in message.attachments:
        (candidates if is_image(attachment) else found.others).append(attachment)
    original = replied_to(message)
    if original is not None:
        found.blind_reply = content_withheld(original, bot)
        candidates.extend(a for a in original.attachments if is_image(a))
    for attachment in candidates:
        name = attachment.filename
        if not is_supported(name, attachment.content_type):
            found.skipped.append(Skipped(name, "not a format I can read (PNG, JPEG, WebP or GIF)"))
        elif attachment.size > settings.max_bytes:
            found.skipped.append(Skipped(name, f"over {_megabytes(settings.max_bytes)}"))
        elif len(found.wanted) >= settings.max_per_message:
            found.skipped.append(Skipped(name, f"more than {settings.max_per_message} images"))
        else:
            found.wanted.append(attachment)
    return found


async def fetch(
    selection: Selection, settings: ImageSettings, *, timeout_s: float
) -> tuple[list[PreparedImage], list[Skipped]]:
    """Download the selected images (DownloadFailed if one does not arrive) and prepare them; returns
    them in order with everything left out."""
    data = await download_all(selection.wanted, timeout_s=timeout_s)
    inputs: list[ImageInput] = []
    skipped = list(selection.skipped)
    for attachment, content in zip(selection.wanted, data, strict=True):
        if len(content) > settings.max_bytes:  # the CDN sent more than Discord said
            log.info("Image attachment %s is %d bytes, more than Discord reported", attachment.id, len(content))
            skipped.append(Skipped(attachment.filename, f"over {_megabytes(settings.max_bytes)}"))
        else:
            inputs.append(ImageInput(attachment.filename, content))
    prepared, unreadable = await prepare_all(inputs, settings)
    return prepared, skipped + unreadable


def skipped_note(skipped: list[Skipped]) -> str | None:
    """One short note naming the images left out, grouped by why (see name_list: a few names shown,
    shortened and Markdown-escaped, so the note stays short whatever was attached)."""
    if not skipped:
        return None
    by_reason: dict[str, list[str]] = {}
    for item in skipped:
        by_reason.setdefault(item.reason, []).append(item.name)
    return f"*(I skipped {'; '.join(f'{name_list(names)}: {reason}' for reason, names in by_reason.items())}.)*"


def _megabytes(size: int) -> str:
    return f"{math.ceil(size / 104_857.6) / 10:g} MB"
