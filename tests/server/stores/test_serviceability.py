"""Serviceability that keeps its word: a store whose queue means a new order could not be
at a far door in time stops offering that door (its reach shrinks, never under 500 m),
grows back as the queue drains, refuses such a checkout with a problem that says so, and
tells the customer an honest ETA, which the order keeps as its promise."""

from __future__ import annotations

from datetime import datetime

import psycopg
import pytest
import redis

from server.kit import keys
from server.kit.errors import Conflict
from server.seed.generate import DEMO_SECRETS
from server.stores import selection
from shared.enums import Role
from shared.geo import destination
from tests.conftest import settings_for
from tests.helpers import login, one_row
from tests.server.delivery.dispatch_world import KOR, STORE
from tests.server.picking.test_picking_api import place_confirmed_order

FAR = destination(KOR, 0, 1500)


@pytest.fixture
def settings(services, request: pytest.FixtureRequest):
    return settings_for(services, serviceability_dynamic=getattr(request, "param", True))


def _queue(url: str, n: int, store: str = STORE) -> None:
    """``n`` paid orders waiting for the store's pickers (Koramangala has two)."""
    with psycopg.connect(url, autocommit=True) as conn:
        user = one_row(conn.execute("SELECT id FROM users WHERE role = 'customer' LIMIT 1"))[0]
        for _ in range(n):
            conn.execute(
                "INSERT INTO orders (store_id, order_id, user_id, city_id, status, currency, "
                "subtotal_paise, delivery_fee_paise, handling_fee_paise, discount_paise, "
                "total_amount_paise, delivery_lat, delivery_lng) VALUES (%s, gen_random_uuid(), "
                "%s, 'BLR', 'CONFIRMED', 'INR', 0, 0, 0, 0, 0, 12.93, 77.63)",
                (store, user),
            )


def _fresh(services) -> None:
    """Drop every cached selection (as a pause does), so the next answer is computed."""
    with redis.Redis.from_url(services.redis_url) as client:
        client.incr(keys.STORE_SELECTION_VERSION)


async def _kor(client, point) -> dict | None:
    r = await client.get("/v1/stores/serviceable", params={"lat": point.lat, "lng": point.lng})
    stores = r.json()["stores"] if r.status_code == 200 else []
    return next((s for s in stores if s["store_id"] == STORE), None)


@pytest.mark.parametrize("settings", [True, False], indirect=True, ids=["dynamic", "fixed"])
async def test_a_queued_store_shrinks_its_reach_and_recovers(city, client, settings) -> None:
    idle = await _kor(client, FAR)
    assert idle is not None and idle["effective_radius_m"] >= 1500
    # honest: 2 min pick + 1,500 m x 1.35 at 300 m/min + 1 min at the door
    assert idle["eta_min"] == pytest.approx(2 + 1500 * 1.35 / 300 + 1, abs=0.05)

    _queue(city.database_url, 10)  # 10 orders / 2 pickers x 2 min: 10 min before a pick
    _fresh(city)
    busy = await _kor(client, FAR)
    near = await _kor(client, destination(KOR, 0, 300))
    assert near is not None and near["eta_min"] == pytest.approx(
        10 + 2 + 300 * 1.35 / 300 + 1, abs=0.05
    )
    if not settings.serviceability_dynamic:
        assert busy is not None and busy["eta_min"] > 15  # promised, and late
        return
    assert busy is None
    assert near["effective_radius_m"] == selection.MIN_RADIUS_M

    with psycopg.connect(city.database_url, autocommit=True) as conn:  # the queue is picked
        conn.execute("UPDATE orders SET status = 'DELIVERED' WHERE status = 'CONFIRMED'")
    _fresh(city)
    assert await _kor(client, FAR) is not None


