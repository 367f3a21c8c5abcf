"""The simulated people's HTTP: a request sent is carried to its answer even when the
actor that sent it is cancelled, and the run waits for it before reading the books."""

from __future__ import annotations

import asyncio

from qc.sim.config import SimConfig
from qc.sim.world import World
from server.kit.clock import Clock
from shared.client import ApiClient


async def test_a_cancelled_actors_request_still_lands_and_settle_waits_for_it() -> None:
    received, release = asyncio.Event(), asyncio.Event()
    answered: list[bytes] = []

    async def slow_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        received.set()
        await release.wait()  # the server is still working when the actor is cancelled
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
        writer.write(b"Content-Length: 2\r\n\r\n{}")
        await writer.drain()
        answered.append(request.split(b"\r\n", 1)[0])
        writer.close()

    listener = await asyncio.start_server(slow_server, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    world = World(f"http://127.0.0.1:{port}", Clock(), SimConfig())
    client = world.client(ApiClient, timeout=10)
    try:
        actor = asyncio.create_task(client._http.post("/v1/carts/x/checkout", json={}))
        await asyncio.wait_for(received.wait(), 10)
        actor.cancel()
        done, _ = await asyncio.wait({actor}, timeout=5)
        assert actor in done and actor.cancelled()  # the actor stops at once
        assert len(world.in_flight) == 1 and not answered  # its request does not
        settling = asyncio.create_task(world.settle(timeout_s=10))
        await asyncio.sleep(0)
        assert not settling.done()
        release.set()
        await asyncio.wait_for(settling, 10)
        assert answered == [b"POST /v1/carts/x/checkout HTTP/1.1"]
        assert not world.in_flight
    finally:
        await client.aclose()
        listener.close()
        await listener.wait_closed()
