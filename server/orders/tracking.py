"""Live tracking: ``/ws/orders/{id}`` pushes each state change (and, once a rider has the
order, the rider's position and ETA) to the order's customer, never one older than the
snapshot or than a change already pushed (each carries the order's event ``sequence``)."""

from __future__ import annotations

import contextlib
import uuid

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from server.identity.models import User
from server.kit import sockets
from server.kit.db import transaction
from server.kit.errors import NotFound
from server.kit.keys import order_channel
from server.kit.resources import resources_of
from server.orders import service as orders
from server.orders import views
from shared.enums import Role

router = APIRouter(tags=["orders"])


@router.websocket("/ws/orders/{order_id}")
async def track_order(websocket: WebSocket, order_id: uuid.UUID) -> None:
    sessions = resources_of(websocket.app).sessions

    async def visible(user: User) -> None:
        async with transaction(sessions) as session:
            await orders.get_order(session, order_id=order_id, viewer=user)

    admitted = await sockets.accept(
        websocket,
        roles={Role.CUSTOMER, Role.ADMIN},
        wrong_role=lambda: NotFound("no such order", code="order_not_found"),
        admit=visible,
    )
    if admitted is None:
        return
    user, _ = admitted
    gate = sockets.AfterSnapshot()
    async with sockets.relaying(websocket, order_channel(str(order_id)), gate=gate):
        # subscribed first, then the snapshot: no change can fall between the two. The
        # sequence is read before the order, so the order shows at least every change up to
        # it: the gate drops those when the relay delivers them late
        async with transaction(sessions) as session:
            sequence = await orders.latest_sequence(session, order_id=order_id)
            order = await orders.get_order(session, order_id=order_id, viewer=user)
            snapshot = await views.public(session, order, show_otp=True)
        await websocket.send_json(
            {"type": "snapshot", "sequence": sequence, "order": snapshot.model_dump(mode="json")}
        )
        gate.snapshot_sent(sequence)
        with contextlib.suppress(WebSocketDisconnect):
            while True:  # the client may send pings; a disconnect ends the loop
                await websocket.receive_text()
