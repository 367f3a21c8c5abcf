"""A bench's customer over HTTP: the aiohttp client the crowds share (``session``,
``request``) and the regular orders (cart, two lines, checkout) that run beside a flash
sale or across replicas.

The customers' HTTP goes through aiohttp: ~0.17 ms of the generator's CPU a request against
~1.6-1.8 ms through httpx (the bare ASGI app, 32 connections, uvloop, this machine), so the
crowd's processes take a tenth of the CPU the 2-core box's servers need, and read each
answer that much sooner.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from qc.bench.harness import percentile

HOME = {"lat": 12.9352, "lng": 77.6245}  # BLR-KOR delivers here
ADDRESS = {"address": {"line1": "bench", **HOME}, "payment_method": "upi"}


def ms(seconds: float) -> float:
    return seconds * 1000


def pct(values: list[float], q: float) -> float:
    return round(percentile(sorted(values), q), 1)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


TIMEOUT = aiohttp.ClientTimeout(total=120.0)
REFUSED_PAUSE_S = 1.0  # a regular customer refused a cart asks again after this


def session(url: str, *, connections: int) -> aiohttp.ClientSession:
    """A client of the server at ``url`` keeping up to ``connections`` open."""
    return aiohttp.ClientSession(
        base_url=url,
        connector=aiohttp.TCPConnector(limit=connections),
        timeout=TIMEOUT,
        json_serialize=lambda value: orjson.dumps(value).decode(),
    )


@dataclass(frozen=True)
class Answer:
    """A response as the crowd reads it: its status, body and ``Retry-After``."""

    status_code: int
    body: bytes
    retry_after: str | None

    def json(self) -> Any:
        return orjson.loads(self.body)


async def request(client: aiohttp.ClientSession, method: str, url: str, **kwargs: Any) -> Answer:
    async with client.request(method, url, **kwargs) as r:
        return Answer(r.status, await r.read(), r.headers.get("Retry-After"))


@dataclass
class _RegularOrders:
    """Regular orders (cart, two lines, checkout) and their figures as they come; order
    ``n`` is customer ``n``'s (rotating over ``tokens``) from their own address (one
    customer's and one address's checkouts are limited per minute)."""

    client: aiohttp.ClientSession
    tokens: list[str]
    skus: list[str]
    store: str
    checkout_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    rng: random.Random = field(default_factory=lambda: random.Random(11))

    async def order(self, n: int) -> bool:
        """One order; False if its cart was refused."""
        who = n % len(self.tokens)
        headers = {
            **bearer(self.tokens[who]),
            "X-Forwarded-For": f"10.255.{who >> 8 & 255}.{who & 255}",
        }
        try:
            started_cart = await request(
                self.client, "POST", "/v1/carts", json={"store_id": self.store}, headers=headers
            )
            if started_cart.status_code != 201:
                self.errors[f"cart {started_cart.status_code}"] += 1
                return False
            cart = started_cart.json()
            for sku in self.rng.sample(self.skus, 2):
                await request(
                    self.client,
                    "PUT",
                    f"/v1/carts/{cart['cart_id']}/lines/{sku}",
                    json={"quantity": 1},
                    headers=headers,
                )
            started = time.perf_counter()
            r = await request(
                self.client,
                "POST",
                f"/v1/carts/{cart['cart_id']}/checkout",
                json=ADDRESS,
                headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
            )
            self.checkout_ms.append(ms(time.perf_counter() - started))
            if r.status_code != 201:
                self.errors[f"{r.status_code}"] += 1
        except (aiohttp.ClientError, TimeoutError, KeyError, ValueError) as exc:
            self.errors[type(exc).__name__] += 1
        return True

    def figures(self, elapsed: float, **more: Any) -> dict[str, Any]:
        return {
            **more,
            "orders": len(self.checkout_ms),
            "orders_per_s": round(len(self.checkout_ms) / elapsed, 1) if elapsed else 0.0,
            "checkout_p50_ms": pct(self.checkout_ms, 0.5),
            "checkout_p99_ms": pct(self.checkout_ms, 0.99),
            "errors": dict(self.errors),
        }


async def regular_orders(
    client: aiohttp.ClientSession,
    tokens: list[str],
    skus: list[str],
    *,
    store: str,
    concurrency: int,
    until: asyncio.Event,
    seconds: float | None = None,
) -> dict[str, Any]:
    """Regular orders as fast as they are answered, ``concurrency`` at a time (a closed
    loop: the orders a server takes), until told to stop."""
    orders = _RegularOrders(client, tokens, skus, store)
    deadline = time.monotonic() + seconds if seconds else None

    async def worker(n: int) -> None:
        while not until.is_set() and (deadline is None or time.monotonic() < deadline):
            if not await orders.order(n):
                # a customer told no (too many open carts: their declined checkouts'
                # carts) does not ask again at once; workers spun on such refusals
                await asyncio.sleep(REFUSED_PAUSE_S)
            n += concurrency

    started = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    return orders.figures(time.perf_counter() - started)


async def regular_orders_at(
    client: aiohttp.ClientSession,
    tokens: list[str],
    skus: list[str],
    *,
    store: str,
    rate: float,
    until: asyncio.Event,
    seconds: float | None = None,
) -> dict[str, Any]:
    """Regular orders arriving at ``rate`` a second until told to stop: an open loop, each
    started on time whatever the server's pace (a closed loop beside a flash sale took
    whatever CPU the sale left, so the sale's figures moved with the client's speed)."""
    orders = _RegularOrders(client, tokens, skus, store)
    under_way: set[asyncio.Task[bool]] = set()
    started, n = time.perf_counter(), 0
    while not until.is_set() and (seconds is None or n < seconds * rate):
        await asyncio.sleep(max(0.0, started + n / rate - time.perf_counter()))
        task = asyncio.create_task(orders.order(n))
        under_way.add(task)
        task.add_done_callback(under_way.discard)
        n += 1
    elapsed = time.perf_counter() - started
    await asyncio.gather(*under_way)  # the orders under way finish
    return orders.figures(elapsed, started=n)
