"""Interaction callbacks and interaction webhooks (original response, follow-ups) of the stand-in.

These routes carry no Authorization header in discord.py: the interaction token is the credential.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from .discord_interactions import APPLICATION_COMMAND, InteractionCallback, InteractionState
from .discord_messages import Result, error
from .discord_recorder import RecordedRequest

if TYPE_CHECKING:
    from .discord_standin import DiscordStandin

LOADING = 128
EPHEMERAL = 64


class WebhookApi:
    def __init__(self, standin: DiscordStandin) -> None:
        self.s = standin

    def install(self, app: web.Application) -> None:
        add, r = self.s.rest.add, app.router
        add(
            r,
            "POST",
            "/interactions/{interaction_id}/{token}/callback",
            "interaction_callback",
            self.callback,
            auth=False,
        )
        base = "/webhooks/{app_id}/{token}"
        add(r, "POST", base, "followup", self.followup, auth=False)
        for method, verb in (("GET", "get"), ("PATCH", "edit"), ("DELETE", "delete")):
            handler = getattr(self, f"{verb}_webhook_message")
            add(r, method, base + "/messages/@original", f"{verb}_original", handler, auth=False)
            add(r, method, base + "/messages/{message_id}", f"{verb}_followup", handler, auth=False)

    # ---- helpers ---------------------------------------------------------------------------------
    def _state(self, request: web.Request, rec: RecordedRequest) -> InteractionState | None:
        state = self.s.interactions.by_token.get(request.match_info["token"])
        if state is None:
            return None
        if "app_id" in request.match_info and request.match_info["app_id"] != str(self.s.world.bot_id):
            return None
        rec.channel_id = state.channel_id
        return state

    def _message_extra(self, state: InteractionState, *, original: bool) -> dict[str, Any]:
        payload = state.payload
        user = payload["member"]["user"] if "member" in payload else payload["user"]
        app_id = str(self.s.world.bot_id)
        metadata = {
            "id": payload["id"],
            "type": payload["type"],
            "user": user,
            "authorizing_integration_owners": payload.get("authorizing_integration_owners", {}),
        }
        extra: dict[str, Any] = {
            "webhook_id": app_id,
            "application_id": app_id,
            "interaction_metadata": metadata,
            "type": 0,
        }
        if payload["type"] == APPLICATION_COMMAND:
            name = payload["data"]["name"]
            extra["interaction"] = {"id": payload["id"], "type": payload["type"], "name": name, "user": user}
            if original:
                extra["type"] = 23 if payload["data"].get("type") == 3 else 20
        return extra

    # ---- callback --------------------------------------------------------------------------------
    async def callback(self, request: web.Request, rec: RecordedRequest, body: Any, files: list) -> Result:
        state = self.s.interactions.by_id.get(int(request.match_info["interaction_id"]))
        if state is None or state.token != request.match_info["token"]:
            return error(404, 10062, "Unknown interaction")
        rec.channel_id = state.channel_id
        if state.responded:
            return error(400, 40060, "Interaction has already been acknowledged.")
        payload = body if isinstance(body, dict) else {}
        ctype = int(payload.get("type", 0))
        data = payload.get("data") or {}
        flags = int(data.get("flags") or 0)
        message: dict[str, Any] | None = None
        rest = self.s.rest
        if ctype == 4:
            rest.audit(rec, data)
            status, message = rest.messages.create(
                state.channel_id, data, files, extra=self._message_extra(state, original=True)
            )
        elif ctype == 5:
            extra = {**self._message_extra(state, original=True), "flags": (flags & EPHEMERAL) | LOADING}
            status, message = rest.messages.create(state.channel_id, {}, [], extra=extra, allow_empty=True)
        elif ctype == 7:
            target = state.payload.get("message")
            stored = target and self.s.world.messages.get(int(target["id"]))
            if not stored:
                return error(400, 50035, "Invalid Form Body")
            rest.audit(rec, data)
            status, message = rest.messages.edit(stored, data, files)
        elif ctype in (1, 6, 8, 9):
            status = 200
        else:
            return error(400, 50035, f"Invalid interaction callback type {ctype}")
        if status >= 300:
            return status, message
        callback = InteractionCallback(
            state.id, ctype, payload.get("data"), rec.at, int(message["id"]) if message else None
        )
        state.callbacks.append(callback)
        self.s.interactions.callbacks.append(callback)
        if ctype in (4, 5) and message is not None:
            state.original_id = int(message["id"])
        if request.query.get("with_response", "").lower() not in ("1", "true"):
            return 204, None
        resource: dict[str, Any] = {"type": ctype}
        if message is not None:
            resource["message"] = message
        return 200, {
            "interaction": {
                "id": str(state.id),
                "type": state.payload["type"],
                "activity_instance_id": None,
                "response_message_id": message["id"] if message else None,
                "response_message_loading": ctype == 5,
                "response_message_ephemeral": bool(message and message["flags"] & EPHEMERAL),
            },
            "resource": resource,
        }

    # ---- webhook messages ------------------------------------------------------------------------
    async def followup(self, request: web.Request, rec: RecordedRequest, body: Any, files: list) -> Result:
        state = self._state(request, rec)
        if state is None or not state.responded:
            return error(404, 10015, "Unknown Webhook")
        payload = body if isinstance(body, dict) else {}
        self.s.rest.audit(rec, payload)
        original = self.s.world.messages.get(state.original_id or 0)
        if original is not None and original["flags"] & LOADING and not state.followup_ids:
            # Discord turns the first follow-up after a "thinking" defer into the original response
            original["flags"] &= ~LOADING
            status, message = self.s.rest.messages.edit(original, payload, files)
        else:
            status, message = self.s.rest.messages.create(
                state.channel_id, payload, files, extra=self._message_extra(state, original=False)
            )
        if status >= 300:
            return status, message
        state.followup_ids.append(int(message["id"]))
        wait = request.query.get("wait", "").lower() in ("1", "true")
        return (200, message) if wait else (204, None)

    def _target(self, request: web.Request, state: InteractionState) -> dict[str, Any] | None:
        raw = request.match_info.get("message_id", "@original")
        mid = state.original_id if raw == "@original" else int(raw)
        if mid is None or (mid != state.original_id and mid not in state.followup_ids):
            return None
        if mid in self.s.world.deleted:
            return None
        return self.s.world.messages.get(mid)

    async def get_webhook_message(self, request: web.Request, rec: RecordedRequest, body: Any, files: list) -> Result:
        state = self._state(request, rec)
        if state is None:
            return error(404, 10015, "Unknown Webhook")
        msg = self._target(request, state)
        return (200, msg) if msg else error(404, 10008, "Unknown Message")

    async def edit_webhook_message(self, request: web.Request, rec: RecordedRequest, body: Any, files: list) -> Result:
        state = self._state(request, rec)
        if state is None:
            return error(404, 10015, "Unknown Webhook")
        msg = self._target(request, state)
        if msg is None:
            return error(404, 10008, "Unknown Message")
        payload = body if isinstance(body, dict) else {}
        self.s.rest.audit(rec, payload)
        msg["flags"] &= ~LOADING
        return self.s.rest.messages.edit(msg, payload, files)

    async def delete_webhook_message(
        self, request: web.Request, rec: RecordedRequest, body: Any, files: list
    ) -> Result:
        state = self._state(request, rec)
        if state is None:
            return error(404, 10015, "Unknown Webhook")
        msg = self._target(request, state)
        return self.s.rest.messages.delete(msg) if msg else error(404, 10008, "Unknown Message")
