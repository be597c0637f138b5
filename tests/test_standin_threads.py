"""The stand-in Discord's threads and Message Content intent, against Discord's published rules, driven
by a plain discord.py bot and raw REST calls."""

from __future__ import annotations

from typing import Any

import aiohttp
import discord
import pytest

from tests.standins.discord_fixtures import (  # noqa: F401
    STANDIN_TOKEN,
    discord_standin_fixture,
    running_bot,
    skip_identify_delay,
)
from tests.standins.discord_permissions import GATEWAY_MESSAGE_CONTENT, Permission
from tests.standins.discord_standin import DiscordStandin
from tests.test_standin_discord import Scene, make_bot

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def world(discord_standin: DiscordStandin) -> Scene:
    return Scene(discord_standin)


async def post(dc: DiscordStandin, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{dc.api_base}/api/v10{path}", json=body, headers={"Authorization": f"Bot {dc.token}"}
        ) as response:
            return response.status, await response.json()


async def test_thread_creation_follows_discords_rules(discord_standin: DiscordStandin, world: Scene) -> None:
    dc, channel = discord_standin, world.channel_id
    status, private = await post(dc, f"/channels/{channel}/threads", {"name": "no type given"})
    assert status == 201 and private["type"] == 12, "API v10 defaults to a private thread"
    assert private["thread_metadata"]["auto_archive_duration"] == 4320 and private["member_count"] == 1
    for body, field in (
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "ok", "auto_archive_duration": 30}, "auto_archive_duration"),
        ({"name": "ok", "type": 0}, "type"),
        ({"name": "ok", "type": 10}, "type"),  # announcement threads live in announcement channels
        ({"name": "ok", "rate_limit_per_user": 21_601}, "rate_limit_per_user"),
    ):
        status, refused = await post(dc, f"/channels/{channel}/threads", body)
        assert (status, refused["code"]) == (400, 50035) and field in refused["errors"], body
    status, refused = await post(dc, f"/channels/{world.thread_id}/threads", {"name": "nested", "type": 11})
    assert (status, refused["code"]) == (400, 50024), "no thread inside a thread"

    message = await dc.post_message(channel, world.alice, "start here")
    status, thread = await post(dc, f"/channels/{channel}/messages/{message['id']}/threads", {"name": "from it"})
    assert status == 201 and thread["id"] == message["id"] and thread["type"] == 11
    status, again = await post(dc, f"/channels/{channel}/messages/{message['id']}/threads", {"name": "twice"})
    assert (status, again["code"]) == (400, 160004)

    dc.deny_bot(channel, Permission.CREATE_PUBLIC_THREADS)
    status, denied = await post(dc, f"/channels/{channel}/threads", {"name": "denied", "type": 11})
    assert (status, denied["code"]) == (403, 50013)


async def test_thread_create_event_archiving_and_unarchiving(discord_standin: DiscordStandin, world: Scene) -> None:
    dc = discord_standin
    bot = make_bot()
    async with running_bot(bot, STANDIN_TOKEN):
        channel = bot.get_channel(world.channel_id)
        assert isinstance(channel, discord.TextChannel)
        created = bot.wait_for("thread_create", timeout=5)
        thread = await channel.create_thread(name="talk", type=discord.ChannelType.public_thread)
        assert (await created).id == thread.id and thread.owner_id == dc.application_id
        guild = channel.guild
        assert guild.get_thread(thread.id) is not None

        archived = bot.wait_for("thread_update", timeout=5)
        dc.archive_thread(thread.id)
        await archived
        assert guild.get_thread(thread.id) is None, "discord.py drops archived threads from its cache"
        rejoined = bot.wait_for("thread_join", timeout=5)
        await dc.post_message(thread.id, world.alice, "hello again")
        assert (await rejoined).id == thread.id and not dc.world.channels[thread.id]["thread_metadata"]["archived"]

        dc.archive_thread(thread.id, locked=True)
        with pytest.raises(discord.HTTPException) as refused:
            await thread.send("locked out")
        assert refused.value.code == 50083


async def test_thread_delete_sends_discords_subset_and_the_thread_is_gone(
    discord_standin: DiscordStandin, world: Scene
) -> None:
    dc = discord_standin
    bot = make_bot()
    async with running_bot(bot, STANDIN_TOKEN):
        guild = bot.get_guild(world.guild_id)
        assert guild is not None and guild.get_thread(world.thread_id) is not None
        raw = bot.wait_for("raw_thread_delete", timeout=5)
        cached = bot.wait_for("thread_delete", timeout=5)
        event = dc.delete_thread(world.thread_id)
        assert event == {
            "id": str(world.thread_id),
            "guild_id": str(world.guild_id),
            "parent_id": str(world.channel_id),
            "type": 11,
        }, "Discord's THREAD_DELETE: id, guild_id, parent_id and type only"
        deleted: discord.RawThreadDeleteEvent = await raw
        assert (deleted.thread_id, deleted.guild_id, deleted.parent_id) == (
            world.thread_id,
            world.guild_id,
            world.channel_id,
        )
        assert deleted.thread_type is discord.ChannelType.public_thread
        assert (await cached).id == world.thread_id and guild.get_thread(world.thread_id) is None
        status, gone = await post(dc, f"/channels/{world.thread_id}/messages", {"content": "anyone?"})
        assert (status, gone["code"]) == (404, 10003)


async def test_message_content_intent_needs_the_portal_flag(discord_standin: DiscordStandin) -> None:
    dc = discord_standin
    intents = discord.Intents.default()
    intents.message_content = True
    with pytest.raises(discord.PrivilegedIntentsRequired):
        async with running_bot(make_bot_with(intents), STANDIN_TOKEN):
            pass
    assert dc.gateway.disallowed_intents == 1
    dc.application_flags = GATEWAY_MESSAGE_CONTENT
    bot = make_bot_with(intents)
    async with running_bot(bot, STANDIN_TOKEN):
        info = await bot.application_info()
        assert info.flags.gateway_message_content


def make_bot_with(intents: discord.Intents) -> discord.Client:
    from discord.ext import commands

    return commands.AutoShardedBot(
        command_prefix="!", intents=intents, guild_ready_timeout=0.05, allowed_mentions=discord.AllowedMentions.none()
    )
