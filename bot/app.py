"""The Bot class: holds the services, loads the cogs, and points discord.py at the configured Discord."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
import discord
import yarl
from discord import app_commands
from discord.ext import commands
from discord.gateway import DiscordWebSocket, ReconnectWebSocket
from discord.http import Route
from discord.shard import Shard

from bot.deployment import discord_rest_base
from bot.errors import BotError, StartupError
from bot.health import HealthServer
from bot.metrics import Metrics
from bot.reachability import Backoff, network_cause
from bot.services import Services
from bot.settings import Settings
from bot.tuning import throttle_ratelimit_sweep
from cogs.utils.budget import LOGIN_REQUESTS, Priority, RequestScheduler, build_scheduler
from cogs.utils.options import InvalidOption, check_invocation
from cogs.utils.text import bounded

log = logging.getLogger(__name__)
T = TypeVar("T")

EXTENSIONS = ("cogs.chat", "cogs.threads", "cogs.persona", "cogs.model", "cogs.usage", "cogs.voice", "cogs.spoken")
# Mentions and DMs carry their content without the privileged Message Content intent.
INTENTS = discord.Intents(guilds=True, guild_messages=True, dm_messages=True)


def intents_for(settings: Settings) -> discord.Intents:
    """INTENTS, plus Message Content when ``[discord] message_content`` says the portal grants it
    (Discord refuses the connection, close code 4014, if the bot asks for an intent it lacks)."""
    intents = discord.Intents(INTENTS.value)
    intents.message_content = settings.discord.message_content
    return intents


def use_discord_endpoints(api_base: str | None, gateway_url: str | None) -> None:
    """Point discord.py at a Discord-compatible server (Spacebar, or the test stand-in).

    discord.py keeps these as class attributes, so this is process-wide by nature."""
    if api_base:
        Route.BASE = discord_rest_base(api_base)
    if gateway_url:
        DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)


def tolerate_unpaired_surrogates() -> None:
    """discord.py reads JSON with orjson when it is installed (``discord.py[speed]``), and orjson refuses
    an unpaired surrogate escape (``"a\\udc00b"``) that the json module reads: one such message in any
    channel would end ``client.start()`` with a JSONDecodeError. Such frames are read with the json
    module instead; the text is cleaned where it enters the engine (bot.sanitize). Process-wide, once."""
    fast = discord.utils._from_json
    if not discord.utils.HAS_ORJSON or getattr(fast, "tolerant", False):
        return

    def loads(data: str | bytes) -> Any:
        try:
            return fast(data)
        except ValueError:  # orjson.JSONDecodeError
            return json.loads(data)

    loads.tolerant = True  # type: ignore[attr-defined]
    discord.utils._from_json = loads


# Gateway close codes no retry can fix (bad token, bad shard, disallowed intents).
FATAL_CLOSE_CODES = {4004: "DISCORD_TOKEN was rejected", 4010: "SHARD_COUNT/SHARD_IDS are invalid",
                     4011: "the bot needs more shards (raise SHARD_COUNT)", 4013: "the intents are invalid",
                     4014: "a privileged intent is not enabled in the developer portal"}  # fmt: skip
# Failures that mean "Discord is not reachable right now" rather than "Discord said no".
UNREACHABLE = (OSError, aiohttp.ClientError, TimeoutError, ReconnectWebSocket, discord.DiscordServerError)


def discord_failure(exc: BaseException, *, timeout_s: float) -> tuple[str, bool]:
    """What went wrong reaching Discord, in a few words, and whether trying again may help."""
    if isinstance(exc, discord.ConnectionClosed):
        if exc.code in FATAL_CLOSE_CODES:
            return f"the gateway closed the connection ({exc.code}): {FATAL_CLOSE_CODES[exc.code]}", False
        return f"the gateway closed the connection ({exc.code})", True
    if isinstance(exc, discord.GatewayNotFound) and isinstance(exc.__cause__, discord.HTTPException):
        exc = exc.__cause__
    if isinstance(exc, discord.DiscordServerError):
        return f"Discord answered {exc.status} (a server error)", True
    if isinstance(exc, discord.HTTPException):
        if exc.status == 404:
            where = exc.response.url.path
            return f"{where} answered 404: check DISCORD_API_BASE (the server's root, .../api or .../api/v10)", False
        return f"Discord answered {exc.status}: {exc.text or exc.response.reason}", False
    if isinstance(exc, ReconnectWebSocket):
        return "the gateway sent no HELLO", True
    return network_cause(exc, timeout_s=timeout_s) or f"{type(exc).__name__}: {exc}", True


def quiet_voice_warnings() -> None:
    """This bot has no voice features: discord.py's "PyNaCl (or davey) is not installed, voice will NOT
    be supported" warnings read as breakage to whoever starts it. Say it once at DEBUG instead."""
    voice = discord.VoiceClient
    if voice.warn_nacl or voice.warn_dave:
        log.debug("PyNaCl/davey not installed: discord.py voice is unavailable (this bot does not use it)")
    voice.warn_nacl = voice.warn_dave = False


