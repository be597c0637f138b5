"""The embedded Redis: started by the bot itself when REDIS_URL is unset, data kept across restarts."""

from __future__ import annotations

from pathlib import Path

from bot.storage import open_redis


async def test_embedded_redis_keeps_data_across_restarts(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    async with open_redis(None, data_dir) as handle:
        assert handle.description == f"embedded Redis in {data_dir}"
        await handle.client.rpush("dcb:conv:{1}:turns", "hello")
        config = await handle.client.config_get("append*")
        assert (config["appendonly"], config["appendfsync"]) == ("yes", "everysec")
    assert (data_dir / "bot.rdb").exists()
    async with open_redis(None, data_dir) as handle:
        assert await handle.client.lrange("dcb:conv:{1}:turns", 0, -1) == [b"hello"]
