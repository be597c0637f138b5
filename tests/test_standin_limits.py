"""The stand-in enforces Discord's rate limits the way discord.py reads them: a plain discord.py client
(not the project's bot) waits on per-channel buckets from the headers and backs off on global 429s."""

from __future__ import annotations

import asyncio

import aiohttp
import discord
import pytest

from tests.standins.discord_fixtures import STANDIN_TOKEN, discord_standin_fixture, running_bot  # noqa: F401
from tests.standins.discord_standin import DiscordStandin
from tests.test_standin_discord import make_bot

pytestmark = pytest.mark.timeout(60)


def setup_guild(dc: DiscordStandin, channels: int) -> list[int]:
    guild_id = int(dc.add_guild("Limits")["id"])
    return [int(dc.add_text_channel(guild_id, f"room-{i}")["id"]) for i in range(channels)]


async def raw_post(dc: DiscordStandin, channel_id: int, session: aiohttp.ClientSession) -> aiohttp.ClientResponse:
    url = f"{dc.api_base}/api/v10/channels/{channel_id}/messages"
    body = {"content": "x", "allowed_mentions": {"parse": []}}
    async with session.post(url, json=body, headers={"Authorization": f"Bot {STANDIN_TOKEN}"}) as response:
        await response.read()
        return response


async def test_a_channel_bucket_advertises_its_limit_and_answers_429_past_it(discord_standin: DiscordStandin) -> None:
    dc = discord_standin
    dc.limits.enforce()
    [channel_id] = setup_guild(dc, 1)
    async with aiohttp.ClientSession() as session:
        answers = [await raw_post(dc, channel_id, session) for _ in range(6)]
    assert [r.status for r in answers] == [200] * 5 + [429]
    assert [r.headers["X-RateLimit-Remaining"] for r in answers[:5]] == ["4", "3", "2", "1", "0"]
    assert all(r.headers["X-RateLimit-Limit"] == "5" for r in answers)
    assert len({r.headers["X-RateLimit-Bucket"] for r in answers}) == 1
    limited = answers[-1]
    assert limited.headers["X-RateLimit-Scope"] == "user" and "X-RateLimit-Global" not in limited.headers
    assert 0 < float(limited.headers["X-RateLimit-Reset-After"]) <= 5.0 and limited.headers["Via"]
    assert dc.limits.route_429s == 1 and dc.limits.global_429s == 0 and dc.limits.invalid_requests == 1


async def test_the_global_limit_counts_any_one_second_window(discord_standin: DiscordStandin) -> None:
    dc = discord_standin
    dc.limits.enforce(global_per_second=10)
    channels = setup_guild(dc, 12)
    async with aiohttp.ClientSession() as session:
        answers = [await raw_post(dc, channel_id, session) for channel_id in channels]
        assert [r.status for r in answers] == [200] * 10 + [429, 429]
        limited = answers[-1]
        assert limited.headers["X-RateLimit-Global"] == "true"
        assert limited.headers["X-RateLimit-Scope"] == "global"
        assert int(limited.headers["Retry-After"]) >= 1 and limited.headers["Via"]
        body = await limited.json()
        assert body["global"] is True and 0 < body["retry_after"] <= 1.0
        await asyncio.sleep(body["retry_after"])  # the window has moved on: room again
        assert (await raw_post(dc, channels[0], session)).status == 200
    assert dc.limits.global_429s == 2 and dc.limits.route_429s == 0
    assert dc.limits.peak_per_second == 10


async def test_discordpy_waits_on_a_channel_bucket_instead_of_hitting_it(discord_standin: DiscordStandin) -> None:
    dc = discord_standin
    dc.limits.enforce(create_message=(3, 0.5))
    [channel_id] = setup_guild(dc, 1)
    bot = make_bot()
    async with running_bot(bot, STANDIN_TOKEN):
        channel = bot.get_channel(channel_id)
        assert isinstance(channel, discord.TextChannel)
        for i in range(7):
            await channel.send(f"message {i}")
    assert len(dc.bot_messages(channel_id)) == 7
    assert dc.limits.four_twenty_nines == 0, "discord.py read the bucket headers and waited"


async def test_discordpy_retries_after_a_global_429(discord_standin: DiscordStandin) -> None:
    """Without a budget of its own, a client sending at once finds the global limit by hitting it."""
    dc = discord_standin
    dc.limits.enforce(global_per_second=20)
    channels = setup_guild(dc, 40)
    bot = make_bot()
    async with running_bot(bot, STANDIN_TOKEN):
        sends = [bot.get_channel(c).send("hello") for c in channels]  # type: ignore[union-attr]
        await asyncio.gather(*sends)
    assert all(len(dc.bot_messages(c)) == 1 for c in channels), "every send landed after discord.py's retries"
    assert dc.limits.global_429s > 0 and dc.limits.invalid_requests >= dc.limits.global_429s
    assert dc.limits.peak_per_second <= 20


async def test_interaction_responses_are_outside_the_global_limit(discord_standin: DiscordStandin) -> None:
    dc = discord_standin
    dc.limits.enforce(global_per_second=1)
    [channel_id] = setup_guild(dc, 1)
    user = dc.add_user("alice")
    async with aiohttp.ClientSession() as session:
        assert (await raw_post(dc, channel_id, session)).status == 200
        assert (await raw_post(dc, channel_id, session)).status == 429, "the global limit is spent"
        for _ in range(3):
            payload = await dc.send_command("ping", user=user, channel_id=channel_id)
            url = f"{dc.api_base}/api/v10/interactions/{payload['id']}/{payload['token']}/callback"
            async with session.post(url, json={"type": 4, "data": {"content": "pong"}}) as response:
                assert response.status == 204
    assert dc.limits.global_429s == 1


async def test_cdn_downloads_are_outside_the_global_limit(discord_standin: DiscordStandin) -> None:
    """Attachments come from Discord's CDN, not its REST API: downloading them spends nothing of the bot's
    50 requests per second (the bot downloads images and voice messages it is sent)."""
    dc = discord_standin
    dc.limits.enforce(global_per_second=1)
    [channel_id] = setup_guild(dc, 1)
    attachment = dc.add_attachment(b"\x89PNG not really", "cat.png", "image/png", channel_id=channel_id)
    async with aiohttp.ClientSession() as session:
        for _ in range(3):
            async with session.get(attachment["url"]) as response:
                assert response.status == 200 and await response.read() == b"\x89PNG not really"
        assert (await raw_post(dc, channel_id, session)).status == 200, "the REST budget is untouched"
        assert (await raw_post(dc, channel_id, session)).status == 429, "and then spent"
    assert dc.limits.counted == 1 and dc.limits.global_429s == 1, "only the accepted REST request counted"
