"""Delivery end to end: shift, fixes, dispatch, tracking feed, pickup, OTP handover."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import psycopg
import pytest
import websockets

from server.delivery import locations
from server.delivery.worker import dispatch_all
from server.kit.resources import resources_of
from server.seed.generate import DEMO_SECRETS
from shared.enums import Role
from shared.geo import LatLng, destination
from tests.helpers import login, one_row, pick_and_pack
from tests.server.picking.test_picking_api import place_confirmed_order

STORE = "BLR-KOR"
KOR = LatLng(12.9352, 77.6245)


async def _packed_order(client: httpx.AsyncClient, url: str) -> tuple[dict, str]:
    order = await place_confirmed_order(client, url, lines=1)
    return order, await pick_and_pack(client, order["order_id"])


def _rider_near_kor(url: str) -> str:
    """The rider nearest to Koramangala (seeded riders start around their home store)."""
    with psycopg.connect(url) as conn:
        return one_row(
            conn.execute(
                "SELECT u.login FROM riders r JOIN users u ON u.id = r.rider_id "
                "WHERE r.home_store_id = %s ORDER BY u.login LIMIT 1",
                (STORE,),
            )
        )[0]


def _fix(point: LatLng, at) -> dict:
    return {"lat": point.lat, "lng": point.lng, "at": at.isoformat(), "speed_mps": 6.0}


async def out_for_delivery(
    client: httpx.AsyncClient, live_server, stack, bag: str
) -> tuple[dict[str, str], str]:
    """A rider at the store takes the one packed bag out: (rider's headers, trip id)."""
    rider = await login(client, _rider_near_kor(stack.database_url), DEMO_SECRETS[Role.RIDER])
    await client.post("/v1/riders/me/shift", json={"on_duty": True}, headers=rider)
    await client.post(
        "/v1/riders/me/locations",
        headers=rider,
        json={"fixes": [_fix(KOR, live_server.clock.now())]},
    )
    (trip,) = await dispatch_all(stack.sessions, stack.redis, live_server.clock)
    tid = str(trip.trip_id)
    for step in ("accept", "arrived"):
        await client.post(f"/v1/trips/{tid}/{step}", headers=rider)
    await client.post(f"/v1/trips/{tid}/pickup", headers=rider, json={"bag_labels": [bag]})
    await client.post(f"/v1/trips/{tid}/depart", headers=rider)
    return rider, tid


async def test_a_full_delivery_with_live_tracking_and_the_otp(city, live_server, stack) -> None:
    async with live_server.client() as client:
        order, bag = await _packed_order(client, city.database_url)
        rider_login = _rider_near_kor(city.database_url)
        rider = await login(client, rider_login, DEMO_SECRETS[Role.RIDER])
        assert (
            await client.post("/v1/riders/me/shift", json={"on_duty": True}, headers=rider)
        ).json()["status"] == "IDLE"
        now = live_server.clock.now()
        near = destination(KOR, 90, 400)
        r = await client.post(
            "/v1/riders/me/locations", headers=rider, json={"fixes": [_fix(near, now)]}
        )
        assert r.json() == {"accepted": 1, "duplicates": 0, "refused": []}

        trips = await dispatch_all(stack.sessions, stack.redis, live_server.clock)
        assert len(trips) == 1
        trip = (await client.get("/v1/riders/me/trip", headers=rider)).json()
        assert trip["status"] == "OFFERED" and trip["stops"][0]["order_id"] == order["order_id"]
        trip_id = trip["trip_id"]
        assert (await client.post(f"/v1/trips/{trip_id}/accept", headers=rider)).status_code == 200

        customer = await login(client, "customer.001", DEMO_SECRETS[Role.CUSTOMER])
        ws_url = live_server.url.replace("http", "ws") + f"/ws/orders/{order['order_id']}"
        async with websockets.connect(f"{ws_url}?token={customer['Authorization'][7:]}") as ws:
            assert json.loads(await ws.recv())["type"] == "snapshot"
            rws = live_server.url.replace("http", "ws") + "/ws/rider"
            async with websockets.connect(f"{rws}?token={rider['Authorization'][7:]}") as rsock:
                await rsock.send(json.dumps(_fix(KOR, now + timedelta(seconds=5))))
                ack = json.loads(await rsock.recv())
                while ack["type"] != "ack":
                    ack = json.loads(await rsock.recv())
                assert ack["accepted"] is True
            moved = json.loads(await ws.recv())
            assert moved["type"] == "rider.location" and moved["eta_s"] >= 0
            assert abs(moved["lat"] - KOR.lat) < 1e-6
        # arriving within 50 m of the store was applied by the geofence
        assert (await client.get("/v1/riders/me/trip", headers=rider)).json()[
            "status"
        ] == "AT_STORE"
        wrong_bag = await client.post(
            f"/v1/trips/{trip_id}/pickup", headers=rider, json={"bag_labels": ["QC-KOR-000000"]}
        )
        assert wrong_bag.status_code == 409 and wrong_bag.json()["code"] == "bag_not_scanned"
        assert (
            await client.post(
                f"/v1/trips/{trip_id}/pickup", headers=rider, json={"bag_labels": [bag]}
            )
        ).status_code == 200
        assert (await client.post(f"/v1/trips/{trip_id}/depart", headers=rider)).status_code == 200
        otp = (await client.get(f"/v1/orders/{order['order_id']}", headers=customer)).json()[
            "delivery_otp"
        ]
        assert otp and len(otp) == 4
        bad = "0000" if otp != "0000" else "1111"
        r = await client.post(
            f"/v1/trips/{trip_id}/stops/{order['order_id']}/deliver",
            headers=rider,
            json={"otp": bad},
        )
        assert r.status_code == 409 and r.json()["code"] == "wrong_otp"
        assert r.json()["tries_left"] == 2
        r = await client.post(
            f"/v1/trips/{trip_id}/stops/{order['order_id']}/deliver",
            headers=rider,
            json={"otp": otp},
        )
        assert r.status_code == 200 and r.json()["status"] == "COMPLETED"
        final = (await client.get(f"/v1/orders/{order['order_id']}", headers=customer)).json()
        assert final["status"] == "DELIVERED"
        assert list(final["status_times"]) == [
            "PLACED",
            "CONFIRMED",
            "PICKING",
            "PACKED",
            "DISPATCHED",
            "OUT_FOR_DELIVERY",
            "DELIVERED",
        ]
        me = (await client.get("/v1/riders/me", headers=rider)).json()
        assert me["status"] == "IDLE" and me["trip_id"] is None


async def test_three_wrong_otps_lock_the_drop_and_raise_an_alert(city, live_server, stack) -> None:
    async with live_server.client() as client:
        order, bag = await _packed_order(client, city.database_url)
        rider, tid = await out_for_delivery(client, live_server, stack, bag)
        with psycopg.connect(city.database_url) as conn:
            otp = one_row(
                conn.execute(
                    "SELECT delivery_otp FROM orders WHERE order_id = %s", (order["order_id"],)
                )
            )[0]
        bad = f"{(int(otp) + 1) % 10000:04d}"
        codes = [
            (
                await client.post(
                    f"/v1/trips/{tid}/stops/{order['order_id']}/deliver",
                    headers=rider,
                    json={"otp": bad},
                )
            ).json()["code"]
            for _ in range(3)
        ]
        assert codes == ["wrong_otp", "wrong_otp", "otp_locked"]
        r = await client.post(
            f"/v1/trips/{tid}/stops/{order['order_id']}/deliver", headers=rider, json={"otp": otp}
        )
        assert r.status_code == 409 and r.json()["code"] == "otp_locked"
        with psycopg.connect(city.database_url) as conn:
            alerts = one_row(
                conn.execute(
                    "SELECT count(*) FROM outbox WHERE topic = 'alert.otp_locked' "
                    "AND aggregate_id = %s",
                    (order["order_id"],),
                )
            )[0]
            open_alert = conn.execute(
                "SELECT kind, severity, store_id FROM ops_alerts WHERE subject = %s "
                "AND resolved_at IS NULL",
                (order["order_id"],),
            ).fetchall()
        assert alerts == 1
        # the control tower sees it as an open alert of the store
        assert open_alert == [("otp_locked", "critical", STORE)]


async def test_offline_fixes_replay_in_order_and_duplicates_are_ignored(city, app, client) -> None:
    rider = await login(client, "rider.001", DEMO_SECRETS[Role.RIDER])
    await client.post("/v1/riders/me/shift", json={"on_duty": True}, headers=rider)
    from server.kit.clock import Clock

    start = Clock().now()
    path = [destination(KOR, 45, 100 * i) for i in range(6)]
    fixes = [_fix(p, start + timedelta(seconds=5 * i)) for i, p in enumerate(path)]
    shuffled = [fixes[3], fixes[0], fixes[5], fixes[1], fixes[4], fixes[2]]
    r = await client.post("/v1/riders/me/locations", headers=rider, json={"fixes": shuffled})
    assert r.json() == {"accepted": 6, "duplicates": 0, "refused": []}
    again = await client.post("/v1/riders/me/locations", headers=rider, json={"fixes": fixes[2:]})
    assert again.json() == {"accepted": 0, "duplicates": 4, "refused": []}
    me = (await client.get("/v1/riders/me", headers=rider)).json()
    assert (me["lat"], me["lng"]) == pytest.approx((path[-1].lat, path[-1].lng))
    # the history reaches PostgreSQL through the writer (a leased loop in a server)
    await locations.write_cities(resources_of(app).engine, resources_of(app).redis, ["BLR"])
    with psycopg.connect(city.database_url) as conn:
        times = [
            r[0]
            for r in conn.execute(
                "SELECT recorded_at FROM rider_locations WHERE rider_id = %s ORDER BY recorded_at",
                (me["rider_id"],),
            )
        ]
    assert times == sorted(times) and len(times) >= 2  # sampled every 15 s


async def test_a_rider_cannot_act_on_another_riders_trip(city, live_server, stack) -> None:
    async with live_server.client() as client:
        await _packed_order(client, city.database_url)
        owner = await login(client, _rider_near_kor(city.database_url), DEMO_SECRETS[Role.RIDER])
        await client.post("/v1/riders/me/shift", json={"on_duty": True}, headers=owner)
        await client.post(
            "/v1/riders/me/locations",
            headers=owner,
            json={"fixes": [_fix(KOR, live_server.clock.now())]},
        )
        (trip,) = await dispatch_all(stack.sessions, stack.redis, live_server.clock)
        with psycopg.connect(city.database_url) as conn:
            other_login = one_row(
                conn.execute(
                    "SELECT u.login FROM riders r JOIN users u ON u.id = r.rider_id "
                    "WHERE r.rider_id <> %s LIMIT 1",
                    (trip.rider_id,),
                )
            )[0]
        other = await login(client, other_login, DEMO_SECRETS[Role.RIDER])
        for step in ("accept", "arrived", "depart"):
            r = await client.post(f"/v1/trips/{trip.trip_id}/{step}", headers=other)
            assert r.status_code == 403 and r.json()["code"] == "not_your_trip"
        order_id = (await client.get("/v1/riders/me/trip", headers=owner)).json()["stops"][0][
            "order_id"
        ]
        r = await client.post(
            f"/v1/trips/{trip.trip_id}/stops/{order_id}/deliver",
            headers=other,
            json={"otp": "1234"},
        )
        assert r.status_code == 403


async def test_a_rejected_offer_goes_to_another_rider(city, live_server, stack) -> None:
    async with live_server.client() as client:
        await _packed_order(client, city.database_url)
        with psycopg.connect(city.database_url) as conn:
            logins = [
                r[0]
                for r in conn.execute(
                    "SELECT u.login FROM riders r JOIN users u ON u.id = r.rider_id "
                    "WHERE r.home_store_id = %s ORDER BY u.login LIMIT 2",
                    (STORE,),
                )
            ]
        riders = [await login(client, name, DEMO_SECRETS[Role.RIDER]) for name in logins]
        for i, h in enumerate(riders):
            await client.post("/v1/riders/me/shift", json={"on_duty": True}, headers=h)
            await client.post(
                "/v1/riders/me/locations",
                headers=h,
                json={"fixes": [_fix(destination(KOR, 0, 100 + 300 * i), live_server.clock.now())]},
            )
        (first,) = await dispatch_all(stack.sessions, stack.redis, live_server.clock)
        offered = [(await client.get("/v1/riders/me", headers=h)).json()["trip_id"] for h in riders]
        me_first = riders[[t is not None for t in offered].index(True)]
        assert (
            await client.post(f"/v1/trips/{first.trip_id}/reject", headers=me_first)
        ).status_code == 200
        (second,) = await dispatch_all(stack.sessions, stack.redis, live_server.clock)
        assert second.rider_id != first.rider_id


async def test_fixes_older_than_a_day_or_from_the_future_are_refused(city, client) -> None:
    from server.kit.clock import Clock

    rider = await login(client, "rider.002", DEMO_SECRETS[Role.RIDER])
    await client.post("/v1/riders/me/shift", json={"on_duty": True}, headers=rider)
    now = Clock().now()
    for at, code in (
        (now - timedelta(days=2), "fix_too_old"),
        (now + timedelta(hours=1), "fix_in_future"),
    ):
        r = await client.post(
            "/v1/riders/me/locations", headers=rider, json={"fixes": [_fix(KOR, at)]}
        )
        assert r.status_code == 422 and r.json()["code"] == code
    r = await client.post(
        "/v1/riders/me/locations",
        headers=rider,
        json={"fixes": [{"lat": 12.93, "lng": 77.62, "at": "0001-01-01T00:00:00+14:00"}]},
    )
    assert r.status_code == 422
    assert (await client.get("/v1/riders/me", headers=rider)).status_code == 200


async def test_a_batch_applies_its_good_fixes_and_lists_the_bad_ones(city, client) -> None:
    from server.kit.clock import Clock

    rider = await login(client, "rider.002", DEMO_SECRETS[Role.RIDER])
    await client.post("/v1/riders/me/shift", json={"on_duty": True}, headers=rider)
    now = Clock().now()
    near = destination(KOR, 45, 300)
    fixes = [
        _fix(KOR, now - timedelta(days=2)),
        _fix(KOR, now - timedelta(seconds=10)),
        _fix(near, now),
        _fix(KOR, now + timedelta(hours=1)),
    ]
    r = await client.post("/v1/riders/me/locations", headers=rider, json={"fixes": fixes})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["accepted"], body["duplicates"]) == (2, 0)
    assert [f["code"] for f in body["refused"]] == ["fix_too_old", "fix_in_future"]
    me = (await client.get("/v1/riders/me", headers=rider)).json()
    # the latest good fix is where the rider is, not the refused one from the future
    assert (me["lat"], me["lng"]) == pytest.approx((near.lat, near.lng))


