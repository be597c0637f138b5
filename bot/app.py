"""The Bot class: holds the services, loads the cogs, and points discord.py at the configured Discord."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import discord
import yarl
from discord import app_commands
from discord.ext import commands
from discord.gateway import DiscordWebSocket
from discord.http import Route

from bot.config import Settings
from bot.errors import BotError
from bot.health import HealthServer
from bot.metrics import Metrics
from bot.services import Services
from bot.tuning import throttle_ratelimit_sweep
from cogs.utils.options import InvalidOption, check_invocation
from cogs.utils.text import bounded

log = logging.getLogger(__name__)

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
        Route.BASE = f"{api_base.rstrip('/')}/api/v10"
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
