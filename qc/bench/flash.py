"""``qc bench flash``: a flash-sale crowd against the real HTTP and websocket endpoints.

A city with ``users`` customers and one sale of ``units`` units. After a baseline of
regular orders (cart, two lines, checkout) without the sale, the manager creates the sale
(its tokens are pre-generated), the crowd arrives within ``arrival_s`` seconds and every
customer joins the line through ``POST /v1/flash-sales/{id}/queue``. An admitted customer
checks out at once (a few abandon their slot, which then expires and passes on);
waiting ones learn their turn on ``/ws/flash/{id}`` (``sockets`` of them) or by polling
``.../queue/me`` when the server says to. The same regular order workload keeps running
meanwhile, and its checkout latency is compared with the baseline.

Each customer has its own client address (``X-Forwarded-For`` from the loopback proxy,
which uvicorn trusts), so the per-IP limit applies per customer as at a real edge. The
customers are multiplexed over a few HTTP/1.1 connection pools in this process; every
count is real: each customer joins, waits and checks out (or is told the line closed).

The figures that prove it, read from PostgreSQL at the end: units sold (tokens SOLD and
CONFIRMED orders at the sale price), oversold, customers over their limit, the SKU's
books (physical = available + reserved + damaged + in_transit, and every unit that left
went with an order), and admission order against join order.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import itertools
import json
import os
import random
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import websockets
from rich.console import Console
from rich.table import Table

from qc.bench.harness import _percentile, conditions
from qc.bench.serving import serve
from qc.bench.stack import bench_stack, one_row
from server.identity.models import User
from server.identity.service import issue_token
from server.kit.config import Settings
from shared.enums import Role

# httpcore asks for ``sniffio`` on every request; it is not installed here, so each ask is
# a failed import that searches sys.path (a third of the client's CPU at 20,000 users).
# Marking it absent once answers the same (asyncio) at no cost.
if importlib.util.find_spec("sniffio") is None:
    sys.modules["sniffio"] = None  # type: ignore[assignment]

SECRET = "bench-secret-key-" + "x" * 40
PER_CLIENT = 8  # connections per HTTP client: httpcore's pool scans them all per request
HOME = {"lat": 12.9352, "lng": 77.6245}  # BLR-KOR delivers here
ADDRESS = {"address": {"line1": "bench", **HOME}, "payment_method": "upi"}


@dataclass
class Crowd:
    """What the customers saw, as they saw it."""

    join_ms: list[float] = field(default_factory=list)
    checkout_ms: list[float] = field(default_factory=list)
    admitted_after_s: list[float] = field(default_factory=list)
    admissions: list[tuple[int, int]] = field(default_factory=list)  # (admitted_no, ticket)
    outcomes: Counter[str] = field(default_factory=Counter)
    answers: Counter[str] = field(default_factory=Counter)  # 429s, 503s, ...
    polls: int = 0
    sockets: int = 0
    socket_messages: int = 0
    positions_rose: int = 0  # a socket's position going up (must stay 0)
    first_join: float | None = None
    sold_out_at: float | None = None


def _ms(seconds: float) -> float:
    return seconds * 1000


def _pct(values: list[float], q: float) -> float:
    return round(_percentile(sorted(values), q), 1)


def _server_env(stack: Any, args: dict[str, Any]) -> dict[str, str]:
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
        "FORWARDED_ALLOW_IPS": "127.0.0.1",  # the edge: X-Forwarded-For names the client
        # a worker this busy (on a machine shared with the client) may answer uvicorn's
        # health ping late; it is busy, not hung, so do not kill it after 5 s
        "UVICORN_TIMEOUT_WORKER_HEALTHCHECK": "60",
    }


def _tokens(database_url: str, users: int) -> list[tuple[uuid.UUID, str]]:
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


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _regular_orders(
    client: httpx.AsyncClient,
    tokens: list[str],
    skus: list[str],
    *,
    store: str,
    concurrency: int,
    until: asyncio.Event,
    seconds: float | None = None,
) -> dict[str, Any]:
    """Complete regular orders (cart, two lines, checkout) until told to stop."""
    checkout_ms: list[float] = []
    errors = Counter[str]()
    rng = random.Random(11)
    deadline = time.monotonic() + seconds if seconds else None

    async def worker(n: int) -> None:
        headers = _bearer(tokens[n % len(tokens)])
        while not until.is_set() and (deadline is None or time.monotonic() < deadline):
            try:
                cart = (
                    await client.post("/v1/carts", json={"store_id": store}, headers=headers)
                ).json()
                for sku in rng.sample(skus, 2):
                    await client.put(
                        f"/v1/carts/{cart['cart_id']}/lines/{sku}",
                        json={"quantity": 1},
                        headers=headers,
                    )
                started = time.perf_counter()
                r = await client.post(
                    f"/v1/carts/{cart['cart_id']}/checkout",
                    json=ADDRESS,
                    headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
                )
                checkout_ms.append(_ms(time.perf_counter() - started))
                if r.status_code != 201:
                    errors[f"{r.status_code}"] += 1
            except (httpx.HTTPError, KeyError, ValueError) as exc:
                errors[type(exc).__name__] += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {
        "orders": len(checkout_ms),
        "orders_per_s": round(len(checkout_ms) / elapsed, 1) if elapsed else 0.0,
        "checkout_p50_ms": _pct(checkout_ms, 0.5),
        "checkout_p99_ms": _pct(checkout_ms, 0.99),
        "errors": dict(errors),
    }


async def _call(
    crowd: Crowd, client: httpx.AsyncClient, method: str, url: str, **kwargs: Any
) -> tuple[httpx.Response, float]:
    """One request, retried after Retry-After when refused (429 rate limit, 503 busy), and
    at once when a kept-alive connection was closed under it (every call here is safe to
    repeat: one entry per customer, checkouts carry an Idempotency-Key)."""
    lost = 0
    while True:
        started = time.perf_counter()
        try:
            r = await client.request(method, url, **kwargs)
        except (httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError):
            lost += 1
            crowd.answers["connection closed by the server, repeated"] += 1
            if lost > 5:
                raise
            continue
        took = time.perf_counter() - started
        if r.status_code not in (429, 503):
            return r, took
        crowd.answers[f"{r.status_code} {r.json().get('code', '')}"] += 1
        await asyncio.sleep(min(5.0, float(r.headers.get("retry-after", "1"))))


async def _watch(ws_url: str, crowd: Crowd) -> dict[str, Any] | None:
    """Wait on the socket for the customer's turn (or the line closing); None if the socket
    could not be used (the caller polls instead)."""
    last = None
    try:
        async with websockets.connect(ws_url, open_timeout=30, close_timeout=2) as ws:
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


async def _customer(
    i: int,
    *,
    token: str,
    lanes: dict[str, tuple[httpx.AsyncClient, asyncio.Semaphore]],
    base_ws: str,
    sale_id: str,
    store: str,
    start: float,
    arrive_at: float,
    with_socket: bool,
    abandon: bool,
    crowd: Crowd,
    poll_cap_s: float | None = None,
) -> None:
    await asyncio.sleep(max(0.0, start + arrive_at - time.perf_counter()))
    headers = {**_bearer(token), "X-Forwarded-For": f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"}
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
    joined_at = time.perf_counter()
    crowd.first_join = crowd.first_join or joined_at
    crowd.join_ms.append(_ms(took))
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
            crowd.admitted_after_s.append(time.perf_counter() - joined_at)
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
            crowd.checkout_ms.append(_ms(took))
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
                crowd.sold_out_at = crowd.sold_out_at or time.perf_counter()
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


def _books(database_url: str, store: str, sku: str) -> tuple[tuple[int, ...], int]:
    """The SKU's stock row and the sum of its ledger deltas."""
    with psycopg.connect(database_url) as conn:
        row = one_row(
            conn,
            "SELECT available_qty, reserved_qty, damaged_qty, in_transit_qty FROM store_inventory "
            "WHERE store_id = %s AND sku_id = %s",
            (store, sku),
        )
        ledger = one_row(
            conn,
            "SELECT coalesce(sum(d_available + d_reserved + d_damaged + d_in_transit), 0) "
            "FROM stock_ledger WHERE store_id = %s AND sku_id = %s",
            (store, sku),
        )[0]
    return tuple(row), int(ledger)


