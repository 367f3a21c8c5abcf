"""``qc bench checkout``: real HTTP against uvicorn workers (``qc bench catalog`` is
``qc.bench.catalog``, on wrk).

checkout: complete orders/s (cart, lines, checkout, payment, CONFIRMED) with
p50/p99 per order. The load generator is an asyncio httpx client in this process, so
on a 2-core machine it competes with the server: ratios matter more than absolutes.
"""

from __future__ import annotations

import random
import uuid

import httpx
import psycopg

from qc.bench.harness import Result, conditions, measure, print_table
from qc.bench.serving import serve
from qc.bench.stack import bench_stack
from server.kit.config import Settings
from server.seed.generate import DEMO_SECRETS
from shared.enums import Role

STORE = "BLR-KOR"
HOME = {"lat": 12.9352, "lng": 77.6245}


def _server_env(database_url: str, redis_url: str) -> dict[str, str]:
    return {
        "QC_DATABASE_URL": database_url,
        "QC_REDIS_URL": redis_url,
        "QC_SECRET_KEY": "bench-secret-key-" + "x" * 40,
        "QC_LOG_JSON": "true",
        "QC_LOG_LEVEL": "WARNING",
        "QC_PAYMENT_LATENCY_S": "0.01",
        # every simulated customer comes from this one address
        "QC_CART_CHECKOUT_LIMIT_PER_ADDRESS": "10000000/minute",
        "QC_CART_CHECKOUT_LIMIT_PER_CUSTOMER": "10000000/minute",  # a few customers, many orders
        "QC_CART_MAX_HOLDING": "1000000",  # and many carts at once
    }


async def run_checkout(
    settings: Settings, *, orders: int, concurrency: int, workers: tuple[int, ...] = (1, 2)
) -> dict:
    tables: dict[str, list[Result]] = {}
    async with bench_stack(settings, stores=1, skus=500, pool=4, customers=concurrency) as stack:
        with psycopg.connect(stack.database_url) as conn:
            skus = [r[0] for r in conn.execute("SELECT sku_id FROM products ORDER BY sku_id")]
        env = _server_env(stack.database_url, stack.redis_url)
        rng = random.Random(5)
        for n in workers:
            with serve("server.app:create_app", env=env, workers=n, factory=True) as url:
                limits = httpx.Limits(max_connections=concurrency * 2)
                async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as c:
                    tokens = []
                    for i in range(1, concurrency + 1):
                        r = await c.post(
                            "/v1/auth/login",
                            json={
                                "login": f"customer.{i:03d}",
                                "secret": DEMO_SECRETS[Role.CUSTOMER],
                            },
                        )
                        tokens.append({"Authorization": f"Bearer {r.json()['access_token']}"})

                    async def one_order(i: int, tokens: list = tokens) -> None:
                        h = tokens[i % len(tokens)]
                        cart = (
                            await c.post("/v1/carts", json={"store_id": STORE}, headers=h)
                        ).json()["cart_id"]
                        for sku in rng.sample(skus, 3):
                            (
                                await c.put(
                                    f"/v1/carts/{cart}/lines/{sku}",
                                    json={"quantity": rng.randint(1, 2)},
                                    headers=h,
                                )
                            ).raise_for_status()
                        r = await c.post(
                            f"/v1/carts/{cart}/checkout",
                            headers={**h, "Idempotency-Key": uuid.uuid4().hex},
                            json={"address": {"line1": "bench", **HOME}},
                        )
                        if r.status_code != 201 or r.json()["status"] != "CONFIRMED":
                            raise RuntimeError(f"checkout failed: {r.status_code} {r.text}")

                    result = await measure(
                        "complete order (5 requests)",
                        one_order,
                        total=orders,
                        concurrency=concurrency,
                    )
                    tables[f"{n} worker{'s' if n > 1 else ''}"] = [result]
        cond = conditions(
            concurrency=concurrency,
            orders=orders,
            lines_per_order=3,
            payment_latency_s=0.01,
            client="httpx asyncio, same machine",
            services="embedded" if stack.embedded else "external",
        )
    for label, results in tables.items():
        print_table(f"qc bench checkout: {label}", results, None, cond)
    return {"conditions": cond, "results": {k: [r.as_dict() for r in v] for k, v in tables.items()}}
