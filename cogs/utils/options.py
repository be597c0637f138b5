"""What a stale command list lets through: Discord checks a slash command's options against the
commands it has registered, so after an upgrade and before ``python -m bot sync`` it may deliver
options of another type, out of the bot's range, outside its choices, or a guild-only command in a
DM. ``check_invocation`` runs before any command does (``BotTree.interaction_check``) and turns each
into an error the tree answers in one sentence, instead of an exception deep inside the command."""

from __future__ import annotations

from typing import Any

import discord
from discord import AppCommandOptionType, app_commands

from cogs.utils.text import shorten

_SUBCOMMAND_TYPES = (AppCommandOptionType.subcommand.value, AppCommandOptionType.subcommand_group.value)


class InvalidOption(app_commands.AppCommandError):
    """An option's value is of the right type but outside what the command takes."""

    def __init__(self, user_message: str) -> None:
        super().__init__(user_message)
        self.user_message = user_message


def check_invocation(interaction: discord.Interaction[Any]) -> None:
    """Raise NoPrivateMessage, CommandSignatureMismatch or InvalidOption for a slash command the
    bot's own definition would not accept. An unknown command is left to discord.py (CommandNotFound)."""
    if interaction.type is not discord.InteractionType.application_command:
        return
    command = interaction.command
    if not isinstance(command, app_commands.Command):
        return
    if interaction.guild_id is None and (command.guild_only or getattr(command.root_parent, "guild_only", False)):
        raise app_commands.NoPrivateMessage()
    params = {param.display_name: param for param in command.parameters}
    given = _leaf_options(interaction.data or {})
    for option in given:
        param = params.get(option.get("name", ""))
        if param is None or option.get("type") != param.type.value:
            raise app_commands.CommandSignatureMismatch(command)
        problem = _problem(param, option.get("value"))
        if problem:
            raise InvalidOption(problem)
    names = {option.get("name") for option in given}
    if any(param.required and name not in names for name, param in params.items()):
        raise app_commands.CommandSignatureMismatch(command)


def _leaf_options(data: Any) -> list[dict[str, Any]]:
    """The options of the invoked (sub)command: under its subcommand and group, if any."""
    options = data.get("options") or []
    while options and options[0].get("type") in _SUBCOMMAND_TYPES:
        options = options[0].get("options") or []
    return options


def _problem(param: app_commands.Parameter, value: Any) -> str | None:
    """Why ``value`` does not suit ``param`` (one sentence for the user), or None."""
    name = param.display_name
    if param.choices:
        allowed = [choice.value for choice in param.choices]
        if value not in allowed:
            names = ", ".join(str(value) for value in allowed)
            return f"`{name}` must be one of: {shorten(names, 200)}."
        return None
    kind = param.type
    if kind is AppCommandOptionType.string:
        if not isinstance(value, str):
            return f"`{name}` must be text."
        return _bounds(name, len(value), param.min_value, param.max_value, " characters long")
    if kind is AppCommandOptionType.integer:
        if not isinstance(value, int) or isinstance(value, bool):
            return f"`{name}` must be a whole number."
        return _bounds(name, value, param.min_value, param.max_value)
    if kind is AppCommandOptionType.number:
        if not isinstance(value, int | float) or isinstance(value, bool):
            return f"`{name}` must be a number."
        return _bounds(name, value, param.min_value, param.max_value)
    if kind is AppCommandOptionType.boolean and not isinstance(value, bool):
        return f"`{name}` must be true or false."
    return None


def _bounds(name: str, value: float, low: float | None, high: float | None, unit: str = "") -> str | None:
    if (low is not None and value < low) or (high is not None and value > high):
        if low is not None and high is not None:
            return f"`{name}` must be between {low:g} and {high:g}{unit}."
        return (
            f"`{name}` must be at least {low:g}{unit}."
            if low is not None
            else f"`{name}` must be at most {high:g}{unit}."
        )
    return None
