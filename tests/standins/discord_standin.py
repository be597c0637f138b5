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
``dc.delete_thread(id)`` deletes one: THREAD_DELETE with Discord's subset (id, guild_id, parent_id,
type), and the thread's REST routes answer Unknown Channel from then on.

The methods come in parts: world builders and user actions in ``discord_standin_world``, the
interaction senders in ``discord_standin_interactions``; the server lives here.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from aiohttp import web

from .discord_gateway import Gateway
from .discord_interactions import InteractionRegistry
from .discord_limits import RateLimits
from .discord_recorder import Fault, Faults, Predicate, RecordedRequest, Recorder, rate_limit_fault
from .discord_rest import RestApi
from .discord_standin_interactions import InteractionSenders
from .discord_standin_world import WorldControls
from .discord_webhooks import WebhookApi
from .discord_world import World


class DiscordStandin(WorldControls, InteractionSenders):
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
        self.limits.release()
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
