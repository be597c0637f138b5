"""Attachments fetched from Discord's CDN, bounded in time, with every way a download can fail
(a stall, a connection cut mid-body, a refused request) turned into one domain error."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import discord

from bot.errors import DownloadFailed
from cogs.utils.text import name_list

log = logging.getLogger(__name__)

# What a download from the CDN can raise: aiohttp's errors (ClientPayloadError for a body cut short,
# ServerDisconnectedError, ...), discord.py's for an HTTP error status, and our deadline.
TRANSPORT_ERRORS = (TimeoutError, aiohttp.ClientError, discord.HTTPException)


async def download(attachment: discord.Attachment, *, timeout_s: float) -> bytes:
    """The attachment's bytes within ``timeout_s`` (aiohttp's own default would be 300 s), or
    DownloadFailed naming the file."""
    return (await download_all([attachment], timeout_s=timeout_s))[0]


async def download_all(attachments: list[discord.Attachment], *, timeout_s: float) -> list[bytes]:
    """All the attachments' bytes, fetched at once, each within ``timeout_s``; DownloadFailed naming
    every file that did not arrive."""
    results = await asyncio.gather(*(_read(a, timeout_s) for a in attachments), return_exceptions=True)
    failed = [(a, r) for a, r in zip(attachments, results, strict=True) if isinstance(r, BaseException)]
    for attachment, error in failed:
        if not isinstance(error, TRANSPORT_ERRORS):
            raise error  # a bug, not the network: let it surface
        log.info("Download of attachment %s failed: %r", attachment.id, error)
    if failed:
        names = [a.filename for a, _ in failed]
        raise DownloadFailed(f"{len(failed)} attachment(s) not downloaded", name_list(names))
    return [r for r in results if isinstance(r, bytes)]


async def _read(attachment: discord.Attachment, timeout_s: float) -> bytes:
    async with asyncio.timeout(timeout_s):
        return await attachment.read()
