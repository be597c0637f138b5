"""Messages the bot creates, edits and deletes (REST, interaction responses, follow-ups)."""

from __future__ import annotations

from typing import Any

from .discord_gateway import Gateway
from .discord_voice import upload_content_type
from .discord_world import World

MAX_CONTENT = 2000
BOT_MESSAGE_FLAGS = 4 | 64 | 4096 | 8192 | 32768  # suppress embeds, ephemeral, silent, voice, components v2
EPHEMERAL = 64
Result = tuple[int, Any]


def error(status: int, code: int, message: str, errors: dict[str, Any] | None = None) -> Result:
    body: dict[str, Any] = {"message": message, "code": code}
    if errors:
        body["errors"] = errors
    return status, body


def content_error(payload: dict[str, Any]) -> Result | None:
    content = payload.get("content")
    if isinstance(content, str) and len(content) > MAX_CONTENT:
        item = {"code": "BASE_TYPE_MAX_LENGTH", "message": f"Must be {MAX_CONTENT} or fewer in length."}
        return error(400, 50035, "Invalid Form Body", {"content": {"_errors": [item]}})
    return None


class BotMessages:
    """Validates payloads like Discord, stores the results in the world and dispatches the events."""

    def __init__(self, world: World, gateway: Gateway) -> None:
        self.world = world
        self.gateway = gateway

    def create(
        self,
        channel_id: int,
        payload: dict[str, Any],
        files: list[dict[str, Any]],
        *,
        extra: dict[str, Any] | None = None,
        allow_empty: bool = False,
    ) -> Result:
        """Validate, build, store and (unless ephemeral) dispatch a message the bot sends."""
        problem = content_error(payload)
        if problem:
            return problem
        world = self.world
        attachments = self.attachments_for(channel_id, payload, files, [])
        keys = ("content", "embeds", "components", "sticker_ids", "poll")
        if not allow_empty and not attachments and not any(payload.get(k) for k in keys):
            return error(400, 50006, "Cannot send an empty message")
        reply_to = None
        ref = payload.get("message_reference")
        if ref and ref.get("message_id"):
            reply_to = world.messages.get(int(ref["message_id"]))
            if reply_to is None and ref.get("fail_if_not_exists", True):
                item = {"code": "MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "message": "Unknown message"}
                return error(400, 50035, "Invalid Form Body", {"message_reference": {"_errors": [item]}})
        msg = world.build_message(
            channel_id,
            world.bot_id,
            payload.get("content") or "",
            reply_to=reply_to,
            attachments=attachments,
            mentions=self.pinged(payload, reply_to),
            parse_mentions=False,
            flags=int(payload.get("flags") or 0) & BOT_MESSAGE_FLAGS,
            extra={
                "embeds": payload.get("embeds") or [],
                "components": payload.get("components") or [],
                "tts": bool(payload.get("tts")),
                **({"nonce": payload["nonce"]} if "nonce" in payload else {}),
                **(extra or {}),
            },
        )
        world.store_message(msg)
        if not msg["flags"] & EPHEMERAL:
            self.gateway.route("MESSAGE_CREATE", msg, guild_id=world.guild_of(channel_id))
        return 200, msg

    def pinged(self, payload: dict[str, Any], reply_to: dict[str, Any] | None) -> list[int]:
        """The users Discord would put in ``mentions`` (i.e. notify) under the payload's allowed_mentions."""
        allowed = payload.get("allowed_mentions")
        in_content = self.world.mentioned_user_ids(payload.get("content") or "")
        if allowed is None:
            users = in_content
        elif "users" in (allowed.get("parse") or ()):
            users = in_content
        else:
            listed = {int(u) for u in allowed.get("users") or ()}
            users = [u for u in in_content if u in listed]
        if reply_to is not None and (allowed is None or allowed.get("replied_user", False)):
            users = [*users, int(reply_to["author"]["id"])]
        return list(dict.fromkeys(users))

    def attachments_for(
        self, channel_id: int, payload: dict[str, Any], files: list[dict[str, Any]], existing: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Attachment objects for uploaded ``files[n]`` parts plus kept existing attachments."""
        uploads = {}
        for part in files:
            name = part["name"] or ""
            uploads[name[6:-1] if name.startswith("files[") else name] = part

        def upload(key: str, entry: dict[str, Any]) -> dict[str, Any]:
            part = uploads.pop(key)
            filename = entry.get("filename") or part["filename"] or f"file{key}"
            return self.world.add_attachment(
                part["data"],
                filename,
                upload_content_type(part["content_type"], filename),  # discord.py declares octet-stream
                channel_id=channel_id,
                duration_secs=entry.get("duration_secs"),
                waveform=entry.get("waveform"),
            )

        listed = payload.get("attachments")
        if listed is None:
            result = list(existing)
        else:
            result = []
            for entry in listed:
                key = str(entry.get("id"))
                if key in uploads:
                    result.append(upload(key, entry))
                elif key.isdigit() and int(key) in self.world.attachments:
                    result.append(self.world.attachments[int(key)].payload)
        result.extend(upload(key, {}) for key in list(uploads))
        return result

    def edit(self, msg: dict[str, Any], payload: dict[str, Any], files: list[dict[str, Any]]) -> Result:
        problem = content_error(payload)
        if problem:
            return problem
        world = self.world
        channel_id = int(msg["channel_id"])
        changes = {
            k: payload[k] if payload[k] is not None else ([] if k != "content" else "")
            for k in ("content", "embeds", "components")
            if k in payload
        }
        if "flags" in payload and payload["flags"] is not None:
            changes["flags"] = (msg["flags"] & ~BOT_MESSAGE_FLAGS) | (int(payload["flags"]) & BOT_MESSAGE_FLAGS)
        if "attachments" in payload or files:
            changes["attachments"] = self.attachments_for(channel_id, payload, files, msg["attachments"])
        if "content" in changes:
            ids = self.pinged({**payload, "content": changes["content"]}, None)
            changes["mentions"] = [world.user_with_member(u, world.guild_of(channel_id)) for u in ids]
        world.edit_message(int(msg["id"]), changes)
        if not msg["flags"] & EPHEMERAL:
            self.gateway.route("MESSAGE_UPDATE", msg, guild_id=world.guild_of(channel_id))
        return 200, msg

    def delete(self, msg: dict[str, Any]) -> Result:
        self.world.deleted.add(int(msg["id"]))
        event = {"id": msg["id"], "channel_id": msg["channel_id"]}
        if "guild_id" in msg:
            event["guild_id"] = msg["guild_id"]
        if not msg["flags"] & EPHEMERAL:
            self.gateway.route("MESSAGE_DELETE", event, guild_id=self.world.guild_of(int(msg["channel_id"])))
        return 204, None
