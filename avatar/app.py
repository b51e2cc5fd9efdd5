"""The gateway's web application: the page, its static files, and the WebSocket.

``create_app(core)`` builds a FastAPI app around a ``GatewayCore`` (the gateway actor): ``/``
serves the page (``avatar/static/index.html``), ``/static/...`` its scripts and styles (nothing
from outside: the page works offline), ``/healthz`` a small status, and ``/ws`` the socket whose
protocol ``avatar.protocol`` describes. Each socket has a reader (this module) and a sender
task draining the page's bounded queue (``avatar.hub``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any, Protocol

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import Response

from avatar.access import Access, Role
from avatar.hub import Client, Hub, OutFrame
from avatar.protocol import (
    CLOSE_TOO_SLOW,
    CLOSE_UNAUTHORIZED,
    HELLO_TIMEOUT_S,
    Audio,
    Control,
    Hello,
    Ping,
    ProtocolError,
    Say,
    error_frame,
    frame,
    op_of,
    parse,
)

STATIC_DIR = Path(__file__).resolve().parent / "static"
CLOSE_GOING_AWAY = 1001
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; connect-src 'self' ws: wss:; "
                               "img-src 'self' data:; style-src 'self' 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


class GatewayCore(Protocol):
    """What the app needs from the gateway actor."""

    hub: Hub
    access: Access
    max_message_bytes: int

    def welcome(self, role: Role) -> dict[str, Any]: ...

    async def submit(self, role: Role, command: Control | Audio | Say) -> None: ...

    def status(self) -> dict[str, Any]: ...


class _Headers(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response


def create_app(core: GatewayCore) -> FastAPI:
    app = FastAPI(title="twin avatar gateway", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(_Headers)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/")
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        return JSONResponse({"ok": True, **core.status()})

    @app.websocket("/ws")
    async def socket(websocket: WebSocket) -> None:
        await websocket.accept()
        role = await _authenticate(websocket, core)
        if role is None:
            return
        client = core.hub.join(role)
        welcome = frame("welcome", **core.welcome(role))
        client.queue.appendleft(OutFrame(welcome, "welcome", essential=True))
        sender = asyncio.create_task(_send_loop(websocket, client))
        client.on_slow = lambda: _let_go(websocket, sender)
        try:
            while not client.closed:
                data = await _receive(websocket)
                try:
                    await _handle(core, client, parse(data, core.max_message_bytes))
                except ProtocolError as error:
                    client.push(OutFrame(error_frame(error.code, str(error), error.op),
                                         "error", essential=True))
        except WebSocketDisconnect:
            pass
        finally:
            core.hub.leave(client)
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(sender, 2.0)

    return app


async def _receive(websocket: WebSocket) -> str | bytes | None:
    """The next frame's text (or bytes for a binary frame); raises on disconnect."""
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    text = message.get("text")
    if text is not None:
        return str(text)
    data = message.get("bytes")
    return bytes(data) if data is not None else None


async def _authenticate(websocket: WebSocket, core: GatewayCore) -> Role | None:
    """The role of the socket's hello; None after refusing it (error frame, then close)."""
    try:
        data = await asyncio.wait_for(_receive(websocket), HELLO_TIMEOUT_S)
    except TimeoutError:
        await _refuse(websocket, "timeout", f"no hello within {HELLO_TIMEOUT_S:g} s")
        return None
    except WebSocketDisconnect:
        return None
    try:
        hello = parse(data, core.max_message_bytes)
    except ProtocolError as error:
        await _refuse(websocket, error.code, str(error))
        return None
    if not isinstance(hello, Hello):
        await _refuse(websocket, "unauthorized", "the first frame must be a hello with a token")
        return None
    role = core.access.role_of(hello.token)
    if role is None:
        await _refuse(websocket, "unauthorized", "this link's token is not valid for the "
                                                 "session (ask for a new link)")
    return role


async def _refuse(websocket: WebSocket, code: Any, message: str) -> None:
    with contextlib.suppress(Exception):
        await websocket.send_text(error_frame(code, message))
        await websocket.close(CLOSE_UNAUTHORIZED, message[:120])


async def _handle(core: GatewayCore, client: Client, command: Any) -> None:
    operation = op_of(command)
    if not core.access.may(client.role, operation):
        raise ProtocolError("forbidden", f"the {client.role} role may not send {operation}",
                            operation)
    if isinstance(command, Hello):
        raise ProtocolError("malformed", "hello was already received on this socket", operation)
    if isinstance(command, Ping):
        pong = frame("pong", t=command.t, server_t=time.time(), pad="x" * command.pad)
        client.push(OutFrame(pong, "pong", essential=True))
        return
    try:
        await core.submit(client.role, command)
    except ProtocolError as error:
        error.op = error.op or operation  # the page shows it where it sent the command from
        raise
    if isinstance(command, Control):
        ack = frame("ack", op="control", command=command.command, argument=command.argument)
        client.push(OutFrame(ack, "ack", essential=True))
    elif isinstance(command, Say):
        client.push(OutFrame(frame("ack", op="say", text=command.text), "ack", essential=True))


_closing: set[asyncio.Task[None]] = set()


def _let_go(websocket: WebSocket, sender: asyncio.Task[None]) -> None:
    """A page too far behind: stop its sender (which may be stuck on a full socket) and close
    the socket if it can be closed (otherwise the keepalive ping times it out)."""
    sender.cancel()

    async def close() -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(_close_slow(websocket), 2.0)

    task = asyncio.get_running_loop().create_task(close())
    _closing.add(task)
    task.add_done_callback(_closing.discard)


async def _close_slow(websocket: WebSocket) -> None:
    await websocket.send_text(error_frame("unavailable", "this page fell too far behind; "
                                                         "reconnecting"))
    await websocket.close(CLOSE_TOO_SLOW, "too slow")


async def _send_loop(websocket: WebSocket, client: Client) -> None:
    try:
        while (item := await client.next()) is not None:
            await websocket.send_text(item.text)
            client.sent += 1
        if client.too_slow:
            await _close_slow(websocket)
        else:
            await websocket.close(CLOSE_GOING_AWAY, "gateway stopping")
    except Exception:  # the page went away: the reader sees the disconnect
        client.close()
