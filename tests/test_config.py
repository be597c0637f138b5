"""config.toml validation and the command line's exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import load_settings
from bot.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
ENV = {"DISCORD_TOKEN": "t", "OPENAI_API_KEY": "k"}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_config_is_valid_and_matches_the_defaults() -> None:
    from bot.settings import Settings

    settings = load_settings(ROOT / "config.toml", ENV)
    defaults = Settings()
    for section in (
        "model",
        "discord",
        "history",
        "images",
        "redis",
        "stream",
        "tokens",
        "access",
        "voice",
        "personas",
        "usage",
        "limits",
        "logging",
    ):
        assert getattr(settings, section) == getattr(defaults, section), section


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, '[redis]\ndata_dir = "state"\n'), ENV)
    assert settings.resolve_path(settings.redis.data_dir) == tmp_path / "state"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[model]\ntimeout_s = "soon"\n', "model.timeout_s must be a number, got 'soon'"),
        ("[model]\nmax_reply_tokens = 1.5\n", "model.max_reply_tokens must be a whole number"),
        ("[model]\nnmae = 'x'\n", "unknown key model.nmae"),
        ("[modle]\n", "unknown section [modle]"),
        ("[stream]\nedit_interval_s = 0\n", "stream.edit_interval_s must be greater than 0"),
        ("[discord]\ndownload_timeout_s = -1\n", "discord.download_timeout_s must be greater than 0"),
        ("[access]\ndms = 'some'\n", "access.dms must be one of 'everyone', 'members', 'nobody', got 'some'"),
        ("[access]\nguilds = ['x']\n", "access.guilds[0] must be a whole number, got 'x'"),
        ("[access]\nroles = 5\n", "access.roles must be a list, got 5"),
        ("[model\n", "not valid TOML"),
        ("[voice]\nreply = 'loud'\n", "voice.reply must be one of 'text', 'voice', 'both', got 'loud'"),
        ("[voice]\ntts_format = 'pcm'\n", "voice.tts_format must be one of 'opus', 'mp3', 'wav', 'flac', 'aac'"),
        ("[voice]\ntts_max_chars = 5000\n", "voice.tts_max_chars must be between 1 and 4096, got 5000"),
        ("[voice]\ntts_timeout_s = 0\n", "voice.tts_timeout_s must be greater than 0"),
        ("[voice]\ntts_voice = ''\n", "voice.tts_model and voice.tts_voice must name"),
        ("[[usage.prices]]\nmodel = 'x'\ntts_per_million_chars = -1\n", "usage.prices[x] must be 0 or more"),
        ("[images]\ndetail = 'max'\n", "images.detail must be one of 'auto', 'low', 'high', got 'max'"),
        ("[images]\nmax_bytes = 0\n", "images.max_bytes must be between 1 and 20971520"),
        ("[images]\nmax_per_message = 11\n", "images.max_per_message must be between 1 and 10"),
        ("[images]\nmax_side = 10\n", "images.max_side must be between 64 and 8192"),
        ("[images]\nkeep_in_history = -1\n", "images.keep_in_history must be 0 or more"),
        ("[history]\nsummary_max_tokens = 8\n", "history.summary_max_tokens must be between 32 and 4096"),
        ("[history]\nsummary_model = 'nope'\n", "history.summary_model must name a model on offer"),
        ("[tokens]\nmargin = -1\n", "tokens.margin must be 0 or more, got -1"),
        ("[discord]\nconnect_timeout_s = 0\n", "discord.connect_timeout_s must be greater than 0"),
    ],
)
def test_bad_values_name_the_key_and_what_is_expected(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(write(tmp_path, text), ENV)
    assert message in str(raised.value)


def test_secrets_come_from_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    with pytest.raises(ConfigError, match="DISCORD_TOKEN is not set"):
        load_settings(path, {"OPENAI_API_KEY": "k"})
    with pytest.raises(ConfigError, match="OPENAI_API_KEY is not set"):
        load_settings(path, {"DISCORD_TOKEN": "t"})
    local = load_settings(path, {"DISCORD_TOKEN": "t", "OPENAI_BASE_URL": "http://127.0.0.1:11434/v1"})
    assert local.secrets.openai_base_url == "http://127.0.0.1:11434/v1"
    speech = {
        "DISCORD_TOKEN": "t",
        "OPENAI_API_KEY": "k",
        "TTS_BASE_URL": "http://127.0.0.1:8880/v1",
        "TTS_API_KEY": "s",
    }
    settings = load_settings(path, speech)
    assert (settings.secrets.tts_base_url, settings.secrets.tts_api_key) == ("http://127.0.0.1:8880/v1", "s")
    assert "t" not in repr(local.secrets).replace("Secrets", "").replace("redacted", "")


def test_the_playground_needs_no_discord_token(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    settings = load_settings(path, {"OPENAI_API_KEY": "k", "PLAYGROUND_PASSWORD": "pw"}, discord=False)
    assert settings.secrets.discord_token == ""
    assert settings.secrets.playground_password == "pw"
    with pytest.raises(ConfigError, match="OPENAI_API_KEY is not set"):
        load_settings(path, {}, discord=False)


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_cli_stops_with_exit_code_2_and_one_clear_line(tmp_path: Path) -> None:
    bad = write(tmp_path, "[model]\ncontext_window = 'big'\n")
    result = run_cli("--config", str(bad), env=ENV)
    assert result.returncode == 2
    assert result.stderr.strip() == "config error: config.toml: model.context_window must be a whole number, got 'big'"
    assert "Traceback" not in result.stderr
    missing = run_cli("--config", str(write(tmp_path, "")), env={})
    assert missing.returncode == 2 and "DISCORD_TOKEN is not set" in missing.stderr


def test_cli_help_lists_options_and_environment() -> None:
    from bot.config import ENV_VARS

    result = run_cli("--help", env={"COLUMNS": "100"})
    assert result.returncode == 0
    assert "--config" in result.stdout
    listing = result.stdout.split("environment variables")[1].splitlines()[1:]
    column = listing[0].index(ENV_VARS["DISCORD_TOKEN"][:10])
    for name in ENV_VARS:
        [row] = [line for line in listing if line.startswith(f"  {name} ")]
        assert row[column - 1] == " " and row[column] != " ", f"{name} runs into its description: {row!r}"
    assert all(len(line) <= 100 for line in listing), "descriptions wrap to the terminal"
    joined = " ".join(line.strip() for line in listing)
    redis = joined[joined.index("REDIS_URL") : joined.index("DISCORD_API_BASE")]
    for scheme in ("redis://", "rediss://", "unix://", "redis+cluster://", "rediss+cluster://"):
        assert scheme in redis, scheme


@pytest.mark.parametrize(
    ("redis_url", "message"),
    [
        ("redis://h:notaport/0", "REDIS_URL has a port that is not a number from 0 to 65535: 'notaport'"),
        ("redis://h:99999/0", "REDIS_URL has a port that is not a number from 0 to 65535: '99999'"),
        ("redis+cluster://user:pw@h:x", "REDIS_URL has a port that is not a number from 0 to 65535: 'x'"),
        ("http://h:6379", "REDIS_URL must start with one of redis://"),
    ],
)
def test_a_bad_redis_url_is_one_line_and_exit_2(tmp_path: Path, redis_url: str, message: str) -> None:
    result = run_cli("check", "--config", str(write(tmp_path, "")), env=ENV | {"REDIS_URL": redis_url})
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith(f"config error: {message}")
    assert "pw" not in result.stderr


def test_discord_api_base_forms(tmp_path: Path) -> None:
    from bot.deployment import discord_rest_base

    for given in ("https://chat.example", "https://chat.example/", "https://chat.example/api"):
        assert discord_rest_base(given) == "https://chat.example/api/v10"
    assert discord_rest_base("https://chat.example/api/v9") == "https://chat.example/api/v9", "kept as given"
    assert discord_rest_base("https://chat.example/api/v10/") == "https://chat.example/api/v10"
    with pytest.raises(ConfigError, match="DISCORD_API_BASE must be an http:// or https:// URL"):
        load_settings(write(tmp_path, ""), ENV | {"DISCORD_API_BASE": "chat.example"})
