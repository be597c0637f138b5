"""Property: every addressed message is answered exactly once, whatever it carries.

A seeded, bounded run of a few hundred hostile or unlucky inputs through the real discord.py client
against the stand-in Discord, in bursts over several channels and DMs: random unicode and markup
(lone surrogates and control characters included), mentions of everyone, long texts, attachments of
every kind (images, text files good, binary, too big, whose download hangs or breaks off, ten with
300-character names), voice messages with true and impossible lengths, replayed events, model answers
that are long, blank, full of mentions, failed or cut off, and slash commands from a stale command list.

For every addressed message: exactly one reply referencing it (a voice message's transcript quote
aside), all within one deadline, every message at most 2,000 characters and pinging no one; for every
other message no reply; no ERROR log record; every conversation's history alternating user/assistant,
holding exactly the messages whose answers were shown complete, and encodable.
"""

from __future__ import annotations

import copy
import logging
import random
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.standins.model_server import Cut, Error, Malformed, Reply
from tests.test_voice_e2e import CLIP, VOICE_MESSAGE_FLAG, WAVEFORM

SEED = 20261201
MESSAGES = 240
COMMANDS = 40
DEADLINE_S = 30.0  # every addressed message answered within this, all of them together
SUCCESS_PREFIXES = ("echo: ", "ok: ")  # the stand-in model's echo, and this test's scripted answers

pytestmark = pytest.mark.timeout(120)

ZALGO = "h̸̢̛̙͎e̵̡̛͓̥l̴̨̛̘̥l̶̢̛̙̥ơ̵̢̙̥"
FRAGMENTS = [
    "hello",
    "what's a good name for a cat?",
    "**bold** _it_ ~~gone~~ ||secret|| `code`",
    "```py\nprint('hi')\n```",
    "```js\nlet open = true;",  # a fence never closed
    "@everyone",
    "@here",
    "🦊🔥🎉",
    "👩‍👩‍👧",
    "a\u200bb\u200dc",
    "\u202eevil\u202c שלום مرحبا",
    ZALGO,
    "a\udc00b",  # an unpaired surrogate
    "nul\x00bell\x07",
    "漢字かな",
    "  \n\t ",
    "> quoted",
    "# heading",
]


@dataclass
class Sent:
    message: dict[str, Any]
    addressed: bool
    voice: bool = False
    replies: list[dict[str, Any]] = field(default_factory=list)  # create_message bodies referencing it

    @property
    def id(self) -> str:
        return str(self.message["id"])

    @property
    def channel_id(self) -> int:
        return int(self.message["channel_id"])

    @property
    def answers(self) -> list[dict[str, Any]]:
        """Replies that are not a voice message's transcript quote."""
        return [r for r in self.replies if not (self.voice and r["content"].startswith("> "))]


class Tally:
    """Reads the stand-in's recorded requests once each, filing replies under the message they reference."""

    def __init__(self, dc: Any, sent: dict[str, Sent]) -> None:
        self.dc = dc
        self.sent = sent
        self.seen = 0

    def update(self) -> None:
        requests = self.dc.requests
        for request in requests[self.seen :]:
            body = request.json if isinstance(request.json, dict) else {}
            ref = str((body.get("message_reference") or {}).get("message_id"))
            if request.route == "create_message" and ref in self.sent:
                self.sent[ref].replies.append(body)
        self.seen = len(requests)

    def pending(self) -> list[Sent]:
        return [s for s in self.sent.values() if s.addressed and not s.answers]


def random_text(rng: random.Random, world: Any, role_id: str) -> str:
    parts = rng.choices(FRAGMENTS, k=rng.randint(0, 4))
    roll = rng.random()
    if roll < 0.05:
        parts.append("long " * rng.randint(300, 1_000))  # up to 5,000 characters: some over the budget
    elif roll < 0.1:
        parts += [f"<@&{role_id}>", f"<@{world.bob['id']}>", f"<#{world.channel_id}>"]
    return " ".join(parts)


