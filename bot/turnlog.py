"""The one log line per chat turn: which conversation, how it ended, tokens and timings.

Message text appears only when the ``bot.turns`` logger is at DEBUG (``LOG_LEVEL=DEBUG``): at INFO an
operator sees load and latency without reading anyone's conversation.
"""

from __future__ import annotations

import logging
from typing import Any

from bot.metrics import TokenUsage

log = logging.getLogger("bot.turns")

PREVIEW_CHARS = 200


def format_turn(
    *,
    conversation_id: int,
    outcome: str,
    seconds: float,
    usage: TokenUsage | None = None,
    first_token_s: float | None = None,
    guild_id: int | None = None,
    error: str | None = None,
    question: str | None = None,
    answer: str | None = None,
) -> str:
    """``turn conversation=… guild=… outcome=ok in=… out=… first_token=0.41s total=2.30s`` and, when
    given, ``error=…`` and the quoted texts (pass them only when content may be logged)."""
    parts = [f"turn conversation={conversation_id}", f"guild={guild_id if guild_id is not None else 'dm'}"]
    parts.append(f"outcome={outcome}")
    if usage is not None:
        parts.append(f"in={usage.prompt_tokens} out={usage.completion_tokens}")
    if first_token_s is not None:
        parts.append(f"first_token={first_token_s:.2f}s")
    parts.append(f"total={seconds:.2f}s")
    if error:
        parts.append(f"error={error}")
    for name, text in (("question", question), ("answer", answer)):
        if text is not None:
            parts.append(f"{name}={_preview(text)!r}")
    return " ".join(parts)


def log_turn(**fields: Any) -> None:
    """Log the turn's line (``format_turn``'s arguments) at INFO; the question and answer are dropped
    unless DEBUG is enabled."""
    if not log.isEnabledFor(logging.INFO):
        return
    if not log.isEnabledFor(logging.DEBUG):
        fields = {**fields, "question": None, "answer": None}
    log.info("%s", format_turn(**fields))


def _preview(text: str) -> str:
    """One line, bounded: a long answer must not turn the log into a transcript."""
    flat = " ".join(text.split())
    return flat if len(flat) <= PREVIEW_CHARS else f"{flat[: PREVIEW_CHARS - 1]}…"
