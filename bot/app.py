"""The Bot class: holds the services, loads the cogs, and points discord.py at the configured Discord."""

from __future__ import annotations

import logging
from typing import Any

import discord
import yarl
from discord.ext import commands
from discord.gateway import DiscordWebSocket
from discord.http import Route

from bot.services import Services

log = logging.getLogger(__name__)

EXTENSIONS = ("cogs.chat",)
# Mentions and DMs carry their content without the privileged Message Content intent.
INTENTS = discord.Intents(guilds=True, guild_messages=True, dm_messages=True)


def use_discord_endpoints(api_base: str | None, gateway_url: str | None) -> None:
    """Point discord.py at a Discord-compatible server (Spacebar, or the test stand-in).

    discord.py keeps these as class attributes, so this is process-wide by nature."""
    if api_base:
        Route.BASE = f"{api_base.rstrip('/')}/api/v10"
    if gateway_url:
        DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)


class ChatBot(commands.AutoShardedBot):
    def __init__(self, services: Services, **options: Any) -> None:
        secrets = services.settings.secrets
        use_discord_endpoints(secrets.discord_api_base, secrets.discord_gateway_url)
        super().__init__(
            command_prefix=commands.when_mentioned,
            help_command=None,
            intents=INTENTS,
            # Whatever the model writes, no message of ours pings anyone.
            allowed_mentions=discord.AllowedMentions.none(),
            **options,
        )
        self.services = services
        self.settings = services.settings

    async def setup_hook(self) -> None:
        for extension in EXTENSIONS:
            await self.load_extension(extension)

    async def on_message(self, message: discord.Message, /) -> None:
        """No prefix commands: chat triggers live in cogs/chat.py, commands are slash commands."""

    async def on_ready(self) -> None:
        log.info("Connected as %s (%s) to %d guild(s)", self.user, getattr(self.user, "id", "?"), len(self.guilds))
