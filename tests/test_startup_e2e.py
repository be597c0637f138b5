"""Start-up against a Discord that cannot be used, with ``python -m bot`` and ``sync`` as real processes:
one line per attempt naming the cause, never a traceback, a bounded ``sync``, and SIGTERM stopping the
bot at once in every state (logging in, waiting to retry, connecting the gateway).

Every server here is on 127.0.0.1: a port nothing listens on, a server that accepts and never answers,
the stand-in Discord answering 404 or 400, and a name under ``.invalid`` that never resolves."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import TEST_API_KEY, TEST_DISCORD_TOKEN
from tests.harness import BotProcess, bot_env, start_bot_process, stop_bot_process, write_config
from tests.standins.unreachable import UNRESOLVABLE_HOST, SilentServer, resolves_fast, unused_port

CONNECT_TIMEOUT_S = 0.5
STOP_WITHIN_S = 10.0  # SIGTERM to exit, generous for a loaded 2-core machine; typically well under 1 s
ATTEMPT = re.compile(r"WARNING .*Cannot (?P<what>.+?) at (?P<where>\S+): (?P<cause>.+); trying again in \d+ s$")


def config(tmp_path: Path, key_prefix: str) -> Path:
    path = write_config(tmp_path, key_prefix)
    path.write_text(
        path.read_text(encoding="utf-8") + f"\n[discord]\nconnect_timeout_s = {CONNECT_TIMEOUT_S}\n", encoding="utf-8"
    )
    return path


class Output:
    """A bot process's output (stdout and stderr together), read as it comes."""

    def __init__(self, process: BotProcess) -> None:
        self.process = process

    @property
    def lines(self) -> list[str]:
        return self.process.output().decode().splitlines()

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    async def wait_for(self, pattern: re.Pattern[str], count: int = 1, timeout: float = 20.0) -> list[re.Match[str]]:
        """The first ``count`` lines matching ``pattern`` (more may have come by the time it looks)."""

        async def read() -> list[re.Match[str]]:
            while len(found := [m for line in self.lines if (m := pattern.search(line))]) < count:
                if self.process.returncode is not None:
                    raise AssertionError(f"the process ended before {count} x {pattern.pattern!r}:\n{self.text}")
                await asyncio.sleep(0.05)
            return found[:count]

        try:
            return await asyncio.wait_for(read(), timeout)
        except TimeoutError:
            raise AssertionError(f"no {count} x {pattern.pattern!r} within {timeout} s:\n{self.text}") from None

    async def finish(self, timeout: float) -> int:
        return await asyncio.wait_for(self.process.wait(), timeout)


@contextlib.asynccontextmanager
async def bot_process(*args: str, env: dict[str, str]) -> AsyncIterator[Output]:
    process = await start_bot_process(*args, env=env)
    try:
        yield Output(process)
    finally:
        await stop_bot_process(process)


def assert_clean(output: Output) -> None:
    """No traceback, no secret, no colour codes in a pipe, no voice-library warnings (the bot has no voice)."""
    assert "Traceback" not in output.text, output.text
    assert TEST_DISCORD_TOKEN not in output.text and TEST_API_KEY not in output.text
    assert "\x1b[" not in output.text, "colour only on a terminal"
    assert "PyNaCl" not in output.text and "davey" not in output.text, output.text


async def sigterm_stops_it(output: Output, sig: signal.Signals = signal.SIGTERM) -> None:
    output.process.send_signal(sig)
    assert await output.finish(STOP_WITHIN_S) == 0, output.text
    assert f"{sig.name} received: stopping" in output.text
    assert_clean(output)


@pytest.fixture
def env(discord_standin, model_server, redis_url) -> dict[str, str]:
    return bot_env(discord_standin, model_server, redis_url)


# ---- python -m bot keeps trying, one line per attempt, and SIGTERM stops it -----------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_refused_login_is_retried_with_backoff_until_a_stop_signal(tmp_path, env, key_prefix, sig) -> None:
    base = f"http://127.0.0.1:{unused_port()}"
    async with bot_process("--config", str(config(tmp_path, key_prefix)), env=env | {"DISCORD_API_BASE": base}) as out:
        attempts = await out.wait_for(ATTEMPT, count=2)
        await sigterm_stops_it(out, sig)
    for attempt in attempts:
        assert attempt["what"] == "log in to Discord"
        assert attempt["where"] == f"{base}/api/v10"
        assert attempt["cause"] == "connection refused"
    delays = [int(d) for d in re.findall(r"trying again in (\d+) s", out.text)]
    assert delays[:2] == [1, 2], "the wait doubles"


async def test_a_host_name_that_does_not_resolve(tmp_path, env, key_prefix) -> None:
    if not resolves_fast():
        pytest.skip(f"the resolver here does not fail fast for {UNRESOLVABLE_HOST}")
    env = env | {"DISCORD_API_BASE": f"http://{UNRESOLVABLE_HOST}"}
    async with bot_process("--config", str(config(tmp_path, key_prefix)), env=env) as out:
        [attempt] = await out.wait_for(ATTEMPT)
        await sigterm_stops_it(out)
    assert attempt["cause"] == f"the host name {UNRESOLVABLE_HOST} does not resolve"


