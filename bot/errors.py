"""The bot's domain errors: one small hierarchy, each carrying the sentence the user sees.

Services raise these; cogs turn them into a single short reply. The detail for the log goes in the
exception's arguments and its ``__cause__``, never in ``user_message``.
"""

from __future__ import annotations

import math


class BotError(Exception):
    """Base class: something went wrong that the user should hear about in one sentence."""

    user_message = "Something went wrong on my side. Please try again in a moment."
    silent = False  # True: the user is not told (e.g. a duplicate event, a notice already given)

    def __init__(self, detail: str = "", *, user_message: str | None = None) -> None:
        super().__init__(detail or self.user_message)
        if user_message is not None:
            self.user_message = user_message


class ConfigError(BotError):
    """The configuration is invalid; raised at start-up with the key path and what is expected."""


class StartupError(BotError):
    """Start-up cannot go on (Discord refused a request, or ``sync`` could not reach it): one line for
    the operator, exit code 1."""


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


class DuplicateMessage(BotError):
    """This Discord message is already handled (a replayed event, or another process got it)."""

    silent = True


class TooManyTurns(BotError):
    """The user's per-window turn limit is reached. Told once per window, then refused silently."""

    def __init__(self, retry_after_s: float, *, notify: bool) -> None:
        super().__init__(
            f"rate limited for {retry_after_s:.1f} s",
            user_message=f"You're sending messages faster than I can answer. Please wait {_duration(retry_after_s)}.",
        )
        self.retry_after_s = retry_after_s
        self.silent = not notify


class BudgetExceeded(BotError):
    """A daily token budget is spent; ``resets_at`` is the next UTC midnight (unix seconds)."""

    def __init__(self, whose: str, resets_at: int) -> None:
        super().__init__(
            f"{whose} daily token budget spent",
            user_message=f"{whose.capitalize()} daily budget for the model is used up. It resets <t:{resets_at}:R>.",
        )
        self.whose = whose
        self.resets_at = resets_at


def _duration(seconds: float) -> str:
    seconds = max(1, round(seconds))
    if seconds < 90:
        return f"{seconds} s"
    return f"{round(seconds / 60)} min"


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


class DownloadFailed(BotError):
    """Discord's CDN did not deliver attachments (the download timed out, broke off or was refused)."""

    def __init__(self, detail: str, names: str) -> None:
        super().__init__(detail, user_message=f"I couldn't download {names} from Discord. Please try again.")


class ImagesNotRead(BotError):
    """Only images, for a model that reads text only: nothing to ask it."""

    def __init__(self, names: tuple[str, ...]) -> None:
        # A few names, each cut short: the sentence must stay one short Discord message.
        cut = [name if len(name) <= 40 else name[:39] + "…" for name in names[:3]]
        shown = ", ".join(cut) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        super().__init__(
            f"{len(names)} image(s) for a text-only model", user_message=f"I can only read text, so I ignored {shown}."
        )


class AudioError(BotError):
    """Base for audio the bot will not (or cannot) transcribe; nothing is stored and no model is asked."""


class NotAudio(AudioError):
    user_message = "I can only transcribe voice messages and audio files (mp3, mp4, m4a, ogg, wav, webm, flac)."


class AudioEmpty(AudioError):
    user_message = "That audio file is empty."


class AudioTooLarge(AudioError):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"audio of {size} bytes exceeds the limit of {limit}",
            user_message=f"That audio is too big for me ({_size(size)}); I can take at most {_size(limit)}.",
        )


class AudioTooLong(AudioError):
    def __init__(self, seconds: float, limit: float) -> None:
        super().__init__(
            f"audio of {seconds:.1f} s exceeds the limit of {limit:.0f} s",
            user_message=f"That recording is too long for me ({_clock(seconds)}); I can take at most {_clock(limit)}.",
        )


class AudioRejected(AudioError):
    """The transcription server could not read the audio (it answered 400)."""

    user_message = "I couldn't read that audio: the file may be damaged or in a format I can't transcribe."


class AudioUnavailable(AudioError):
    """Discord did not deliver the attachment's bytes."""

    user_message = "I couldn't download that audio from Discord. Please try again."


class NothingHeard(AudioError):
    user_message = "I couldn't hear anything in that voice message."


class SpeechError(BotError):
    """A reply could not be spoken. The text answer stands; ``user_message`` becomes a short note
    under it (none when ``silent``)."""

    user_message = "I couldn't read this answer out."


class SpeechFailed(SpeechError):
    """The speech server failed, timed out or could not be reached."""


class AudioUnplayable(SpeechError):
    """The speech server's answer is not audio that can be played (garbage, empty, silent)."""


class NothingToSay(SpeechError):
    """Nothing is left to read out once code blocks and links are taken out."""

    user_message = "Nothing in this answer can be read out."


class SpeechOverBudget(SpeechError):
    def __init__(self, whose: str, resets_at: int) -> None:
        super().__init__(
            f"speaking would exceed {whose} daily token budget",
            user_message=f"Not read out: it would go over {whose} daily budget, which resets <t:{resets_at}:R>.",
        )
        self.resets_at = resets_at


class VoiceMessageRefused(SpeechError):
    """Discord does not take voice messages from the bot here (code 50173, or the Send Voice
    Messages permission missing). The text stands; logged, and no note: it is how the channel is set."""

    silent = True


def _size(size: int) -> str:
    # Rounded up, so a file just over the limit never reads as equal to it.
    if size < 1_048_576:
        return f"{math.ceil(size / 1024)} KB"
    return f"{math.ceil(size / 104_857.6) / 10:.1f} MB"


def _clock(seconds: float) -> str:
    whole = max(1, math.ceil(seconds))
    return f"{whole // 60}:{whole % 60:02d}"
