"""Alerts: raised from live figures and from events, acknowledged, resolved when the
condition clears; reconciliation drift raises one."""

from __future__ import annotations

from datetime import timedelta

import psycopg

from server.events.service import alert_topic, emit
from server.inventory.worker import reconcile_and_report
from server.kit import keys
from server.kit.db import transaction
from server.ops import alerts, feed
from server.ops.worker import evaluate_all
from shared.enums import AlertKind
from tests.helpers import login, one_row
from tests.server.ops.ops_script import MANAGER, STORE
from tests.server.picking.test_picking_api import place_confirmed_order


def open_alerts(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT kind, store_id, severity, acknowledged_at IS NOT NULL FROM ops_alerts "
            "WHERE resolved_at IS NULL ORDER BY kind, store_id"
        ).fetchall()


async def test_predicted_breaches_raise_an_alert_that_clears_itself(city, client, stack) -> None:
    orders = [await place_confirmed_order(client, city.database_url, lines=1) for _ in range(2)]
    assert await evaluate_all(stack.sessions, stack.clock) == 0
    assert open_alerts(city.database_url) == []
    stack.clock.advance(13 * 60)  # nobody picked them: the promise cannot be kept any more
    await evaluate_all(stack.sessions, stack.clock)
    assert open_alerts(city.database_url) == [
        (AlertKind.SLA_BREACH_PREDICTED.value, STORE, "warning", False)
    ]
    # evaluating again keeps the one alert (no duplicates)
    await evaluate_all(stack.sessions, stack.clock)
    assert len(open_alerts(city.database_url)) == 1

    headers = await login(client, *MANAGER)
    listed = (await client.get("/v1/ops/alerts", params={"city": "BLR"}, headers=headers)).json()
    assert [a["kind"] for a in listed] == ["sla_breach_predicted"]
    assert "2 order(s)" in listed[0]["message"]
    r = await client.post(f"/v1/ops/alerts/{listed[0]['alert_id']}/ack", headers=headers)
    assert r.status_code == 200 and r.json()["acknowledged_by"] is not None
    # acknowledged, but a condition alert stays open while the condition holds
    assert open_alerts(city.database_url)[0][3] is True

    for o in orders:
        r = await client.post(
            f"/v1/ops/orders/{o['order_id']}/cancel", json={"reason": "late"}, headers=headers
        )
        assert r.status_code == 200
    await evaluate_all(stack.sessions, stack.clock)
    assert open_alerts(city.database_url) == []


async def test_an_overloaded_store_is_called_out(city, client, stack) -> None:
    for _ in range(5):  # no picker on the floor: more than 4 waiting is an overload
        await place_confirmed_order(client, city.database_url, lines=1)
    await evaluate_all(stack.sessions, stack.clock)
    kinds = {k for k, s, *_ in open_alerts(city.database_url) if s == STORE}
    assert AlertKind.STORE_OVERLOADED.value in kinds


async def test_an_event_alert_resolves_when_acknowledged(city, client, stack) -> None:
    async with transaction(stack.sessions) as session:
        await alerts.raise_alert(
            session,
            kind=AlertKind.OTP_LOCKED,
            severity=alerts.AlertSeverity.CRITICAL,
            store_id=STORE,
            subject="order-1",
            message="OTP locked",
            now=stack.clock.now(),
        )
    headers = await login(client, *MANAGER)
    (alert,) = (await client.get("/v1/ops/alerts", params={"city": "BLR"}, headers=headers)).json()
    assert alert["store_id"] == STORE
    r = await client.post(f"/v1/ops/alerts/{alert['alert_id']}/ack", headers=headers)
    assert r.status_code == 200 and r.json()["resolved_at"] is not None
    assert open_alerts(city.database_url) == []
    # the acknowledgement is a manager action like the others: it is in the audit log
    log = (await client.get("/v1/ops/audit", params={"city": "BLR"}, headers=headers)).json()
    assert [(e["action"], e["target"]) for e in log] == [("alert.acknowledge", alert["alert_id"])]
    assert log[0]["details"]["kind"] == AlertKind.OTP_LOCKED.value
    assert log[0]["actor_id"] == r.json()["acknowledged_by"]
    # acknowledging it again changes nothing and writes nothing
    r = await client.post(f"/v1/ops/alerts/{alert['alert_id']}/ack", headers=headers)
    assert r.status_code == 200
    log = (await client.get("/v1/ops/audit", params={"city": "BLR"}, headers=headers)).json()
    assert len(log) == 1
    r = await client.post(
        "/v1/ops/alerts/00000000-0000-0000-0000-000000000000/ack", headers=headers
    )
    assert r.status_code == 404


