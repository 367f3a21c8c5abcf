"""Rider fixes at Redis speed: taking a fix writes nothing to PostgreSQL.

``record`` runs ``delivery/fix.lua`` once per request: the duplicate check, the rider's
place in the city's GEO index (``riders:geo:{C}``), the last fix (``rider:{C}:<id>:fix``:
position, time, speed, battery) and, every ``SAMPLE_S`` per rider, an entry in the city's
history stream (``riderlog:{C}``), all in one atomic step. Readers (dispatch candidates,
the trip view's ETA, the control tower, lost-signal checks) take the latest from Redis
(``latest``).

The history writer (a leased loop) applies each city's stream to ``rider_locations`` in
batches, exactly once (the offset row of ``server.kit.streams``), and brings the rider
rows' copy of the position (``riders.lat/lng/last_fix_at``, at most one sample behind) up
to date in the same transaction.

Durability: an API process that dies after the script loses nothing (the stream holds the
fix until the writer's commit). A Valkey that dies loses what it had not written to its
append-only file: with ``appendfsync everysec`` (the embedded default) at most ~1 s of
stream entries and last fixes; the handhelds send a fix every 5 s, so live positions are
back within one interval, and the history misses at most that second's samples. An empty
Redis (lost for good) loses the stream's unapplied tail: at most the writer's interval of
samples (``INTERVAL_S``) plus that second.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from server.delivery.models import Rider
from server.delivery.tracking import Track, decode
from server.kit import keys, scripts, streams
from server.kit.background import LeasedLoop
from shared.geo import LatLng
from shared.schemas.delivery import GpsFix

SAMPLE_S = 15  # one fix per rider per 15 s goes to the history
INTERVAL_S = 1.0  # the history writer runs this often (leased loop)
BATCH = 5000
OFFSETS = streams.Offsets("rider_location_offsets", "city_id")


def _us(at: datetime) -> int:
    return round(at.timestamp() * 1_000_000)


def _from_us(value: str) -> datetime:
    return datetime.fromtimestamp(int(value) / 1_000_000, UTC)


def _opt(value: float | None) -> str:
    return "" if value is None else repr(float(value))


@dataclass(frozen=True)
class Recorded:
    accepted: int
    duplicates: int
    previous: datetime | None  # the rider's last fix before these
    track: Track | None = None  # the rider's tracking context, when asked for and found


async def record(
    redis: aioredis.Redis,
    *,
    city_id: str,
    rider_id: uuid.UUID,
    fixes: Sequence[GpsFix],
    tracked: bool = False,
) -> Recorded:
    """Take usable fixes (time-zoned, in time order) of an on-duty rider: Redis only.
    ``tracked``: only if the rider's tracking context is in Redis (else nothing is taken
    and ``track`` is None), and unless it says off duty (nothing taken, ``track.duty``
    "off"); it comes back as ``track``."""
    args: list[str | int] = [str(rider_id), SAMPLE_S * 1_000_000]
    for fix in fixes:
        args += [
            _us(fix.at),
            fix.at.astimezone(UTC).isoformat(),
            repr(fix.lat),
            repr(fix.lng),
            _opt(fix.speed_mps),
            _opt(fix.battery_pct),
            _opt(fix.accuracy_m),
        ]
    track_key = [keys.rider_track(city_id, str(rider_id))] if tracked else []
    answer = await scripts.run(
        redis,
        "delivery/fix",
        keys=[
            keys.rider_fix(city_id, str(rider_id)),
            keys.rider_geo(city_id),
            keys.rider_locations(city_id),
            *track_key,
        ],
        args=args,
    )
    if answer[0] == -1:
        return Recorded(0, 0, None)
    if answer[0] == -2:
        return Recorded(0, 0, None, Track("off", []))
    accepted, duplicates, previous = answer[:3]
    before = scripts.text(previous)
    return Recorded(
        int(accepted),
        int(duplicates),
        _from_us(before) if before else None,
        decode(*answer[3:]) if tracked else None,
    )


@dataclass(frozen=True)
class Fix:
    at: datetime
    position: LatLng
    speed_mps: float | None
    battery_pct: float | None


def _float(value: bytes | str | None) -> float | None:
    try:
        return float(value) if value not in (None, b"", "") else None
    except ValueError:
        return None


async def latest(
    redis: aioredis.Redis, *, city_id: str, rider_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Fix]:
    """The last fix of each rider that has one (one round trip)."""
    pipe = redis.pipeline(transaction=False)
    for rider_id in rider_ids:
        pipe.hmget(keys.rider_fix(city_id, str(rider_id)), "us", "lat", "lng", "speed", "battery")
    found = {}
    for rider_id, (us, lat, lng, speed, battery) in zip(
        rider_ids, await pipe.execute(), strict=True
    ):
        if us is None or lat is None or lng is None:
            continue
        found[rider_id] = Fix(
            _from_us(scripts.text(us)),
            LatLng(float(lat), float(lng)),
            _float(speed),
            _float(battery),
        )
    return found


async def where(redis: aioredis.Redis, rider: Rider) -> tuple[LatLng | None, float | None]:
    """The rider's position and speed: the last fix (Redis), else the row's copy (written
    with the history, or where the rider was placed) without a speed."""
    fix = (await latest(redis, city_id=rider.city_id, rider_ids=[rider.rider_id])).get(
        rider.rider_id
    )
    if fix is not None:
        return fix.position, fix.speed_mps
    if rider.lat is not None and rider.lng is not None:
        return LatLng(rider.lat, rider.lng), None
    return None, None


_HISTORY = text("""
    INSERT INTO rider_locations (rider_id, recorded_at, lat, lng, speed_mps, accuracy_m)
    SELECT * FROM unnest(CAST(:r AS uuid[]), CAST(:at AS timestamptz[]),
      CAST(:lat AS float8[]), CAST(:lng AS float8[]), CAST(:v AS float8[]),
      CAST(:acc AS float8[]))
    ON CONFLICT DO NOTHING""")
_POSITIONS = text("""
    UPDATE riders r SET lat = v.lat, lng = v.lng, last_fix_at = v.at
    FROM unnest(CAST(:r AS uuid[]), CAST(:at AS timestamptz[]), CAST(:lat AS float8[]),
      CAST(:lng AS float8[])) AS v(rider_id, at, lat, lng)
    WHERE r.rider_id = v.rider_id AND (r.last_fix_at IS NULL OR r.last_fix_at < v.at)""")


async def _write(session: AsyncSession, entries: list[streams.Entry]) -> None:
    rows = [
        (
            uuid.UUID(f["r"]),
            _from_us(f["us"]),
            float(f["lat"]),
            float(f["lng"]),
            _float(f.get("v")),
            _float(f.get("acc")),
        )
        for _, f in entries
    ]
    cols = [list(c) for c in zip(*rows, strict=True)]
    await session.execute(
        _HISTORY,
        {"r": cols[0], "at": cols[1], "lat": cols[2], "lng": cols[3], "v": cols[4],
         "acc": cols[5]},
    )  # fmt: skip
    newest = {row[0]: row for row in rows}  # entries are in time order per rider
    # in rider order: two writers never lock the same rows in opposite orders
    last = [list(c) for c in zip(*sorted(newest.values()), strict=True)]
    await session.execute(_POSITIONS, {"r": last[0], "at": last[1], "lat": last[2], "lng": last[3]})


async def apply_pending(
    session: AsyncSession, redis: aioredis.Redis, city_id: str, *, limit: int = BATCH
) -> int:
    """Write the city's stream past PostgreSQL's offset in the caller's transaction
    (which holds the offset row until it ends). Returns the entries written."""
    applied = await OFFSETS.lock(session, city_id)
    stream = keys.rider_locations(city_id)
    total = 0
    while True:
        entries = await streams.read_after(redis, stream, applied, limit)
        if not entries:
            break
        await _write(session, entries)
        applied = entries[-1][0]
        total += len(entries)
        if len(entries) < limit:
            break
    if total:
        await OFFSETS.advance(session, city_id, applied)
        streams.trim_after_commit(session, redis, stream, applied)
    return total


async def write_cities(db: AsyncEngine, redis: aioredis.Redis, city_ids: list[str]) -> int:
    """The writer's run: apply every city whose stream has entries."""
    return await streams.drain_waiting(
        redis,
        city_ids,
        stream_of=keys.rider_locations,
        drain_one=lambda city_id: _drain(db, redis, city_id),
    )


async def _drain(db: AsyncEngine, redis: aioredis.Redis, city_id: str) -> int:
    return await streams.drain(
        db, lambda session: apply_pending(session, redis, city_id), batch=BATCH
    )


async def city_ids(db: AsyncEngine) -> list[str]:
    async with db.connect() as conn:
        return [r[0] for r in await conn.execute(text("SELECT city_id FROM cities"))]


def history_loop(db: AsyncEngine, redis: aioredis.Redis) -> LeasedLoop:
    async def run() -> None:
        await write_cities(db, redis, await city_ids(db))

    return LeasedLoop(redis, "rider-history", INTERVAL_S, run)
