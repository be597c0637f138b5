"""INTERACTION_CREATE payload builders shaped like Discord's, and the registry of live interactions."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from .discord_snowflakes import as_id
from .discord_world import World

APPLICATION_COMMAND, MESSAGE_COMPONENT, AUTOCOMPLETE, MODAL_SUBMIT = 2, 3, 4, 5
OPTION_TYPES = {bool: 5, int: 4, float: 10, str: 3}
Options = dict[str, Any] | list[dict[str, Any]] | None


@dataclass
class InteractionCallback:
    """One POST /interactions/{id}/{token}/callback."""

    interaction_id: int
    type: int  # 4 message, 5 deferred, 6 deferred update, 7 update, 8 autocomplete, 9 modal
    data: dict[str, Any] | None
    at: float
    message_id: int | None = None


@dataclass
class InteractionState:
    payload: dict[str, Any]
    channel_id: int
    guild_id: int | None
    callbacks: list[InteractionCallback] = field(default_factory=list)
    original_id: int | None = None
    followup_ids: list[int] = field(default_factory=list)

    @property
    def id(self) -> int:
        return int(self.payload["id"])

    @property
    def token(self) -> str:
        return str(self.payload["token"])

    @property
    def responded(self) -> bool:
        return bool(self.callbacks)


class InteractionRegistry:
    def __init__(self) -> None:
        self.by_id: dict[int, InteractionState] = {}
        self.by_token: dict[str, InteractionState] = {}
        self.callbacks: list[InteractionCallback] = []

    def register(self, payload: dict[str, Any]) -> InteractionState:
        """Idempotent: delivering the same INTERACTION_CREATE twice keeps one server-side state."""
        if int(payload["id"]) in self.by_id:
            return self.by_id[int(payload["id"])]
        guild_id = payload.get("guild_id")
        state = InteractionState(payload, int(payload["channel_id"]), int(guild_id) if guild_id else None)
        self.by_id[state.id] = state
        self.by_token[state.token] = state
        return state


def option_list(options: Options) -> list[dict[str, Any]]:
    """``{"name": value}`` → typed option dicts (str 3, int 4, bool 5, float 10); lists pass through."""
    if options is None:
        return []
    if isinstance(options, list):
        return options
    return [{"name": k, "type": OPTION_TYPES.get(type(v), 3), "value": v} for k, v in options.items()]


class NotDeliverable(ValueError):
    """Discord would not deliver this interaction: its client offers only the commands and options as
    registered, and checks each value (type, range, length, choices, required) before sending."""


_VALUE_TYPES: dict[int, tuple[type, ...]] = {3: (str,), 4: (int,), 5: (bool,), 10: (int, float)}
_SNOWFLAKE_TYPES = frozenset({6, 7, 8, 9, 11})  # user, channel, role, mentionable, attachment: an id


def registered_options(
    command: dict[str, Any],
    values: dict[str, Any],
    *,
    subcommand: str | None,
    group: str | None,
    in_dm: bool,
) -> list[dict[str, Any]]:
    """``{"name": value}`` typed as the registered ``command`` declares its options, so a stale
    registration yields exactly what Discord would send for it. Raises NotDeliverable for what
    Discord's client would refuse."""
    name = command["name"]
    if in_dm and (command.get("dm_permission") is False or 1 not in (command.get("contexts") or [0, 1, 2])):
        raise NotDeliverable(f"/{name} is not offered in DMs")
    schema = command.get("options") or []
    for level, wanted in ((2, group), (1, subcommand)):
        if wanted is not None:
            found = next((o for o in schema if o.get("type") == level and o["name"] == wanted), None)
            if found is None:
                raise NotDeliverable(f"/{name} has no subcommand {wanted!r}")
            schema = found.get("options") or []
    if any(o.get("type") in (1, 2) for o in schema):
        raise NotDeliverable(f"/{name} needs a subcommand")
    declared = {o["name"]: o for o in schema}
    for key, value in values.items():
        option = declared.get(key)
        if option is None:
            raise NotDeliverable(f"/{name} has no option {key!r}")
        _check_value(name, option, value)
    missing = [o["name"] for o in schema if o.get("required") and o["name"] not in values]
    if missing:
        raise NotDeliverable(f"/{name} requires {missing}")
    return [{"name": key, "type": declared[key]["type"], "value": value} for key, value in values.items()]


