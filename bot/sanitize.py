"""Text from Discord made safe for the rest of the engine.

The gateway's JSON may carry what no client should send but nothing stops: an unpaired surrogate
(``"a\\udc00b"`` is valid JSON, and the openai SDK dies encoding it as UTF-8), a NUL, other control
characters. A message is cleaned once, where it enters the engine (``ChatService.turn``), so every
later step (tokenising, the model request, the stored history) sees plain, encodable text.
"""

from __future__ import annotations

import re

REPLACEMENT = "\ufffd"
# Lone surrogates (a str from json.loads pairs valid ones into one code point), and C0 controls and
# DEL except tab, newline and carriage return.
_SURROGATES = re.compile("[\ud800-\udfff]")
_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_text(text: str) -> str:
    """``text`` with unpaired surrogates replaced by U+FFFD and control characters (but tab and line
    breaks) removed."""
    if text.isascii():
        return _CONTROLS.sub("", text)
    return _CONTROLS.sub("", _SURROGATES.sub(REPLACEMENT, text))
