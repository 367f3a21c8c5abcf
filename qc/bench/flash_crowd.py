"""The flash-sale crowd of ``qc bench flash``: what one customer does (join the line, wait
on the socket or by polling, check out when admitted), run in the crowd's processes; the
regular orders beside the sale are ``shopper``'s. Everything here is what the clients saw,
as they saw it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.synchronize import Barrier
from typing import Any, TypeVar

import aiohttp
import websockets

from qc.bench.shopper import ADDRESS, Answer, bearer, ms, request, session

L = TypeVar("L")


_SUMMED = (  # the processes' figures a merge adds up
    *("polls", "sockets", "socket_messages", "positions_rose"),
    *("cpu_s", "joining_cpu_s", "joining_s"),
)


@dataclass
class Crowd:
    """What the customers saw, as they saw it."""

    join_ms: list[float] = field(default_factory=list)  # the request, on its connection
    # from the customer's arrival: also the wait for a connection and the retries after a
    # 429/503 (a crowd the client cannot send at once waits here, not in ``join_ms``)
    join_from_arrival_ms: list[float] = field(default_factory=list)
    loop_lag_ms: list[float] = field(default_factory=list)  # the generator's own delay
    checkout_ms: list[float] = field(default_factory=list)
    admitted_after_s: list[float] = field(default_factory=list)
    admissions: list[tuple[int, int]] = field(default_factory=list)  # (admitted_no, ticket)
    outcomes: Counter[str] = field(default_factory=Counter)
    answers: Counter[str] = field(default_factory=Counter)  # 429s, 503s, ...
    polls: int = 0
    sockets: int = 0
    socket_messages: int = 0
    positions_rose: int = 0  # a socket's position going up (must stay 0)
    first_join: float | None = None  # wall clock (time.time): shared by the processes
    last_join: float | None = None  # the last join's answer, as seen
    sold_out_at: float | None = None
    cpu_s: float = 0.0  # the generator's CPU (the processes that ran this crowd)
    # and from its start to its last join's answer (the run's average hides that burst)
    joining_cpu_s: float = 0.0
    joining_s: float = 0.0
    cpu_started: float = 0.0  # this process's CPU clock when its customers were released

    def add(self, other: Crowd) -> None:
        """Take in what another process's customers saw."""
        for name in (
            "join_ms",
            "join_from_arrival_ms",
            "loop_lag_ms",
            "checkout_ms",
            "admitted_after_s",
            "admissions",
        ):
            getattr(self, name).extend(getattr(other, name))
        self.outcomes.update(other.outcomes)
        self.answers.update(other.answers)
        for name in _SUMMED:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name, pick in (("first_join", min), ("sold_out_at", min), ("last_join", max)):
            seen = [t for t in (getattr(self, name), getattr(other, name)) if t is not None]
            setattr(self, name, pick(seen, default=None))


async def _call(
    crowd: Crowd, client: aiohttp.ClientSession, method: str, url: str, **kwargs: Any
) -> tuple[Answer, float]:
    """One request, retried after Retry-After when refused (429 rate limit, 503 busy), and
    at once when a kept-alive connection was closed under it (every call here is safe to
    repeat: one entry per customer, checkouts carry an Idempotency-Key)."""
    lost = 0
    while True:
        started = time.perf_counter()
        try:
            r = await request(client, method, url, **kwargs)
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
            lost += 1
            crowd.answers["connection closed by the server, repeated"] += 1
            if lost > 5:
                raise
            continue
        took = time.perf_counter() - started
        if r.status_code not in (429, 503):
            return r, took
        crowd.answers[f"{r.status_code} {r.json().get('code', '')}"] += 1
        await asyncio.sleep(min(5.0, float(r.retry_after or "1")))


async def _watch(ws_url: str, crowd: Crowd) -> dict[str, Any] | None:
    """Wait on the socket for the customer's turn (or the line closing); None if the socket
    could not be used (the caller polls instead)."""
    last = None
    try:
        # no pings of its own, as a browser's socket (the server pings to find the gone)
        async with websockets.connect(
            ws_url, open_timeout=30, close_timeout=2, ping_interval=None
        ) as ws:
            crowd.sockets += 1
            async for raw in ws:
                message = json.loads(raw)
                crowd.socket_messages += 1
                if message["type"] == "position":
                    if last is not None and message["position"] > last:
                        crowd.positions_rose += 1
                    last = message["position"]
                elif message["type"] == "admitted":
                    return {"status": "ADMITTED", "admitted_no": message["admitted_no"]}
                elif message["type"] == "closed":
                    return {"status": "CLOSED", "closed_reason": message["reason"]}
                else:
                    return None
    except (OSError, websockets.WebSocketException, TimeoutError):
        return None
    return None