def _verify(
    database_url: str, sale_id: str, sku: str, store: str, before: tuple[tuple[int, ...], int]
) -> dict[str, Any]:
    """What PostgreSQL says happened: the proof."""
    with psycopg.connect(database_url) as conn:
        tokens: dict[str, int] = dict(
            conn.execute(
                "SELECT status, count(*) FROM inventory_tokens WHERE sale_id = %s GROUP BY status",
                (sale_id,),
            ).fetchall()
        )
        units, limit, price = one_row(
            conn,
            "SELECT (SELECT sum(units) FROM flash_sale_stores WHERE sale_id = s.sale_id), "
            "per_customer_limit, sale_price_paise FROM flash_sales s WHERE sale_id = %s",
            (sale_id,),
        )
        orders = one_row(
            conn,
            "SELECT count(*), count(DISTINCT o.user_id) FROM orders o "
            "JOIN order_items i ON i.store_id = o.store_id AND i.order_id = o.order_id "
            "JOIN inventory_tokens t ON t.order_id = o.order_id "
            "WHERE t.sale_id = %s AND o.status = 'CONFIRMED' AND i.unit_price_paise = %s",
            (sale_id, price),
        )
        over_limit = one_row(
            conn,
            "SELECT count(*) FROM (SELECT claimed_by FROM inventory_tokens WHERE sale_id = %s "
            "AND status = 'SOLD' GROUP BY claimed_by HAVING count(*) > %s) x",
            (sale_id, limit),
        )[0]
        admitted = conn.execute(
            "SELECT ticket FROM inventory_tokens WHERE sale_id = %s AND status = 'SOLD' "
            "ORDER BY admit_no",
            (sale_id,),
        ).fetchall()
        negative = one_row(
            conn, "SELECT count(*) FROM store_inventory WHERE available_qty < 0 OR reserved_qty < 0"
        )[0]
    sold = int(tokens.get("SOLD", 0))
    tickets = [t for (t,) in admitted]
    after, ledger_after = _books(database_url, store, sku)
    physical_before, physical_after = sum(before[0]), sum(after)
    return {
        "units": int(units),
        "sold": sold,
        "confirmed_orders_at_sale_price": int(orders[0]),
        "buyers": int(orders[1]),
        "oversold": max(0, sold - int(units)) + max(0, int(orders[0]) - int(units)) + int(negative),
        "customers_over_limit": int(over_limit),
        "tokens": {k.lower(): int(v) for k, v in tokens.items()},
        "sold_admission_inversions": sum(1 for a, b in itertools.pairwise(tickets) if a > b),
        "physical_before": physical_before,
        "physical_after": physical_after,
        "units_that_left": physical_before - physical_after,
        "reserved_after": int(after[1]),
        # every movement of the run is in the ledger: its deltas add up to the change
        "ledger_matches_stock": ledger_after - before[1] == physical_after - physical_before,
    }


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
    regular_concurrency: int = 4,
    regular_seconds: float = 20.0,
    poll_cap_s: float | None = None,
) -> dict[str, Any]:
    store = "BLR-KOR"
    args = {
        "failure_rate": failure_rate,
        "slots": slots,
        "slot_seconds": slot_seconds,
    }
    console = Console()
    async with bench_stack(settings, stores=1, skus=300, pool=4, customers=users + 20) as stack:
        minted = _tokens(stack.database_url, users + 20)
        crowd_tokens = [t for _, t in minted[:users]]
        regular_tokens = [t for _, t in minted[users:]]
        with psycopg.connect(stack.database_url) as conn:
            skus = [r[0] for r in conn.execute("SELECT sku_id FROM products ORDER BY sku_id")]
            manager = one_row(conn, "SELECT id FROM users WHERE login = 'manager.blr'")[0]
        flash_sku, regular_skus = skus[0], skus[1:]
        before = _books(stack.database_url, store, flash_sku)
        boss = User(id=manager, login="manager.blr", name="m", role=Role.MANAGER, secret_hash="")
        boss_token = issue_token(boss, key=SECRET, now=datetime.now(UTC), ttl_s=6 * 3600)[0]
        env = _server_env(stack, args)
        rng = random.Random(7)
        console.print(
            f"[bold]qc bench flash[/]: {users:,} customers, {units:,} units, "
            f"{workers} workers; baseline first ({regular_seconds:.0f} s of regular orders)"
        )
        with serve("server.app:create_app", env=env, workers=workers, factory=True) as url:
            limits = httpx.Limits(max_connections=PER_CLIENT, max_keepalive_connections=PER_CLIENT)
            timeout = httpx.Timeout(120.0)
            async with contextlib.AsyncExitStack() as clients_stack:
                # joins, polls and checkouts on their own connections, as each customer
                # has their own device: a checkout never waits behind the crowd's joins
                # in this one load generator
                pools = {
                    kind: [
                        (
                            await clients_stack.enter_async_context(
                                httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout)
                            ),
                            asyncio.Semaphore(PER_CLIENT),
                        )
                        for _ in range(max(1, round(connections * share / PER_CLIENT)))
                    ]
                    for kind, share in (("join", 0.5), ("poll", 0.25), ("checkout", 0.25))
                }
                client = pools["join"][0][0]
                regular_client = await clients_stack.enter_async_context(
                    httpx.AsyncClient(
                        base_url=url, limits=httpx.Limits(max_connections=32), timeout=timeout
                    )
                )
                never = asyncio.Event()
                baseline = await _regular_orders(
                    regular_client,
                    regular_tokens,
                    regular_skus,
                    store=store,
                    concurrency=regular_concurrency,
                    until=never,
                    seconds=regular_seconds,
                )
                now = datetime.now(UTC)
                created = time.perf_counter()
                r = await client.post(
                    "/v1/flash-sales",
                    headers=_bearer(boss_token),
                    json={
                        "sku_id": flash_sku,
                        "store_ids": [store],
                        "sale_price_paise": 100,
                        "starts_at": now.isoformat(),
                        "ends_at": (now + timedelta(hours=2)).isoformat(),
                        "units_per_store": units,
                        "per_customer_limit": 1,
                    },
                )
                if r.status_code != 201:
                    raise RuntimeError(f"could not create the sale: {r.status_code} {r.text}")
                create_s = time.perf_counter() - created
                sale_id = r.json()["sale_id"]
                console.print(
                    f"sale created with {units:,} tokens in {create_s:.1f} s; "
                    f"{users:,} customers arrive within {arrival_s:.0f} s"
                )
                crowd = Crowd()
                with_socket = set(rng.sample(range(users), min(sockets, users)))
                start = time.perf_counter()
                done = asyncio.Event()
                during_task = asyncio.create_task(
                    _regular_orders(
                        regular_client,
                        regular_tokens,
                        regular_skus,
                        store=store,
                        concurrency=regular_concurrency,
                        until=done,
                    )
                )
                base_ws = url.replace("http", "ws")
                await asyncio.gather(
                    *(
                        _customer(
                            i,
                            token=crowd_tokens[i],
                            lanes={k: v[i % len(v)] for k, v in pools.items()},
                            base_ws=base_ws,
                            sale_id=sale_id,
                            store=store,
                            start=start,
                            arrive_at=rng.uniform(0, arrival_s),
                            with_socket=i in with_socket,
                            abandon=rng.random() < abandon_rate,
                            crowd=crowd,
                            poll_cap_s=poll_cap_s,
                        )
                        for i in range(users)
                    )
                )
                crowd_s = time.perf_counter() - start
                done.set()
                during = await during_task
                final = await client.get(f"/v1/flash-sales/{sale_id}")
                sale_view = final.json()
                await client.post(
                    f"/v1/flash-sales/{sale_id}/stop",
                    headers=_bearer(boss_token),
                    json={"reason": "bench over"},
                )
        proof = _verify(stack.database_url, sale_id, flash_sku, store, before)
        cond = conditions(
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
            regular_concurrency=regular_concurrency,
            client="httpx + websockets asyncio, same machine",
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
            "join_p50_ms": _pct(crowd.join_ms, 0.5),
            "join_p99_ms": _pct(crowd.join_ms, 0.99),
            "checkouts": len(crowd.checkout_ms),
            "checkout_p50_ms": _pct(crowd.checkout_ms, 0.5),
            "checkout_p99_ms": _pct(crowd.checkout_ms, 0.99),
            "admitted": len(crowd.admitted_after_s),
            "admission_wait_p50_s": _pct(crowd.admitted_after_s, 0.5),
            "admission_wait_p99_s": _pct(crowd.admitted_after_s, 0.99),
            "admissions_seen": len(ordered),
            "admission_inversions": inversions,
            "polls": crowd.polls,
            "sockets": crowd.sockets,
            "socket_messages": crowd.socket_messages,
            "socket_positions_rose": crowd.positions_rose,
            "refused": dict(crowd.answers),
            "outcomes": dict(crowd.outcomes),
        },
        "regular": {"without_sale": baseline, "during_sale": during},
    }
    _print(figures)
    return figures


