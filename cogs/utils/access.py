"""Where the bot answers: the ``[access]`` allow lists and the DM policy."""

from __future__ import annotations

import functools
import logging
import time
from collections import OrderedDict
from typing import TYPE_CHECKING

import discord

from bot.settings import AccessSettings, DMPolicy
from cogs.utils.budget import Priority
from cogs.utils.routes import member_bucket

if TYPE_CHECKING:
    from bot.app import ChatBot

log = logging.getLogger(__name__)

MEMBERSHIP_CACHE_SIZE = 10_000
MEMBERSHIP_TTL_S = 600.0


class Access:
    def __init__(self, bot: ChatBot, settings: AccessSettings) -> None:
        self.bot = bot
        self.settings = settings
        # user id -> (shares a server with the bot, checked at): DMs under the "members" policy.
        self._members: OrderedDict[int, tuple[bool, float]] = OrderedDict()

    def allows_guild(self, guild_id: int | None) -> bool:
        return guild_id is None or not self.settings.guilds or guild_id in self.settings.guilds

    async def allows(self, message: discord.Message) -> bool:
        """May the bot answer this message's author here?"""
        return await self.allows_in(message.guild, message.channel, message.author)

    async def allows_in(self, guild: discord.Guild | None, channel: object, user: discord.abc.User) -> bool:
        """May the bot answer ``user`` in ``channel`` (a message's or an interaction's)?"""
        if guild is None:
            return await self._allows_dm(user)
        if not self.allows_guild(guild.id):
            return False
        channel_ids = {getattr(channel, "id", None), getattr(channel, "parent_id", None)}
        if self.settings.channels and not channel_ids & set(self.settings.channels):
            return False
        if self.settings.roles:
            roles = {role.id for role in getattr(user, "roles", ())}
            return bool(roles & set(self.settings.roles))
        return True

    async def _allows_dm(self, user: discord.abc.User) -> bool:
        policy = self.settings.dms
        if policy == DMPolicy.EVERYONE:
            return True
        if policy == DMPolicy.NOBODY:
            return False
        return await self._shares_a_server(user)

    async def _shares_a_server(self, user: discord.abc.User) -> bool:
        cached = self._members.get(user.id)
        if cached is not None and time.monotonic() - cached[1] < MEMBERSHIP_TTL_S:
            return cached[0]
        # Without the privileged members intent the member cache is empty, so ask Discord: one request
        # per allowed server at most, remembered for a while.
        shared = False
        for guild in self.bot.guilds:
            if not self.allows_guild(guild.id):
                continue
            try:
                await self.bot.requests.send(
                    Priority.URGENT,
                    functools.partial(guild.fetch_member, user.id),
                    bucket=member_bucket(guild.id, user.id),
                )
            except discord.NotFound:
                continue
            except discord.HTTPException as exc:
                log.warning("Could not check %s's membership of %s: %s", user.id, guild.id, exc)
                continue
            shared = True
            break
        self._members[user.id] = (shared, time.monotonic())
        self._members.move_to_end(user.id)
        while len(self._members) > MEMBERSHIP_CACHE_SIZE:
            self._members.popitem(last=False)
        return shared