def random_attachments(rng: random.Random, dc: Any) -> tuple[list[dict[str, Any]], bool]:
    """(attachments, is a voice message)."""
    roll = rng.random()
    if roll < 0.55:
        return [], False
    if roll < 0.60:
        return [dc.add_attachment(b"\x89PNG\r\n\x1a\n" + bytes(64), "cat.png", "image/png")], False
    if roll < 0.66:
        text = rng.choice(["milk, eggs", "ünïcödé ✓", "a\tb\nc", ""]).encode()
        return [dc.add_attachment(text or b" ", "list.txt", "text/plain; charset=utf-8")], False
    if roll < 0.69:
        return [dc.add_attachment(b"\xff\xfe\x00binary", "data.txt", "text/plain")], False
    if roll < 0.71:
        return [dc.add_attachment(b"x" * 70_000, "huge.log", "text/plain")], False
    if roll < 0.75:
        broken = dc.add_attachment(b"n" * 50_000, "notes.md", "text/markdown")
        (dc.hang_download if rng.random() < 0.3 else dc.cut_download)(broken)
        return [broken], False
    if roll < 0.78:
        names = [f"{'long name ' * 29}{i:02d}.png" for i in range(10)]
        return [dc.add_attachment(b"\x89PNG", name, "image/png") for name in names], False
    if roll < 0.80:
        return [dc.add_attachment(b"", "silence.mp3", "audio/mpeg")], True
    seconds = rng.choice([3.35, 3.35, -1.0, 0.0, 1e9, None])
    clip = dc.add_attachment(CLIP, "voice-message.ogg", "audio/ogg", duration_secs=seconds, waveform=WAVEFORM)
    if rng.random() < 0.15:
        dc.cut_download(clip)
    return [clip], True


def random_answer(rng: random.Random) -> Any:
    roll = rng.random()
    if roll < 0.35:
        return Reply("ok: " + rng.choice(["sure", "@everyone look <@1> <@&2>", "🦊 " * 50]))
    if roll < 0.45:
        return Reply("ok: " + "word " * rng.randint(500, 1_400), chunk_size=400)  # several messages
    if roll < 0.55:
        return Reply(rng.choice(["", " \n\t "]))
    if roll < 0.7:
        return rng.choice([Error(500), Error.rate_limited(), Error(401)])
    return rng.choice([Cut(after_chunks=2), Malformed(after_chunks=1)])