async def test_an_address_beyond_a_busy_stores_reach_is_refused_with_why(stack) -> None:
    _queue(stack.database_url, 10)
    async with stack.sessions() as session:
        with pytest.raises(Conflict) as refused:
            await selection.require_serviceable(
                session, store_id=STORE, point=FAR, now=stack.clock.now()
            )
        promise = await selection.require_serviceable(
            session, store_id=STORE, point=KOR, now=stack.clock.now()
        )
    problem = refused.value.problem()
    assert problem["status"] == 409 and problem["code"] == "not_serviceable"
    assert problem["reason"] == "beyond_reach_now" and problem["reach_m"] == 500
    assert problem["distance_m"] == pytest.approx(1500, abs=1) and STORE in problem["detail"]
    assert promise.eta_min == pytest.approx(10 + 2 + 1, abs=0.05)


async def test_a_checkouts_store_load_is_a_second_old_at_most_and_a_pause_holds_at_once(
    stack, monkeypatch
) -> None:
    """A checkout's store load is read once a second per process (counting the orders in
    flight reads each of them); the store's own row is read every time."""
    at = [1_000.0]
    monkeypatch.setattr(selection._loads, "timer", lambda: at[0])

    async def promise() -> selection.Candidate:
        async with stack.sessions() as session:
            return await selection.require_serviceable(
                session, store_id=STORE, point=KOR, now=stack.clock.now()
            )

    idle = await promise()
    assert idle.eta_min == pytest.approx(2 + 1, abs=0.05)  # a pick, the handover
    _queue(stack.database_url, 10)  # 10 minutes before a pick
    at[0] += selection.LOAD_MAX_AGE_S - 0.01
    assert (await promise()).eta_min == idle.eta_min  # the copy, under a second old
    at[0] += 0.02
    assert (await promise()).eta_min == pytest.approx(10 + 2 + 1, abs=0.05)

    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        conn.execute("UPDATE dark_stores SET is_operational = false WHERE store_id = %s", (STORE,))
    with pytest.raises(Conflict) as refused:  # the load still cached: the pause holds
        await promise()
    assert refused.value.problem()["code"] == "not_serviceable"


async def test_the_order_keeps_the_eta_promised_at_checkout(city, client) -> None:
    order = await place_confirmed_order(client, city.database_url, lines=1)
    placed = datetime.fromisoformat(order["placed_at"])
    promised = datetime.fromisoformat(order["promised_at"])
    # at the store's door: a 2 min pick (or the open tasks' estimate) and the handover
    assert 60 < (promised - placed).total_seconds() <= 5 * 60
    with psycopg.connect(city.database_url) as conn:
        stored = one_row(
            conn.execute("SELECT promised_at FROM orders WHERE order_id = %s", (order["order_id"],))
        )[0]
    assert stored == promised


async def test_the_tower_shows_the_refused_share_beside_the_promise(city, client) -> None:
    """Every store of the city is queued 30 orders deep: 1,500 m from Koramangala is beyond
    every store's reach (a 404 naming the store too busy to reach it), 300 m is within the
    500 m a store always serves. The feed counts both asks and the share refused."""
    manager = await login(client, "manager.blr", DEMO_SECRETS[Role.MANAGER])

    async def asks() -> tuple[int, float | None]:
        r = await client.get("/v1/ops/snapshot", params={"city": "BLR"}, headers=manager)
        return r.json()["city"]["asks_today"], r.json()["city"]["refused_share"]

    before, share_before = await asks()
    with psycopg.connect(city.database_url) as conn:
        stores = [
            r[0] for r in conn.execute("SELECT store_id FROM dark_stores WHERE city_id = 'BLR'")
        ]
    for store in stores:
        _queue(city.database_url, 30, store)
    _fresh(city)
    far = await client.get("/v1/stores/serviceable", params={"lat": FAR.lat, "lng": FAR.lng})
    near_point = destination(KOR, 0, 300)
    near = await client.get(
        "/v1/stores/serviceable", params={"lat": near_point.lat, "lng": near_point.lng}
    )
    assert far.status_code == 404 and far.json()["code"] == "not_serviceable"
    assert far.json()["reason"] == "beyond_reach_now" and far.json()["store_id"] == STORE
    assert near.status_code == 200 and near.json()["stores"][0]["store_id"] == STORE

    after, share = await asks()
    assert after == before + 2  # earlier tests of this worker may have asked today
    assert share == round((round((share_before or 0) * before) + 1) / after, 4)
