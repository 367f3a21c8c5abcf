"""Live tracking: ``/ws/orders/{id}`` pushes each state change (and, once a rider has the
order, the rider's position and ETA) to the order's customer."""

from __future__ import annotations

import contextlib
import uuid

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from server.identity import service as identity
from server.kit.db import transaction
from server.kit.errors import DomainError, NotFound
from server.kit.keys import order_channel
from server.kit.sockets import caller_id, relaying
from server.orders import service as orders
from shared.enums import Role

router = APIRouter(tags=["orders"])

CLOSE_UNAUTHORIZED, CLOSE_NOT_FOUND = 4401, 4404


@router.websocket("/ws/orders/{order_id}")
async def track_order(websocket: WebSocket, order_id: uuid.UUID) -> None:
    state = websocket.app.state
    await websocket.accept()
    try:
        user_id = caller_id(websocket)
        async with transaction(state.sessions) as session:
            user = await identity.get_active_user(session, user_id=user_id)
            order = await orders.get_order(session, order_id=order_id, viewer=user)
            if user.role not in (Role.CUSTOMER, Role.ADMIN):
                raise NotFound("no such order", code="order_not_found")
    except DomainError as exc:
        await websocket.send_json({"type": "error", "error": exc.problem()})
        await websocket.close(code=CLOSE_UNAUTHORIZED if exc.status == 401 else CLOSE_NOT_FOUND)
        return
    async with relaying(websocket, order_channel(str(order_id))):
        # subscribed first, then the snapshot: no change can fall between the two
        async with transaction(state.sessions) as session:
            order = await orders.get_order(session, order_id=order_id, viewer=user)
            snapshot = await orders.public(session, order, show_otp=True)
        await websocket.send_json({"type": "snapshot", "order": snapshot.model_dump(mode="json")})
        with contextlib.suppress(WebSocketDisconnect):
            while True:  # the client may send pings; a disconnect ends the loop
                await websocket.receive_text()
