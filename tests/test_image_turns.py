"""Turns with images against a real Redis and the loopback model server (no Discord): round trips,
the token budget, and nothing stored when the turn fails."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from bot.conversation import ChatRequest
from bot.errors import ImagesNotRead, MessageTooLong, ModelError
from bot.images import PreparedImage, prepare
from bot.settings import ImageSettings
from tests.standins.model_server import Error, ModelServer
from tests.test_conversation import CHANNEL, request, run_turn, stored
from tests.test_images import make_image


def picture(name: str = "cat.png", size: tuple[int, int] = (1024, 1024)) -> PreparedImage:
    return prepare(make_image(size, "PNG"), name, ImageSettings())


def with_images(text: str, *images: PreparedImage, **options: Any) -> ChatRequest:
    return dataclasses.replace(request(text, **options), images=tuple(images))


async def test_two_round_trips_per_turn_with_images_new_and_stored(
    services_factory, counted_redis, model_server: ModelServer
) -> None:
    client, proxy = counted_redis
    services = services_factory(redis_client=client)
    for index in range(3):
        before = proxy.round_trips
        await run_turn(services, with_images(f"look {index}", picture(f"{index}.png")))
        assert proxy.round_trips - before == 2
    before = proxy.round_trips
    await run_turn(services, request("which was first?"))
    assert proxy.round_trips - before == 2
    assert len(model_server.requests[-1].images) == 3


async def test_image_tokens_count_in_the_budget(services_factory, make_settings, model_server: ModelServer, redis):
    # 1024 x 1024 costs 765 tokens (high/auto). A window of 2,000 with 1,000 for the reply leaves room
    # for one image plus text, not two.
    settings = make_settings(model={"context_window": 2_000, "max_reply_tokens": 1_000})
    services = services_factory(settings)
    await run_turn(services, with_images("first", picture("a.png")))
    await run_turn(services, with_images("second", picture("b.png")))
    last = model_server.requests[-1]
    assert len(last.images) == 1, "the older image turn no longer fits"
    assert [m["role"] for m in last.messages] == ["system", "assistant", "user"]  # its answer still fits
    with pytest.raises(MessageTooLong):
        await run_turn(services, with_images("both", picture("c.png"), picture("d.png")))


async def test_a_failed_turn_stores_neither_the_turn_nor_its_images(services, model_server: ModelServer, redis):
    model_server.script(Error(500))
    with pytest.raises(ModelError):
        await run_turn(services, with_images("look", picture()))
    assert await stored(redis, services) == []
    assert not await redis.exists(services.keys.images(CHANNEL), services.keys.image_order(CHANNEL))


async def test_forget_clears_the_kept_images(services, redis) -> None:
    await run_turn(services, with_images("look", picture()))
    assert await redis.hlen(services.keys.images(CHANNEL)) == 1
    assert await services.chat.forget(CHANNEL) == 2
    assert not await redis.exists(services.keys.images(CHANNEL), services.keys.image_order(CHANNEL))


async def test_kept_images_expire_with_the_conversation(services, redis) -> None:
    await run_turn(services, with_images("look", picture()))
    ttl = await redis.pttl(services.keys.turns(CHANNEL))
    for key in (services.keys.images(CHANNEL), services.keys.image_order(CHANNEL)):
        assert abs(await redis.pttl(key) - ttl) < 5_000


async def test_a_text_only_model_is_shown_no_image_and_the_turn_says_which_it_ignored(
    services_factory, make_settings, model_server: ModelServer, redis
) -> None:
    vision = services_factory()
    await run_turn(vision, with_images("remember this", picture("kept.png")))
    # The same conversation, now answered by a model declared text-only (as /model may choose).
    text_only = services_factory(make_settings(model={"images": False}))
    _, done = await run_turn(text_only, with_images("and this one?", picture("new.png")))
    assert done.ignored_images == ("new.png",)
    last = model_server.requests[-1]
    assert last.images == [] and last.messages[1]["content"] == "remember this\n[image: kept.png]"
    assert "images" not in (await stored(redis, text_only))[-2], "nothing stored that it did not see"
    with pytest.raises(ImagesNotRead):
        await run_turn(text_only, with_images("", picture("only.png")))
    assert len(model_server.requests) == 2


def test_the_text_only_sentence_stays_short_whatever_the_names() -> None:
    error = ImagesNotRead(tuple(f"{'x' * 500}-{i}.png" for i in range(10)))
    assert len(error.user_message) < 200 and error.user_message.endswith(" and 7 more.")