def _check_value(command: str, option: dict[str, Any], value: Any) -> None:
    kind = option["type"]
    where = f"/{command} {option['name']}"
    if kind in _SNOWFLAKE_TYPES:
        if not str(value).isdigit():
            raise NotDeliverable(f"{where} takes an id")
        return
    types = _VALUE_TYPES.get(kind, ())
    if not isinstance(value, types) or (kind != 5 and isinstance(value, bool)):
        raise NotDeliverable(f"{where} takes option type {kind}, not {value!r}")
    if option.get("choices") and value not in [c["value"] for c in option["choices"]]:
        raise NotDeliverable(f"{where} takes one of its choices, not {value!r}")
    measure = len(value) if kind == 3 else value
    low = option.get("min_length") if kind == 3 else option.get("min_value")
    high = option.get("max_length") if kind == 3 else option.get("max_value")
    if (low is not None and measure < low) or (high is not None and measure > high):
        raise NotDeliverable(f"{where} takes {low}..{high}, not {value!r}")


def nest_options(options: list[dict[str, Any]], subcommand: str | None, group: str | None) -> list[dict]:
    if subcommand is not None:
        options = [{"name": subcommand, "type": 1, "options": options}]
    if group is not None:
        options = [{"name": group, "type": 2, "options": options}]
    return options


def base_payload(
    world: World,
    kind: int,
    data: dict[str, Any],
    *,
    user: dict[str, Any] | int,
    channel_id: int,
    permissions: int | None = None,
    locale: str = "en-US",
    message: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything an INTERACTION_CREATE carries around ``data``. In guilds ``member.permissions``
    comes from the user's roles unless ``permissions`` is given (e.g. to withhold Manage Server)."""
    iid = world.ids.next()
    uid = as_id(user)
    guild_id = world.guild_of(channel_id)
    user_perms = world.channel_permissions(channel_id, uid) if guild_id else 0
    if permissions is not None:
        user_perms = permissions
    channel = {**world.channels[channel_id], "permissions": str(user_perms)}
    payload: dict[str, Any] = {
        "id": str(iid),
        "application_id": str(world.bot_id),
        "type": kind,
        "data": data,
        "token": f"itok.{iid}.{secrets.token_hex(12)}",
        "version": 1,
        "channel_id": str(channel_id),
        "channel": channel,
        "app_permissions": str(world.channel_permissions(channel_id, world.bot_id)),
        "locale": locale,
        "entitlements": [],
        "entitlement_sku_ids": [],
        "attachment_size_limit": 10 * 1024 * 1024,
    }
    if guild_id is not None:
        guild = world.guilds[guild_id]
        member = guild.members.get(uid) or world.member_payload(uid, (), None)
        payload.update(
            guild_id=str(guild_id),
            guild_locale=guild.data["preferred_locale"],
            context=0,
            guild={"id": str(guild_id), "locale": guild.data["preferred_locale"], "features": []},
            member={**member, "permissions": str(user_perms)},
            authorizing_integration_owners={"0": str(guild_id)},
        )
    else:
        payload.update(user=world.users[uid], context=1, authorizing_integration_owners={"0": "0"})
    if message is not None:
        payload["message"] = message
    return payload


def command_data(
    name: str,
    options: Options,
    *,
    command_id: int,
    subcommand: str | None = None,
    group: str | None = None,
    command_guild_id: int | None = None,
    resolved: dict[str, Any] | None = None,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": str(command_id),
        "name": name,
        "type": 1,
        "options": nest_options(option_list(options), subcommand, group),
    }
    if command_guild_id is not None:
        data["guild_id"] = str(command_guild_id)
    if resolved:
        data["resolved"] = resolved
    return data


def autocomplete_data(
    name: str,
    focused: str,
    value: str,
    options: Options,
    *,
    command_id: int,
    subcommand: str | None = None,
    group: str | None = None,
    command_guild_id: int | None = None,
) -> dict[str, Any]:
    opts = [o for o in option_list(options) if o["name"] != focused]
    opts.append({"name": focused, "type": 3, "value": value, "focused": True})
    return command_data(
        name, opts, command_id=command_id, subcommand=subcommand, group=group, command_guild_id=command_guild_id
    )


def message_command_data(name: str, target: dict[str, Any], *, command_id: int) -> dict[str, Any]:
    return {
        "id": str(command_id),
        "name": name,
        "type": 3,
        "target_id": target["id"],
        "resolved": {"messages": {target["id"]: target}},
    }


def modal_submit_data(custom_id: str, values: dict[str, str], *, layout: str = "row") -> dict[str, Any]:
    """Text-input values as Discord returns them: ``layout="row"`` wraps each input in an action
    row (type 1), ``layout="label"`` in a label component (type 18); discord.py 2.7 reads both."""
    components = []
    for input_id, value in values.items():
        text_input = {"type": 4, "custom_id": input_id, "value": value}
        if layout == "label":
            components.append({"type": 18, "component": text_input})
        else:
            components.append({"type": 1, "components": [text_input]})
    return {"custom_id": custom_id, "components": components}


def component_data(custom_id: str, component_type: int = 2, values: list[str] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"custom_id": custom_id, "component_type": component_type}
    if values is not None:
        data["values"] = values
    return data
