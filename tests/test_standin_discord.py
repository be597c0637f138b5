"""The Discord stand-in, driven by a plain discord.py AutoShardedBot (not the project's bot)."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import aiohttp
import discord
import pytest
from discord import app_commands
from discord.ext import commands

from tests.standins.discord_fixtures import (  # noqa: F401
    STANDIN_TOKEN,
    discord_standin_fixture,
    running_bot,
    skip_identify_delay,
)
from tests.standins.discord_standin import DiscordStandin

pytestmark = pytest.mark.timeout(30)


def make_bot(**kwargs: Any) -> commands.AutoShardedBot:
    return commands.AutoShardedBot(
        command_prefix="!",
        intents=discord.Intents.default(),
        guild_ready_timeout=0.05,
        allowed_mentions=discord.AllowedMentions.none(),
        **kwargs,
    )


class Scene:
    """A guild with a text channel, a thread and a member, built on the stand-in."""

    def __init__(self, dc: DiscordStandin) -> None:
        self.alice = dc.add_user("alice")
        self.guild_id = int(dc.add_guild("Test Guild")["id"])
        dc.add_member(self.guild_id, self.alice, nick="Al")
        self.channel_id = int(dc.add_text_channel(self.guild_id, "general")["id"])
        self.thread_id = int(dc.add_thread(self.channel_id, "a thread", owner_id=int(self.alice["id"]))["id"])
        self.bot_mention = f"<@{dc.bot_user['id']}>"


@pytest.fixture
def world(discord_standin: DiscordStandin) -> Scene:
    return Scene(discord_standin)


async def test_login_ready_and_cache(discord_standin: DiscordStandin, world: Scene) -> None:
    dc = discord_standin
    bot = make_bot()
    async with running_bot(bot, STANDIN_TOKEN):
        assert bot.user is not None and bot.user.id == dc.application_id
        assert bot.application_id == dc.application_id
        guild = bot.get_guild(world.guild_id)
        assert guild is not None and guild.me is not None
        assert [c.name for c in guild.text_channels] == ["general"]
        assert guild.get_thread(world.thread_id) is not None
        assert guild.member_count == 3  # owner, bot, alice (no members intent: only the bot is cached)
        assert (await guild.fetch_member(int(world.alice["id"]))).nick == "Al"

        created = bot.wait_for("guild_channel_create", timeout=5)
        channel = dc.add_text_channel(world.guild_id, "late")  # added while connected: CHANNEL_CREATE
        assert (await created).id == int(channel["id"])
        fetched = await bot.fetch_channel(int(channel["id"]))
        assert fetched.name == "late" and guild.get_channel(int(channel["id"])) is not None

    routes = [r.route for r in dc.requests]
    assert routes[:3] == ["get_current_user", "get_application", "get_gateway_bot"]
    assert dc.gateway.identify_count == 1


async def test_rest_basics_content_type_auth_and_unknown_routes(discord_standin: DiscordStandin) -> None:
    dc = discord_standin
    async with aiohttp.ClientSession() as http:
        url = f"{dc.api_base}/api/v10/users/@me"
        async with http.get(url, headers={"Authorization": f"Bot {STANDIN_TOKEN}"}) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "application/json"
            assert "X-RateLimit-Remaining" in resp.headers and "X-RateLimit-Bucket" in resp.headers
        async with http.get(url, headers={"Authorization": "Bot wrong"}) as resp:
            assert resp.status == 401
        async with http.post(f"{dc.api_base}/api/v10/nope/123", json={}) as resp:
            assert resp.status == 404 and (await resp.json())["message"] == "404: Not Found"
    assert dc.unknown_routes == ["POST /api/v10/nope/123"]
    assert [r.status for r in dc.requests] == [200, 401, 404]


async def test_wrong_token_fails_login(discord_standin: DiscordStandin) -> None:
    with pytest.raises(discord.LoginFailure):
        async with running_bot(make_bot(), "not-the-token"):
            pass


async def test_gateway_rejects_wrong_token_with_4004(discord_standin: DiscordStandin) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(discord_standin.gateway_url) as ws:
        hello = await ws.receive_json()
        assert hello == {"op": 10, "d": {"heartbeat_interval": 45000}}
        await ws.send_json({"op": 1, "d": None})
        assert await ws.receive_json() == {"op": 11}
        await ws.send_json({"op": 2, "d": {"token": "bad", "intents": 0}})
        msg = await ws.receive()
        assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 4004


async def test_message_reply_edit_and_typing(discord_standin: DiscordStandin, world: Scene) -> None:
    dc = discord_standin
    bot = make_bot()
    seen: asyncio.Queue[discord.Message] = asyncio.Queue()

    @bot.event
    async def on_message(message: discord.Message) -> None:
        if message.author.bot:
            return
        await seen.put(message)
        async with message.channel.typing():
            reply = await message.reply(f"hello {message.author.mention}")
        await reply.edit(content="hello again")

    async with running_bot(bot, STANDIN_TOKEN):
        posted = await dc.post_message(world.channel_id, world.alice, f"{world.bot_mention} hi there")
        message = await asyncio.wait_for(seen.get(), 5)
        assert message.id == int(posted["id"]) and message.content.endswith("hi there")
        assert [m.id for m in message.mentions] == [dc.application_id]
        assert isinstance(message.author, discord.Member) and message.author.display_name == "Al"
        edit = await dc.wait_for_route("edit_message", channel_id=world.channel_id)

    typing = next(r for r in dc.requests if r.route == "typing")
    create = next(r for r in dc.requests if r.route == "create_message")
    assert typing.status == 204 and typing.at < create.at < edit.at
    assert int(create.json["message_reference"]["message_id"]) == int(posted["id"])
    assert create.json["allowed_mentions"] == {"parse": []}
    [sent] = dc.bot_messages(world.channel_id)
    assert sent["content"] == "hello again" and sent["type"] == 19 and sent["mentions"] == []
    assert [e["content"] for e in sent["edits"]] == ["hello again"]
    assert sent["referenced_message"]["id"] == posted["id"]
    dc.assert_no_mention_violations()


async def test_rate_limited_edit_is_retried(discord_standin: DiscordStandin, world: Scene) -> None:
    dc = discord_standin
    bot = make_bot()
    async with running_bot(bot, STANDIN_TOKEN):
        channel = bot.get_channel(world.channel_id)
        assert isinstance(channel, discord.TextChannel)
        sent = await channel.send("draft")
        dc.rate_limit("PATCH", "/channels/{channel_id}/messages/{message_id}", retry_after=0.2)
        await sent.edit(content="final")
    patches = [r for r in dc.requests if r.route == "edit_message"]
    assert [r.status for r in patches] == [429, 200]
    assert patches[1].at - patches[0].at >= 0.19
    assert dc.bot_messages(world.channel_id)[0]["content"] == "final"


async def test_forbidden_channel(discord_standin: DiscordStandin, world: Scene) -> None:
    dc = discord_standin
    dc.deny_bot(world.channel_id)
    bot = make_bot()
    async with running_bot(bot, STANDIN_TOKEN):
        channel = bot.get_channel(world.channel_id)
        assert isinstance(channel, discord.TextChannel)
        assert not channel.permissions_for(channel.guild.me).send_messages
        with pytest.raises(discord.Forbidden) as err:
            await channel.send("hi")
        assert err.value.code == 50013
        thread = bot.get_channel(world.thread_id)
        assert isinstance(thread, discord.Thread)
        await thread.send("SEND_MESSAGES_IN_THREADS is a separate permission")
        dc.fail("POST", "/channels/*/messages", 403, {"code": 50001, "message": "Missing Access"})
        with pytest.raises(discord.Forbidden):
            await thread.send("injected failure")
    assert dc.bot_messages(world.channel_id) == []
    assert len(dc.bot_messages(world.thread_id)) == 1


async def test_resume_replays_only_unseen_events(discord_standin: DiscordStandin, world: Scene) -> None:
    dc = discord_standin
    bot = make_bot()
    seen: asyncio.Queue[int] = asyncio.Queue()

    async def on_message(message: discord.Message) -> None:
        await seen.put(message.id)

    bot.add_listener(on_message)

    async with running_bot(bot, STANDIN_TOKEN):
        first = await dc.post_message(world.channel_id, world.alice, f"{world.bot_mention} one")
        assert await asyncio.wait_for(seen.get(), 5) == int(first["id"])
        await dc.disconnect(shard_id=0, code=4000)
        second = await dc.post_message(world.channel_id, world.alice, f"{world.bot_mention} two")
        await dc.wait_resumed(shard_id=0)
        assert await asyncio.wait_for(seen.get(), 5) == int(second["id"])
        third = await dc.post_message(world.channel_id, world.alice, f"{world.bot_mention} three")
        assert await asyncio.wait_for(seen.get(), 5) == int(third["id"])
        assert seen.empty()
    assert (dc.gateway.identify_count, dc.gateway.resume_count) == (1, 1)
    resume = next(op for op in dc.gateway.ops_received if op["op"] == 6)
    assert resume["d"]["token"] == STANDIN_TOKEN


async def test_two_processes_each_own_their_shard(discord_standin: DiscordStandin) -> None:
    dc = discord_standin
    user = dc.add_user("bob")
    channels = {}
    for shard in (0, 1):
        gid = int(dc.add_guild(f"guild-{shard}", guild_id=dc.guild_id_for_shard(shard, 2))["id"])
        dc.add_member(gid, user)
        channels[shard] = int(dc.add_text_channel(gid, "general")["id"])
    bots = [make_bot(shard_count=2, shard_ids=[shard]) for shard in (0, 1)]
    inboxes: list[asyncio.Queue[discord.Message]] = [asyncio.Queue(), asyncio.Queue()]
    for bot, inbox in zip(bots, inboxes, strict=True):
        bot.add_listener(inbox.put, "on_message")

    async with running_bot(bots[0], STANDIN_TOKEN), running_bot(bots[1], STANDIN_TOKEN):
        for shard, bot in enumerate(bots):
            assert [g.name for g in bot.guilds] == [f"guild-{shard}"]
            assert [g.shard_id for g in bot.guilds] == [shard]
        await dc.post_message(channels[1], user, f"<@{dc.bot_user['id']}> to shard one")
        got = await asyncio.wait_for(inboxes[1].get(), 5)
        assert got.channel.id == channels[1]
        dm = dc.open_dm(user)
        await dc.post_message(int(dm["id"]), user, "a DM goes to shard 0")
        assert (await asyncio.wait_for(inboxes[0].get(), 5)).content == "a DM goes to shard 0"
        assert inboxes[0].empty() and inboxes[1].empty()
    assert not any(r.route == "get_gateway_bot" for r in dc.requests)  # explicit shard_count: DEFAULT_GATEWAY


async def test_voice_attachment_download(discord_standin: DiscordStandin, world: Scene) -> None:
    dc = discord_standin
    audio = bytes(range(256)) * 40
    attachment = dc.add_attachment(audio, "voice-message.ogg", "audio/ogg", duration_secs=2.5, waveform="AAEC")
    bot = make_bot()
    done: asyncio.Queue[tuple[discord.Message, bytes]] = asyncio.Queue()

    @bot.event
    async def on_message(message: discord.Message) -> None:
        await done.put((message, await message.attachments[0].read()))

    async with running_bot(bot, STANDIN_TOKEN):
        dm = dc.open_dm(world.alice)
        await dc.post_message(int(dm["id"]), world.alice, "", attachments=[attachment], flags=8192)
        message, data = await asyncio.wait_for(done.get(), 5)
    assert data == audio and dc.cdn_downloads == 1
    assert message.flags.voice and isinstance(message.channel, discord.DMChannel)
    assert message.attachments[0].duration == 2.5 and message.attachments[0].is_voice_message()
    assert message.attachments[0].content_type == "audio/ogg"


async def test_cdn_downloads_can_hang_or_break_off(discord_standin: DiscordStandin) -> None:
    dc = discord_standin
    whole = dc.add_attachment(b"w" * 100_000, "whole.txt", "text/plain")
    cut = dc.add_attachment(b"c" * 100_000, "cut.txt", "text/plain")
    hung = dc.add_attachment(b"h" * 10, "hung.txt", "text/plain")
    dc.cut_download(cut)
    dc.hang_download(hung)
    async with aiohttp.ClientSession() as session:
        async with session.get(whole["url"]) as response:
            assert len(await response.read()) == 100_000
        async with session.get(cut["url"]) as response:
            assert response.headers["Content-Length"] == "100000"
            with pytest.raises(aiohttp.ClientPayloadError):
                await response.read()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2), session.get(hung["url"]) as response:
                await response.read()
    assert dc.cdn_downloads == 3


def command_bot() -> commands.AutoShardedBot:
    bot = make_bot()

    @bot.tree.command(description="Ask something")
    @app_commands.describe(prompt="what to ask")
    async def ask(interaction: discord.Interaction, prompt: str) -> None:
        result = await interaction.response.send_message(f"you asked: {prompt}")
        assert isinstance(result.resource, discord.InteractionMessage)
        await interaction.followup.send(f"follow-up to {result.message_id}")

    @bot.tree.command(description="Slow")
    async def slow(interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True, ephemeral=True)
        await interaction.followup.send("done thinking")

    async def complete(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return [app_commands.Choice(name=f"{current}-{i}", value=f"{current}{i}") for i in range(2)]

    @bot.tree.command(description="Pick")
    @app_commands.autocomplete(item=complete)
    async def pick(interaction: discord.Interaction, item: str) -> None:
        await interaction.response.send_message(item)

    class Feedback(discord.ui.Modal, title="Feedback"):
        text: discord.ui.TextInput[Feedback] = discord.ui.TextInput(label="Text", custom_id="text")

        async def on_submit(self, interaction: discord.Interaction) -> None:
            await interaction.response.send_message(f"thanks: {self.text.value}", ephemeral=True)

    @bot.tree.command(description="Give feedback")
    async def feedback(interaction: discord.Interaction) -> None:
        await interaction.response.send_modal(Feedback(custom_id="feedback-modal"))

    return bot


async def test_application_command_and_followup(discord_standin: DiscordStandin, world: Scene) -> None:
    dc = discord_standin
    bot = command_bot()
    async with running_bot(bot, STANDIN_TOKEN):
        synced = await bot.tree.sync()
        assert {c.name for c in synced} == {"ask", "slow", "pick", "feedback"}
        payload = await dc.send_command(
            "ask", user=world.alice, channel_id=world.channel_id, options={"prompt": "why?"}
        )
        followup = await dc.wait_for_route("followup")
    assert int(payload["data"]["id"]) == next(c.id for c in synced if c.name == "ask")
    callback = next(r for r in dc.requests if r.route == "interaction_callback")
    assert callback.query == {"with_response": "1"} and callback.status == 200
    assert callback.json["type"] == 4 and callback.json["data"]["content"] == "you asked: why?"
    state = dc.interaction(payload)
    assert [c.type for c in state.callbacks] == [4]
    assert followup.json["content"] == f"follow-up to {state.original_id}"
    contents = [m["content"] for m in dc.bot_messages(world.channel_id)]
    assert contents == ["you asked: why?", f"follow-up to {state.original_id}"]
    dc.assert_no_mention_violations()


async def test_deferred_autocomplete_and_modal(discord_standin: DiscordStandin, world: Scene) -> None:
    dc = discord_standin
    bot = command_bot()
    async with running_bot(bot, STANDIN_TOKEN):
        slow = await dc.send_command("slow", user=world.alice, channel_id=world.thread_id)
        await dc.wait_for_route("followup")
        auto = await dc.send_autocomplete("pick", "item", "ab", user=world.alice, channel_id=world.channel_id)
        await dc.wait_for(lambda r: r.route == "interaction_callback" and r.json["type"] == 8)
        modal = await dc.send_command("feedback", user=world.alice, channel_id=world.channel_id)
        await dc.wait_for(lambda r: r.route == "interaction_callback" and r.json["type"] == 9)
        submit = await dc.send_modal_submit(
            "feedback-modal", {"text": "great"}, user=world.alice, channel_id=world.channel_id, layout="label"
        )
        done = await dc.wait_for(lambda r: r.route == "interaction_callback" and r.json["type"] == 4)

    [thinking] = dc.bot_messages(world.thread_id)
    assert thinking["content"] == "done thinking" and thinking["flags"] == 64  # loading flag cleared
    assert dc.interaction(slow).followup_ids == [int(thinking["id"])]
    choices = dc.interaction(auto).callbacks[0].data["choices"]
    assert choices == [{"name": "ab-0", "value": "ab0"}, {"name": "ab-1", "value": "ab1"}]
    assert dc.interaction(modal).callbacks[0].data["custom_id"] == "feedback-modal"
    assert done.json["data"]["content"] == "thanks: great" and dc.interaction(submit).original_id is not None


async def test_mention_audit_flags_pinging_sends(discord_standin: DiscordStandin, world: Scene) -> None:
    dc = discord_standin
    bot = make_bot()
    async with running_bot(bot, STANDIN_TOKEN):
        channel = bot.get_channel(world.channel_id)
        assert isinstance(channel, discord.TextChannel)
        await channel.send(f"quiet <@{world.alice['id']}>")
        assert dc.mention_violations == []
        loud = await channel.send(f"loud <@{world.alice['id']}>", allowed_mentions=discord.AllowedMentions.all())
    assert len(dc.mention_violations) == 1 and "parse=['everyone', 'users', 'roles']" in dc.mention_violations[0]
    quiet_msg, loud_msg = dc.bot_messages(world.channel_id)
    assert quiet_msg["mentions"] == [] and [u["id"] for u in loud_msg["mentions"]] == [world.alice["id"]]
    assert loud.mentions[0].id == int(world.alice["id"])


async def test_message_content_intent_and_multipart_upload(discord_standin: DiscordStandin, world: Scene) -> None:
    dc = discord_standin
    bot = make_bot()
    inbox: asyncio.Queue[discord.Message] = asyncio.Queue()
    bot.add_listener(inbox.put, "on_message")
    async with running_bot(bot, STANDIN_TOKEN):
        await dc.post_message(world.channel_id, world.alice, "no mention, no content intent")
        assert (await asyncio.wait_for(inbox.get(), 5)).content == ""
        channel = bot.get_channel(world.channel_id)
        assert isinstance(channel, discord.TextChannel)
        data = b"\x00binary\xffpayload" * 100
        sent = await channel.send("a file", file=discord.File(io.BytesIO(data), "blob.bin"))
        assert (await asyncio.wait_for(inbox.get(), 5)).id == sent.id  # the bot sees its own messages
        assert await sent.attachments[0].read() == data
    upload = next(r for r in dc.requests if r.route == "create_message")
    assert upload.json["content"] == "a file" and upload.files[0]["filename"] == "blob.bin"
    assert upload.files[0]["size"] == len(data)


async def test_members_intent_chunks_guild(discord_standin: DiscordStandin, world: Scene) -> None:
    intents = discord.Intents.default()
    intents.members = True
    bot = commands.AutoShardedBot(command_prefix="!", intents=intents, guild_ready_timeout=0.05)
    async with running_bot(bot, STANDIN_TOKEN):
        guild = bot.get_guild(world.guild_id)
        assert guild is not None and guild.chunked
        assert guild.get_member(int(world.alice["id"])).nick == "Al"
        joined = bot.wait_for("member_join", timeout=5)
        carol = discord_standin.add_user("carol")
        discord_standin.add_member(world.guild_id, carol)
        assert (await joined).name == "carol"
        assert len(await guild.chunk()) == 4  # REQUEST_GUILD_MEMBERS (op 8) -> GUILD_MEMBERS_CHUNK
        assert [m.name for m in await guild.query_members("car")] == ["carol"]
    assert [op["op"] for op in discord_standin.gateway.ops_received].count(8) == 2


class Counter(discord.ui.View):
    def __init__(self) -> None:
        super().__init__(timeout=None)
        self.count = 0

    @discord.ui.button(label="+1", custom_id="count")
    async def bump(self, interaction: discord.Interaction, button: discord.ui.Button[Counter]) -> None:
        self.count += 1
        await interaction.response.edit_message(content=f"count {self.count}")


async def test_context_menu_button_dm_command_and_reply(discord_standin: DiscordStandin, world: Scene) -> None:
    dc = discord_standin
    bot = make_bot()
    replies: asyncio.Queue[discord.Message] = asyncio.Queue()

    @bot.tree.context_menu(name="Quote")
    async def quote(interaction: discord.Interaction, message: discord.Message) -> None:
        await interaction.response.send_message(f"> {message.content}", view=Counter())

    @bot.tree.command(description="Ping")
    async def ping(interaction: discord.Interaction) -> None:
        assert isinstance(interaction.channel, discord.DMChannel)
        await interaction.response.send_message("pong")

    @bot.event
    async def on_message(message: discord.Message) -> None:
        if message.reference is not None and not message.author.bot:
            await replies.put(message)

    async with running_bot(bot, STANDIN_TOKEN):
        await bot.tree.sync()
        target = await dc.post_message(world.channel_id, world.alice, "quotable words")
        await dc.send_message_command("Quote", target, user=world.alice)
        quoted = await dc.wait_for_route("interaction_callback", channel_id=world.channel_id)
        quote_msg = dc.bot_messages(world.channel_id)[0]
        assert quote_msg["content"] == "> quotable words" and quote_msg["type"] == 23
        assert quoted.json["data"]["components"][0]["components"][0]["custom_id"] == "count"

        await dc.send_component("count", quote_msg, user=world.alice)
        await dc.wait_for(lambda r: r.route == "interaction_callback" and r.json["type"] == 7)
        assert dc.bot_messages(world.channel_id)[0]["content"] == "count 1"

        dm = dc.open_dm(world.alice)
        await dc.send_command("ping", user=world.alice, channel_id=int(dm["id"]))
        await dc.wait_for_route("interaction_callback", channel_id=int(dm["id"]))
        assert [m["content"] for m in dc.bot_messages(int(dm["id"]))] == ["pong"]

        reply = await dc.post_message(
            world.channel_id, world.alice, "replying", reply_to=quote_msg, mentions=[dc.bot_user]
        )
        got = await asyncio.wait_for(replies.get(), 5)
        assert got.id == int(reply["id"]) and got.reference.resolved.content == "count 1"
        assert got.type is discord.MessageType.reply and bot.user in got.mentions

    [edit] = dc.bot_messages(world.channel_id)[0]["edits"]
    assert edit["content"] == "count 1"
    dc.assert_no_mention_violations()


async def test_wait_for_timeout_lists_recent_requests(discord_standin: DiscordStandin) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{discord_standin.api_base}/api/v10/gateway") as resp:  # no Authorization
            assert resp.status == 401
    with pytest.raises(AssertionError, match=r"GET /gateway \[get_gateway\] -> 401"):
        await discord_standin.wait_for_route("create_message", timeout=0.05)


async def test_auto_sharding_from_gateway_bot(discord_standin: DiscordStandin) -> None:
    dc = discord_standin
    dc.shards = 2
    ids = [int(dc.add_guild(f"g{s}", guild_id=dc.guild_id_for_shard(s, 2))["id"]) for s in (1, 0)]
    bot = make_bot()
    skip_identify_delay(bot)
    async with running_bot(bot, STANDIN_TOKEN):
        assert bot.shard_count == 2 and sorted(bot.shards) == [0, 1]
        assert {g.id: g.shard_id for g in bot.guilds} == {ids[0]: 1, ids[1]: 0}
    assert dc.gateway.identify_count == 2


async def test_too_long_content_and_duplicate_interaction(discord_standin: DiscordStandin, world: Scene) -> None:
    dc = discord_standin
    bot = command_bot()
    errors: asyncio.Queue[Exception] = asyncio.Queue()

    @bot.tree.error
    async def on_error(interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        await errors.put(error)

    async with running_bot(bot, STANDIN_TOKEN):
        channel = bot.get_channel(world.channel_id)
        assert isinstance(channel, discord.TextChannel)
        with pytest.raises(discord.HTTPException) as err:
            await channel.send("x" * 2001)
        assert err.value.code == 50035
        payload = await dc.send_command("pick", user=world.alice, channel_id=world.channel_id, options={"item": "once"})
        await dc.dispatch("INTERACTION_CREATE", payload)  # Discord sometimes delivers twice
        error = await asyncio.wait_for(errors.get(), 5)
        assert isinstance(error.__cause__, discord.HTTPException) and error.__cause__.code == 40060
    callbacks = [r.status for r in dc.requests if r.route == "interaction_callback"]
    assert callbacks == [200, 400] and len(dc.interaction(payload).callbacks) == 1
