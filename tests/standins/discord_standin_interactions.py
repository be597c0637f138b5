"""The stand-in's interaction senders: slash, message-menu and autocomplete commands, modal submits and
component clicks, built as Discord builds them and delivered as INTERACTION_CREATE.

A registered command (synced by the bot, or set with ``register_commands`` as a stale list) types the
options of ``send_command`` as registered and refuses (``NotDeliverable``) what Discord's client would
never send.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .discord_gateway import Gateway
from .discord_interactions import APPLICATION_COMMAND as SLASH
from .discord_interactions import (
    AUTOCOMPLETE,
    MESSAGE_COMPONENT,
    MODAL_SUBMIT,
    InteractionCallback,
    InteractionRegistry,
    InteractionState,
    Options,
    autocomplete_data,
    base_payload,
    command_data,
    component_data,
    message_command_data,
    modal_submit_data,
    registered_options,
)
from .discord_snowflakes import UserRef, as_id
from .discord_world import World

if TYPE_CHECKING:
    from .discord_rest import RestApi


class InteractionSenders:
    """Part of ``DiscordStandin`` (tests/standins/discord_standin.py), which sets these attributes."""

    world: World
    gateway: Gateway
    interactions: InteractionRegistry
    rest: RestApi
    commands: dict[int | None, list[dict[str, Any]]]

    async def send_interaction(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Register (so callbacks/webhooks resolve) and dispatch a ready INTERACTION_CREATE payload."""
        self.interactions.register(payload)
        self.gateway.route("INTERACTION_CREATE", payload, guild_id=self.world.guild_of(int(payload["channel_id"])))
        return payload

    async def _deliver(
        self,
        kind: int,
        data: dict[str, Any],
        *,
        user: UserRef,
        channel_id: int,
        permissions: int | None = None,
        locale: str = "en-US",
        message: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Wrap ``data`` in everything an INTERACTION_CREATE of ``kind`` carries, then send it."""
        payload = base_payload(
            self.world,
            kind,
            data,
            user=user,
            channel_id=channel_id,
            permissions=permissions,
            locale=locale,
            message=message,
        )
        return await self.send_interaction(payload)

    def _registered(self, name: str, channel_id: int, kind: int) -> dict[str, Any] | None:
        """The command as registered (guild scope first, then global), or None if it never was."""
        guild_id = self.world.guild_of(channel_id)
        for scope in ([guild_id] if guild_id is not None else []) + [None]:
            for cmd in self.commands.get(scope, []):
                if cmd["name"] == name and cmd.get("type", 1) == kind:
                    return cmd
        return None

    def _command_ref(self, name: str, channel_id: int, kind: int) -> tuple[int, int | None]:
        """(command id, guild scope) of a registered command, or a fresh id for an unsynced one."""
        cmd = self._registered(name, channel_id, kind)
        if cmd is None:
            return self.world.ids.next(), None
        return int(cmd["id"]), int(cmd["guild_id"]) if "guild_id" in cmd else None

    def register_commands(self, commands: list[dict[str, Any]], *, guild_id: int | None = None) -> list[dict]:
        """Set the registered commands as an earlier version of the bot synced them (a stale list);
        same as its PUT /applications/{id}/commands. Returns them with ids."""
        scope = guild_id
        self.commands[scope] = [self.rest.command_object(scope, dict(c), None) for c in commands]
        return self.commands[scope]

    async def send_command(
        self,
        name: str,
        *,
        user: UserRef,
        channel_id: int,
        options: Options = None,
        subcommand: str | None = None,
        group: str | None = None,
        permissions: int | None = None,
        locale: str = "en-US",
        resolved: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A slash command; ``options`` like ``{"prompt": "hi", "count": 2}`` or raw option dicts.
        For a registered command (synced, or ``register_commands``) a dict is typed as registered and
        checked as Discord's client checks it: NotDeliverable for what Discord would never send."""
        command_id, scope = self._command_ref(name, channel_id, 1)
        registered = self._registered(name, channel_id, 1)
        if registered is not None and not isinstance(options, list):
            options = registered_options(
                registered,
                options or {},
                subcommand=subcommand,
                group=group,
                in_dm=self.world.guild_of(channel_id) is None,
            )
        data = command_data(
            name,
            options,
            command_id=command_id,
            subcommand=subcommand,
            group=group,
            command_guild_id=scope,
            resolved=resolved,
        )
        return await self._deliver(
            SLASH, data, user=user, channel_id=channel_id, permissions=permissions, locale=locale
        )

    async def send_message_command(
        self, name: str, target: dict[str, Any], *, user: UserRef, permissions: int | None = None, locale: str = "en-US"
    ) -> dict[str, Any]:
        """A message context-menu command on ``target`` (a message dict)."""
        channel_id = int(target["channel_id"])
        command_id, _ = self._command_ref(name, channel_id, 3)
        data = message_command_data(name, self.world.messages.get(int(target["id"]), target), command_id=command_id)
        return await self._deliver(
            SLASH, data, user=user, channel_id=channel_id, permissions=permissions, locale=locale
        )

    async def send_autocomplete(
        self,
        name: str,
        focused: str,
        value: str,
        *,
        user: UserRef,
        channel_id: int,
        options: Options = None,
        subcommand: str | None = None,
        group: str | None = None,
        locale: str = "en-US",
    ) -> dict[str, Any]:
        command_id, scope = self._command_ref(name, channel_id, 1)
        data = autocomplete_data(
            name,
            focused,
            value,
            options,
            command_id=command_id,
            subcommand=subcommand,
            group=group,
            command_guild_id=scope,
        )
        return await self._deliver(AUTOCOMPLETE, data, user=user, channel_id=channel_id, locale=locale)

    async def send_modal_submit(
        self,
        custom_id: str,
        values: dict[str, str],
        *,
        user: UserRef,
        channel_id: int,
        layout: str = "row",
        locale: str = "en-US",
    ) -> dict[str, Any]:
        data = modal_submit_data(custom_id, values, layout=layout)
        return await self._deliver(MODAL_SUBMIT, data, user=user, channel_id=channel_id, locale=locale)

    async def send_component(
        self,
        custom_id: str,
        message: dict[str, Any],
        *,
        user: UserRef,
        component_type: int = 2,
        values: list[str] | None = None,
    ) -> dict[str, Any]:
        """A button click (type 2) or select (types 3, 5-8, with ``values``) on a message."""
        data = component_data(custom_id, component_type, values)
        current = self.world.messages.get(int(message["id"]), message)
        channel_id = int(message["channel_id"])
        return await self._deliver(MESSAGE_COMPONENT, data, user=user, channel_id=channel_id, message=current)

    @property
    def interaction_callbacks(self) -> list[InteractionCallback]:
        return self.interactions.callbacks

    def interaction(self, payload_or_id: dict[str, Any] | int) -> InteractionState:
        """The server-side state of an interaction: callbacks, original_id, followup_ids."""
        return self.interactions.by_id[as_id(payload_or_id)]