def _print(f: dict[str, Any]) -> None:
    console = Console()
    p, c, s = f["proof"], f["crowd"], f["sale"]
    proof = Table(title="qc bench flash: what PostgreSQL says")
    proof.add_column("figure")
    proof.add_column("value", justify="right")
    for label, value in (
        ("units in the sale", f"{p['units']:,}"),
        ("units sold (tokens SOLD)", f"{p['sold']:,}"),
        ("CONFIRMED orders at the sale price", f"{p['confirmed_orders_at_sale_price']:,}"),
        ("oversold", str(p["oversold"])),
        ("customers over their limit", str(p["customers_over_limit"])),
        ("units that left the SKU's books", f"{p['units_that_left']:,}"),
        ("ledger deltas = change of physical stock", str(p["ledger_matches_stock"])),
        ("sold tokens out of join order", str(p["sold_admission_inversions"])),
        ("tokens at the end", json.dumps(p["tokens"])),
    ):
        proof.add_row(label, value)
    console.print(proof)
    crowd = Table(title="qc bench flash: the crowd, as the clients saw it")
    crowd.add_column("figure")
    crowd.add_column("value", justify="right")
    for label, value in (
        ("customers who joined", f"{c['joins']:,}"),
        ("join p50 / p99 ms", f"{c['join_p50_ms']:,.1f} / {c['join_p99_ms']:,.1f}"),
        ("flash checkouts", f"{c['checkouts']:,}"),
        ("checkout p50 / p99 ms", f"{c['checkout_p50_ms']:,.1f} / {c['checkout_p99_ms']:,.1f}"),
        ("admitted (slots given)", f"{c['admitted']:,}"),
        (
            "admission order vs join order",
            f"{c['admission_inversions']} inversions in {c['admissions_seen']:,}",
        ),
        (
            "wait for a slot p50 / p99 s",
            f"{c['admission_wait_p50_s']} / {c['admission_wait_p99_s']}",
        ),
        ("sockets / messages", f"{c['sockets']:,} / {c['socket_messages']:,}"),
        ("socket positions that rose", str(c["socket_positions_rose"])),
        ("polls", f"{c['polls']:,}"),
        ("refused (then retried)", json.dumps(c["refused"]) if c["refused"] else "none"),
        ("sale creation (tokens pre-generated)", f"{s['create_s']} s"),
        ("sold out, seen by a client after", f"{s['sold_out_seen_after_s']} s"),
        ("whole crowd done after", f"{s['crowd_s']} s"),
    ):
        crowd.add_row(label, value)
    for outcome, n in sorted(c["outcomes"].items(), key=lambda kv: -kv[1]):
        crowd.add_row(f"  outcome: {outcome}", f"{n:,}")
    console.print(crowd)
    regular = Table(title="qc bench flash: regular orders (cart, 2 lines, checkout)")
    for column in (
        "scenario",
        "orders",
        "orders/s",
        "checkout p50 ms",
        "checkout p99 ms",
        "errors",
    ):
        regular.add_column(column, justify="left" if column == "scenario" else "right")
    base = f["regular"]["without_sale"]
    for name, r in (("without the sale", base), ("during the sale", f["regular"]["during_sale"])):
        regular.add_row(
            name,
            str(r["orders"]),
            f"{r['orders_per_s']}",
            f"{r['checkout_p50_ms']:.1f}",
            f"{r['checkout_p99_ms']:.1f}",
            json.dumps(r["errors"]) if r["errors"] else "0",
        )
    console.print(regular)
    cond = {k: v for k, v in f["conditions"].items() if k != "pid"}
    console.print("conditions: " + ", ".join(f"{k}={v}" for k, v in cond.items()))
    with contextlib.suppress(Exception):
        ratio = f["regular"]["during_sale"]["checkout_p50_ms"] / base["checkout_p50_ms"]
        console.print(f"regular checkout p50 during the sale: {ratio:.2f}x the baseline")
