"""The world's top layer: messages (built as Discord builds them, stored, edited) and CDN attachments."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from .discord_snowflakes import as_id, now_iso, snowflake_time
from .discord_world_threads import ThreadWorld

USER_MENTION = re.compile(r"<@!?(\d+)>")
ROLE_MENTION = re.compile(r"<@&(\d+)>")


@dataclass
class StoredAttachment:
    data: bytes
    content_type: str
    payload: dict[str, Any]
    downloads: int = 0
    # How the CDN serves it: None (whole), "hang" (never answers) or "cut" (announces every byte in
    # Content-Length, sends ``cut_after`` of them, then closes the connection).
    fault: str | None = None
    cut_after: int = 16


class MessageWorld(ThreadWorld):
    """Messages in any channel of the layers below, and the attachments the CDN serves."""

    def __init__(self, bot_name: str = "StandinBot") -> None:
        super().__init__(bot_name)
        self.cdn_base = "http://127.0.0.1:0"
        self.messages: dict[int, dict[str, Any]] = {}
        self.channel_messages: dict[int, list[int]] = {}
        self.bot_message_ids: dict[int, list[int]] = {}
        self.edits: dict[int, list[dict[str, Any]]] = {}
        self.deleted: set[int] = set()
        self.attachments: dict[int, StoredAttachment] = {}

    def mentioned_user_ids(self, content: str) -> list[int]:
        return [u for u in dict.fromkeys(map(int, USER_MENTION.findall(content or ""))) if u in self.users]

    def build_message(
        self,
        channel_id: int,
        author: dict[str, Any] | int,
        content: str,
        *,
        mentions: Iterable[dict[str, Any] | int] = (),
        reply_to: dict[str, Any] | None = None,
        attachments: Iterable[dict[str, Any]] = (),
        flags: int = 0,
        message_id: int | None = None,
        extra: dict[str, Any] | None = None,
        parse_mentions: bool = True,
    ) -> dict[str, Any]:
        """A MESSAGE_CREATE-shaped message. With ``parse_mentions``, known users written as ``<@id>``
        in the content count as mentioned, like on Discord."""
        author_id = as_id(author)
        guild_id = self.guild_of(channel_id)
        mention_ids = dict.fromkeys([as_id(m) for m in mentions])
        if parse_mentions:
            mention_ids.update((u, None) for u in self.mentioned_user_ids(content))
        mid = message_id or self.ids.next()
        msg: dict[str, Any] = {
            "id": str(mid),
            "channel_id": str(channel_id),
            "author": self.users[author_id],
            "content": content,
            "timestamp": snowflake_time(mid),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [self.user_with_member(u, guild_id) for u in mention_ids],
            "mention_roles": ROLE_MENTION.findall(content),
            "attachments": list(attachments),
            "embeds": [],
            "components": [],
            "pinned": False,
            "type": 0,
            "flags": flags,
        }
        if guild_id is not None:
            msg["guild_id"] = str(guild_id)
            member = self.partial_member(guild_id, author_id)
            if member is not None:
                msg["member"] = member
        if reply_to is not None:
            ref_id = int(reply_to["id"])
            referenced = {k: v for k, v in self.messages.get(ref_id, reply_to).items() if k != "referenced_message"}
            msg["type"] = 19
            msg["message_reference"] = {
                "type": 0,
                "message_id": str(ref_id),
                "channel_id": referenced["channel_id"],
                "fail_if_not_exists": False,
                **({"guild_id": str(guild_id)} if guild_id else {}),
            }
            msg["referenced_message"] = referenced
        if extra:
            msg.update(extra)
        return msg

    def store_message(self, msg: dict[str, Any]) -> dict[str, Any]:
        mid, cid = int(msg["id"]), int(msg["channel_id"])
        self.messages[mid] = msg
        self.channel_messages.setdefault(cid, []).append(mid)
        if int(msg["author"]["id"]) == self.bot_id:
            self.bot_message_ids.setdefault(cid, []).append(mid)
        if cid in self.channels:
            self.channels[cid]["last_message_id"] = str(mid)
        return msg

    def edit_message(self, message_id: int, changes: dict[str, Any]) -> dict[str, Any]:
        msg = self.messages[message_id]
        msg.update(changes)
        msg["edited_timestamp"] = now_iso()
        self.edits.setdefault(message_id, []).append(
            {"content": msg.get("content"), "at": time.monotonic(), "timestamp": msg["edited_timestamp"]}
        )
        return msg

    # ---- attachments -------------------------------------------------------------------------
    def add_attachment(
        self,
        data: bytes,
        filename: str,
        content_type: str,
        *,
        channel_id: int = 0,
        duration_secs: float | None = None,
        waveform: str | None = None,
    ) -> dict[str, Any]:
        aid = self.ids.next()
        url = f"{self.cdn_base}/attachments/{channel_id}/{aid}/{quote(filename)}?ex={aid % 0xFFFFFF:x}&is=0&hm=00&"
        payload: dict[str, Any] = {
            "id": str(aid),
            "filename": filename,
            "size": len(data),
            "url": url,
            "proxy_url": url,
            "content_type": content_type,
        }
        if duration_secs is not None:
            payload["duration_secs"] = duration_secs
        if waveform is not None:
            payload["waveform"] = waveform
        self.attachments[aid] = StoredAttachment(data, content_type, payload)
        return payload
