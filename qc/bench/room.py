"""``qc bench room``: the waiting room's own costs, one part at a time.

``qc bench flash`` plays the whole crowd, where joins, polls, sockets and checkouts share
the machine and each other's queues; this takes the room's parts apart, on the same stack
(``qc serve``'s API and its room, embedded or configured services, one live sale):

* **joins**: ``joins`` customers join as fast as ``connections`` kept-alive connections
  carry them, first with their auth states cold (each join is its customer's first
  request: a PostgreSQL read of the user), then warm (cached before); the room's CPU a
  join, its joins a second and their latency;
* **the reference**: the same number of joins' shape to the bare FastAPI route under the
  room's server, the same connections: its CPU a request is what the server and the
  framework alone cost;
* **sockets**: ``sockets`` of the joined customers open ``/ws/flash`` and read their first
  message (the room's CPU a handshake), then stay open ``idle_s`` seconds (the room's CPU
  a second an open socket: pings, position looks).

The room's CPU is read from ``/proc`` (its process), so a slow client shows as fewer joins
a second, never as a dearer join; the client's own CPU is printed beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import httpx
import orjson
import psutil
import psycopg
import websockets
from rich.console import Console
from rich.table import Table

from qc.bench.flash import (
    API,
    BARE,
    SECRET,
    create_sale,
    find_waiting_room,
    mint_tokens,
    server_env,
    warm_auth_states,
)
from qc.bench.harness import conditions, percentile
from qc.bench.serving import serve_process
from qc.bench.shopper import bearer
from qc.bench.stack import bench_stack
from qc.serving import room_server
from server.identity.models import User
from server.identity.service import issue_token
from server.kit.config import Settings
from shared.enums import Role

STORE = "BLR-KOR"
JOIN = {"store_id": STORE}


def _cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


async def _metered(
    server: psutil.Process, work: Callable[[], Awaitable[list[float]]], count: int
) -> dict[str, float]:
    """``work`` (``count`` operations, each one's seconds returned) with the server's CPU
    and this process's own over it."""
    me = psutil.Process()
    server_before, me_before, started = _cpu_s(server), _cpu_s(me), time.perf_counter()
    took = sorted(await work())
    elapsed = time.perf_counter() - started
    server_s, me_s = _cpu_s(server) - server_before, _cpu_s(me) - me_before
    return {
        "count": count,
        "per_second": round(count / elapsed, 1),
        "server_cpu_us_each": round(1e6 * server_s / count),
        "server_cpu_pct": round(100 * server_s / elapsed, 1),
        "client_cpu_pct": round(100 * me_s / elapsed, 1),
        "p50_ms": round(1000 * percentile(took, 0.5), 1) if took else 0.0,
        "p99_ms": round(1000 * percentile(took, 0.99), 1) if took else 0.0,
    }


async def _posts(
    url: str, path: str, tokens: list[str], *, connections: int, first: int = 0
) -> list[float]:
    """One POST of a join's body per token, at most ``connections`` at once; each one's
    seconds. Each caller has an address of its own, as the crowd's (the per-IP limit)."""
    gate = asyncio.Semaphore(connections)
    body = orjson.dumps(JOIN)
    took: list[float] = []
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(base_url=url, connector=connector) as client:

        async def one(i: int, token: str) -> None:
            n = first + i
            headers = {
                **bearer(token),
                "content-type": "application/json",
                "X-Forwarded-For": f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}",
            }
            async with gate:
                started = time.perf_counter()
                async with client.post(path, data=body, headers=headers) as r:
                    await r.read()
                    if r.status != 200:
                        raise RuntimeError(f"{path}: {r.status} {await r.text()}")
                took.append(time.perf_counter() - started)

        await asyncio.gather(*(one(i, t) for i, t in enumerate(tokens)))
    return took


