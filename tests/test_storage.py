"""The embedded Redis: started by the bot itself when REDIS_URL is unset, data kept across restarts."""

from __future__ import annotations

import re
from pathlib import Path

from bot.embedded_redis import find_server_binary
from bot.storage import open_redis
from tests.conftest import needs_server_binary

pytestmark = needs_server_binary


async def test_embedded_redis_keeps_data_across_restarts(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    binary = find_server_binary()
    assert binary is not None
    async with open_redis(None, data_dir) as handle:
        # The start-up line says which server runs, where it came from, and where its data is.
        assert re.fullmatch(
            rf"embedded {binary.name} \d+\.\d+\.\d+ from {binary.source} in {data_dir}", handle.description
        )
        await handle.client.rpush("dcb:conv:{1}:turns", "hello")
        config = await handle.client.config_get("append*")
        assert (config["appendonly"], config["appendfsync"]) == ("yes", "everysec")
        assert await handle.client.config_get("port") == {"port": "0"}, "no TCP port"
    assert (data_dir / "bot.rdb").exists(), "SHUTDOWN SAVE wrote the dataset"
    assert not (data_dir / "redis.pid").exists(), "the server exited (it removes its pidfile)"
    async with open_redis(None, data_dir) as handle:
        assert await handle.client.lrange("dcb:conv:{1}:turns", 0, -1) == [b"hello"]
