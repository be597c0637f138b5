"""Command line: ``python -m bot [--config PATH] [run|sync|check]``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import signal
import sys
import textwrap
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

import discord

from bot.app import ChatBot
from bot.check import run_checks
from bot.config import ENV_VARS, load_settings
from bot.errors import ConfigError, StartupError
from bot.reachability import network_cause
from bot.services import open_services
from bot.settings import Settings
from bot.tuning import tune_gc

log = logging.getLogger("bot")

EXIT_CONFIG_ERROR = 2
EXIT_INTERRUPTED = 130  # the shell's code for Ctrl-C
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
STOP_GRACE_S = 5.0
T = TypeVar("T")

COMMANDS = {
    "run": "connect to Discord and answer (the default)",
    "sync": "publish the slash commands to Discord, then exit (run after adding or changing commands)",
    "check": "check the config, the Discord token, Redis and the models, one line each; exit 1 if any fails",
    "playground": "a local web chat on the same engine, to try personas (no Discord token needed)",
}


def help_table(rows: dict[str, str]) -> str:
    """Names in one column, their descriptions wrapped in the next (a long name never runs into its text)."""
    width = max(len(name) for name in rows) + 2
    text_width = max(40, shutil.get_terminal_size((100, 24)).columns - width - 4)
    lines = []
    for name, text in rows.items():
        wrapped = textwrap.wrap(text, text_width) or [""]
        lines.append(f"  {name:<{width}}{wrapped[0]}")
        lines.extend(f"  {'':<{width}}{more}" for more in wrapped[1:])
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bot",
        description="A Discord chat bot on any OpenAI-compatible model, with history in Redis.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            f"commands:\n{help_table(COMMANDS)}\n\n"
            f"environment variables (secrets come only from here):\n{help_table(ENV_VARS)}"
        ),
    )
    p.add_argument("command", nargs="?", default="run", choices=COMMANDS, help="what to do (default: run)")
    p.add_argument(
        "--config",
        default="config.toml",
        metavar="PATH",
        help="the settings file (default: ./config.toml); relative paths in it resolve against its folder",
    )
    p.add_argument("--host", default="127.0.0.1", help="playground: the address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=7860, help="playground: the port (default: 7860)")
    return p


async def stoppable(command: Coroutine[Any, Any, T]) -> T | None:
    """Run ``command``; SIGINT or SIGTERM cancel it, so every ``async with`` in it unwinds (the bot
    closes, the embedded Redis stops) whatever the moment, start-up included, within seconds. Returns
    None when stopped that way."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    signalled = False

    def stop(sig: signal.Signals) -> None:
        nonlocal signalled
        if not signalled:
            log.info("%s received: stopping", sig.name)
            # Unwinding that hangs (discord.py waiting on a gateway that stopped answering its close
            # handshake) is cancelled again after a grace period; the embedded Redis still stops, in its
            # thread, which asyncio.run waits for. A second signal cuts it short at once.
            loop.call_later(STOP_GRACE_S, task.cancel)
        signalled = True
        task.cancel()

    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop, sig)
    try:
        return await command
    except asyncio.CancelledError:
        if not signalled:
            raise
        return None
    finally:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)


def playground(settings: Settings, host: str, port: int) -> int:
    """The web playground, if its optional dependencies are installed."""
    from playground import REQUIREMENTS, missing_dependency

    if missing := missing_dependency():
        print(f"The playground needs {missing}: pip install -r {REQUIREMENTS}", file=sys.stderr)
        return 1
    from playground.server import main as serve_playground

    return serve_playground(settings, host, port)


async def run(settings: Settings) -> None:
    tune_gc()
    # SIGINT/SIGTERM cancel this (see stoppable) in every state, logging in, connecting or running: the
    # bot's ``async with`` then closes it, and the services after it.
    async with open_services(settings) as services, ChatBot(services) as bot:
        await bot.start(settings.secrets.discord_token)


async def sync(settings: Settings) -> None:
    timeout_s = settings.discord.connect_timeout_s
    async with open_services(settings) as services, ChatBot(services) as bot:
        bot.keep_trying = False  # a command run by hand reports an unreachable Discord instead of waiting
        await bot.login(settings.secrets.discord_token)  # runs setup_hook, which loads the cogs
        try:
            async with asyncio.timeout(timeout_s):
                commands = await bot.tree.sync()
        except TimeoutError:
            raise StartupError(f"Discord did not answer the slash command upload within {timeout_s:g} s") from None
        except discord.HTTPException as exc:
            raise StartupError(f"Discord refused the slash commands ({exc.status}): {exc.text}") from None
        except OSError as exc:
            raise StartupError(f"cannot reach Discord to publish the slash commands: {exc}") from None
        print(f"Published {len(commands)} slash command(s): {', '.join(c.name for c in commands) or 'none'}")


class OneLineReconnects(logging.Filter):
    """discord.py logs every failed shard reconnect ("Attempting a reconnect for shard ID ...") with
    the exception's whole traceback: a gateway outage fills the log with them. The cause in a few
    words, on the same line, is what the operator needs."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and str(record.msg).startswith("Attempting a reconnect"):
            record.msg = f"{record.msg}: %s"
            record.args = (*(record.args if isinstance(record.args, tuple) else ()), one_line_cause(exc))
            record.exc_info = record.exc_text = None
        return True


def one_line_cause(exc: BaseException) -> str:
    return network_cause(exc) or f"{type(exc).__name__}: {exc}"


def setup_logging(level: str) -> None:
    """discord.py's log setup, with colour only on a terminal (discord.py also colours inside Docker,
    which puts escape codes in every log file and pipe)."""
    handler = logging.StreamHandler()
    formatter = None
    if not handler.stream.isatty():
        formatter = logging.Formatter("[{asctime}] [{levelname:<8}] {name}: {message}", "%Y-%m-%d %H:%M:%S", style="{")
    discord.utils.setup_logging(
        handler=handler, formatter=formatter or discord.utils.MISSING, level=getattr(logging, level.upper()), root=True
    )
    logging.getLogger("discord.shard").addFilter(OneLineReconnects())


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = load_settings(args.config, os.environ, discord=args.command != "playground")
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    setup_logging(settings.logging.level)
    try:
        if args.command == "check":
            code = asyncio.run(stoppable(run_checks(settings, args.config, sys.stdout)))
            return 1 if code is None else code  # stopped before every check passed
        if args.command == "playground":
            return playground(settings, args.host, args.port)
        asyncio.run(stoppable(run(settings) if args.command == "run" else sync(settings)))
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    except discord.LoginFailure:
        print("Discord rejected DISCORD_TOKEN: check the token in the developer portal.", file=sys.stderr)
        return 1
    except discord.PrivilegedIntentsRequired:
        print(
            "Discord refused the Message Content intent ([discord] message_content = true): enable it in the "
            "developer portal (Bot > Privileged Gateway Intents) or set message_content = false.",
            file=sys.stderr,
        )
        return 1
    except StartupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C before the signal handlers are in place
        return EXIT_INTERRUPTED
    return 0


if __name__ == "__main__":
    sys.exit(main())