async def customer(
    i: int,
    *,
    token: str,
    lanes: dict[str, tuple[aiohttp.ClientSession, asyncio.Semaphore]],
    base_ws: str,
    sale_id: str,
    store: str,
    start: float,  # time.time() of the crowd's first possible arrival
    arrive_at: float,
    with_socket: bool,
    abandon: bool,
    crowd: Crowd,
    poll_cap_s: float | None = None,
) -> None:
    arrival = start + arrive_at
    await asyncio.sleep(max(0.0, arrival - time.time()))
    headers = {**bearer(token), "X-Forwarded-For": f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"}
    client, gate = lanes["join"]
    async with gate:
        r, took = await _call(
            crowd,
            client,
            "POST",
            f"/v1/flash-sales/{sale_id}/queue",
            json={"store_id": store},
            headers=headers,
        )
    joined_at = time.time()
    crowd.first_join = crowd.first_join or joined_at
    crowd.last_join = joined_at
    crowd.joining_s = joined_at - start
    crowd.joining_cpu_s = time.process_time() - crowd.cpu_started
    crowd.join_ms.append(ms(took))
    crowd.join_from_arrival_ms.append(ms(joined_at - arrival))
    if r.status_code == 409:
        crowd.outcomes[f"told at join: {r.json()['code']}"] += 1
        return
    if r.status_code != 200:
        crowd.outcomes[f"join {r.status_code}"] += 1
        return
    entry = r.json()
    ticket = entry["ticket"]
    socket_used = False
    first = True  # still on the join's answer
    while True:
        status = entry["status"]
        ticket = ticket or entry.get("ticket")
        if status == "ADMITTED":
            crowd.admitted_after_s.append(time.time() - joined_at)
            if entry.get("admitted_no") and ticket:
                crowd.admissions.append((entry["admitted_no"], ticket))
            if abandon:
                crowd.outcomes["abandoned the slot (expired)"] += 1
                return
            client, gate = lanes["checkout"]
            async with gate:
                r, took = await _call(
                    crowd,
                    client,
                    "POST",
                    f"/v1/flash-sales/{sale_id}/checkout",
                    json=ADDRESS,
                    headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
                )
            crowd.checkout_ms.append(ms(took))
            if r.status_code == 201:
                crowd.outcomes["bought"] += 1
            elif r.status_code == 402:
                crowd.outcomes["payment declined"] += 1
            else:  # e.g. the slot ran out before the customer looked (polling far back)
                how = "socket" if socket_used else "join" if first else "poll"
                crowd.outcomes[f"checkout {r.status_code} {r.json().get('code')} ({how})"] += 1
            return
        if status == "CLOSED":
            if entry.get("closed_reason") == "sold_out":
                crowd.sold_out_at = crowd.sold_out_at or time.time()
            how = "socket" if socket_used else "poll"
            crowd.outcomes[f"told {entry.get('closed_reason')} ({how})"] += 1
            return
        if status in ("PURCHASED", "PAYING"):
            crowd.outcomes[status.lower()] += 1
            return
        if with_socket and not socket_used:
            socket_used = True
            seen = await _watch(f"{base_ws}/ws/flash/{sale_id}?token={token}", crowd)
            if seen is not None:
                entry, first = seen, False
                continue
        else:
            wait = max(1, entry.get("poll_after_s") or 1)  # as the server says
            await asyncio.sleep(min(wait, poll_cap_s) if poll_cap_s else wait)
        client, gate = lanes["poll"]
        async with gate:
            r, _ = await _call(
                crowd, client, "GET", f"/v1/flash-sales/{sale_id}/queue/me", headers=headers
            )
        crowd.polls += 1
        first = False
        if r.status_code != 200:
            crowd.outcomes[f"poll {r.status_code} {r.json().get('code')}"] += 1
            return
        entry = r.json()


@dataclass(frozen=True)
class Arrival:
    """One customer of the crowd: who, when (seconds after the start), and how they wait."""

    i: int
    token: str
    arrive_at: float
    with_socket: bool
    abandon: bool


@dataclass(frozen=True)
class CrowdShare:
    """The customers one generator process plays."""

    url: str
    sale_id: str
    store: str
    arrivals: list[Arrival]
    connections: int
    per_client: int
    poll_cap_s: float | None = None
    # where the customers join, poll and watch (the sale's ``waiting_room_url``); None:
    # ``url``, where they check out
    room_url: str | None = None


def lanes_of(lanes: dict[str, list[L]], place: int) -> dict[str, L]:
    """The clients of a share's ``place``-th customer, round robin by place in the share:
    a customer's number (``Arrival.i``) is the same modulo the number of processes all
    through a share, and by it each process used one of its two join clients (half the
    join connections the conditions name)."""
    return {kind: clients[place % len(clients)] for kind, clients in lanes.items()}


async def play(share: CrowdShare, barrier: Barrier) -> Crowd:
    """One load process's customers (``harness.Spawned``), released at ``barrier``."""
    async with contextlib.AsyncExitStack() as clients:
        # joins, polls and checkouts on their own connections, as each customer has their
        # own device: a checkout never waits behind the crowd's joins in this generator;
        # the line's requests and sockets go to the waiting room, checkouts to the API
        room = share.room_url or share.url
        lanes = {
            kind: [
                (
                    await clients.enter_async_context(
                        session(
                            share.url if kind == "checkout" else room,
                            connections=share.per_client,
                        )
                    ),
                    asyncio.Semaphore(share.per_client),
                )
                for _ in range(max(1, round(share.connections * part / share.per_client)))
            ]
            for kind, part in (("join", 0.5), ("poll", 0.25), ("checkout", 0.25))
        }
        crowd = Crowd()
        await asyncio.to_thread(barrier.wait)
        start, crowd.cpu_started = time.time(), time.process_time()
        base_ws = room.replace("http", "ws")
        lag = asyncio.create_task(_loop_lag(crowd))
        await asyncio.gather(
            *(
                customer(
                    a.i,
                    token=a.token,
                    lanes=lanes_of(lanes, n),
                    base_ws=base_ws,
                    sale_id=share.sale_id,
                    store=share.store,
                    start=start,
                    arrive_at=a.arrive_at,
                    with_socket=a.with_socket,
                    abandon=a.abandon,
                    crowd=crowd,
                    poll_cap_s=share.poll_cap_s,
                )
                for n, a in enumerate(share.arrivals)
            )
        )
        crowd.cpu_s = time.process_time() - crowd.cpu_started
        lag.cancel()
        return crowd


@dataclass(frozen=True)
class QuietShare:
    """The quiet client: customers of their own who join one at a time from a process that
    does nothing else, spread over ``spread_s`` from the crowd's start."""

    room_url: str
    sale_id: str
    store: str
    tokens: list[str]
    spread_s: float


async def quiet_joins(share: QuietShare, barrier: Barrier) -> list[tuple[float, float]]:
    """Each join as a client with nothing else to do saw it (``Spawned``): when it was sent
    (wall clock) and what it took, the server's latency under the crowd without the crowd
    generator's own delay, which a process playing 10,000 customers adds to every answer it
    reads. A quiet customer joins and stays in line without looking again (admitted, its
    slot expires: a few at most); the first refusal (the line closed) ends the client."""
    took: list[tuple[float, float]] = []
    async with session(share.room_url, connections=1) as client:
        await asyncio.to_thread(barrier.wait)
        start, every = time.monotonic(), share.spread_s / max(1, len(share.tokens))
        for n, token in enumerate(share.tokens):
            await asyncio.sleep(max(0.0, start + n * every - time.monotonic()))
            headers = {**bearer(token), "X-Forwarded-For": f"10.250.{n >> 8 & 255}.{n & 255}"}
            sent, began = time.time(), time.perf_counter()
            r = await request(
                client,
                "POST",
                f"/v1/flash-sales/{share.sale_id}/queue",
                json={"store_id": share.store},
                headers=headers,
            )
            if r.status_code != 200:
                break
            took.append((sent, ms(time.perf_counter() - began)))
    return took


@dataclass(frozen=True)
class BareShare:
    """One generator process's share of the flash join's reference: its crowd share's
    arrivals, each one POST of a join's shape to the bare FastAPI route
    (``serving.bare_fastapi``) on the same join connections as its customers'."""

    url: str
    arrivals: list[float]  # seconds after the start
    connections: int
    per_client: int


@dataclass
class BareJoins:
    took_ms: list[float] = field(default_factory=list)
    first: float = 0.0  # wall clock of the first and last answers
    last: float = 0.0
    refused: int = 0

    @staticmethod
    def merged(shares: list[BareJoins]) -> BareJoins:
        """The processes' joins as one: all latencies, the first and the last answers."""
        firsts = [s.first for s in shares if s.first]
        return BareJoins(
            [ms for s in shares for ms in s.took_ms],
            min(firsts, default=0.0),
            max((s.last for s in shares), default=0.0),
            sum(s.refused for s in shares),
        )


async def bare_joins(share: BareShare, barrier: Barrier) -> BareJoins:
    """The reference's joins (``Spawned``): timed as a customer's join is (``customer``),
    on a connection of its lane, from the request to its answer."""
    out = BareJoins()
    async with contextlib.AsyncExitStack() as clients:
        lanes = [
            (
                await clients.enter_async_context(session(share.url, connections=share.per_client)),
                asyncio.Semaphore(share.per_client),
            )
            for _ in range(max(1, round(share.connections * 0.5 / share.per_client)))
        ]
        await asyncio.to_thread(barrier.wait)
        start = time.time()

        async def one(n: int, at: float) -> None:
            await asyncio.sleep(max(0.0, start + at - time.time()))
            client, gate = lanes[n % len(lanes)]
            async with gate:
                began = time.perf_counter()
                r = await request(client, "POST", "/v1/bare/queue", json={"store_id": "BLR-KOR"})
                took = time.perf_counter() - began
            if r.status_code != 200:
                out.refused += 1
                return
            out.took_ms.append(ms(took))
            out.last = time.time()
            out.first = out.first or out.last

        await asyncio.gather(*(one(n, at) for n, at in enumerate(share.arrivals)))
    return out


async def _loop_lag(crowd: Crowd, every_s: float = 0.01) -> None:
    """How late this process's event loop wakes (every 10 ms): a busy generator delays
    every answer it reads by as much, and a join's figures would carry that delay."""
    while True:
        asked = time.perf_counter()
        await asyncio.sleep(every_s)
        crowd.loop_lag_ms.append(ms(time.perf_counter() - asked - every_s))
