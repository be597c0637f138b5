"""The extra_body shortcut in ChatModel (messages bypass the SDK's recursive param walk) must not change a
byte of meaning: the server receives exactly the body the SDK's ordinary call would send. Likewise the
chunks read as plain JSON (no ChatCompletionChunk per chunk) give what the SDK's chunk objects hold."""

from __future__ import annotations

from typing import Any

from bot.conversation import ChatRequest, TurnDone
from bot.llm import ChatModel, Finish, Usage
from bot.services import Services
from tests.conftest import replace_settings
from tests.standins.model_server import ModelServer, Reply

MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "You are a bot. Today is 2026-01-01."},
    {"role": "user", "content": "Héllo «world» 🌍 <|endoftext|>", "name": "Zoe_1"},
    {"role": "assistant", "content": "Hi!\n```py\nprint('x')\n```"},
    {"role": "user", "content": "again", "name": "bob"},
]


async def drain(model: ChatModel, messages: list[dict[str, Any]]) -> None:
    async for event in model.stream(messages):
        if isinstance(event, Finish):
            return


async def test_body_is_what_the_sdk_sends_without_the_shortcut(services_factory, make_settings, model_server) -> None:
    for settings in (make_settings(), replace_settings(make_settings(), model={"temperature": 0.3})):
        services: Services = services_factory(settings)
        model = services.chat.model
        await drain(model, MESSAGES)
        ordinary = {**model.request_params(MESSAGES), "messages": MESSAGES}
        del ordinary["extra_body"]
        stream = await services.openai.chat.completions.create(**ordinary)
        async for _ in stream:
            pass
        shortcut, plain = model_server.requests[-2].body, model_server.requests[-1].body
        assert shortcut == plain
        assert list(shortcut) == list(plain)  # same keys, same order
        assert shortcut["messages"] == MESSAGES
        assert shortcut["stream"] is True and shortcut["stream_options"] == {"include_usage": True}
        assert shortcut["max_completion_tokens"] == settings.model.max_reply_tokens
        assert shortcut.get("temperature") == settings.model.temperature


async def test_estimated_prompt_tokens_equal_a_recount_of_the_prompt(
    services: Services, model_server: ModelServer
) -> None:
    """Without a usage chunk the prompt is estimated from stored counts, not re-tokenised: same number."""
    model_server.responder = lambda body: Reply("an answer of some words", usage=None)
    done = None
    for i in range(3):
        request = ChatRequest(1, 2, 3, "Zoë", 100 + i, f"question {i} «é»", bot_name="Bot", guild_name="G")
        async for event in services.chat.turn(request):
            if isinstance(event, TurnDone):
                done = event
    assert done is not None and done.usage.estimated
    counter = services.chat.counter
    sent = model_server.requests[-1].messages
    recount = sum(counter.message(m["content"], m.get("name")) for m in sent) + 3  # REPLY_PRIMING_TOKENS
    assert len(sent) == 6 and done.usage.prompt_tokens == recount


async def test_chunks_read_as_json_give_what_the_sdks_chunk_objects_hold(services: Services, model_server) -> None:
    model = services.chat.model
    for reply in (
        Reply("Héllo «world» 🌍, in several small pieces.", chunk_size=3, usage=(12, 9)),
        Reply("cut short", finish_reason="length", usage=None),
        Reply("", usage=(5, 0)),
    ):
        model_server.script(reply, reply)
        events = [event async for event in model.stream(MESSAGES)]
        ordinary = {**model.request_params(MESSAGES), "messages": MESSAGES}
        del ordinary["extra_body"]
        texts: list[str] = []
        finish, usage = None, None
        async for chunk in await services.openai.chat.completions.create(**ordinary):
            if chunk.usage is not None:
                usage = Usage(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
            for choice in chunk.choices:
                if choice.delta and choice.delta.content:
                    texts.append(choice.delta.content)
                finish = choice.finish_reason or finish
        assert events == [*texts, Finish(finish, usage)]