async def test_a_rider_who_goes_silent_is_replaced_automatically(city, live_server, stack) -> None:
    async with live_server.client() as client:
        await _packed_order(client, city.database_url)
        with psycopg.connect(city.database_url) as conn:
            logins = [
                r[0]
                for r in conn.execute(
                    "SELECT u.login FROM riders r JOIN users u ON u.id = r.rider_id "
                    "WHERE r.home_store_id = %s ORDER BY u.login LIMIT 2",
                    (STORE,),
                )
            ]
        first = await login(client, logins[0], DEMO_SECRETS[Role.RIDER])
        await client.post("/v1/riders/me/shift", json={"on_duty": True}, headers=first)
        await client.post(
            "/v1/riders/me/locations",
            headers=first,
            json={"fixes": [_fix(KOR, live_server.clock.now())]},
        )
        (trip,) = await dispatch_all(stack.sessions, stack.redis, live_server.clock)
        await client.post(f"/v1/trips/{trip.trip_id}/accept", headers=first)
        live_server.clock.advance(150)  # two and a half minutes without a fix
        second = await login(client, logins[1], DEMO_SECRETS[Role.RIDER])
        await client.post("/v1/riders/me/shift", json={"on_duty": True}, headers=second)
        r = await client.post(
            "/v1/riders/me/locations",
            headers=second,
            json={"fixes": [_fix(KOR, live_server.clock.now())]},
        )
        assert r.status_code == 200, r.text
        (again,) = await dispatch_all(stack.sessions, stack.redis, live_server.clock)
        assert again.rider_id != trip.rider_id
        gone = (await client.get("/v1/riders/me", headers=first)).json()
        assert gone["status"] == "OFFLINE" and gone["trip_id"] is None
        with psycopg.connect(city.database_url) as conn:
            alerts = one_row(
                conn.execute("SELECT count(*) FROM outbox WHERE topic = 'alert.rider_signal_lost'")
            )[0]
        assert alerts == 1

        # the signal comes back: the rider can take offers again
        r = await client.post(
            "/v1/riders/me/locations",
            headers=first,
            json={"fixes": [_fix(KOR, live_server.clock.now())]},
        )
        assert r.status_code == 200
        assert (await client.get("/v1/riders/me", headers=first)).json()["status"] == "IDLE"
