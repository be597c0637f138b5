"""Texts the bot writes itself, kept within what Discord accepts: a message is at most 2,000
characters (Discord answers 400 to a longer one, and the user would get nothing)."""

from __future__ import annotations

from collections.abc import Sequence

import discord

from bot.splitting import DISCORD_MESSAGE_LIMIT

ELLIPSIS = "…"
NAME_CHARS = 40  # a file name in a note; Discord allows far longer ones
NAMES_SHOWN = 3


def shorten(text: str, limit: int) -> str:
    """``text``, cut to at most ``limit`` characters with an ellipsis when it is longer."""
    return text if len(text) <= limit else text[: max(0, limit - len(ELLIPSIS))] + ELLIPSIS


def bounded(text: str) -> str:
    """A text for one message: cut (with an ellipsis) to Discord's 2,000 characters."""
    return shorten(text, DISCORD_MESSAGE_LIMIT)


def name_list(names: Sequence[str], *, shown: int = NAMES_SHOWN) -> str:
    """``a.png, b.png and c.png`` / ``a.png, b.png, c.png and 7 more``: each name shortened and its
    Markdown escaped, so a note stays short and renders as written whatever the names are."""
    quoted = [discord.utils.escape_markdown(shorten(name, NAME_CHARS)) for name in names[:shown]]
    rest = len(names) - len(quoted)
    if rest:
        return f"{', '.join(quoted)} and {rest} more"
    if len(quoted) > 1:
        return f"{', '.join(quoted[:-1])} and {quoted[-1]}"
    return "".join(quoted)