async def run(
    settings: Settings,
    *,
    joins: int = 16_000,
    sockets: int = 3000,
    connections: int = 64,
    idle_s: float = 30.0,
) -> dict[str, Any]:
    console = Console()
    users = 2 * joins + 1  # cold, warm, and one for the warm-up
    room_kind = room_server(settings, "granian")
    async with bench_stack(settings, stores=1, skus=300, pool=4, customers=users) as stack:
        embedded = stack.embedded
        minted = mint_tokens(stack.database_url, users)
        cold, warm = minted[:joins], minted[joins : 2 * joins]
        with psycopg.connect(stack.database_url) as conn:
            sku = conn.execute("SELECT sku_id FROM products ORDER BY sku_id").fetchone()
            manager = conn.execute("SELECT id FROM users WHERE login = 'manager.blr'").fetchone()
        assert sku is not None and manager is not None
        boss = User(id=manager[0], login="manager.blr", name="m", role=Role.MANAGER, secret_hash="")
        boss_token = issue_token(boss, key=SECRET, now=datetime.now(UTC), ttl_s=3600)[0]
        args = {"waiting_room": True, "failure_rate": 0.0, "slots": 100, "slot_seconds": 60}
        env = server_env(stack, args)
        figures: dict[str, Any] = {}
        with serve_process(BARE, env=env, workers=1, factory=True, server=room_kind) as bare:
            bare_process = psutil.Process(bare.pid)
            await _posts(bare.url, "/v1/bare/queue", ["-"] * 200, connections=connections)
            figures["bare FastAPI route (a join's shape)"] = await _metered(
                bare_process,
                lambda: _posts(bare.url, "/v1/bare/queue", ["-"] * joins, connections=connections),
                joins,
            )
        with serve_process(API, env=env, workers=2, factory=True, server="granian") as api:
            async with httpx.AsyncClient(base_url=api.url, timeout=120) as client:
                sale_id = await create_sale(
                    client, boss_token, sku_id=sku[0], store_id=STORE, units=1000
                )
                room_url, room_pid = await find_waiting_room(api, client, sale_id)
            room = psutil.Process(room_pid)
            path = f"/v1/flash-sales/{sale_id}/queue"
            await _posts(room_url, path, [minted[-1][1]] * 50, connections=connections)
            console.print(f"[bold]qc bench room[/]: {joins:,} joins cold, then warm")
            figures["join, auth cold (the customer's first request)"] = await _metered(
                room,
                lambda: _posts(room_url, path, [t for _, t in cold], connections=connections),
                joins,
            )
            await warm_auth_states(stack, settings, [uid for uid, _ in warm])
            figures["join, auth warm (cached before)"] = await _metered(
                room,
                lambda: _posts(
                    room_url, path, [t for _, t in warm], connections=connections, first=joins
                ),
                joins,
            )
            held = min(sockets, joins)
            console.print(f"{held:,} sockets opened, then held {idle_s:.0f} s")
            opened: list[Any] = []
            ws_url = room_url.replace("http", "ws", 1) + f"/ws/flash/{sale_id}?token="

            async def open_sockets() -> list[float]:
                gate = asyncio.Semaphore(connections)
                took: list[float] = []

                async def one(token: str) -> None:
                    async with gate:
                        started = time.perf_counter()
                        ws = await websockets.connect(  # no pings, as a browser's
                            ws_url + token, open_timeout=60, ping_interval=None
                        )
                        opened.append(ws)
                        await ws.recv()  # the first message: where the customer stands
                        took.append(time.perf_counter() - started)

                await asyncio.gather(*(one(t) for _, t in warm[:held]))
                return took

            try:
                figures["socket: handshake and first message"] = await _metered(
                    room, open_sockets, held
                )
                before, started = _cpu_s(room), time.perf_counter()
                await asyncio.sleep(idle_s)
                idle = (_cpu_s(room) - before) / (time.perf_counter() - started)
                figures["socket held open"] = {
                    "count": held,
                    "server_cpu_us_a_second_each": round(1e6 * idle / held, 1),
                    "server_cpu_pct": round(100 * idle, 1),
                }
            finally:
                for ws in opened:
                    with contextlib.suppress(Exception):
                        await ws.close()
    bare_us = figures["bare FastAPI route (a join's shape)"]["server_cpu_us_each"]
    for row in figures.values():
        if "server_cpu_us_each" in row and bare_us:
            row["vs_bare_cpu"] = round(row["server_cpu_us_each"] / bare_us, 1)
    cond = conditions(
        room_server=f"{room_kind}, 1 worker (qc serve's waiting room), the API on granian",
        connections=connections,
        client="aiohttp (joins) and websockets (sockets), one process, same machine",
        services="embedded" if embedded else "external",
    )
    _print(console, figures, cond)
    return {"conditions": cond, "results": figures}


def _print(console: Console, figures: dict[str, Any], cond: dict[str, object]) -> None:
    table = Table(title="qc bench room: the waiting room's CPU, part by part")
    for column in ("part", "a second", "room CPU µs each", "vs bare", "room / client CPU %"):
        table.add_column(column, justify="left" if column == "part" else "right")
    for name, row in figures.items():
        each = row.get("server_cpu_us_each", row.get("server_cpu_us_a_second_each"))
        table.add_row(
            name + (" (µs a second each)" if "server_cpu_us_a_second_each" in row else ""),
            f"{row['per_second']:,.0f} (p50 {row['p50_ms']} / p99 {row['p99_ms']} ms)"
            if "per_second" in row
            else f"{row['count']:,} open",
            f"{each:,}",
            f"{row['vs_bare_cpu']}x" if "vs_bare_cpu" in row else "-",
            f"{row['server_cpu_pct']} / {row.get('client_cpu_pct', '-')}",
        )
    console.print(table)
    console.print("conditions: " + ", ".join(f"{k}={v}" for k, v in cond.items()))