NOT_IN_THIS_SERVER = "I'm not enabled in this server."
UNEXPECTED_ERROR = "Something went wrong on my side; it has been logged. Please try again."
STALE_COMMANDS = "The bot's commands are out of date; an admin should run `python -m bot sync`."
BAD_OPTION = "I couldn't use one of the options you gave; please pick it from what Discord offers."


def _permission_names(permissions: list[str]) -> str:
    return " and ".join(name.replace("_", " ").replace("guild", "server").title() for name in permissions)


class BotTree(app_commands.CommandTree["ChatBot"]):
    """One place turns every slash-command failure into one short ephemeral reply."""

    def __init__(self, client: ChatBot, **options: Any) -> None:
        super().__init__(client, **options)
        self.stale_reported = False  # "run python -m bot sync" goes to the log at WARNING once

    async def interaction_check(self, interaction: discord.Interaction[ChatBot], /) -> bool:
        """``[access] guilds`` covers commands and context menus too: elsewhere the bot is not here.
        Then what a stale command list lets through is refused before the command runs."""
        allowed = interaction.client.settings.access.guilds
        if interaction.guild_id is not None and allowed and interaction.guild_id not in allowed:
            if interaction.type is not discord.InteractionType.autocomplete:
                await interaction.response.send_message(NOT_IN_THIS_SERVER, ephemeral=True)
            return False
        check_invocation(interaction)  # raises, and on_error answers
        return True

    async def on_error(self, interaction: discord.Interaction[ChatBot], error: app_commands.AppCommandError) -> None:
        await self.report(interaction, error.original if isinstance(error, app_commands.CommandInvokeError) else error)

    async def report(self, interaction: discord.Interaction[ChatBot], cause: Exception) -> None:
        """Reply to the user with one short sentence; log what they don't need to see."""
        interaction.client.metrics.error(cause)
        if isinstance(cause, BotError):
            text = cause.user_message
            log.info("/%s refused: %s", _command_name(interaction), cause)
        elif isinstance(cause, app_commands.MissingPermissions):
            text = f"You need the {_permission_names(cause.missing_permissions)} permission to do that."
        elif isinstance(cause, app_commands.NoPrivateMessage):
            text = "This command only works in a server."
        elif isinstance(cause, app_commands.CommandNotFound | app_commands.CommandSignatureMismatch):
            text = STALE_COMMANDS
            # The admin's to fix, once: every later use would repeat the same line.
            level = logging.INFO if self.stale_reported else logging.WARNING
            self.stale_reported = True
            log.log(level, "Slash commands out of date (%s); run `python -m bot sync`", cause)
        elif isinstance(cause, InvalidOption):
            text = cause.user_message
            log.info("/%s refused: %s", _command_name(interaction), cause)
        elif isinstance(cause, app_commands.TransformerError):
            text = BAD_OPTION
            log.info("/%s refused: %s", _command_name(interaction), cause)
        else:
            log.error("/%s failed", _command_name(interaction), exc_info=cause)
            text = UNEXPECTED_ERROR
        text = bounded(text)  # a refusal may quote what the user typed
        try:
            if interaction.type is discord.InteractionType.autocomplete:
                if not interaction.response.is_done():
                    await interaction.response.autocomplete([])  # suggestions are all it can answer
            elif interaction.response.is_done():
                await interaction.followup.send(text, ephemeral=True)
            else:
                await interaction.response.send_message(text, ephemeral=True)
        except discord.HTTPException as exc:
            log.warning("Could not report an error for /%s: %s", _command_name(interaction), exc)


def _command_name(interaction: discord.Interaction[ChatBot]) -> str:
    return interaction.command.qualified_name if interaction.command else "?"


