"""What every websocket endpoint shares: who is calling, and relaying a Redis channel."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import WebSocket, WebSocketDisconnect

from server.identity import service as identity
from server.kit.errors import Unauthorized


def caller_id(websocket: WebSocket):  # type: ignore[no-untyped-def]
    """The user id of the bearer token (``Authorization`` header, or ``?token=`` since
    browsers cannot set headers on a websocket)."""
    header = websocket.headers.get("authorization", "")
    token = (
        header[7:] if header.lower().startswith("bearer ") else websocket.query_params.get("token")
    )
    if not token:
        raise Unauthorized("a bearer token is required")
    state = websocket.app.state
    return identity.decode_token(
        token, key=state.settings.secret_key_value(), now=state.clock.now()
    )


@asynccontextmanager
async def relaying(websocket: WebSocket, channel: str) -> AsyncIterator[None]:
    """Subscribe to ``channel`` (on the pub/sub client: one connection per subscriber) and
    forward its events to the socket as ``{"type": topic, **payload}`` while the block runs.
    Subscribing happens on entry, so a snapshot sent inside the block misses nothing."""
    pubsub = websocket.app.state.redis_pubsub.pubsub()
    await pubsub.subscribe(channel)

    async def forward() -> None:
        async for message in pubsub.listen():
            if message.get("type") == "message":
                event = json.loads(message["data"])
                await websocket.send_json({"type": event["topic"], **event["payload"]})

    task = asyncio.create_task(forward())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
            await task
        await pubsub.unsubscribe()
        await pubsub.aclose()