async def test_a_server_that_never_answers_times_out_each_attempt_and_sigterm_stops_it_mid_attempt(
    tmp_path, env, key_prefix
) -> None:
    async with SilentServer() as silent:
        env = env | {"DISCORD_API_BASE": f"http://127.0.0.1:{silent.port}"}
        async with bot_process("--config", str(config(tmp_path, key_prefix)), env=env) as out:
            [attempt] = await out.wait_for(ATTEMPT)
            # Signalled while the next attempt may be waiting on the silent server, or between attempts.
            await sigterm_stops_it(out)
    assert attempt["cause"] == f"no answer within {CONNECT_TIMEOUT_S:g} s"
    assert silent.connections >= 1


@pytest.mark.parametrize("gateway", ["refused", "silent"])
async def test_a_gateway_that_cannot_be_reached_is_retried_and_sigterm_stops_it(
    tmp_path, env, key_prefix, discord_standin, gateway
) -> None:
    """discord.py's own shard launcher retries every 5 s for ever, ignoring close(): SIGTERM used to
    leave the bot running, logging 'Session is closed' tracebacks."""
    async with SilentServer() as silent:
        port = unused_port() if gateway == "refused" else silent.port
        url = f"ws://127.0.0.1:{port}/gateway"
        env = env | {"DISCORD_GATEWAY_URL": url, "SHARD_COUNT": "1"}
        async with bot_process("--config", str(config(tmp_path, key_prefix)), env=env) as out:
            attempts = await out.wait_for(ATTEMPT, count=2)
            await sigterm_stops_it(out)
    assert {a["what"] for a in attempts} == {"connect shard 0 to the gateway"}
    assert attempts[0]["where"].startswith(url)
    expected = "connection refused" if gateway == "refused" else f"no answer within {CONNECT_TIMEOUT_S:g} s"
    assert {a["cause"] for a in attempts} == {expected}
    assert discord_standin.gateway.identify_count == 0


async def test_a_404_at_login_names_discord_api_base_and_stops(tmp_path, env, key_prefix, discord_standin) -> None:
    env = env | {"DISCORD_API_BASE": f"{discord_standin.api_base}/not-discord"}
    async with bot_process("--config", str(config(tmp_path, key_prefix)), env=env) as out:
        code = await out.finish(30)
    assert code == 1, out.text
    [line] = [text for text in out.lines if "DISCORD_API_BASE" in text]
    assert line.startswith("error: cannot log in to Discord at ")
    assert "answered 404: check DISCORD_API_BASE" in line
    assert not ATTEMPT.search(out.text), "a 404 is not retried"
    assert_clean(out)


@pytest.mark.parametrize("suffix", ["", "/", "/api", "/api/", "/api/v10"])
async def test_discord_api_base_accepts_the_root_api_and_versioned_forms(
    tmp_path, env, key_prefix, discord_standin, suffix
) -> None:
    env = env | {"DISCORD_API_BASE": discord_standin.api_base + suffix}
    async with bot_process("sync", "--config", str(config(tmp_path, key_prefix)), env=env) as out:
        code = await out.finish(30)
    assert code == 0, out.text
    assert "Published" in out.text
    assert not discord_standin.unknown_routes


# ---- sync gives up: one line, exit 1 --------------------------------------------------------------


@pytest.mark.parametrize("server", ["refused", "silent"])
async def test_sync_gives_up_on_an_unreachable_discord_with_one_line(tmp_path, env, key_prefix, server) -> None:
    async with SilentServer() as silent:
        port = unused_port() if server == "refused" else silent.port
        env = env | {"DISCORD_API_BASE": f"http://127.0.0.1:{port}"}
        async with bot_process("sync", "--config", str(config(tmp_path, key_prefix)), env=env) as out:
            code = await out.finish(30)
    assert code == 1, out.text
    cause = "connection refused" if server == "refused" else f"no answer within {CONNECT_TIMEOUT_S:g} s"
    assert out.lines[-1] == f"error: cannot log in to Discord at http://127.0.0.1:{port}/api/v10: {cause}"
    assert [line for line in out.lines if "annot" in line] == out.lines[-1:], "one line, no retries"
    assert_clean(out)


async def test_sync_refused_with_a_400_is_one_line(tmp_path, env, key_prefix, discord_standin) -> None:
    discord_standin.fail("PUT", "put_commands", 400, {"message": "Invalid Form Body", "code": 50035})
    async with bot_process("sync", "--config", str(config(tmp_path, key_prefix)), env=env) as out:
        code = await out.finish(30)
    assert code == 1, out.text
    assert out.lines[-1] == "error: Discord refused the slash commands (400): Invalid Form Body"
    assert_clean(out)


async def test_a_gateway_that_goes_away_while_running_is_one_line_per_reconnect(
    tmp_path, model_server, redis_url, key_prefix
) -> None:
    """discord.py logs each failed reconnect with a traceback: here it is one line naming the cause."""
    from tests.standins.discord_standin import DiscordStandin

    dc = DiscordStandin(token=TEST_DISCORD_TOKEN)
    await dc.start()
    env = bot_env(dc, model_server, redis_url)
    try:
        async with bot_process("--config", str(config(tmp_path, key_prefix)), env=env) as out:
            await dc.gateway.wait_identified(1, timeout=20)
            await dc.close()  # the gateway and REST go away: every reconnect is refused
            reconnect = re.compile(r"Attempting a reconnect for shard ID 0 in [\d.]+s: (?P<cause>.+)$")
            [attempt] = await out.wait_for(reconnect, timeout=30)
            await sigterm_stops_it(out)
    finally:
        await dc.close()
    assert attempt["cause"] == "connection refused"