async def test_every_addressed_message_is_answered_exactly_once(chat_bot, world, caplog) -> None:
    caplog.set_level(logging.WARNING)
    rng = random.Random(SEED)
    settings = {
        "discord": {"download_timeout_s": 0.3},
        "model": {"context_window": 1_200, "max_reply_tokens": 256, "max_retries": 0},
    }
    async with chat_bot(**settings) as chat:
        dc = chat.dc
        me = chat.me
        role_id = dc.add_role(world.guild_id, "fans")["id"]
        channels = [world.channel_id, world.thread_id] + [
            int(dc.add_text_channel(world.guild_id, f"room-{i}")["id"]) for i in range(3)
        ]
        dms = {world.dm_channel_id: world.alice, int(dc.open_dm(world.bob)["id"]): world.bob}
        chat.model.script(*(random_answer(rng) for _ in range(MESSAGES // 3)))

        sent: dict[str, Sent] = {}
        tally = Tally(dc, sent)
        for _ in range(MESSAGES):
            in_dm = rng.random() < 0.25
            channel_id = rng.choice(list(dms)) if in_dm else rng.choice(channels)
            author = dms[channel_id] if in_dm else rng.choice([world.alice, world.bob])
            attachments, voice = random_attachments(rng, dc)
            addressed = in_dm or rng.random() < 0.85
            text = random_text(rng, world, role_id)
            if addressed and not in_dm and not voice:
                words = text.split(" ")
                words.insert(rng.randint(0, len(words)), f"<@{me['id']}>")
                text = " ".join(words)
            message = await dc.post_message(
                channel_id,
                author,
                "" if voice and attachments[0].get("waveform") else text,
                mentions=[me] if addressed and not in_dm else [],
                attachments=attachments,
                flags=VOICE_MESSAGE_FLAG if voice and attachments[0].get("waveform") else 0,
            )
            sent[str(message["id"])] = Sent(message, addressed, voice)
            if rng.random() < 0.08:
                await dc.dispatch("MESSAGE_CREATE", message)  # a replayed event
        await dc.wait_for(lambda _: tally.update() or not tally.pending(), timeout=DEADLINE_S)

        # One more turn per conversation: turns run in order, so every answer before it is complete.
        for channel_id in [*channels, *dms]:
            if channel_id in dms:
                last = await dc.post_message(channel_id, dms[channel_id], "last one")
            else:
                last = await chat.mention(channel_id, "last one")
            sent[str(last["id"])] = Sent(last, True)
            await chat.answer(channel_id, "echo: last one", timeout=DEADLINE_S)
        tally.update()

        await stale_commands_are_answered_once(chat, world, rng)

        for item in sent.values():
            if not item.addressed:
                assert item.replies == [], f"answered a message not for the bot: {item.message['content']!r}"
                continue
            assert len(item.answers) == 1, f"{len(item.answers)} answers to {item.message!r}: {item.answers}"
            if not item.voice:
                assert len(item.replies) == 1
        sends = [r for r in dc.requests if r.route in ("create_message", "edit_message")]
        assert all(r.status == 200 for r in sends), [str(r) for r in sends if r.status != 200][:3]
        shown = [m for c in [*channels, *dms] for m in dc.bot_messages(c)]
        assert all(len(m["content"]) <= 2_000 for m in shown)
        assert dc.mention_violations == [] and all(m["mentions"] == [] for m in shown)
        await history_is_clean(chat, sent, [*channels, *dms])
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors][:3]


async def history_is_clean(chat: Any, sent: dict[str, Sent], conversations: list[int]) -> None:
    """Alternating user/assistant; exactly the messages whose answer was shown complete; encodable."""
    for channel_id in conversations:
        turns = await chat.stored_turns(channel_id)
        roles = [t["role"] for t in turns]
        assert roles == ["user", "assistant"] * (len(turns) // 2), f"history of {channel_id} is {roles}"
        for turn in turns:
            turn["content"].encode("utf-8")  # the next request's body must encode
            if turn["role"] == "assistant":
                assert turn["content"].strip(), "a blank answer was stored"
        stored = [str(t["message_id"]) for t in turns if t["role"] == "user"]
        answered = [
            s.id
            for s in sent.values()
            if s.channel_id == channel_id and s.answers and s.answers[0]["content"].startswith(SUCCESS_PREFIXES)
        ]
        assert sorted(stored) == sorted(answered), f"history of {channel_id} differs from the answers shown"


async def stale_commands_are_answered_once(chat: Any, world: Any, rng: random.Random) -> None:
    """Slash commands from a stale list: each gets exactly one response, short, ephemeral when refused."""
    await chat.bot.tree.sync()
    current = {c["name"]: c for c in chat.dc.commands[None]}
    usage = copy.deepcopy(current["usage"])  # an older /usage: no bounds, no choices
    for option in usage["options"]:
        for key in ("min_value", "max_value", "choices"):
            option.pop(key, None)
    persona = {**copy.deepcopy(current["persona"]), "dm_permission": True, "contexts": None}
    gone = {"name": "summarize", "type": 1, "description": "Removed since", "options": []}
    others = [c for name, c in current.items() if name not in ("usage", "persona")]
    chat.dc.register_commands([*others, usage, persona, gone])
    for _ in range(COMMANDS):
        roll = rng.random()
        channel_id = rng.choice([world.channel_id, world.dm_channel_id])
        if roll < 0.7:
            options: dict[str, Any] = {}
            if rng.random() < 0.8:
                options["days"] = rng.choice([-5, 0, 1, 7, 30, 31, 10**9, -(10**9)])
            if rng.random() < 0.5:
                options["scope"] = rng.choice(["me", "guild", "everyone", "ME"])
            payload_response = await chat.command("usage", options=options, channel_id=channel_id)
        elif roll < 0.85:
            payload_response = await chat.command("persona", subcommand="list", channel_id=channel_id)
        else:
            payload_response = await chat.command("summarize", channel_id=channel_id)
        assert 0 < len(payload_response.content) <= 2_000
    callbacks: dict[str, int] = {}
    for request in chat.dc.requests:
        if request.route == "interaction_callback":
            interaction_id = request.path.split("/")[2]
            callbacks[interaction_id] = callbacks.get(interaction_id, 0) + 1
    assert len(callbacks) == COMMANDS and set(callbacks.values()) == {1}
