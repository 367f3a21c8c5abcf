"""Rider fixes without a PostgreSQL write (issue 17 point 5): a fix is taken in Redis only,
the history writer lands each sampled fix exactly once even when it dies half-way, and
readers see the latest fix before PostgreSQL holds it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import timedelta

import psycopg
import pytest
import websockets
from sqlalchemy import event
from sqlmodel.ext.asyncio.session import AsyncSession

from server.delivery import candidates, locations, riders
from server.delivery.models import Rider
from server.kit import keys
from server.kit.db import transaction
from server.kit.resources import resources_of
from server.ops.feed import build_snapshot
from server.seed.generate import DEMO_SECRETS
from server.stores.models import DarkStore
from shared.enums import Role
from shared.geo import LatLng, destination
from shared.schemas.delivery import GpsFix
from tests.helpers import login

KOR = LatLng(12.9352, 77.6245)
WRITES = ("insert", "update", "delete", "copy")


def _fix(point: LatLng, at, **extra) -> dict:
    return {"lat": point.lat, "lng": point.lng, "at": at.isoformat(), **extra}


def _statements(engine) -> tuple[list[str], Callable[..., None]]:
    seen: list[str] = []

    def listener(_conn, _cursor, statement, *_args) -> None:
        seen.append(statement.strip().lower())

    event.listen(engine, "before_cursor_execute", listener)
    return seen, listener


async def test_a_fix_writes_nothing_to_postgresql(city, app, client) -> None:
    rider = await login(client, "rider.001", DEMO_SECRETS[Role.RIDER])
    assert (
        await client.post("/v1/riders/me/shift", json={"on_duty": True}, headers=rider)
    ).status_code == 200
    now = resources_of(app).clock.now()
    engine = resources_of(app).engine.sync_engine
    seen, listener = _statements(engine)
    after_each: list[int] = []  # statements seen once each fix was answered
    try:
        for i in range(5):  # the first reads the rider and their trip, kept in Redis
            at = now + timedelta(seconds=5 * i)
            spot = destination(KOR, 30, 100 * i)
            r = await client.post(
                "/v1/riders/me/locations",
                headers=rider,
                json={"fixes": [_fix(spot, at, battery_pct=80 - i, speed_mps=6.0)]},
            )
            assert r.json() == {"accepted": 1, "duplicates": 0, "refused": []}
            after_each.append(len(seen))
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    writes = [s for s in seen if s.startswith(WRITES) or "for update" in s]
    assert writes == []
    # the first fix reads the rider and their trip; the four after it read nothing at all
    # (the bearer's user from the cached auth state, the rider's row from Redis)
    assert after_each[0] == 2 and after_each[1:] == [2] * 4, seen
    redis = resources_of(app).redis
    me = (await client.get("/v1/riders/me", headers=rider)).json()
    rider_id = uuid.UUID(me["rider_id"])
    fix = (await locations.latest(redis, city_id="BLR", rider_ids=[rider_id]))[rider_id]
    assert fix.battery_pct == 76 and fix.speed_mps == 6.0
    assert fix.at == now + timedelta(seconds=20)
    # two of the five fixes are 15 s apart or more: sampled into the history stream
    assert await redis.xlen(keys.rider_locations("BLR")) == 2


def one(conn: psycopg.Connection, sql: str, *args: object) -> tuple:
    row = conn.execute(sql, args).fetchone()
    assert row is not None
    return row


async def test_a_socket_fix_runs_no_postgresql_statement(city, live_server) -> None:
    """The handheld's path (a fix every 5 s on /ws/rider): the first fix reads the rider
    and their trip, the next ones run no statement at all; each acknowledged."""
    async with live_server.client() as client:
        rider = await login(client, "rider.002", DEMO_SECRETS[Role.RIDER])
        shift = await client.post("/v1/riders/me/shift", json={"on_duty": True}, headers=rider)
        assert shift.status_code == 200
    now = live_server.clock.now()
    engine = resources_of(live_server.app).engine.sync_engine
    url = live_server.url.replace("http", "ws") + "/ws/rider"
    async with websockets.connect(f"{url}?token={rider['Authorization'][7:]}") as socket:
        seen, listener = _statements(engine)
        try:
            for i in range(3):
                fix = _fix(destination(KOR, 90, 50 * i), now + timedelta(seconds=5 * i))
                await socket.send(json.dumps(fix))
                ack = json.loads(await socket.recv())
                while ack["type"] != "ack":
                    ack = json.loads(await socket.recv())
                assert ack["accepted"] is True
                if i == 0:
                    assert seen and [s for s in seen if s.startswith(WRITES)] == []
                    seen.clear()
        finally:
            event.remove(engine, "before_cursor_execute", listener)
    assert seen == []


def _rider_ids(url: str, n: int) -> list[uuid.UUID]:
    with psycopg.connect(url) as conn:
        ids = [
            r[0]
            for r in conn.execute(
                "SELECT rider_id FROM riders WHERE city_id = 'BLR' ORDER BY rider_id LIMIT %s",
                (n,),
            )
        ]
        conn.execute("UPDATE riders SET on_duty = true, status = 'IDLE' WHERE rider_id = ANY(%s)",
                     (ids,))  # fmt: skip
    return ids


async def _send(stack, ids: list[uuid.UUID], start, count: int, step_s: int = 15) -> None:
    for i in range(count):
        at = start + timedelta(seconds=step_s * i)
        for n, rider_id in enumerate(ids):
            async with transaction(stack.sessions) as session:
                rider = await session.get(Rider, rider_id)
                assert rider is not None
                spot = destination(KOR, 40 * n, 50 + 10 * i)
                fix = GpsFix(lat=spot.lat, lng=spot.lng, at=at, speed_mps=5.0)
                await riders.ingest_fixes(session, stack.redis, rider=rider, fixes=[fix], now=at)


def _history(url: str, ids: list[uuid.UUID]) -> list[tuple[uuid.UUID, object]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT rider_id, recorded_at FROM rider_locations WHERE rider_id = ANY(%s) "
            "ORDER BY rider_id, recorded_at",
            (ids,),
        ).fetchall()


async def test_the_history_writer_lands_each_fix_once_across_crashes(stack) -> None:
    ids = _rider_ids(stack.database_url, 3)
    start = stack.clock.now() - timedelta(hours=1)
    await _send(stack, ids, start, 10)  # 15 s apart: every fix is sampled
    stream = keys.rider_locations("BLR")
    assert await stack.redis.xlen(stream) == 30
    # a writer that dies before its commit: nothing reaches the books, nothing is lost
    async with AsyncSession(stack.engine) as session:
        assert await locations.apply_pending(session, stack.redis, "BLR", limit=7) == 30
        await session.rollback()
    assert _history(stack.database_url, ids) == []
    # a writer that dies right after its commit (its trim never runs)
    async with AsyncSession(stack.engine) as session:
        assert await locations.apply_pending(session, stack.redis, "BLR") == 30
        await session.commit()  # a plain commit: the unit-of-work hooks (the trim) never run
    first = _history(stack.database_url, ids)
    assert len(first) == 30 and await stack.redis.xlen(stream) == 30
    # mark the applied rows: a writer that applied them again would bring them back
    with psycopg.connect(stack.database_url) as conn:
        conn.execute("DELETE FROM rider_locations WHERE rider_id = ANY(%s)", (ids,))
    await _send(stack, ids, start + timedelta(seconds=150), 5)
    assert await locations.write_cities(stack.engine, stack.redis, ["BLR"]) == 15
    later = _history(stack.database_url, ids)
    assert len(later) == 15 and not set(later) & set(first)
    assert len(set(later)) == len(later)
    assert await stack.redis.xlen(stream) == 0  # trimmed once the commit held them
    assert await locations.write_cities(stack.engine, stack.redis, ["BLR"]) == 0
    with psycopg.connect(stack.database_url) as conn:  # the rows' copy: the last sample
        (last_at,) = one(conn, "SELECT max(last_fix_at) FROM riders WHERE rider_id = ANY(%s)", ids)
    assert last_at == start + timedelta(seconds=150 + 15 * 4)


async def test_readers_see_the_latest_fix_before_postgresql_does(stack) -> None:
    (rider_id,) = _rider_ids(stack.database_url, 1)
    start = stack.clock.now()
    await _send(stack, [rider_id], start, 1)
    spot = destination(KOR, 90, 700)
    async with transaction(stack.sessions) as session:
        rider = await session.get(Rider, rider_id)
        assert rider is not None
        at = start + timedelta(seconds=5)
        fix = GpsFix(lat=spot.lat, lng=spot.lng, at=at, battery_pct=33.0)
        await riders.ingest_fixes(session, stack.redis, rider=rider, fixes=[fix], now=at)
    with psycopg.connect(stack.database_url) as conn:
        (lat,) = one(conn, "SELECT lat FROM riders WHERE rider_id = %s", rider_id)
    assert lat != pytest.approx(spot.lat)  # PostgreSQL has not seen it yet
    async with transaction(stack.sessions) as session:
        store = await session.get(DarkStore, "BLR-KOR")
        assert store is not None
        near = await candidates.nearby_ids(stack.redis, store=store, radius_m=800)
        snapshot = await build_snapshot(
            session, city_id="BLR", now=stack.clock.now(), redis=stack.redis
        )
    assert (near[rider_id].lat, near[rider_id].lng) == pytest.approx((spot.lat, spot.lng), abs=1e-5)
    assert await candidates.batteries(stack.redis, [rider_id], city_id="BLR") == {rider_id: 33.0}
    (seen,) = [r for r in snapshot.riders if r.rider_id == rider_id]
    assert (seen.lat, seen.lng) == pytest.approx((spot.lat, spot.lng))