class ChatBot(commands.AutoShardedBot):
    tree: BotTree

    def __init__(self, services: Services, **options: Any) -> None:
        secrets = services.settings.secrets
        use_discord_endpoints(secrets.discord_api_base, secrets.discord_gateway_url)
        # Several processes share the shards (SHARD_COUNT/SHARD_IDS); all their state is in Redis.
        quiet_voice_warnings()
        if secrets.shard_count is not None:
            options.setdefault("shard_count", secrets.shard_count)
        if secrets.shard_ids is not None:
            options.setdefault("shard_ids", list(secrets.shard_ids))
        super().__init__(
            command_prefix=commands.when_mentioned,
            help_command=None,
            intents=intents_for(services.settings),
            # Whatever the model writes, no message of ours pings anyone.
            allowed_mentions=discord.AllowedMentions.none(),
            tree_cls=BotTree,
            **options,
        )
        throttle_ratelimit_sweep(self.http)
        tolerate_unpaired_surrogates()
        self.services = services
        self.settings = services.settings
        self.metrics: Metrics = services.metrics
        self.health: HealthServer | None = None
        # `python -m bot` waits for Discord (a container may start before its network); `sync` and
        # `check` report it once instead.
        self.keep_trying = True
        # Every REST request the bot makes on its own goes through this (cogs/utils/budget.py).
        self.requests: RequestScheduler = build_scheduler(self.settings, services.redis, services.keys, self.http)

    async def reach_discord(self, what: str, where: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run ``attempt`` (one request or connection to Discord), each try bounded by
        ``discord.connect_timeout_s``. While Discord is unreachable, log one line per attempt and try
        again with backoff (``keep_trying``), else raise ``StartupError``; a refusal is raised at once.
        Cancelling the task (SIGTERM) or closing the bot stops it in any state."""
        timeout_s = self.settings.discord.connect_timeout_s
        backoff = Backoff()
        while not self.is_closed():
            try:
                async with asyncio.timeout(timeout_s):
                    return await attempt()
            except (*UNREACHABLE, discord.HTTPException, discord.GatewayNotFound, discord.ConnectionClosed) as exc:
                if isinstance(exc, discord.ConnectionClosed) and exc.code == 4014:
                    raise discord.PrivilegedIntentsRequired(exc.shard_id) from None
                cause, transient = discord_failure(exc, timeout_s=timeout_s)
            if not (transient and self.keep_trying):
                raise StartupError(f"cannot {what} at {where}: {cause}")
            delay = backoff.next_delay()
            log.warning("Cannot %s at %s: %s; trying again in %.0f s", what, where, cause, delay)
            await asyncio.sleep(delay)
        raise asyncio.CancelledError  # closed while connecting: stopped, not failed

    async def login(self, token: str) -> None:
        async def attempt() -> None:
            await self.requests.admit(LOGIN_REQUESTS)  # Discord counts the log-in's requests too
            try:
                await super(ChatBot, self).login(token)
            except BaseException:
                # discord.py opens a session (and connector) per login and cannot reuse a closed one.
                await self.http.close()
                self.http.connector = discord.utils.MISSING
                raise

        await self.reach_discord("log in to Discord", Route.BASE, attempt)

    async def launch_shards(self) -> None:
        """discord.py's, with the gateway lookup retried like the login."""
        if self.is_closed():
            return
        if self.shard_count is None:
            count, url, _limits = await self.reach_discord(
                "ask Discord for the gateway",
                Route.BASE,
                lambda: self.requests.send(Priority.URGENT, self.http.get_bot_gateway),
            )
            self.shard_count, gateway = count, yarl.URL(url)
        else:
            gateway = DiscordWebSocket.DEFAULT_GATEWAY
        self._connection.shard_count = self.shard_count
        shard_ids = self.shard_ids or range(self.shard_count)
        self._connection.shard_ids = shard_ids
        for shard_id in shard_ids:
            await self.launch_shard(gateway, shard_id, initial=shard_id == shard_ids[0])

    async def launch_shard(self, gateway: yarl.URL, shard_id: int, *, initial: bool = False) -> None:
        """discord.py's retries every 5 s for ever, even after close(), logging a traceback each time;
        this one backs off, logs one line per attempt and stops when the bot is closed or cancelled."""
        first = True

        async def attempt() -> DiscordWebSocket:
            nonlocal first
            # Only a process's first IDENTIFY may skip discord.py's 5 s identify spacing.
            is_first, first = first, False
            return await DiscordWebSocket.from_client(
                self, initial=initial and is_first, gateway=gateway, shard_id=shard_id
            )

        ws = await self.reach_discord(f"connect shard {shard_id} to the gateway", str(gateway), attempt)
        shards, queue = self._shard_registry()
        shards[shard_id] = shard = Shard(ws, self, queue.put_nowait)
        shard.launch()

    def _shard_registry(self) -> tuple[dict[int, Shard], asyncio.PriorityQueue[Any]]:
        """AutoShardedClient's private shard map and event queue, which launch_shard fills (a test
        notices if discord.py renames them)."""
        return self._AutoShardedClient__shards, self._AutoShardedClient__queue  # type: ignore[attr-defined]

    async def start(self, token: str, *, reconnect: bool = True) -> None:
        """Serve /healthz and /metrics (when enabled) from before the gateway connects: a probe sees
        503 until the bot is ready. ``sync`` only logs in, so it never opens the port."""
        if self.settings.health.enabled and self.health is None:
            self.health = await HealthServer(self).start()
        await super().start(token, reconnect=reconnect)

    async def close(self) -> None:
        if self.health is not None:
            await self.health.close()
            self.health = None
        await super().close()
        await self.requests.close()

    async def setup_hook(self) -> None:
        for extension in EXTENSIONS:
            await self.load_extension(extension)

    async def on_message(self, message: discord.Message, /) -> None:
        """No prefix commands: chat triggers live in cogs/chat.py, commands are slash commands."""

    async def on_error(self, event_method: str, /, *args: Any, **kwargs: Any) -> None:
        """An event handler raised: count it by class, then log it as discord.py does."""
        self.metrics.error(sys.exc_info()[1] or "unknown")
        await super().on_error(event_method, *args, **kwargs)

    async def on_ready(self) -> None:
        log.info("Connected as %s (%s) to %d guild(s)", self.user, getattr(self.user, "id", "?"), len(self.guilds))
