"""Every Redis key name the bot uses, built in one place.

The part in braces is a Redis Cluster hash tag: all keys of one conversation (or one guild) land in
the same slot, so a transaction or script over them is valid on a cluster too.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    prefix: str = "dcb"

    def turns(self, conversation_id: int) -> str:
        """List of JSON turns, oldest first."""
        return f"{self.prefix}:conv:{{{conversation_id}}}:turns"

    def version(self, conversation_id: int) -> str:
        """A token that changes on every write to the turns list; lets processes cache a window safely."""
        return f"{self.prefix}:conv:{{{conversation_id}}}:version"

    def images(self, conversation_id: int) -> str:
        """Hash: image id -> data URL of the images kept for follow-up turns (the newest few)."""
        return f"{self.prefix}:conv:{{{conversation_id}}}:images"

    def image_order(self, conversation_id: int) -> str:
        """List of the kept images' ids, oldest first: the oldest is dropped past the limit."""
        return f"{self.prefix}:conv:{{{conversation_id}}}:image_ids"

    def summary(self, conversation_id: int) -> str:
        """JSON of the conversation's rolling summary: its text, tokens and the last message it covers."""
        return f"{self.prefix}:conv:{{{conversation_id}}}:summary"

    def personas(self, guild_id: int) -> str:
        """Hash: "guild" -> the guild's persona, "custom" -> its custom prompt, "channel:<id>" -> overrides."""
        return f"{self.prefix}:persona:{{{guild_id}}}"

    def models(self, guild_id: int) -> str:
        """Hash: "guild" -> the guild's chosen model, "channel:<id>" -> a channel's or thread's override."""
        return f"{self.prefix}:model:{{{guild_id}}}"

    def bot_thread(self, thread_id: int) -> str:
        """Present while a thread is one the bot opened with /chat (value: the id of who opened it)."""
        return f"{self.prefix}:thread:{{{thread_id}}}"

    def chat_slowmode(self, channel_id: int, user_id: int) -> str:
        """Present while a user may not open another /chat thread in a slowmode channel."""
        return f"{self.prefix}:slowmode:{{{channel_id}}}:{user_id}"

    def guild_usage(self, guild_id: int | None, day: str) -> str:
        """Hash of one guild's usage on one UTC day (DMs count under "dm"); fields per model."""
        return f"{self.prefix}:usage:guild:{{{guild_id if guild_id is not None else 'dm'}}}:{day}"

    def user_usage(self, user_id: int, day: str) -> str:
        """Hash of one user's usage on one UTC day, across guilds and DMs."""
        return f"{self.prefix}:usage:user:{{{user_id}}}:{day}"

    def spoken_replies(self, user_id: int) -> str:
        """A user's own choice for voice replies to their voice messages: "on" or "off" (unset: on)."""
        return f"{self.prefix}:user:{{{user_id}}}:spoken-replies"

    def seen(self, message_id: int) -> str:
        """Set once a Discord message is being handled: a replayed event is not answered twice."""
        return f"{self.prefix}:seen:{{{message_id}}}"

    def rate(self, user_id: int) -> str:
        """Sorted set of a user's recent turns (sliding window)."""
        return f"{self.prefix}:rate:{{{user_id}}}"

    def rate_notice(self, user_id: int) -> str:
        """Present while the user has already been told to wait in this window."""
        return f"{self.prefix}:rate:{{{user_id}}}:notice"

    def playground(self) -> Keys:
        """The web playground's own key space (``<prefix>:playground:``): its conversations, personas,
        usage and rate windows never mix with Discord's, whatever the ids."""
        return Keys(f"{self.prefix}:playground")

    def browser_secret(self) -> str:
        """The secret the playground encrypts each browser's session id with (kept, so a restarted
        playground can still read what browsers stored)."""
        return f"{self.prefix}:browser-secret"

    def request_budget(self) -> str:
        """Hash: the token bucket of Discord requests every process on this bot token spends from."""
        return f"{self.prefix}:discord:budget"

    def pattern(self) -> str:
        """Matches every key of this prefix (for tests and maintenance scans)."""
        return f"{self.prefix}:*"
