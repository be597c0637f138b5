"""Splitting an answer into Discord messages: at most 2,000 characters each, cut at paragraph or line
breaks, and never leaving a code block open across messages (the fence is closed and re-opened, with
its language tag, in the next message)."""

from __future__ import annotations

DISCORD_MESSAGE_LIMIT = 2_000
_FENCE = "```"
_CLOSE = "\n" + _FENCE


def open_fence(text: str) -> str | None:
    """The language tag of the code block still open at the end of ``text`` ('' for none), or None."""
    language: str | None = None
    for line in text.split("\n"):
        stripped = line.strip()
        if not stripped.startswith(_FENCE):
            continue
        if language is None:
            language = stripped[len(_FENCE) :].strip()
            # "```py x = 1```" on one line opens and closes: not open afterwards.
            if language.endswith(_FENCE):
                language = None
        else:
            language = None
    return language


def close_open_fence(text: str) -> str:
    """``text`` with an unterminated code block closed, so a note appended after it renders as text."""
    return text + _CLOSE if open_fence(text) is not None else text


def _cut_point(text: str, limit: int) -> int:
    """Where to end a message of at most ``limit`` characters: the last paragraph break, else line
    break, else space, in the second half of the window; a hard cut as the last resort."""
    floor = limit // 2
    for separator in ("\n\n", "\n", " "):
        at = text.rfind(separator, floor, limit)
        if at != -1:
            return at + len(separator)
    return limit


def split_message(text: str, limit: int = DISCORD_MESSAGE_LIMIT) -> list[str]:
    pieces: list[str] = []
    rest = text
    while len(rest) > limit:
        cut = _cut_point(rest, limit - len(_CLOSE))
        piece, rest = rest[:cut].rstrip(), rest[cut:]
        language = open_fence(piece)
        if language is not None:
            pieces.append(piece + _CLOSE)
            rest = f"{_FENCE}{language}\n{rest}"
        else:
            pieces.append(piece)
            rest = rest.lstrip("\n")
    if rest.strip():
        pieces.append(rest)
    return pieces
