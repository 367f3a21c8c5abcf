"""A customer's order socket dropped by the server (a restart, a reader cut off, the end
of a run) is reconnected, as the app does: counted among what the people did, not among
the report's "unexpected answers" (a Ctrl-C on the demo used to list a dozen)."""

from __future__ import annotations

import json
import random
from types import SimpleNamespace

from websockets.asyncio.server import ServerConnection, serve

from qc.sim.config import SimConfig
from qc.sim.customers import Customers
from qc.sim.world import World
from server.kit.clock import Clock


async def test_a_dropped_order_socket_is_followed_again_not_an_error() -> None:
    async def drops(ws: ServerConnection) -> None:
        await ws.send(json.dumps({"type": "snapshot", "order": {"status": "PICKING"}}))
        ws.transport.abort()  # gone without a close frame: ConnectionClosedError

    async with serve(drops, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]

        class Client:
            def order_socket_url(self, order_id: str) -> str:
                return f"ws://127.0.0.1:{port}/ws/orders/{order_id}"

            async def order(self, order_id: str) -> SimpleNamespace:
                return SimpleNamespace(status="DELIVERED", delivery_otp=None)

        world = World(f"http://127.0.0.1:{port}", Clock(speed=60), SimConfig())
        await Customers(world, [])._track(Client(), "o-1", random.Random(1))  # type: ignore[arg-type]
    assert world.stats["tracking_reconnects"] == 1
    assert world.stats["tracked:DELIVERED"] == 1
    assert not world.errors
