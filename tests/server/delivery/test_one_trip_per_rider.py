"""One next trip per rider, whoever races for them: several dispatcher runs (each its own
transaction on its own connection) and a crowd of managers' reassigns over real HTTP,
more requests than the API's pool has connections, all at once. Exactly one trip waits
for the rider; every other claimant is told no (409, never a 500)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from server.app import create_app
from server.delivery import trips
from server.delivery.models import Rider, Trip
from server.delivery.worker import dispatch_all
from server.kit.clock import Clock
from server.kit.config import Settings
from shared.geo import destination
from tests.conftest import LiveServer
from tests.helpers import ThreadedServer, login, one_row
from tests.server.delivery.dispatch_world import KOR, add_order, kor_riders, put_on_duty
from tests.server.ops.ops_script import MANAGER

ORDERS = 16  # reassigns at once, against a pool of 2 + 1 connections
DISPATCHERS = 4


@pytest.fixture
def small_pool_server(city, settings: Settings, clock: Clock) -> Iterator[LiveServer]:
    small = settings.model_copy(update={"db_pool_size": 2, "db_max_overflow": 1})
    server = ThreadedServer(lambda: create_app(small, clock=clock))
    server.start()
    yield LiveServer(url=server.url, app=server.app, clock=clock)
    server.stop()


@pytest.mark.parametrize("round_", range(3))
async def test_dispatchers_and_reassigns_racing_give_the_rider_one_trip(
    stack, small_pool_server: LiveServer, round_: int
) -> None:
    now = stack.clock.now()
    (rider,) = kor_riders(stack.database_url, 1)
    await put_on_duty(stack.database_url, stack.redis, rider, destination(KOR, 90, 200), now)
    # doors all round the store
    orders = [
        add_order(stack.database_url, drop=destination(KOR, i * 360 / ORDERS, 900), placed=now)
        for i in range(ORDERS)
    ]
    async with httpx.AsyncClient(base_url=small_pool_server.url, timeout=60) as client:
        manager = await login(client, *MANAGER)

        async def reassign(order_id) -> httpx.Response:
            return await client.post(
                f"/v1/ops/orders/{order_id}/reassign",
                json={"rider_id": str(rider), "reason": "closest rider"},
                headers=manager,
            )

        results = await asyncio.gather(
            *(reassign(o) for o in orders),
            *(dispatch_all(stack.sessions, stack.redis, stack.clock) for _ in range(DISPATCHERS)),
            return_exceptions=True,
        )
    answers = [r for r in results if isinstance(r, httpx.Response)]
    runs = [r for r in results if not isinstance(r, httpx.Response)]
    assert not [r for r in runs if isinstance(r, BaseException)], runs
    assert sorted({a.status_code for a in answers}) in ([409], [200, 409]), [
        (a.status_code, a.text) for a in answers if a.status_code not in (200, 409)
    ]
    assert {a.json()["code"] for a in answers if a.status_code == 409} <= {
        "rider_unavailable",  # seen busy once the lock was had
        "rider_taken",  # the rider's row already names a next trip
        "same_rider",  # a dispatcher run gave this very order to the rider first
    }
    won = sum(1 for a in answers if a.status_code == 200) + sum(
        len(r) for r in runs if isinstance(r, list)
    )
    with psycopg.connect(stack.database_url) as conn:
        waiting = conn.execute(
            "SELECT trip_id FROM trips WHERE rider_id = %s "
            "AND status IN ('OFFERED', 'ACCEPTED', 'AT_STORE')",
            (rider,),
        ).fetchall()
        next_trip, status = one_row(
            conn.execute("SELECT next_trip_id, status FROM riders WHERE rider_id = %s", (rider,))
        )
        with_rider = conn.execute(
            "SELECT order_id FROM orders WHERE rider_id = %s", (rider,)
        ).fetchall()
        on_trip = conn.execute(
            "SELECT order_id FROM trip_stops WHERE trip_id = %s", (next_trip,)
        ).fetchall()
    assert won == 1 and len(waiting) == 1 and next_trip == waiting[0][0]
    # the orders with the rider are those of that trip (a dispatcher may batch neighbours)
    assert status == "ASSIGNED" and sorted(with_rider) == sorted(on_trip) and on_trip


async def test_the_riders_row_fences_a_claim_made_on_a_stale_read(stack) -> None:
    """Two transactions that both read the rider as free (no lock taken) and both try to
    give them a trip: the second waits for the first and is refused, whatever it read."""
    (rider_id,) = kor_riders(stack.database_url, 1)
    first, second = (
        Trip(store_id="BLR-KOR", rider_id=rider_id),
        Trip(store_id="BLR-KOR", rider_id=rider_id),
    )
    async with stack.sessions() as a, stack.sessions() as b:
        rider_a, rider_b = await a.get(Rider, rider_id), await b.get(Rider, rider_id)
        assert rider_a.next_trip_id is None and rider_b.next_trip_id is None  # both: free
        await trips.claim_rider(a, rider=rider_a, trip=first)
        late = asyncio.create_task(trips.claim_rider(b, rider=rider_b, trip=second))
        await a.commit()
        with pytest.raises(trips.RiderTaken):
            await late
        await b.rollback()
    with psycopg.connect(stack.database_url) as conn:
        assert (
            one_row(
                conn.execute("SELECT next_trip_id FROM riders WHERE rider_id = %s", (rider_id,))
            )[0]
            == first.trip_id
        )
