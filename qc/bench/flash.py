"""``qc bench flash``: a flash-sale crowd against the real HTTP and websocket endpoints.

A city with ``users`` customers and one sale of ``units`` units. After a baseline of
regular orders (cart, two lines, checkout) without the sale, the manager creates the sale
(its tokens are pre-generated), the crowd arrives within ``arrival_s`` seconds and every
customer joins the line through ``POST /v1/flash-sales/{id}/queue``. An admitted customer
checks out at once (a few abandon their slot, which then expires and passes on);
waiting ones learn their turn on ``/ws/flash/{id}`` (``sockets`` of them) or by polling
``.../queue/me`` when the server says to. The same regular orders keep arriving meanwhile
(``regular_rate`` a second, an open loop), and their checkout latency is compared with the
baseline. A reference runs first, alone: the crowd's arrivals from the same processes to
a bare FastAPI route under the room's server. The line is served by
the waiting room (``qc serve``'s own server for it, named in the sale's view) unless
``waiting_room`` is off; ``warm_auth`` (a diagnostic) caches the crowd's auth states
before the sale, so that a join is not its customer's first request.

Each customer has its own client address (``X-Forwarded-For`` from the loopback proxy,
which the app trusts: ``QC_TRUSTED_PROXIES``), so the per-IP limit applies per customer as at a real edge. The
customers are split over ``generators`` spawned processes (one Python process could not
send 20,000 joins in seconds: it, not the server, would be the limit; the conditions say how
busy each was), each multiplexing its share over a few HTTP/1.1 connection pools; every
count is real: each customer joins, waits and checks out (or is told the line closed).

Two join latencies: the request on its kept-alive connection (what the server took, plus
the generator's own event-loop delay, which is measured too), and from the customer's
arrival (also the wait for one of the generator's connections and the retries after a
503: where a crowd the server cannot absorb waits). The API's, PostgreSQL's and Valkey's
CPU while the crowd runs, per customer, is the cost figure on a shared machine.

The figures that prove it, read from PostgreSQL at the end: units sold (tokens SOLD and
CONFIRMED orders at the sale price), oversold, customers over their limit, the SKU's
books (physical = available + reserved + damaged + in_transit, and every unit that left
went with an order), and admission order against join order.

This module sets the stage and runs it; the customers are in ``flash_crowd``, the proof
and the printed tables in ``flash_proof``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import httpx
import psutil
import psycopg
from rich.console import Console

from qc.bench.flash_crowd import (
    Arrival,
    BareJoins,
    BareShare,
    Crowd,
    CrowdShare,
    QuietShare,
    bare_joins,
    play,
    quiet_joins,
)
from qc.bench.flash_proof import books, print_report, verify
from qc.bench.harness import Spawned, conditions
from qc.bench.serving import free_port, serve_process
from qc.bench.shopper import bearer, pct, regular_orders_at, session
from qc.bench.stack import bench_stack, one_row
from qc.bench.wrk import (
    cpu_meter,
    cpu_timeline,
    cpu_within,
    lag_p99_within,
    lag_timeline,
    memory_meter,
    service_pids,
)
from qc.serving import Server, room_server
from server.identity.models import User
from server.identity.service import issue_token
from server.kit.config import Settings
from shared.enums import Role

API = "qc.serving:create_served_app"  # the app as qc serve runs it
BARE = "qc.bench.serving:bare_fastapi"  # the join's reference
SECRET = "bench-secret-key-" + "x" * 40
# the regular orders rotate over them: checkouts per customer are limited per minute, and a
# customer's declined checkouts leave open carts (3 at most)
REGULAR_CUSTOMERS = 1000
IDLE_S = 5.0  # the servers' idle CPU (background loops) is metered this long
PER_CLIENT = 8  # connections per HTTP client: httpcore's pool scans them all per request


def server_env(stack: Any, args: dict[str, Any]) -> dict[str, str]:
    return {
        "QC_DATABASE_URL": stack.database_url,
        "QC_REDIS_URL": stack.redis_url,
        "QC_SECRET_KEY": SECRET,
        "QC_LOG_JSON": "true",
        "QC_LOG_LEVEL": "ERROR",
        "QC_PAYMENT_LATENCY_S": "0.01",
        "QC_PAYMENT_FAILURE_RATE": str(args["failure_rate"]),
        "QC_FLASH_MAX_CONCURRENT_CHECKOUTS": str(args["slots"]),
        "QC_FLASH_SLOT_SECONDS": str(args["slot_seconds"]),
        "QC_FLASH_TICK_INTERVAL_S": "0.25",
        "QC_TRUSTED_PROXIES": "127.0.0.1",  # the edge: X-Forwarded-For names the client
        # the line's own server beside the API (qc serve's waiting room), or none (0)
        "QC_WAITING_ROOM_PORT": str(free_port() if args["waiting_room"] else 0),
        # a worker this busy (on a machine shared with the client) may answer uvicorn's
        # health ping late; it is busy, not hung, so do not kill it after 5 s
        "UVICORN_TIMEOUT_WORKER_HEALTHCHECK": "60",
    }


async def create_sale(
    client: httpx.AsyncClient, token: str, *, sku_id: str, store_id: str, units: int
) -> str:
    """Start a two-hour flash sale of ``units`` at one store now (one unit per customer);
    its id."""
    deadline = time.monotonic() + 120
    while True:
        now = datetime.now(UTC)
        r = await client.post(
            "/v1/flash-sales",
            headers=bearer(token),
            json={
                "sku_id": sku_id,
                "store_ids": [store_id],
                "sale_price_paise": 100,
                "starts_at": now.isoformat(),
                "ends_at": (now + timedelta(hours=2)).isoformat(),
                "units_per_store": units,
                "per_customer_limit": 1,
            },
        )
        # a fresh server may still be loading the store's stock into Valkey (a busy
        # machine takes longer): the 503 asks to come back, so come back until a deadline
        if r.status_code != 503 or time.monotonic() > deadline:
            break
        await asyncio.sleep(float(r.headers.get("Retry-After", "1")))
    if r.status_code != 201:
        raise RuntimeError(f"could not create the sale: {r.status_code} {r.text}")
    return str(r.json()["sale_id"])


async def find_waiting_room(api: Any, client: httpx.AsyncClient, sale_id: str) -> tuple[str, int]:
    """The waiting room the sale names (its URL, its server's pid), once it answers; the
    API itself (and its pid) when it names none."""
    sale = (await client.get(f"/v1/flash-sales/{sale_id}")).json()
    url = sale.get("waiting_room_url")
    if not url:
        return api.url, api.pid
    (room,) = [
        p
        for p in psutil.Process(api.pid).children()
        if p.cmdline()[1:4] == ["-m", "qc.serving", "room"]
    ]
    deadline = time.monotonic() + 120  # it imports and starts beside the API
    while True:
        with contextlib.suppress(httpx.TransportError):
            if (await client.get(url + "/healthz", timeout=5)).status_code == 200:
                return str(url), room.pid
        if time.monotonic() > deadline:
            raise RuntimeError(f"the waiting room at {url} did not start")
        await asyncio.sleep(0.2)


async def warm_auth_states(stack: Any, settings: Settings, ids: list[uuid.UUID]) -> int:
    """Diagnostic (``warm_auth``): the crowd's auth states cached in Valkey before the sale,
    as for customers who opened the app shortly before it (a join is then no first
    request: no PostgreSQL read of its user)."""
    from server.identity.service import load_users
    from server.kit import db
    from server.kit import redis as qredis

    engine = db.create_engine(stack.database_url, settings)
    redis = qredis.create_redis(stack.redis_url)
    cached = 0
    try:
        for at in range(0, len(ids), 500):
            users = await load_users(redis, db.session_maker(engine), ids[at : at + 500])
            cached += sum(1 for user in users if user is not None)
        return cached
    finally:
        await redis.aclose()
        await engine.dispose()


def _crowd_alone(
    cpu_s: dict[str, float],
    baseline_cpu_s: dict[str, float],
    baseline: dict[str, Any],
    during: dict[str, Any],
    users: int,
) -> dict[str, float]:
    """The crowd's own CPU per customer: the regular orders that ran beside it are taken
    out at what one cost in the baseline (measured the same way, less what the servers
    spend idle over as long: their background loops, ~6 of ~26 ms an order on a loaded
    machine when it was charged to the orders)."""
    out: dict[str, float] = {}
    for name, used in cpu_s.items():
        per_order = baseline_cpu_s.get(name, 0.0) / max(1, baseline["orders"])
        regular = per_order * during["orders"]
        out[f"{name.lower()}_cpu_ms_per_regular_order"] = round(1000 * per_order, 2)
        out[f"{name.lower()}_cpu_s_regular_orders_beside"] = round(regular, 1)
        out[f"{name.lower()}_cpu_ms_per_customer_without_regular"] = round(
            1000 * max(0.0, used - regular) / users, 2
        )
    return out


def mint_tokens(database_url: str, users: int) -> list[tuple[uuid.UUID, str]]:
    """Bearer tokens minted with the bench server's key (logging 20,000 people in through
    scrypt would measure password hashing, not the sale)."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT id FROM users WHERE role = 'customer' ORDER BY login LIMIT %s", (users,)
        ).fetchall()
    now = datetime.now(UTC)
    out = []
    for (uid,) in rows:
        user = User(id=uid, login="bench", name="bench", role=Role.CUSTOMER, secret_hash="")
        out.append((uid, issue_token(user, key=SECRET, now=now, ttl_s=6 * 3600)[0]))
    return out


