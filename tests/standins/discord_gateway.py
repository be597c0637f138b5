"""The stand-in's gateway: websocket sessions, IDENTIFY/RESUME, event routing by shard."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from .discord_permissions import GATEWAY_MESSAGE_CONTENT, GATEWAY_MESSAGE_CONTENT_LIMITED
from .discord_snowflakes import shard_of
from .discord_world import World

log = logging.getLogger("standin.discord.gateway")

INTENT_GUILD_MESSAGES = 1 << 9
INTENT_DIRECT_MESSAGES = 1 << 12
INTENT_MESSAGE_CONTENT = 1 << 15
MESSAGE_EVENTS = frozenset({"MESSAGE_CREATE", "MESSAGE_UPDATE"})
INTENT_GUILD_MEMBERS = 1 << 1
EVENT_INTENTS = {  # events Discord only sends with a given intent (besides the message ones below)
    "GUILD_MEMBER_ADD": INTENT_GUILD_MEMBERS,
    "GUILD_MEMBER_UPDATE": INTENT_GUILD_MEMBERS,
    "GUILD_MEMBER_REMOVE": INTENT_GUILD_MEMBERS,
}
BUFFER_SIZE = 50_000


class Connection:
    """One websocket; frames go out through a queue so sends never interleave and stay in order."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.outbox: asyncio.Queue[str | None] = asyncio.Queue()
        self.closed_by_server = False
        self.writer = asyncio.create_task(self._write())

    def send(self, frame: str) -> None:
        self.outbox.put_nowait(frame)

    async def _write(self) -> None:
        while (frame := await self.outbox.get()) is not None:
            try:
                await self.ws.send_str(frame)
            except (ConnectionError, RuntimeError):
                return

    async def close(self, code: int, message: bytes = b"") -> None:
        self.closed_by_server = True
        await self.ws.close(code=code, message=message)

    async def stop(self) -> None:
        self.outbox.put_nowait(None)
        with contextlib.suppress(asyncio.CancelledError):
            await self.writer


@dataclass
class Session:
    session_id: str
    shard_id: int
    shard_count: int
    intents: int
    seq: int = 0
    buffer: deque[tuple[int, str]] = field(default_factory=lambda: deque(maxlen=BUFFER_SIZE))
    conn: Connection | None = None
    resumed: asyncio.Event = field(default_factory=asyncio.Event)
    live_key: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        self.live_key = self.live_key or (self.shard_id, self.shard_count)

    def owns(self, guild_id: int | None) -> bool:
        return shard_of(guild_id, self.shard_count) == self.shard_id

    def emit(self, event: str, data_json: str) -> None:
        self.seq += 1
        frame = f'{{"op":0,"s":{self.seq},"t":"{event}","d":{data_json}}}'
        self.buffer.append((self.seq, frame))
        if self.conn is not None:
            self.conn.send(frame)


