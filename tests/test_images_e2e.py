"""Images to vision models, end to end: discord.py against the stand-in Discord (attachments on its
CDN), a real Redis and the loopback model server, which decodes every image part it receives."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image

from tests.standins.model_server import Reply


def png(size: tuple[int, int] = (64, 48), color: str = "red", fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, fmt)
    return out.getvalue()


def noise_png(size: tuple[int, int]) -> bytes:
    """A PNG that does not compress (random pixels), so its byte size follows its pixel size."""
    out = io.BytesIO()
    Image.effect_noise(size, 64).convert("RGB").save(out, "PNG")
    return out.getvalue()


async def post(chat: Any, text: str, *attachments: dict[str, Any], **options: Any) -> dict[str, Any]:
    world = chat.world
    return await chat.dc.post_message(
        world.channel_id,
        options.pop("author", world.alice),
        f"<@{chat.me['id']}> {text}".rstrip(),
        mentions=[chat.me],
        attachments=list(attachments),
        **options,
    )


def image(chat: Any, name: str, data: bytes | None = None, content_type: str = "image/png") -> dict[str, Any]:
    return chat.dc.add_attachment(data if data is not None else png(), name, content_type)


async def test_an_image_goes_to_the_model_after_the_text_downscaled_to_max_side(chat_bot, world) -> None:
    async with chat_bot() as chat:
        big = image(chat, "car.png", png((3136, 2000), "green"))
        await post(chat, "what colour is this car?", big)
        await chat.answer(world.channel_id, "echo: what colour is this car?")
        request = chat.model.requests[0]
        [sent] = request.images
        assert sent.message_index == len(request.messages) - 1, "the image is part of the user's new turn"
        content = request.messages[-1]["content"]
        assert [part["type"] for part in content] == ["text", "image_url"], "text first, then the image"
        assert (sent.width, sent.height) == (1568, 1000) and sent.format == "JPEG" and sent.detail == "auto"
        assert Image.open(io.BytesIO(sent.data)).convert("RGB").getpixel((10, 10))[1] > 100  # still green
        [stored, _] = await chat.stored_turns(world.channel_id)
        assert stored["content"] == "what colour is this car?"
        assert [i["name"] for i in stored["images"]] == ["car.png"]


async def test_an_image_without_text_is_a_question_and_several_keep_their_order(chat_bot, world) -> None:
    async with chat_bot() as chat:
        chat.model.script(Reply("a red, a blue and a yellow square"))
        files = [image(chat, f"{c}.png", png(color=c)) for c in ("red", "blue", "yellow")]
        await post(chat, "", *files)
        await chat.answer(world.channel_id, "a red, a blue and a yellow square")
        sent = chat.model.requests[0].images
        assert [s.part_index for s in sent] == [0, 1, 2], "no text part: only the three images, in order"
        colours = [Image.open(io.BytesIO(s.data)).convert("RGB").getpixel((5, 5)) for s in sent]
        assert colours[0][0] > 200 and colours[1][2] > 200 and colours[2][0] > 200 and colours[2][1] > 200


async def test_a_follow_up_sees_the_stored_image_and_a_restart_keeps_it(chat_bot, world) -> None:
    async with chat_bot() as chat:
        await post(chat, "here is my car", image(chat, "car.png", png((800, 600), "blue")))
        await chat.answer(world.channel_id, "echo: here is my car")
        await post(chat, "what colour was the car?")
        await chat.answer(world.channel_id, "echo: what colour was the car?")
        [kept] = chat.model.requests[1].images
        assert kept.message_index == 1 and (kept.width, kept.height) == (800, 600)
    async with chat_bot() as chat:  # a new process: the image comes from Redis
        await post(chat, "and its size?")
        await chat.answer(world.channel_id, "echo: and its size?")
        [kept] = chat.model.requests[-1].images
        assert kept.message_index == 1 and (kept.width, kept.height) == (800, 600)


async def test_images_beyond_keep_in_history_become_placeholders(chat_bot, world) -> None:
    async with chat_bot(images={"keep_in_history": 1}) as chat:
        await post(chat, "first", image(chat, "old.png", png(color="red")))
        await chat.answer(world.channel_id, "echo: first")
        await post(chat, "second", image(chat, "new.png", png(color="blue")))
        await chat.answer(world.channel_id, "echo: second")
        await post(chat, "compare them")
        await chat.answer(world.channel_id, "echo: compare them")
        messages = chat.model.requests[-1].messages
        assert messages[1]["content"] == "first\n[image: old.png]"
        [kept] = chat.model.requests[-1].images
        assert kept.message_index == 3
        stored = chat.bot.services.redis
        assert await stored.hlen(chat.bot.services.keys.images(world.channel_id)) == 1


async def test_each_kind_of_bad_image_is_named_in_a_note_and_the_good_ones_are_sent(chat_bot, world) -> None:
    async with chat_bot(images={"max_per_message": 2, "max_bytes": 200_000}) as chat:
        files = [
            image(chat, "good.png"),
            image(chat, "drawing.bmp", png(fmt="BMP"), "image/bmp"),
            image(chat, "huge.png", noise_png((600, 600))),  # ~1 MB
            image(chat, "broken.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 64),
            image(chat, "extra.png"),
        ]
        downloads_before = chat.dc.cdn_downloads
        await post(chat, "look", *files)
        note = (
            "*(I skipped drawing.bmp: not a format I can read (PNG, JPEG, WebP or GIF); huge.png: over 0.2 MB; "
            "extra.png: more than 2 images; broken.png: not an image I could read.)*"
        )
        await chat.answer(world.channel_id, f"echo: look\n\n{note}")
        assert len(chat.model.requests[0].images) == 1
        assert chat.dc.cdn_downloads - downloads_before == 2, "only good.png and broken.png were downloaded"
        [stored, _] = await chat.stored_turns(world.channel_id)
        assert [i["name"] for i in stored["images"]] == ["good.png"]


async def test_only_a_corrupt_image_gets_the_note_and_no_model_call(chat_bot, world) -> None:
    async with chat_bot() as chat:
        await post(chat, "", image(chat, "broken.jpg", b"\xff\xd8\xff\xe0 not really", "image/jpeg"))
        await chat.answer(world.channel_id, "*(I skipped broken.jpg: not an image I could read.)*")
        assert chat.model.requests == [] and await chat.stored_turns(world.channel_id) == []


async def test_a_text_only_model_keeps_the_old_note(chat_bot, world) -> None:
    async with chat_bot(model={"images": False}) as chat:
        await post(chat, "what is it?", image(chat, "cat.png"))
        await chat.answer(world.channel_id, "echo: what is it?\n\n*(I can only read text, so I ignored cat.png.)*")
        assert chat.model.requests[0].images == []
        assert "images" not in (await chat.stored_turns(world.channel_id))[0]


async def test_replying_to_an_image_uses_it_when_discord_provides_it(chat_bot, world) -> None:
    async with chat_bot() as chat:
        # Without the Message Content intent Discord blanks a replied-to message that did not mention the
        # bot: the bot says it cannot see it.
        photo = await chat.dc.post_message(world.channel_id, world.bob, "my dog", attachments=[image(chat, "dog.png")])
        await post(chat, "what breed is this?", reply_to=photo)
        blind = "*(I can only see images posted with my mention, so I couldn't see the message you replied to.)*"
        await chat.answer(world.channel_id, f"echo: what breed is this?\n\n{blind}")
        assert chat.model.requests[0].images == []
        # When Discord does send it (here: the stand-in stops blanking, as for a bot with the intent).
        chat.dc.gateway.enforce_message_content_intent = False
        await post(chat, "and now?", reply_to=photo)
        await chat.answer(world.channel_id, "echo: and now?")
        [sent] = chat.model.requests[1].images
        assert sent.message_index == len(chat.model.requests[1].messages) - 1


async def test_a_note_about_many_skipped_images_stays_short(chat_bot, world) -> None:
    async with chat_bot() as chat:
        names = [f"{'x' * 290}-{i:02d}.bmp" for i in range(10)]
        await post(chat, "", *(image(chat, name, png(fmt="BMP"), "image/bmp") for name in names))
        reply = await chat.dc.wait_for(lambda r: r.route == "create_message")
        note = reply.json["content"]
        assert reply.status == 200 and len(note) < 300, note
        assert note.startswith("*(I skipped ") and " and 7 more: not a format I can read" in note
        assert chat.model.requests == []


async def test_an_image_discord_does_not_deliver_gets_one_sentence_and_nothing_is_asked(chat_bot, world) -> None:
    async with chat_bot(discord={"download_timeout_s": 0.3}) as chat:
        stalled = image(chat, "cat.png")
        chat.dc.cut_download(stalled)
        await post(chat, "what is this?", stalled)
        await chat.answer(world.channel_id, "I couldn't download cat.png from Discord. Please try again.")
        assert chat.model.requests == [] and await chat.stored_turns(world.channel_id) == []