async def test_a_lost_rider_is_named_as_the_tables_name_them(city, stack) -> None:
    with psycopg.connect(city.database_url) as conn:
        rider_id, name = one_row(
            conn.execute(
                "SELECT r.rider_id, u.name FROM riders r JOIN users u ON u.id = r.rider_id "
                "ORDER BY u.login LIMIT 1"
            )
        )
    async with transaction(stack.sessions) as session:
        await emit(
            session,
            topic=alert_topic(AlertKind.RIDER_SIGNAL_LOST),
            store_id=STORE,
            aggregate_id=str(rider_id),
            now=stack.clock.now(),
            payload={"rider_id": str(rider_id), "trip_id": "t-1", "silent_s": 120},
        )
    with psycopg.connect(city.database_url) as conn:
        (message,) = one_row(
            conn.execute("SELECT message FROM ops_alerts WHERE kind = 'rider_signal_lost'")
        )
    assert message == f"no signal from {name} for 2 min; trip reassigned"
    assert str(rider_id)[:8] not in message


async def test_reconciliation_drift_raises_an_alert(city, stack) -> None:
    with psycopg.connect(city.database_url) as conn:
        sku = one_row(
            conn.execute(
                "SELECT sku_id FROM store_inventory WHERE store_id = %s ORDER BY sku_id LIMIT 1",
                (STORE,),
            )
        )[0]
    await stack.redis.hincrby(keys.inventory(STORE, sku), "available", 7)
    drift = await reconcile_and_report(
        stack.sessions, stack.engine, stack.redis, stack.clock, STORE
    )
    assert [d.key for d in drift] == [sku]
    assert open_alerts(city.database_url) == [
        (AlertKind.RECONCILIATION_DRIFT.value, STORE, "warning", False)
    ]


async def test_the_snapshot_carries_open_alerts(city, client, stack) -> None:
    for _ in range(5):
        await place_confirmed_order(client, city.database_url, lines=1)
    stack.clock.advance(5 * 60)  # five minutes and still nobody picking
    await evaluate_all(stack.sessions, stack.clock)
    async with transaction(stack.sessions) as session:
        snap = await feed.build_snapshot(session, city_id="BLR", now=stack.clock.now())
    # five waiting with nobody picking: overloaded, and the last ones cannot make it now
    assert {a.kind for a in snap.alerts} == {
        AlertKind.STORE_OVERLOADED.value,
        AlertKind.SLA_BREACH_PREDICTED.value,
    }
    kor = next(s for s in snap.stores if s.store_id == STORE)
    assert kor.predicted_breaches >= 1 and kor.risk > 0


async def test_forecast_stock_out_risk_reaches_the_feed_and_alerts(city, stack) -> None:
    from tests.server.forecast.forecast_db_helpers import put_forecasts, set_position, skus_of

    sku, other = skus_of(city.database_url, STORE, 2)
    set_position(city.database_url, STORE, sku, available=3)
    set_position(city.database_url, STORE, other, available=50)
    put_forecasts(
        city.database_url,
        stack.clock.now() - timedelta(hours=1),
        {(STORE, sku): (9.0, 20.0), (STORE, other): (9.0, 20.0)},
    )
    async with transaction(stack.sessions) as session:
        snap = await feed.build_snapshot(session, city_id="BLR", now=stack.clock.now())
    risk = {s.store_id: s.stockout_risk for s in snap.stores}
    assert risk == {"BLR-HSR": 0, "BLR-IND": 0, STORE: 1}
    await evaluate_all(stack.sessions, stack.clock)
    assert open_alerts(city.database_url) == [(AlertKind.STOCKOUT_RISK.value, STORE, "info", False)]


async def test_an_idle_rider_and_a_top_seller_out_of_stock_are_called_out(
    city, client, stack
) -> None:
    from tests.server.ops.ops_script import rider_on_duty, riders_of

    await rider_on_duty(client, riders_of(city.database_url, n=1)[0], stack.clock)
    order = await place_confirmed_order(client, city.database_url, lines=1)
    with psycopg.connect(city.database_url) as conn:
        (sku,) = one_row(
            conn.execute("SELECT sku_id FROM order_items WHERE order_id = %s", (order["order_id"],))
        )
    await evaluate_all(stack.sessions, stack.clock)
    kinds = {k for k, *_ in open_alerts(city.database_url)}
    assert AlertKind.RIDER_IDLE.value not in kinds
    assert AlertKind.TOP_SELLER_STOCK_OUT.value not in kinds

    stack.clock.advance(21 * 60)  # on shift and idle for over 20 minutes
    with psycopg.connect(city.database_url) as conn:  # the week's best seller runs out
        conn.execute(
            "UPDATE store_inventory SET available_qty = 0 WHERE store_id = %s AND sku_id = %s",
            (STORE, sku),
        )
    await evaluate_all(stack.sessions, stack.clock)
    with psycopg.connect(city.database_url) as conn:
        rows = conn.execute(
            "SELECT kind, subject, message FROM ops_alerts WHERE resolved_at IS NULL "
            "AND kind IN ('rider_idle', 'top_seller_stock_out') ORDER BY kind"
        ).fetchall()
        (rider_name,) = one_row(conn.execute("SELECT name FROM users WHERE id = %s", (rows[0][1],)))
    assert [k for k, *_ in rows] == ["rider_idle", "top_seller_stock_out"]
    assert rows[0][2] == f"{rider_name} idle for 21 min"  # named as the tables name riders
    assert rows[1][1] == sku
