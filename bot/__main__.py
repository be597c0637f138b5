"""Command line: ``python -m bot [--config PATH] [run|sync|check]``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

import discord

from bot.app import ChatBot
from bot.check import run_checks
from bot.config import ENV_VARS, Settings, load_settings
from bot.errors import ConfigError
from bot.services import open_services
from bot.tuning import tune_gc

log = logging.getLogger("bot")

EXIT_CONFIG_ERROR = 2
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
STOP_GRACE_S = 5.0
T = TypeVar("T")

COMMANDS = {
    "run": "connect to Discord and answer (the default)",
    "sync": "publish the slash commands to Discord, then exit (run after adding or changing commands)",
    "check": "check the config, the Discord token, Redis and the models, one line each; exit 1 if any fails",
}


def parser() -> argparse.ArgumentParser:
    env_help = "\n".join(f"  {name:<20} {text}" for name, text in ENV_VARS.items())
    command_help = "\n".join(f"  {name:<20} {text}" for name, text in COMMANDS.items())
    p = argparse.ArgumentParser(
        prog="python -m bot",
        description="A Discord chat bot on any OpenAI-compatible model, with history in Redis.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"commands:\n{command_help}\n\nenvironment variables (secrets come only from here):\n{env_help}",
    )
    p.add_argument("command", nargs="?", default="run", choices=COMMANDS, help="what to do (default: run)")
    p.add_argument(
        "--config",
        default="config.toml",
        metavar="PATH",
        help="the settings file (default: ./config.toml); relative paths in it resolve against its folder",
    )
    return p


async def stoppable(command: Coroutine[Any, Any, T]) -> T | None:
    """Run ``command``; SIGINT or SIGTERM cancel it, so every ``async with`` in it unwinds (the bot
    closes, the embedded Redis stops) whatever the moment, start-up included, within seconds. Returns
    None when stopped that way."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    signalled = False

    def stop() -> None:
        nonlocal signalled
        if not signalled:
            # Unwinding that hangs (discord.py waiting on a gateway that stopped answering its close
            # handshake) is cancelled again after a grace period; the embedded Redis still stops, in its
            # thread, which asyncio.run waits for. A second signal cuts it short at once.
            loop.call_later(STOP_GRACE_S, task.cancel)
        signalled = True
        task.cancel()

    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop)
    try:
        return await command
    except asyncio.CancelledError:
        if not signalled:
            raise
        return None
    finally:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)


async def run(settings: Settings) -> None:
    tune_gc()
    # SIGINT/SIGTERM cancel this (see stoppable) in every state, logging in, connecting or running: the
    # bot's ``async with`` then closes it, and the services after it.
    async with open_services(settings) as services, ChatBot(services) as bot:
        await bot.start(settings.secrets.discord_token)


async def sync(settings: Settings) -> None:
    async with open_services(settings) as services, ChatBot(services) as bot:
        await bot.login(settings.secrets.discord_token)  # runs setup_hook, which loads the cogs
        commands = await bot.tree.sync()
        print(f"Published {len(commands)} slash command(s): {', '.join(c.name for c in commands) or 'none'}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = load_settings(args.config, os.environ)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    discord.utils.setup_logging(level=getattr(logging, settings.logging.level.upper()), root=True)
    try:
        if args.command == "check":
            code = asyncio.run(stoppable(run_checks(settings, args.config, sys.stdout)))
            return 1 if code is None else code  # stopped before every check passed
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
