"""Live tracking: ``/ws/orders/{id}`` pushes each state change (and, once a rider has the
order, the rider's position and ETA) to the order's customer."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from server.db import transaction
from server.errors import DomainError, NotFound, Unauthorized
from server.identity import service as identity
from server.keys import order_channel
from server.orders import service as orders
from shared.enums import Role

router = APIRouter(tags=["orders"])

CLOSE_UNAUTHORIZED, CLOSE_NOT_FOUND = 4401, 4404


def _token(websocket: WebSocket) -> str | None:
    header = websocket.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:]
    return websocket.query_params.get("token")


@router.websocket("/ws/orders/{order_id}")
async def track_order(websocket: WebSocket, order_id: uuid.UUID) -> None:
    state = websocket.app.state
    await websocket.accept()
    try:
        async with transaction(state.sessions) as session:
            token = _token(websocket)
            if token is None:
                raise Unauthorized("a bearer token is required")
            user_id = identity.decode_token(
                token, key=state.settings.secret_key_value(), now=state.clock.now()
            )
            user = await identity.get_active_user(session, user_id=user_id)
            order = await orders.get_order(session, order_id=order_id, viewer=user)
            if user.role != Role.CUSTOMER and user.role != Role.ADMIN:
                raise NotFound("no such order", code="order_not_found")
            pubsub = state.redis_pubsub.pubsub()
            # subscribe before the snapshot so no change can fall between the two
            await pubsub.subscribe(order_channel(str(order_id)))
            snapshot = await orders.public(session, order, show_otp=True)
    except DomainError as exc:
        await websocket.send_json({"type": "error", "error": exc.problem()})
        await websocket.close(code=CLOSE_UNAUTHORIZED if exc.status == 401 else CLOSE_NOT_FOUND)
        return
    try:
        await websocket.send_json({"type": "snapshot", "order": snapshot.model_dump(mode="json")})
        forward = asyncio.create_task(_forward(websocket, pubsub))
        try:
            while True:  # the client may send pings; a disconnect ends the loop
                await websocket.receive_text()
        except WebSocketDisconnect:
            pass
        finally:
            forward.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                await forward
    finally:
        await pubsub.unsubscribe()
        await pubsub.aclose()


async def _forward(websocket: WebSocket, pubsub) -> None:  # type: ignore[no-untyped-def]
    async for message in pubsub.listen():
        if message.get("type") != "message":
            continue
        event = json.loads(message["data"])
        await websocket.send_json({"type": event["topic"], **event["payload"]})
