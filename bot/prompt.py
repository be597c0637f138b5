"""The prompt of one turn: the system prompt, the newest stored turns that fit the model's window, and
the new message, with the images still kept sent as image parts and counted by their estimate."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.errors import MessageTooLong
from bot.history import Turn, Window
from bot.settings import ModelSettings
from bot.summary import Summary
from bot.tokens import REPLY_PRIMING_TOKENS, TokenCounter, fit_newest


@dataclass(frozen=True, slots=True)
class Prompt:
    messages: list[dict[str, Any]]
    tokens: int
    shown_from: int  # the index of the oldest stored turn in it (len(window.turns) when none)


def build_prompt(
    *,
    settings: ModelSettings,
    counter: TokenCounter,
    margin: int,
    system_prompt: str,
    window: Window,
    user_turn: Turn,
    images: Mapping[str, str],
    detail: str,
    summary: Summary | None = None,
    first: int = 0,
) -> Prompt:
    """The messages and their token count. Only the new message (and the system prompt) are tokenised
    here: stored turns carry their counts (taken with the encoding of the model that answered then; the
    margin absorbs the difference after a change of model), an image its estimate, the summary its own.
    ``images`` (id -> data URL) are those the model may see: a turn's other images are named by their
    placeholder. The summary follows the system prompt; the turns it covers (before ``first``) are not
    sent again."""
    system = [{"role": "system", "content": system_prompt}]
    system_tokens = counter.message(system_prompt)
    budget = settings.context_window - settings.max_reply_tokens - margin - REPLY_PRIMING_TOKENS - system_tokens
    if summary is not None and summary.tokens <= budget // 2:  # else (a smaller model now) it is left out
        system.append(summary.to_message())
        budget -= summary.tokens
    user_tokens = user_turn.tokens + user_turn.image_tokens(images)
    if user_tokens > budget:
        raise MessageTooLong(user_tokens, budget)
    counts = window.tokens
    if images and window.image_turns:  # stored turns whose images are still kept cost those too
        counts = list(counts)
        for index in window.image_turns:
            counts[index] += window.turns[index].image_tokens(images)
    kept = fit_newest(counts[first:], budget - user_tokens)
    start = len(window.messages) - kept
    history = list(window.messages[start:])
    if images:
        for index in window.image_turns:
            if index >= start:
                history[index - start] = window.turns[index].to_message(images, detail)
    tokens = system_tokens + (summary.tokens if len(system) > 1 and summary else 0)
    tokens += sum(counts[start:]) + user_tokens + REPLY_PRIMING_TOKENS
    return Prompt([*system, *history, user_turn.to_message(images, detail)], tokens, start)
