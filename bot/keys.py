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

    def personas(self, guild_id: int) -> str:
        """Hash: "guild" -> the guild's persona, "custom" -> its custom prompt, "channel:<id>" -> overrides."""
        return f"{self.prefix}:persona:{{{guild_id}}}"

    def pattern(self) -> str:
        """Matches every key of this prefix (for tests and maintenance scans)."""
        return f"{self.prefix}:*"