class Gateway:
    def __init__(
        self,
        world: World,
        token: Callable[[], str],
        resume_url: Callable[[], str],
        application_flags: Callable[[], int] = lambda: 0,
    ) -> None:
        self.world = world
        self._token = token
        self._resume_url = resume_url
        self._application_flags = application_flags
        self.heartbeat_interval = 45_000
        self.enforce_message_content_intent = True
        self.disallowed_intents = 0  # IDENTIFYs refused with 4014
        self.sessions: dict[str, Session] = {}
        self.live: dict[tuple[int, ...], Session] = {}  # (shard_id, shard_count) -> current session
        # Real Discord lets two processes with one token hold the same shard at once (each gets every
        # event): True keeps earlier sessions alive instead of replacing them.
        self.allow_concurrent_sessions = False
        self.connections: set[Connection] = set()
        self.identify_count = 0
        self._identified = asyncio.Condition()
        self.resume_count = 0
        self.ops_received: list[dict[str, Any]] = []
        # Cleared: new connections are accepted but get no HELLO until it is set again, as from a
        # gateway that is down (a shard stays disconnected for as long as a test needs).
        self.accepting = asyncio.Event()
        self.accepting.set()

    # ---- websocket handler ---------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0, compress=False)
        await ws.prepare(request)
        conn = Connection(ws)
        self.connections.add(conn)
        session: Session | None = None
        try:
            await self.accepting.wait()
            conn.send(json.dumps({"op": 10, "d": {"heartbeat_interval": self.heartbeat_interval}}))
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                frame = json.loads(msg.data)
                session = await self._on_frame(conn, frame) or session
        finally:
            self.connections.discard(conn)
            await conn.stop()
            if session is not None and session.conn is conn:
                session.conn = None
                if not conn.closed_by_server and ws.close_code in (1000, 1001):
                    self._drop(session)  # a clean client close ends the session, as on Discord
        return ws

    async def _on_frame(self, conn: Connection, frame: dict[str, Any]) -> Session | None:
        op, data = frame.get("op"), frame.get("d")
        if op != 1:
            self.ops_received.append(frame)
        if op == 1:
            conn.send('{"op":11}')
        elif op == 2:
            return await self._identify(conn, data or {})
        elif op == 6:
            return await self._resume(conn, data or {})
        elif op == 8:
            self._request_members(conn, data or {})
        return None

    async def _identify(self, conn: Connection, data: dict[str, Any]) -> Session | None:
        if data.get("token") != self._token():
            await conn.close(4004, b"Authentication failed.")
            return None
        granted = self._application_flags() & (GATEWAY_MESSAGE_CONTENT | GATEWAY_MESSAGE_CONTENT_LIMITED)
        if int(data.get("intents", 0)) & INTENT_MESSAGE_CONTENT and not granted:
            # Discord: a privileged intent the portal has not enabled for the application.
            self.disallowed_intents += 1
            await conn.close(4014, b"Disallowed intent(s).")
            return None
        shard_id, shard_count = data.get("shard") or (0, 1)
        session = Session(uuid.uuid4().hex, int(shard_id), int(shard_count), int(data.get("intents", 0)))
        old = self.live.get(session.live_key)
        if old is not None and not self.allow_concurrent_sessions:
            self._drop(old)
        if self.allow_concurrent_sessions:
            session.live_key = (session.shard_id, session.shard_count, self.identify_count)
        self.sessions[session.session_id] = session
        self.live[session.live_key] = session
        session.conn = conn
        self.identify_count += 1
        world = self.world
        guild_ids = [gid for gid in world.guilds if session.owns(gid)]
        ready = {
            "v": 10,
            "user": world.bot_user,
            "guilds": [{"id": str(g), "unavailable": True} for g in guild_ids],
            "session_id": session.session_id,
            "resume_gateway_url": self._resume_url(),
            "shard": [session.shard_id, session.shard_count],
            "application": {"id": str(world.bot_id), "flags": self._application_flags()},
            "private_channels": [],
            "relationships": [],
            "user_settings": {},
            "presences": [],
            "geo_ordered_rtc_regions": [],
            "session_type": "normal",
            "guild_join_requests": [],
            "auth": {},
        }
        session.emit("READY", json.dumps(ready))
        for gid in guild_ids:
            session.emit("GUILD_CREATE", json.dumps(world.guild_create_payload(gid)))
        async with self._identified:
            self._identified.notify_all()
        return session

    async def wait_identified(self, count: int = 1, timeout: float = 10.0) -> None:
        """Until ``count`` IDENTIFYs have been answered with READY and the guilds (e.g. a bot in
        another process has connected)."""
        try:
            async with asyncio.timeout(timeout), self._identified:
                await self._identified.wait_for(lambda: self.identify_count >= count)
        except TimeoutError:
            raise AssertionError(f"{self.identify_count} of {count} IDENTIFY within {timeout}s") from None

    async def _resume(self, conn: Connection, data: dict[str, Any]) -> Session | None:
        session = self.sessions.get(str(data.get("session_id")))
        if data.get("token") != self._token():
            await conn.close(4004, b"Authentication failed.")
            return None
        if session is None:
            conn.send('{"op":9,"d":false}')
            return None
        if session.conn is not None and session.conn is not conn:
            await session.conn.close(4000, b"Session resumed elsewhere")
        session.conn = conn
        last_seen = int(data.get("seq") or 0)
        for seq, frame in session.buffer:
            if seq > last_seen:
                conn.send(frame)
        session.emit("RESUMED", "{}")
        self.resume_count += 1
        session.resumed.set()
        return session

    def _request_members(self, conn: Connection, data: dict[str, Any]) -> None:
        guild_id = int(data.get("guild_id", 0))
        guild = self.world.guilds.get(guild_id)
        session = next((s for s in self.live.values() if s.conn is conn), None)
        if guild is None or session is None:
            return
        members = list(guild.members.values())
        if data.get("user_ids"):
            wanted = {str(u) for u in data["user_ids"]}
            members = [m for m in members if m["user"]["id"] in wanted]
        elif data.get("query"):
            query = str(data["query"]).lower()
            members = [
                m
                for m in members
                if m["user"]["username"].lower().startswith(query) or (m["nick"] or "").lower().startswith(query)
            ]
        if data.get("limit"):
            members = members[: int(data["limit"])]
        chunk = {
            "guild_id": str(guild_id),
            "members": members,
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [],
            "nonce": data.get("nonce"),
        }
        session.emit("GUILD_MEMBERS_CHUNK", json.dumps(chunk))

    def _drop(self, session: Session) -> None:
        self.sessions.pop(session.session_id, None)
        if self.live.get(session.live_key) is session:
            del self.live[session.live_key]

    # ---- routing ----------------------------------------------------------------------------
    def route(
        self,
        event: str,
        data: dict[str, Any],
        *,
        shard_id: int | None = None,
        guild_id: int | None = None,
    ) -> int:
        """Send one dispatch to every live session that should see it; returns how many got it."""
        if guild_id is None and shard_id is None and data.get("guild_id") is not None:
            guild_id = int(data["guild_id"])
        encoded: dict[tuple[bool, bool], str] = {}  # by (message blanked, replied-to message blanked)
        delivered = 0
        for session in list(self.live.values()):
            if shard_id is not None and session.shard_id != shard_id:
                continue
            if shard_id is None and not session.owns(guild_id):
                continue
            if event in EVENT_INTENTS and not session.intents & EVENT_INTENTS[event]:
                continue
            if event in MESSAGE_EVENTS:
                needed = INTENT_DIRECT_MESSAGES if guild_id is None else INTENT_GUILD_MESSAGES
                if not session.intents & needed:
                    continue
                # The replied-to message follows the same rule as any message (its own mentions count).
                referenced = data.get("referenced_message")
                blanked = (
                    self._strip_content(session, data, guild_id),
                    isinstance(referenced, dict) and self._strip_content(session, referenced, guild_id),
                )
                if blanked not in encoded:
                    visible = _blank(data) if blanked[0] else dict(data)
                    if blanked[1]:
                        visible["referenced_message"] = _blank(referenced)
                    encoded[blanked] = json.dumps(visible)
                session.emit(event, encoded[blanked])
                delivered += 1
                continue
            if (False, False) not in encoded:
                encoded[(False, False)] = json.dumps(data)
            session.emit(event, encoded[(False, False)])
            delivered += 1
        return delivered

    def _strip_content(self, session: Session, msg: dict[str, Any], guild_id: int | None) -> bool:
        """Discord blanks message content for bots without the MESSAGE_CONTENT intent, except in DMs,
        for the bot's own messages and for messages that mention the bot."""
        if not self.enforce_message_content_intent or session.intents & INTENT_MESSAGE_CONTENT:
            return False
        if guild_id is None or "author" not in msg:
            return False
        bot_id = str(self.world.bot_id)
        if msg["author"]["id"] == bot_id:
            return False
        return not any(m["id"] == bot_id for m in msg.get("mentions", ()))

    # ---- control ------------------------------------------------------------------------------
    def sessions_for_shard(self, shard_id: int) -> list[Session]:
        return [s for s in self.live.values() if s.shard_id == shard_id]

    async def disconnect(self, shard_id: int = 0, code: int = 4000) -> None:
        sessions = self.sessions_for_shard(shard_id)
        if not sessions:
            raise AssertionError(f"no live gateway session for shard {shard_id}")
        for session in sessions:
            session.resumed.clear()
            if session.conn is not None:
                conn, session.conn = session.conn, None
                await conn.close(code, b"stand-in disconnect")

    async def wait_resumed(self, shard_id: int = 0, timeout: float = 5.0) -> None:
        sessions = self.sessions_for_shard(shard_id)
        if not sessions:
            raise AssertionError(f"no live gateway session for shard {shard_id}")
        try:
            await asyncio.wait_for(asyncio.gather(*(s.resumed.wait() for s in sessions)), timeout)
        except TimeoutError:
            raise AssertionError(f"shard {shard_id} did not RESUME within {timeout}s") from None

    async def close(self) -> None:
        self.accepting.set()  # held connections go on, and end with the others
        for conn in list(self.connections):
            with contextlib.suppress(Exception):
                await conn.close(1001, b"stand-in shutting down")


def _blank(message: dict[str, Any]) -> dict[str, Any]:
    """A message as a bot without the Message Content intent receives it."""
    return {**message, "content": "", "embeds": [], "attachments": [], "components": []}
