"""The bot's domain errors: one small hierarchy, each carrying the sentence the user sees.

Services raise these; cogs turn them into a single short reply. The detail for the log goes in the
exception's arguments and its ``__cause__``, never in ``user_message``.
"""

from __future__ import annotations


class BotError(Exception):
    """Base class: something went wrong that the user should hear about in one sentence."""

    user_message = "Something went wrong on my side. Please try again in a moment."

    def __init__(self, detail: str = "", *, user_message: str | None = None) -> None:
        super().__init__(detail or self.user_message)
        if user_message is not None:
            self.user_message = user_message


class ConfigError(BotError):
    """The configuration is invalid; raised at start-up with the key path and what is expected."""


class StorageUnavailable(BotError):
    user_message = "I can't reach my storage right now, so I can't answer. Please try again shortly."


class MessageTooLong(BotError):
    """The user's message alone does not fit the model's prompt budget."""

    def __init__(self, tokens: int, budget: int) -> None:
        super().__init__(
            f"message of {tokens} tokens exceeds the prompt budget of {budget}",
            user_message=(
                f"Your message is too long for me: it is {tokens:,} tokens and I can take at most "
                f"{budget:,}. Please shorten it or split it up."
            ),
        )
        self.tokens = tokens
        self.budget = budget


class ModelError(BotError):
    """Base for failures of the model server."""

    user_message = "The model server had a problem answering. Please try again in a moment."


class ModelAuthError(ModelError):
    user_message = "The model server rejected my API key. A server admin needs to check the bot's key."


class ModelRateLimited(ModelError):
    def __init__(self, detail: str = "", retry_after: float | None = None) -> None:
        wait = f" Please try again in about {max(1, round(retry_after))} s." if retry_after else ""
        super().__init__(
            detail, user_message=f"The model is rate-limited right now.{wait or ' Please try again soon.'}"
        )
        self.retry_after = retry_after


class ModelQuotaExceeded(ModelError):
    user_message = "The bot's model account is out of quota. A server admin needs to check its billing."


class ModelTimeout(ModelError):
    user_message = "The model took too long to answer. Please try again."


class ModelUnavailable(ModelError):
    user_message = "I can't reach the model server right now. Please try again shortly."


class ModelRejected(ModelError):
    user_message = "The model server refused this request. A server admin may need to check the bot's model settings."


class StreamInterrupted(ModelError):
    """The answer stopped part-way: no finish reason, a malformed chunk or a dropped connection."""

    user_message = "The model's answer was interrupted. Please try again."