async def run(
    settings: Settings,
    *,
    users: int = 20_000,
    units: int = 1000,
    workers: int = 2,
    slots: int = 100,
    slot_seconds: int = 60,
    sockets: int = 5000,
    arrival_s: float = 10.0,
    connections: int = 64,
    failure_rate: float = 0.05,
    abandon_rate: float = 0.005,
    regular_rate: float = 10.0,
    regular_seconds: float = 20.0,
    poll_cap_s: float | None = None,
    generators: int = 4,  # two: each process's own delay was ~1/4 more of a join's time
    server: str = "granian",
    waiting_room: bool = True,
    warm_auth: bool = False,
    quiet: int = 100,
    quiet_s: float = 100.0,
    # each crowd process in a scheduling group of its own, this step ahead of the servers
    # (0: beside them); None: in the servers' group, where the API's workers, the loops
    # and the crowd's four processes shared one group's CPU and a crowd process waited for
    # a core for up to ~1 s at a time (docs/benchmarks.md, session 22)
    generator_nice: int | None = 0,
) -> dict[str, Any]:
    store = "BLR-KOR"
    args = {
        "waiting_room": waiting_room,
        "failure_rate": failure_rate,
        "slots": slots,
        "slot_seconds": slot_seconds,
    }
    console = Console()
    async with bench_stack(
        settings, stores=1, skus=300, pool=4, customers=users + REGULAR_CUSTOMERS + quiet
    ) as stack:
        minted = mint_tokens(stack.database_url, users + REGULAR_CUSTOMERS + quiet)
        crowd_tokens = [t for _, t in minted[:users]]
        regular_tokens = [t for _, t in minted[users : users + REGULAR_CUSTOMERS]]
        quiet_tokens = [t for _, t in minted[users + REGULAR_CUSTOMERS :]]
        with psycopg.connect(stack.database_url) as conn:
            skus = [r[0] for r in conn.execute("SELECT sku_id FROM products ORDER BY sku_id")]
            manager = one_row(conn, "SELECT id FROM users WHERE login = 'manager.blr'")[0]
        flash_sku, regular_skus = skus[0], skus[1:]
        before = books(stack.database_url, store, flash_sku)
        boss = User(id=manager, login="manager.blr", name="m", role=Role.MANAGER, secret_hash="")
        boss_token = issue_token(boss, key=SECRET, now=datetime.now(UTC), ttl_s=6 * 3600)[0]
        env = server_env(stack, args)
        rng = random.Random(7)
        console.print(
            f"[bold]qc bench flash[/]: {users:,} customers, {units:,} units, "
            f"{workers} workers; baseline first ({regular_seconds:.0f} s of regular orders)"
        )
        with_socket = set(rng.sample(range(users), min(sockets, users)))
        arrivals = [
            Arrival(
                i,
                crowd_tokens[i],
                rng.uniform(0, arrival_s),
                i in with_socket,
                rng.random() < abandon_rate,
            )
            for i in range(users)
        ]
        process_connections = max(PER_CLIENT, connections // generators)
        # the reference first, alone on the machine: the same arrivals from the same
        # processes on the same join connections, to the bare FastAPI route under the
        # line's server (what any join's round trip costs this stack and this generator)
        line_workers = settings.waiting_room_workers if waiting_room else workers
        line_server = room_server(settings, cast(Server, server)) if waiting_room else server
        with serve_process(
            BARE, env=env, workers=line_workers, factory=True, server=line_server
        ) as bare:
            reference = Spawned(
                bare_joins,
                [
                    BareShare(
                        bare.url,
                        [a.arrive_at for a in arrivals[k::generators]],
                        process_connections,
                        PER_CLIENT,
                    )
                    for k in range(generators)
                ],
                nice=generator_nice,
            )
            await reference.start()
            bare_seen = BareJoins.merged(await reference.results())
        console.print(
            f"reference: {len(bare_seen.took_ms):,} joins' shape to the bare FastAPI route, "
            f"p99 {pct(bare_seen.took_ms, 0.99):,.1f} ms"
        )
        with serve_process(API, env=env, workers=workers, factory=True, server=server) as api:
            url = api.url
            timeout = httpx.Timeout(120.0)
            async with contextlib.AsyncExitStack() as clients_stack:
                client = await clients_stack.enter_async_context(
                    httpx.AsyncClient(base_url=url, timeout=timeout)
                )
                regular_client = await clients_stack.enter_async_context(
                    session(url, connections=32)
                )
                never = asyncio.Event()
                pids = {"API": [api.pid], **service_pids(stack.database_url, stack.redis_url)}
                with cpu_meter(pids) as idle_cpu_s:  # the servers idle: their loops' own
                    await asyncio.sleep(IDLE_S)
                baseline_started = time.perf_counter()
                with cpu_meter(pids) as baseline_cpu_s:  # what a regular order costs alone
                    baseline = await regular_orders_at(
                        regular_client,
                        regular_tokens,
                        regular_skus,
                        store=store,
                        rate=regular_rate,
                        until=never,
                        seconds=regular_seconds,
                    )
                for name, idle in idle_cpu_s.items():  # the loops' CPU is not the orders'
                    spent = idle * (time.perf_counter() - baseline_started) / IDLE_S
                    baseline_cpu_s[name] = max(0.0, baseline_cpu_s[name] - spent)
                created = time.perf_counter()
                sale_id = await create_sale(
                    client, boss_token, sku_id=flash_sku, store_id=store, units=units
                )
                create_s = time.perf_counter() - created
                room_url, room_pid = await find_waiting_room(api, client, sale_id)
                warmed = 0
                if warm_auth:
                    warmed = await warm_auth_states(
                        stack, settings, [uid for uid, _ in minted[:users]]
                    )
                if room_pid != api.pid:  # its CPU is the API's too, and shown on its own
                    pids["WAITING_ROOM"] = [room_pid]
                console.print(
                    f"sale created with {units:,} tokens in {create_s:.1f} s; "
                    f"{users:,} customers arrive within {arrival_s:.0f} s, "
                    f"played by {generators} processes"
                )
                players = Spawned(
                    play,
                    [
                        CrowdShare(
                            url,
                            sale_id,
                            store,
                            arrivals[k::generators],
                            process_connections,
                            PER_CLIENT,
                            poll_cap_s,
                            room_url,
                        )
                        for k in range(generators)
                    ],
                    nice=generator_nice,
                )
                quiet_client = Spawned(
                    quiet_joins,
                    [QuietShare(room_url, sale_id, store, quiet_tokens, quiet_s)],
                    nice=generator_nice,
                )
                # while the crowd runs: CPU, and the line's server's memory (its sockets)
                with (
                    cpu_meter(pids) as cpu_s,
                    memory_meter([room_pid]) as room_mib,
                    cpu_timeline([room_pid]) as room_cpu,
                    lag_timeline(room_url + "/metrics") as room_lag,
                ):
                    start, _ = await asyncio.gather(players.start(), quiet_client.start())
                    done = asyncio.Event()
                    during_task = asyncio.create_task(
                        regular_orders_at(
                            regular_client,
                            regular_tokens,
                            regular_skus,
                            store=store,
                            rate=regular_rate,
                            until=done,
                        )
                    )
                    crowd = Crowd()
                    for seen in await players.results():
                        crowd.add(seen)
                    crowd_s = time.time() - start
                done.set()
                during = await during_task
                # the quiet client's joins while the crowd ran (it stops at the line's close)
                (quiet_seen,) = await quiet_client.results()
                quiet_ms = [took for sent, took in quiet_seen if sent <= start + crowd_s]
                final = await client.get(f"/v1/flash-sales/{sale_id}")
                sale_view = final.json()
                await client.post(
                    f"/v1/flash-sales/{sale_id}/stop",
                    headers=bearer(boss_token),
                    json={"reason": "bench over"},
                )
        proof = verify(stack.database_url, sale_id, flash_sku, store, before)
        cond = conditions(
            server=server,
            workers=workers,
            services="embedded" if stack.embedded else "external",
            users=users,
            units=units,
            stores=1,
            slots=slots,
            slot_seconds=slot_seconds,
            sockets=min(sockets, users),
            arrival_s=arrival_s,
            client_connections=connections,
            payment_failure_rate=failure_rate,
            abandon_rate=abandon_rate,
            regular_orders=f"{regular_rate:g} a second arriving (an open loop)",
            client=f"aiohttp + websockets on uvloop in {generators} processes, same machine",
            waiting_room=(
                f"its own server ({line_server}, {line_workers} worker"
                f"{'s' if line_workers > 1 else ''}): "
                "joins, polls, sockets; checkouts at the API"
                if waiting_room
                else "none: the API serves the line"
            ),
            quiet_client=f"{quiet} customers of its own joining over {quiet_s:.0f} s, one at a time",
            auth_state=(
                f"warm ({warmed} cached before the sale)" if warm_auth else "cold (joins load it)"
            ),
            generator_cpu_pct_per_process=round(100 * crowd.cpu_s / crowd_s / generators, 1),
            generator_cpu_pct_per_process_while_joining=round(
                100 * crowd.joining_cpu_s / crowd.joining_s, 1
            )
            if crowd.joining_s
            else None,
            generator_scheduling=(
                "in the servers' scheduling group"
                if generator_nice is None
                else f"a scheduling group of its own per process, {generator_nice} from the "
                "servers' niceness, where allowed"
            ),
            pid=os.getpid(),
        )
    ordered = [t for _, t in sorted(crowd.admissions)]
    inversions = sum(1 for a, b in itertools.pairwise(ordered) if a > b)
    sold_out_after = round(crowd.sold_out_at - start, 1) if crowd.sold_out_at is not None else None
    figures = {
        "conditions": cond,
        "sale": {
            "create_s": round(create_s, 2),
            "status_at_end": sale_view.get("status"),
            "crowd_s": round(crowd_s, 1),
            "sold_out_seen_after_s": sold_out_after,
        },
        "proof": proof,
        "crowd": {
            "joins": len(crowd.join_ms),
            "join_p50_ms": pct(crowd.join_ms, 0.5),
            "join_p99_ms": pct(crowd.join_ms, 0.99),
            # the room's pace at the crowd's scale: the joins answered from the first to the
            # last (the arrivals came at users / arrival_s a second)
            "joins_per_s": round(len(crowd.join_ms) / (crowd.last_join - crowd.first_join), 1)
            if crowd.first_join and crowd.last_join and crowd.last_join > crowd.first_join
            else None,
            "join_from_arrival_p50_ms": pct(crowd.join_from_arrival_ms, 0.5),
            "join_from_arrival_p99_ms": pct(crowd.join_from_arrival_ms, 0.99),
            # the reference: the same arrivals to the bare FastAPI route, before the sale
            "bare_joins": len(bare_seen.took_ms),
            "bare_refused": bare_seen.refused,
            "bare_join_p50_ms": pct(bare_seen.took_ms, 0.5),
            "bare_join_p99_ms": pct(bare_seen.took_ms, 0.99),
            "bare_joins_per_s": round(
                len(bare_seen.took_ms) / (bare_seen.last - bare_seen.first), 1
            )
            if bare_seen.last > bare_seen.first
            else None,
            # the same joins' server as a client with nothing else to do saw it
            "quiet_joins": len(quiet_ms),
            "quiet_join_p50_ms": pct(quiet_ms, 0.5),
            "quiet_join_p99_ms": pct(quiet_ms, 0.99),
            # CPU while the crowd ran (the regular orders' too), per customer of the crowd
            **{
                f"{name.lower()}_cpu_ms_per_customer": round(1000 * used / users, 2)
                for name, used in cpu_s.items()
            },
            # and without the regular orders that ran beside it, at what one cost alone
            **_crowd_alone(cpu_s, baseline_cpu_s, baseline, during, users),
            # the line's server's share of a core from the first join's answer to the
            # last's: short of 100 %, the joins waited on more than its CPU
            "line_cpu_pct_while_joining": round(
                100
                * cpu_within(room_cpu, crowd.first_join, crowd.last_join)
                / (crowd.last_join - crowd.first_join),
                1,
            )
            if crowd.first_join and crowd.last_join and crowd.last_join > crowd.first_join
            else None,
            # how late its event loop ran a timer meanwhile (a bucket's bound): well under
            # the joins' p99, their tail is their waits, not its turns (one process only:
            # /metrics is a process's own)
            "line_loop_lag_p99_ms_while_joining": lag_p99_within(
                room_lag, crowd.first_join, crowd.last_join
            )
            if waiting_room and line_workers == 1 and crowd.first_join and crowd.last_join
            else None,
            "generator_loop_lag_p50_ms": pct(crowd.loop_lag_ms, 0.5),
            "generator_loop_lag_p99_ms": pct(crowd.loop_lag_ms, 0.99),
            "checkouts": len(crowd.checkout_ms),
            "checkout_p50_ms": pct(crowd.checkout_ms, 0.5),
            "checkout_p99_ms": pct(crowd.checkout_ms, 0.99),
            "admitted": len(crowd.admitted_after_s),
            "admission_wait_p50_s": pct(crowd.admitted_after_s, 0.5),
            "admission_wait_p99_s": pct(crowd.admitted_after_s, 0.99),
            "admissions_seen": len(ordered),
            "admission_inversions": inversions,
            "polls": crowd.polls,
            "sockets": crowd.sockets,
            "socket_messages": crowd.socket_messages,
            "socket_positions_rose": crowd.positions_rose,
            # the line's server's resident memory (its workers too): before the crowd, at
            # its peak, and that growth per socket opened (the customers' state included)
            "line_rss_before_mib": round(room_mib["before"], 1),
            "line_rss_peak_mib": round(room_mib["peak"], 1),
            "line_rss_kib_per_socket": round(
                1024 * (room_mib["peak"] - room_mib["before"]) / crowd.sockets, 1
            )
            if crowd.sockets
            else None,
            "refused": dict(crowd.answers),
            "outcomes": dict(crowd.outcomes),
        },
        "regular": {"without_sale": baseline, "during_sale": during},
    }
    print_report(figures)
    return figures
