"""Deployment settings from the environment (shards, REDIS_URL's kind, LOG_LEVEL) and the [health] section."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import load_settings
from bot.deployment import is_cluster_url, plain_redis_url
from bot.errors import ConfigError
from bot.settings import HealthSettings

ROOT = Path(__file__).resolve().parent.parent
ENV = {"DISCORD_TOKEN": "t", "OPENAI_API_KEY": "k"}


def settings(tmp_path: Path, text: str = "", **env: str):
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return load_settings(path, ENV | env)


def test_the_shipped_health_section_is_the_default_and_off() -> None:
    health = load_settings(ROOT / "config.toml", ENV).health
    assert health == HealthSettings() and not health.enabled


def test_shards_from_the_environment(tmp_path: Path) -> None:
    assert (settings(tmp_path).secrets.shard_count, settings(tmp_path).secrets.shard_ids) == (None, None)
    secrets = settings(tmp_path, SHARD_COUNT="4", SHARD_IDS="2, 3").secrets
    assert (secrets.shard_count, secrets.shard_ids) == (4, (2, 3))
    assert settings(tmp_path, SHARD_COUNT="2").secrets.shard_ids is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SHARD_COUNT": "0"}, "SHARD_COUNT must be a whole number of 1 or more, got '0'"),
        ({"SHARD_COUNT": "two"}, "SHARD_COUNT must be a whole number"),
        ({"SHARD_IDS": "0"}, "SHARD_IDS needs SHARD_COUNT"),
        ({"SHARD_COUNT": "2", "SHARD_IDS": "0;1"}, "SHARD_IDS must be shard numbers separated by commas"),
        ({"SHARD_COUNT": "2", "SHARD_IDS": "1,1"}, "SHARD_IDS lists a shard twice"),
        ({"SHARD_COUNT": "2", "SHARD_IDS": "0,2"}, "SHARD_IDS [2] out of range: shards are numbered 0 to 1"),
        ({"REDIS_URL": "http://localhost:6379"}, "REDIS_URL must start with one of redis://"),
        ({"REDIS_URL": "localhost:6379"}, "REDIS_URL must start with one of"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got 'loud'"),
    ],
)
def test_bad_deployment_settings_are_named(tmp_path: Path, env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings(tmp_path, **env)
    assert message in str(caught.value)


def test_log_level_overrides_the_file(tmp_path: Path) -> None:
    assert settings(tmp_path, '[logging]\nlevel = "WARNING"\n', LOG_LEVEL="debug").logging.level == "DEBUG"
    assert settings(tmp_path, '[logging]\nlevel = "WARNING"\n').logging.level == "WARNING"


def test_cluster_urls() -> None:
    assert is_cluster_url("redis+cluster://10.0.0.1:7000") and is_cluster_url("rediss+cluster://u:p@h:7000/0")
    assert not is_cluster_url("redis://h:6379") and not is_cluster_url(None)
    assert plain_redis_url("rediss+cluster://u:p@h:7000/0") == "rediss://u:p@h:7000/0"


def test_health_port_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"health\.port must be between 0 and 65535"):
        settings(tmp_path, "[health]\nport = 70000\n")
