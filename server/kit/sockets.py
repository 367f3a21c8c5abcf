"""What every websocket endpoint shares: admitting the caller, and relaying a Redis channel.

``accept`` is the one door of every socket: accept, bearer token, active user, role, then
the route's own checks; a refusal is an ``error`` message and a close code (4401 not
authenticated, 4403 forbidden, otherwise the route's code, 4404 unless it says so).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from contextlib import asynccontextmanager
from typing import Any, TypeVar, overload

from fastapi import WebSocket, WebSocketDisconnect

from server.identity import service as identity
from server.identity.models import User
from server.kit.db import transaction
from server.kit.errors import DomainError, Unauthorized
from server.kit.redis import subscription
from server.kit.resources import resources_of
from shared.enums import Role

CLOSE_UNAUTHENTICATED, CLOSE_FORBIDDEN, CLOSE_NOT_FOUND = 4401, 4403, 4404

T = TypeVar("T")


def _caller_id(websocket: WebSocket) -> uuid.UUID:
    """The user id of the bearer token (``Authorization`` header, or ``?token=`` since
    browsers cannot set headers on a websocket)."""
    header = websocket.headers.get("authorization", "")
    token = (
        header[7:] if header.lower().startswith("bearer ") else websocket.query_params.get("token")
    )
    if not token:
        raise Unauthorized("a bearer token is required")
    resources = resources_of(websocket.app)
    return identity.decode_token(
        token, key=resources.settings.secret_key_value(), now=resources.clock.now()
    )


@overload
async def accept(
    websocket: WebSocket,
    *,
    roles: Collection[Role],
    wrong_role: Callable[[], DomainError],
    otherwise: int = CLOSE_NOT_FOUND,
) -> User | None: ...


@overload
async def accept(
    websocket: WebSocket,
    *,
    roles: Collection[Role],
    wrong_role: Callable[[], DomainError],
    admit: Callable[[User], Awaitable[T]],
    otherwise: int = CLOSE_NOT_FOUND,
) -> tuple[User, T] | None: ...


async def accept(
    websocket: WebSocket,
    *,
    roles: Collection[Role],
    wrong_role: Callable[[], DomainError],
    admit: Callable[[User], Awaitable[T]] | None = None,
    otherwise: int = CLOSE_NOT_FOUND,
) -> User | tuple[User, T] | None:
    """Accept the socket and admit its caller: an active user in one of ``roles`` (else
    ``wrong_role()`` is the refusal), then the route's ``admit(user)`` (whose answer is
    returned beside the user). ``None``: the caller was refused and the socket is closed,
    with 4401, 4403 or ``otherwise`` for any other refusal."""
    await websocket.accept()
    try:
        user_id = _caller_id(websocket)
        async with transaction(resources_of(websocket.app).sessions) as session:
            user = await identity.get_active_user(session, user_id=user_id)
        if user.role not in roles:
            raise wrong_role()
        if admit is None:
            return user
        return user, await admit(user)
    except DomainError as exc:
        await websocket.send_json({"type": "error", "error": exc.problem()})
        code = {401: CLOSE_UNAUTHENTICATED, 403: CLOSE_FORBIDDEN}.get(exc.status, otherwise)
        await websocket.close(code=code)
        return None


class AfterSnapshot:
    """Holds a channel's events until the socket's snapshot is out, then lets through only
    what the client does not have yet: an event carrying a ``sequence`` must be newer than the
    snapshot's and than every one let through before it (the relay may deliver events older
    than the subscription, and relays on two replicas may deliver out of order). Events
    without a sequence (a rider's position) always pass once the snapshot is out."""

    def __init__(self) -> None:
        self._sent = asyncio.Event()
        self._latest = 0

    def snapshot_sent(self, sequence: int) -> None:
        self._latest = sequence
        self._sent.set()

    async def admits(self, payload: dict[str, Any]) -> bool:
        await self._sent.wait()
        sequence = payload.get("sequence")
        if sequence is None:
            return True
        if sequence <= self._latest:
            return False
        self._latest = sequence
        return True


@asynccontextmanager
async def relaying(
    websocket: WebSocket, channel: str, *, gate: AfterSnapshot | None = None
) -> AsyncIterator[None]:
    """Subscribe to shard channel ``channel`` (on the pub/sub client: one connection per
    subscriber) and
    forward its events to the socket as ``{"type": topic, **payload}`` while the block runs,
    through ``gate`` if given. Subscribing happens on entry, so a snapshot sent inside the
    block misses nothing."""
    async with subscription(resources_of(websocket.app).redis_pubsub, channel) as messages:

        async def forward() -> None:
            async for data in messages:
                event = json.loads(data)
                if gate is None or await gate.admits(event["payload"]):
                    await websocket.send_json({"type": event["topic"], **event["payload"]})

        task = asyncio.create_task(forward())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                await task
