"""A fake Discord gateway: the websocket protocol discord.py speaks, on loopback.

Sessions outlive their sockets. Every dispatch is logged with its sequence number, so a
client that RESUMEs gets exactly what it missed, whether its socket was dropped, it was
asked to reconnect (op 7), or it was held off while events went out.

All state lives on the server's event loop; the knobs a test calls from its own thread
hop onto that loop and return once done.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
import zlib
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from attrs import define, field
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

DISCORD_EPOCH_MS = 1420070400000
GUILDS, GUILD_MESSAGES, MESSAGE_CONTENT = 1 << 0, 1 << 9, 1 << 15

DISPATCH, HEARTBEAT, IDENTIFY, PRESENCE = 0, 1, 2, 3
RESUME, RECONNECT, REQUEST_MEMBERS, INVALID_SESSION, HELLO, HEARTBEAT_ACK = 6, 7, 8, 9, 10, 11

UNKNOWN_OPCODE, DECODE_ERROR, NOT_AUTHENTICATED = 4001, 4002, 4003
AUTHENTICATION_FAILED, ALREADY_AUTHENTICATED, INVALID_API_VERSION = 4004, 4005, 4012
SESSION_ENDING_CLOSES = (1000, 1001)
"""A client closing with these ends its session (Discord's rule); any other code keeps it."""

Payload = dict[str, Any]

_last_snowflake = 0
_snowflake_lock = threading.Lock()


def snowflake() -> str:
    """A fresh Discord id: time-ordered and strictly increasing within this process."""
    global _last_snowflake
    with _snowflake_lock:
        candidate = ((int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22) | (1 << 17)
        _last_snowflake = max(candidate, _last_snowflake + 1)
        return str(_last_snowflake)


def timestamp() -> str:
    """Now, as Discord writes it: ``2024-05-01T12:00:00.123000+00:00``."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


@define(eq=False)
class Session:
    """One IDENTIFY: its sequence, every dispatch it was sent, and its socket if any."""

    id: str
    intents: int
    seq: int = 0
    log: list[Payload] = field(factory=list)
    connection: Connection | None = None

    def record(self, event: str, data: Payload | None) -> Payload:
        self.seq += 1
        frame = {"op": DISPATCH, "t": event, "s": self.seq, "d": data}
        self.log.append(frame)
        return frame


@define(eq=False)
class Connection:
    """One websocket; a writer task drains ``outbox`` so frames keep their order."""

    websocket: WebSocket
    path: str
    compressor: zlib._Compress | None
    abort: Callable[[], None] | None
    outbox: asyncio.Queue[Payload | int] = field(factory=asyncio.Queue)
    session: Session | None = None
    dropped: bool = False

    def send(self, frame: Payload) -> None:
        if not self.dropped:
            self.outbox.put_nowait(frame)

    def close(self, code: int) -> None:
        if not self.dropped:
            self.outbox.put_nowait(code)

    async def write(self) -> None:
        while True:
            item = await self.outbox.get()
            try:
                if isinstance(item, int):
                    await self.websocket.close(code=item)
                    return
                text = json.dumps(item, separators=(",", ":"))
                if self.compressor is None:
                    await self.websocket.send_text(text)
                else:
                    # zlib-stream: one context per socket, each frame ends in a sync flush
                    data = self.compressor.compress(text.encode())
                    await self.websocket.send_bytes(data + self.compressor.flush(zlib.Z_SYNC_FLUSH))
            except (WebSocketDisconnect, RuntimeError, OSError):
                return  # the socket is gone; the session log still holds the frame


class Gateway:
    """The ASGI websocket endpoint plus the knobs tests turn.

    ``ready()`` and ``guild_create()`` build the READY and GUILD_CREATE payloads; the
    gateway adds ``session_id``, ``resume_gateway_url`` and ``v``.
    """

    def __init__(
        self,
        *,
        token: str,
        ready: Callable[[], Payload],
        guild_create: Callable[[], Payload],
        heartbeat_interval_ms: int = 41250,
    ) -> None:
        self.token = token
        self._ready = ready
        self._guild_create = guild_create
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.compress = True
        """Honour ``compress=zlib-stream``; when False every frame goes out as text."""
        self.loop: asyncio.AbstractEventLoop | None = None
        self.sessions: dict[str, Session] = {}
        self.live: list[Connection] = []
        self.handshakes: list[dict[str, str]] = []
        """Path and query of every websocket the gateway accepted, in order."""
        self.identify_payloads: list[Payload] = []
        self.close_codes: list[int | None] = []
        """How each socket ended, as the server saw it: the client's close code, or
        1005/1006 when the connection just went away."""
        self.connections = 0
        self.identifies = 0
        self.resumes = 0
        self.invalid_sessions = 0
        self.heartbeats = 0
        self._open = asyncio.Event()
        self._open.set()
        self._closing = False

    # -- knobs, callable from any thread ------------------------------------------------

    def dispatch(self, event: str, data: Payload) -> None:
        """Send an event to every session; a session without a socket keeps it for RESUME."""
        on_loop(self.loop, self._dispatch, event, data)

    def drop_connection(self) -> None:
        """Cut every socket at the TCP level, no close frame: clients RESUME."""
        on_loop(self.loop, self._drop)

    def request_reconnect(self) -> None:
        """Send op 7 RECONNECT on every socket: clients close and RESUME."""
        on_loop(self.loop, self._each_live, {"op": RECONNECT, "d": None})

    def invalid_session(self, *, resumable: bool = False) -> None:
        """Send op 9 on every socket; unless resumable their sessions end, so they IDENTIFY."""
        on_loop(self.loop, self._invalidate, resumable)

    def forget_sessions(self) -> None:
        """End every session, as a gateway restart does: the next RESUME gets op 9."""
        on_loop(self.loop, self.sessions.clear)

    def hold(self) -> None:
        """Leave new websocket handshakes unanswered until :meth:`release`."""
        on_loop(self.loop, self._open.clear)

    def release(self) -> None:
        on_loop(self.loop, self._open.set)

    def close(self) -> None:
        """Let held handshakes go (and be refused) so the server can stop."""
        self._closing = True
        self.release()

    @property
    def connected(self) -> int:
        """Sockets that completed IDENTIFY or RESUME and are still open."""
        return sum(1 for c in self.live if c.session is not None and not c.dropped)

    # -- the loop side -------------------------------------------------------------------

    def _dispatch(self, event: str, data: Payload) -> None:
        for session in list(self.sessions.values()):
            if event.startswith("MESSAGE_") and not session.intents & GUILD_MESSAGES:
                continue
            frame = session.record(event, _visible(event, data, session.intents))
            if session.connection is not None:
                session.connection.send(frame)

    def _drop(self) -> None:
        for connection in list(self.live):
            if connection.abort is None:
                raise RuntimeError("this server does not expose its transport; cannot drop")
            connection.dropped = True
            self._detach(connection)
            connection.abort()

    def _each_live(self, frame: Payload) -> None:
        for connection in self.live:
            connection.send(frame)

    def _invalidate(self, resumable: bool) -> None:
        for connection in list(self.live):
            if not resumable and connection.session is not None:
                self.sessions.pop(connection.session.id, None)
            self.invalid_sessions += 1
            connection.send({"op": INVALID_SESSION, "d": resumable})

    def _detach(self, connection: Connection) -> None:
        if connection in self.live:
            self.live.remove(connection)
        session = connection.session
        if session is not None and session.connection is connection:
            session.connection = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.loop = asyncio.get_running_loop()
        websocket = WebSocket(scope, receive, send)
        await self._open.wait()
        if self._closing:
            await websocket.close()
            return
        query = {k: v[-1] for k, v in parse_qs(scope["query_string"].decode()).items()}
        self.handshakes.append({"path": scope["path"], **query})
        await websocket.accept()
        self.connections += 1
        compressed = self.compress and query.get("compress") == "zlib-stream"
        connection = Connection(
            websocket=websocket,
            path=scope["path"],
            compressor=zlib.compressobj() if compressed else None,
            abort=_abort_of(receive),
        )
        self.live.append(connection)
        writer = asyncio.create_task(connection.write())
        if query.get("v", "10") not in ("9", "10"):
            connection.close(INVALID_API_VERSION)
        elif query.get("encoding", "json") != "json":
            connection.close(DECODE_ERROR)
        else:
            interval = self.heartbeat_interval_ms
            connection.send({"op": HELLO, "d": {"heartbeat_interval": interval}, "s": None})
        code = None
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    code = message.get("code")
                    break
                raw = message.get("text") or (message.get("bytes") or b"").decode()
                self._receive(connection, scope, raw)
        finally:
            self.close_codes.append(code)
            self._detach(connection)
            session = connection.session
            if code in SESSION_ENDING_CLOSES and session is not None and not connection.dropped:
                self.sessions.pop(session.id, None)
            writer.cancel()

    def _receive(self, connection: Connection, scope: Scope, raw: str) -> None:
        try:
            payload = json.loads(raw)
            op, data = payload["op"], payload.get("d")
        except (ValueError, KeyError, TypeError):
            connection.close(DECODE_ERROR)
            return
        if op == HEARTBEAT:
            self.heartbeats += 1
            connection.send({"op": HEARTBEAT_ACK, "d": None, "s": None})
        elif op == IDENTIFY:
            self._identify(connection, scope, data)
        elif op == RESUME:
            self._resume(connection, data)
        elif op in (PRESENCE, REQUEST_MEMBERS):
            if connection.session is None:
                connection.close(NOT_AUTHENTICATED)
        else:
            connection.close(UNKNOWN_OPCODE)

    def _identify(self, connection: Connection, scope: Scope, data: Payload) -> None:
        self.identify_payloads.append(data)
        if connection.session is not None:
            connection.close(ALREADY_AUTHENTICATED)
            return
        if data.get("token") != self.token:
            connection.close(AUTHENTICATION_FAILED)
            return
        self.identifies += 1
        session = Session(id=secrets.token_hex(16), intents=int(data.get("intents", 0)))
        self.sessions[session.id] = session
        session.connection, connection.session = connection, session
        host, port = scope["server"]
        ready = {
            **self._ready(),
            "v": 10,
            "session_id": session.id,
            "session_type": "normal",
            "resume_gateway_url": f"ws://{host}:{port}/gateway/resume",
        }
        connection.send(session.record("READY", ready))
        if session.intents & GUILDS:
            connection.send(session.record("GUILD_CREATE", self._guild_create()))

    def _resume(self, connection: Connection, data: Payload) -> None:
        self.resumes += 1
        if data.get("token") != self.token:
            connection.close(AUTHENTICATION_FAILED)
            return
        session = self.sessions.get(str(data.get("session_id")))
        if session is None:
            self.invalid_sessions += 1
            connection.send({"op": INVALID_SESSION, "d": False, "s": None})
            return
        if session.connection is not None and session.connection is not connection:
            session.connection.close(4000)
        session.connection, connection.session = connection, session
        seen = data.get("seq") or 0
        for frame in session.log:
            if frame["s"] > seen:
                connection.send(frame)
        connection.send({"op": DISPATCH, "t": "RESUMED", "s": None, "d": {}})


def _visible(event: str, data: Payload, intents: int) -> Payload:
    """What a session may see: without MESSAGE_CONTENT, message bodies arrive blank."""
    if event in ("MESSAGE_CREATE", "MESSAGE_UPDATE") and not intents & MESSAGE_CONTENT:
        return {**data, "content": "", "embeds": [], "attachments": [], "components": []}
    return data


def _abort_of(receive: Receive) -> Callable[[], None] | None:
    """uvicorn's receive is a bound method of its protocol, which holds the TCP transport."""
    transport = getattr(getattr(receive, "__self__", None), "transport", None)
    abort = getattr(transport, "abort", None)
    return abort if callable(abort) else None


def on_loop(
    loop: asyncio.AbstractEventLoop | None, fn: Callable[..., object], *args: object
) -> None:
    """Run ``fn(*args)`` on the server's loop and wait for it; directly if there is none yet."""
    try:
        current = asyncio.get_running_loop()
    except RuntimeError:
        current = None
    if loop is None or current is loop:
        fn(*args)
        return

    async def run() -> None:
        fn(*args)

    coro: Coroutine[Any, Any, None] = run()
    asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=10)
