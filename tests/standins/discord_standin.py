"""A stand-in Discord on 127.0.0.1 (gateway websocket + REST + CDN) for the real discord.py client.

Usage::

    async with DiscordStandin(token="t0k", shards=1) as dc:
        guild = dc.add_guild("Test Guild")
        channel = dc.add_text_channel(int(guild["id"]), "general")
        alice = dc.add_user("alice")
        dc.add_member(int(guild["id"]), alice)
        with point_discord_at(dc):                    # tests.standins.discord_fixtures
            bot = commands.AutoShardedBot(..., guild_ready_timeout=0.05)
            async with running_bot(bot, dc.token):     # starts, waits for on_ready, closes
                msg = await dc.post_message(int(channel["id"]), alice, f"<@{dc.bot_user['id']}> hi")
                req = await dc.wait_for(lambda r: r.route == "create_message")
                assert dc.bot_messages(int(channel["id"]))[0]["content"] == "..."
        assert not dc.mention_violations

discord.py is pointed here by two class attributes (``point_discord_at`` sets and restores them)::

    Route.BASE = f"{dc.api_base}/api/v10"
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(dc.gateway_url)

The world (users, guilds, roles, channels, threads, DMs, messages, attachments) lives in
``dc.world``; the builder methods here wrap it and dispatch GUILD_CREATE / CHANNEL_CREATE / ...
when a bot is already connected. ``post_message`` and the ``send_*`` interaction helpers build
payloads the way Discord does and deliver them to the shard owning the guild (DMs: shard 0). For a
registered command (synced, or set with ``register_commands`` as a stale list) ``send_command`` types
the options as registered and refuses (``NotDeliverable``) what Discord's client would never send.

Every HTTP request is recorded as a ``RecordedRequest`` (``dc.requests``; ``await dc.wait_for(pred)``,
``await dc.wait_for_route("edit_message", channel_id=...)``). Route names: get_gateway, get_gateway_bot,
get_current_user, get_user, create_dm, get_application, get_channel, list_messages, create_message,
get_message, edit_message, delete_message, typing, add_reaction, remove_reaction, create_thread,
get_guild, get_member, get_commands, put_commands, create_command, interaction_callback, followup,
{get,edit,delete}_original, {get,edit,delete}_followup, cdn_attachment, unknown.
Message payloads are audited for the ping-nobody allowed_mentions (``dc.mention_violations``);
faults are injected with ``dc.rate_limit(...)`` / ``dc.fail(...)``, CDN downloads that hang or break off
with ``dc.hang_download(attachment)`` / ``dc.cut_download(attachment)``. Voice messages the bot posts are
checked as Discord checks them (tests/standins/discord_voice.py); the ones it would refuse answer 400
and land in ``dc.voice_message_violations``. ``dc.limits.enforce()`` turns on Discord's own rate limits
(global 50/s per token, per-channel message buckets; tests.standins.discord_limits) and ``dc.limits``
counts the 429s and invalid requests it answered. Unknown routes answer 404 and land
in ``dc.unknown_routes``; stand-in crashes answer 503 and land in ``dc.internal_errors``. Like Discord,
bot messages are echoed to the gateway (MESSAGE_CREATE/UPDATE/DELETE) unless ephemeral, content is
capped at 2000 characters (400, code 50035) and a bot message's ``mentions`` lists only the users its
allowed_mentions let it ping.
Guild messages reach a bot without the MESSAGE_CONTENT intent with blank content unless they
mention it (as on Discord); set ``dc.gateway.enforce_message_content_intent = False`` to disable.
Asking for that intent needs it granted in ``dc.application_flags`` (else close code 4014). Threads:
POST /channels/{id}/threads and /channels/{id}/messages/{id}/threads check Discord's rules (channel
type, name 1-100, archive durations, the bot's Create Public/Private Threads permission, one thread
per message) and dispatch THREAD_CREATE; ``dc.archive_thread(id)`` archives one, and a message sent
in an archived, unlocked thread unarchives it first (THREAD_UPDATE); a locked one refuses the bot.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from .discord_gateway import Gateway
from .discord_interactions import APPLICATION_COMMAND as SLASH
from .discord_interactions import (
    AUTOCOMPLETE,
    MESSAGE_COMPONENT,
    MODAL_SUBMIT,
    InteractionCallback,
    InteractionRegistry,
    InteractionState,
    Options,
    autocomplete_data,
    base_payload,
    command_data,
    component_data,
    message_command_data,
    modal_submit_data,
    registered_options,
)
from .discord_limits import RateLimits
from .discord_permissions import Permission
from .discord_recorder import Fault, Faults, Predicate, RecordedRequest, Recorder, rate_limit_fault
from .discord_rest import RestApi
from .discord_snowflakes import as_id
from .discord_webhooks import WebhookApi
from .discord_world import World

UserRef = dict[str, Any] | int


class DiscordStandin:
    def __init__(
        self,
        *,
        token: str = "standin-token",
        shards: int = 1,
        bot_name: str = "StandinBot",
        heartbeat_interval: int = 45_000,
    ) -> None:
        self.token = token
        self.shards = shards  # what GET /gateway/bot recommends
        self.world = World(bot_name)
        self.owner = self.world.add_user("app-owner")
        self.recorder = Recorder()
        self.faults = Faults()
        self.limits = RateLimits()  # Discord's rate limits: off until ``dc.limits.enforce()``
        self.interactions = InteractionRegistry()
        self.gateway = Gateway(self.world, lambda: self.token, lambda: self.gateway_url, lambda: self.application_flags)
        self.gateway.heartbeat_interval = heartbeat_interval
        self.world.emit = lambda event, data, guild_id: self.gateway.route(event, data, guild_id=guild_id)
        self.rest = RestApi(self)
        self.webhooks = WebhookApi(self)
        self.commands: dict[int | None, list[dict[str, Any]]] = {}  # guild id (None = global) -> commands
        # GET /applications/@me "flags": which privileged intents the portal grants. A bot identifying
        # with an intent not granted here is disconnected with 4014, as on Discord.
        self.application_flags = 0
        self.mention_violations: list[str] = []
        self.unknown_routes: list[str] = []
        self.internal_errors: list[str] = []  # stand-in handler crashes (answered 503)
        self.voice_messages_refused: set[int] = set()  # channels answering voice messages with 50173
        self.voice_message_violations: list[str] = []  # voice messages Discord would refuse (400 50035)
        self.cdn_downloads = 0
        self.cdn_released = asyncio.Event()  # set at close: lets hanging CDN downloads finish
        self.latency = 0.0  # seconds added to every HTTP answer (benchmarks)
        self.route_latency: dict[str, float] = {}  # route name -> extra seconds
        self.port = 0
        self._runner: web.AppRunner | None = None

    # ---- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> DiscordStandin:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/gateway", self.gateway.handle)
        self.rest.install(app)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        self.world.cdn_base = self.api_base
        return self

    async def close(self) -> None:
        self.cdn_released.set()
        await self.gateway.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> DiscordStandin:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    @property
    def bot_user(self) -> dict[str, Any]:
        return self.world.bot_user

    @property
    def application_id(self) -> int:
        return self.world.bot_id

    # ---- world builders -------------------------------------------------------------------------
    def add_user(self, name: str, *, bot: bool = False, user_id: int | None = None) -> dict[str, Any]:
        return self.world.add_user(name, bot=bot, user_id=user_id)

    def guild_id_for_shard(self, shard_id: int, shard_count: int) -> int:
        """A fresh snowflake for a guild that lands on ``shard_id`` of ``shard_count``."""
        return self.world.ids.for_shard(shard_id, shard_count)

    def add_guild(self, name: str, *, owner_id: int | None = None, guild_id: int | None = None) -> dict[str, Any]:
        """A guild with an @everyone role (id = guild id, default permissions), the bot as a member and
        an owner (``owner_id``, or a new "<name>-owner" user). Use ``guild_id_for_shard`` to pick a shard."""
        return self.world.add_guild(name, owner_id=owner_id, guild_id=guild_id)

    def add_role(self, guild_id: int, name: str, permissions: int = 0) -> dict[str, Any]:
        return self.world.add_role(guild_id, name, permissions)

    def add_member(
        self, guild_id: int, user: UserRef, *, roles: Iterable[UserRef] = (), nick: str | None = None
    ) -> dict[str, Any]:
        return self.world.add_member(guild_id, user, roles=roles, nick=nick)

    def add_text_channel(self, guild_id: int, name: str, *, channel_id: int | None = None) -> dict[str, Any]:
        return self.world.add_text_channel(guild_id, name, channel_id=channel_id)

    def add_thread(self, parent_channel_id: int, name: str, *, owner_id: int | None = None) -> dict[str, Any]:
        return self.world.add_thread(parent_channel_id, name, owner_id=owner_id)

    def archive_thread(self, thread_id: int, *, locked: bool = False) -> dict[str, Any]:
        """Discord archives an idle thread: THREAD_UPDATE (archived). A later message unarchives it."""
        return self.world.set_archived(thread_id, True, locked=locked)

    def set_slowmode(self, channel_id: int, seconds: int) -> None:
        """A channel's slowmode (``rate_limit_per_user``): CHANNEL_UPDATE."""
        channel = self.world.channels[channel_id]
        channel["rate_limit_per_user"] = seconds
        self.world.emit("CHANNEL_UPDATE", channel, self.world.guild_of(channel_id))

    def open_dm(self, user: UserRef) -> dict[str, Any]:
        return self.world.open_dm(user)

    def deny_bot(self, channel_id: int, permissions: int = Permission.SEND_MESSAGES) -> None:
        """Add a member overwrite denying the bot ``permissions`` (default SEND_MESSAGES) in a channel;
        POST messages there then answers 403 {"code": 50013, "message": "Missing Permissions"}."""
        self.world.set_overwrite(channel_id, self.world.bot_id, deny=int(permissions), member=True)

    def refuse_voice_messages(self, channel_id: int) -> None:
        """Voice messages posted in this channel get Discord's 400 {"code": 50173, "message": "Cannot
        send voice messages in this channel"}."""
        self.voice_messages_refused.add(channel_id)

    def add_attachment(
        self,
        data: bytes,
        filename: str,
        content_type: str,
        *,
        duration_secs: float | None = None,
        waveform: str | None = None,
        channel_id: int = 0,
    ) -> dict[str, Any]:
        """Store bytes on the CDN; returns the attachment object (voice messages: flags=8192)."""
        return self.world.add_attachment(
            data, filename, content_type, channel_id=channel_id, duration_secs=duration_secs, waveform=waveform
        )

    def hang_download(self, attachment: dict[str, Any]) -> None:
        """The CDN never answers for this attachment (until the stand-in closes)."""
        self.world.attachments[as_id(attachment)].fault = "hang"

    def cut_download(self, attachment: dict[str, Any], *, after: int = 16) -> None:
        """The CDN announces the whole attachment in Content-Length, sends ``after`` bytes of it, then
        closes the connection (aiohttp: ClientPayloadError)."""
        stored = self.world.attachments[as_id(attachment)]
        stored.fault, stored.cut_after = "cut", after

    # ---- events ---------------------------------------------------------------------------------
    async def dispatch(
        self, event: str, data: dict[str, Any], *, shard_id: int | None = None, guild_id: int | None = None
    ) -> int:
        """Deliver a raw dispatch (to ``shard_id``, or the shard owning ``guild_id``/``data["guild_id"]``,
        else shard 0). Returns how many sessions got it; the same payload may be sent repeatedly.
        INTERACTION_CREATE payloads are registered so their callbacks and webhooks resolve."""
        if event == "INTERACTION_CREATE":
            self.interactions.register(data)
        return self.gateway.route(event, data, shard_id=shard_id, guild_id=guild_id)

    async def post_message(
        self,
        channel_id: int,
        author: UserRef,
        content: str,
        *,
        mentions: Iterable[UserRef] = (),
        reply_to: dict[str, Any] | None = None,
        attachments: Iterable[dict[str, Any]] = (),
        flags: int = 0,
        message_id: int | None = None,
    ) -> dict[str, Any]:
        """A user's message: stored and dispatched as MESSAGE_CREATE. Known users written as
        ``<@id>`` count as mentioned; pass the replied-to author in ``mentions`` to ping them."""
        msg = self.world.build_message(
            channel_id,
            author,
            content,
            mentions=mentions,
            reply_to=reply_to,
            attachments=attachments,
            flags=flags,
            message_id=message_id,
        )
        self.world.unarchive_for_message(channel_id)
        self.world.store_message(msg)
        self.gateway.route("MESSAGE_CREATE", msg, guild_id=self.world.guild_of(channel_id))
        return msg

    async def edit_user_message(self, message: dict[str, Any], content: str) -> dict[str, Any]:
        """A user edits their message: MESSAGE_UPDATE with the new content."""
        msg = self.world.edit_message(int(message["id"]), {"content": content})
        self.gateway.route("MESSAGE_UPDATE", msg, guild_id=self.world.guild_of(int(msg["channel_id"])))
        return msg

    # ---- interactions ---------------------------------------------------------------------------
    async def send_interaction(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Register (so callbacks/webhooks resolve) and dispatch a ready INTERACTION_CREATE payload."""
        self.interactions.register(payload)
        self.gateway.route("INTERACTION_CREATE", payload, guild_id=self.world.guild_of(int(payload["channel_id"])))
        return payload

    def _registered(self, name: str, channel_id: int, kind: int) -> dict[str, Any] | None:
        """The command as registered (guild scope first, then global), or None if it never was."""
        guild_id = self.world.guild_of(channel_id)
        for scope in ([guild_id] if guild_id is not None else []) + [None]:
            for cmd in self.commands.get(scope, []):
                if cmd["name"] == name and cmd.get("type", 1) == kind:
                    return cmd
        return None

    def _command_ref(self, name: str, channel_id: int, kind: int) -> tuple[int, int | None]:
        """(command id, guild scope) of a registered command, or a fresh id for an unsynced one."""
        cmd = self._registered(name, channel_id, kind)
        if cmd is None:
            return self.world.ids.next(), None
        return int(cmd["id"]), int(cmd["guild_id"]) if "guild_id" in cmd else None

    def register_commands(self, commands: list[dict[str, Any]], *, guild_id: int | None = None) -> list[dict]:
        """Set the registered commands as an earlier version of the bot synced them (a stale list);
        same as its PUT /applications/{id}/commands. Returns them with ids."""
        scope = guild_id
        self.commands[scope] = [self.rest.command_object(scope, dict(c), None) for c in commands]
        return self.commands[scope]

    async def send_command(
        self,
        name: str,
        *,
        user: UserRef,
        channel_id: int,
        options: Options = None,
        subcommand: str | None = None,
        group: str | None = None,
        permissions: int | None = None,
        locale: str = "en-US",
        resolved: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A slash command; ``options`` like ``{"prompt": "hi", "count": 2}`` or raw option dicts.
        For a registered command (synced, or ``register_commands``) a dict is typed as registered and
        checked as Discord's client checks it: NotDeliverable for what Discord would never send."""
        command_id, scope = self._command_ref(name, channel_id, 1)
        registered = self._registered(name, channel_id, 1)
        if registered is not None and not isinstance(options, list):
            options = registered_options(
                registered,
                options or {},
                subcommand=subcommand,
                group=group,
                in_dm=self.world.guild_of(channel_id) is None,
            )
        data = command_data(
            name,
            options,
            command_id=command_id,
            subcommand=subcommand,
            group=group,
            command_guild_id=scope,
            resolved=resolved,
        )
        return await self.send_interaction(
            base_payload(
                self.world, SLASH, data, user=user, channel_id=channel_id, permissions=permissions, locale=locale
            )
        )

    async def send_message_command(
        self, name: str, target: dict[str, Any], *, user: UserRef, permissions: int | None = None, locale: str = "en-US"
    ) -> dict[str, Any]:
        """A message context-menu command on ``target`` (a message dict)."""
        channel_id = int(target["channel_id"])
        command_id, _ = self._command_ref(name, channel_id, 3)
        data = message_command_data(name, self.world.messages.get(int(target["id"]), target), command_id=command_id)
        return await self.send_interaction(
            base_payload(
                self.world, SLASH, data, user=user, channel_id=channel_id, permissions=permissions, locale=locale
            )
        )

    async def send_autocomplete(
        self,
        name: str,
        focused: str,
        value: str,
        *,
        user: UserRef,
        channel_id: int,
        options: Options = None,
        subcommand: str | None = None,
        group: str | None = None,
        locale: str = "en-US",
    ) -> dict[str, Any]:
        command_id, scope = self._command_ref(name, channel_id, 1)
        data = autocomplete_data(
            name,
            focused,
            value,
            options,
            command_id=command_id,
            subcommand=subcommand,
            group=group,
            command_guild_id=scope,
        )
        return await self.send_interaction(
            base_payload(self.world, AUTOCOMPLETE, data, user=user, channel_id=channel_id, locale=locale)
        )

    async def send_modal_submit(
        self,
        custom_id: str,
        values: dict[str, str],
        *,
        user: UserRef,
        channel_id: int,
        layout: str = "row",
        locale: str = "en-US",
    ) -> dict[str, Any]:
        data = modal_submit_data(custom_id, values, layout=layout)
        return await self.send_interaction(
            base_payload(self.world, MODAL_SUBMIT, data, user=user, channel_id=channel_id, locale=locale)
        )

    async def send_component(
        self,
        custom_id: str,
        message: dict[str, Any],
        *,
        user: UserRef,
        component_type: int = 2,
        values: list[str] | None = None,
    ) -> dict[str, Any]:
        """A button click (type 2) or select (types 3, 5-8, with ``values``) on a message."""
        data = component_data(custom_id, component_type, values)
        current = self.world.messages.get(int(message["id"]), message)
        return await self.send_interaction(
            base_payload(
                self.world, MESSAGE_COMPONENT, data, user=user, channel_id=int(message["channel_id"]), message=current
            )
        )

    @property
    def interaction_callbacks(self) -> list[InteractionCallback]:
        return self.interactions.callbacks

    def interaction(self, payload_or_id: dict[str, Any] | int) -> InteractionState:
        """The server-side state of an interaction: callbacks, original_id, followup_ids."""
        return self.interactions.by_id[as_id(payload_or_id)]

    # ---- gateway control ------------------------------------------------------------------------
    async def disconnect(self, shard_id: int = 0, code: int = 4000) -> None:
        """Close the shard's socket (4000 is resumable: discord.py RESUMEs; 4004 etc. are fatal)."""
        await self.gateway.disconnect(shard_id, code)

    async def wait_resumed(self, shard_id: int = 0, timeout: float = 5.0) -> None:
        await self.gateway.wait_resumed(shard_id, timeout)

    # ---- recording & assertions -----------------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        return self.recorder.requests

    async def wait_for(self, predicate: Predicate, timeout: float = 5.0, *, start: int = 0) -> RecordedRequest:
        """The first recorded request (from index ``start``) matching ``predicate``; no polling."""
        return await self.recorder.wait_for(predicate, timeout=timeout, start=start)

    async def wait_for_route(
        self,
        route: str,
        *,
        method: str | None = None,
        channel_id: int | None = None,
        timeout: float = 5.0,
        start: int = 0,
    ) -> RecordedRequest:
        """Like wait_for, indexed by (route, channel) so many concurrent waits stay O(1) per request."""
        return await self.recorder.wait_for(
            lambda r: method is None or r.method == method, timeout=timeout, start=start, key=(route, channel_id)
        )

    def bot_messages(self, channel_id: int, *, include_deleted: bool = False) -> list[dict[str, Any]]:
        """Messages the bot created in a channel, in order, as they are now, each with ``edits``
        (one ``{"content", "at", "timestamp"}`` per edit) and ``deleted``."""
        world = self.world
        return [
            {**world.messages[mid], "edits": list(world.edits.get(mid, ())), "deleted": mid in world.deleted}
            for mid in world.bot_message_ids.get(channel_id, ())
            if include_deleted or mid not in world.deleted
        ]

    def assert_no_mention_violations(self) -> None:
        assert not self.mention_violations, "messages could ping people:\n" + "\n".join(self.mention_violations)

    # ---- fault injection ------------------------------------------------------------------------
    def rate_limit(
        self, method: str, route_pattern: str, *, retry_after: float = 0.2, times: int = 1, global_: bool = False
    ) -> Fault:
        """Answer the next ``times`` matching requests with a 429 discord.py honours and retries.
        ``route_pattern``: a route name ("edit_message"), a template
        ("/channels/{channel_id}/messages/{message_id}") or a glob on the path ("/channels/*/typing");
        ``method`` may be "*"; ``times=-1`` means forever."""
        return self.faults.add(
            rate_limit_fault(method, route_pattern, retry_after=retry_after, times=times, global_=global_)
        )

    def fail(self, method: str, route_pattern: str, status: int, body: Any = None, times: int = 1) -> Fault:
        """Answer the next ``times`` matching requests with ``status`` and a JSON ``body``. Note that
        discord.py retries 500/502/504 itself (after 1 s, 3 s, ...)."""
        body = body if body is not None else {"message": f"stand-in injected {status}", "code": 0}
        return self.faults.add(Fault(method, route_pattern, status, body, times))
