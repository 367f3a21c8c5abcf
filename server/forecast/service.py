"""Forecasting and replenishment on the database: the pure core (this package) wired to
PostgreSQL and, for stock movements, to the Redis gate.

Bulk work (history load, CSV imports, forecast runs, backtests) takes a database URL and
opens its own psycopg connection, one transaction per call, like ``server.seed``: it is
operator/CLI work that moves millions of rows. Request-sized work (planning, dispatch,
receipt, stock-out risk) takes an ``AsyncSession`` first and never commits, like every
other service.

Entities: the core's ``Store(store_id, city)`` gets the store's real id and its city's
*name* (``cities.name``, so ``holidays.India`` finds the state, e.g. Karnataka for
Bengaluru); ``Sku(sku_id, category)`` gets the product's real id and ``category_id`` (the
seeded slugs are the core's category traits). Stores and SKUs are always taken in id
order, which is also the primary-key order of ``sales_history``: the load appends to the
right edge of the index.
"""

from __future__ import annotations

import math
import struct
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import numpy as np
import psycopg
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.forecast import factors as core_factors
from server.forecast.backtest import BacktestReport, rolling_origins, run_backtest
from server.forecast.entities import Sku, Store
from server.forecast.factors import (
    CsvError,
    Event,
    ExternalFactors,
    FlashSale,
    PathOrText,
    WeatherDay,
    load_events_csv,
    load_flash_schedule_csv,
    load_weather_csv,
    synthetic_flash_sales,
    synthetic_matches,
    synthetic_weather,
)
from server.forecast.history import HOURS_PER_DAY, IST, MAX_UNITS, History, generate_history
from server.forecast.model import DemandModel, ForecastConfig
from server.forecast.models import FactorSource, ReplenishmentOrder, ReplenishmentStatus
from server.forecast.replenish import Reason, StockPosition, plan
from server.inventory.service import move_stock
from server.kit.errors import Conflict, NotFound
from shared.enums import Movement

HORIZON_HOURS = 72
# Weather and fixtures are known a few days ahead (forecast, fixture list): the synthetic
# factors run this many days past the generated history, so a forecast made at its end
# sees them. (Flash sales are only generated inside the history window.)
FACTOR_LEAD_DAYS = math.ceil(HORIZON_HOURS / HOURS_PER_DAY)
_EVENT_NAMESPACE = uuid.UUID("5b0f3c64-2d1e-4a57-9b7e-6f1a0c2d9e41")

StoreSelection = int | Sequence[str] | None  # None: all; n: the first n by id; or ids
FactorMode = Literal["synthetic", "database"]


# --------------------------------------------------------------------------- entities


@dataclass(frozen=True)
class CityEntities:
    """The seeded city as the core sees it, plus the city id <-> name maps."""

    stores: tuple[Store, ...]
    skus: tuple[Sku, ...]
    city_id_by_name: dict[str, str]
    city_name_by_id: dict[str, str]

    @property
    def store_ids(self) -> list[str]:
        return [s.store_id for s in self.stores]

    @property
    def sku_ids(self) -> list[str]:
        return [k.sku_id for k in self.skus]


def _select(ids: list[str], wanted: StoreSelection, what: str) -> list[str]:
    if wanted is None:
        return ids
    if isinstance(wanted, int):
        if wanted < 1:
            raise ValueError(f"need at least one {what}")
        return ids[:wanted]
    known = set(ids)
    unknown = sorted(set(wanted) - known)
    if unknown:
        raise ValueError(f"unknown {what} id(s): {', '.join(unknown[:5])}")
    return sorted(set(wanted))


def load_entities(
    conn: psycopg.Connection[Any], *, stores: StoreSelection = None, skus: StoreSelection = None
) -> CityEntities:
    """Every store (a paused one reopens and needs its forecast) and every active product,
    in id order (Python's, whatever the database collation), as core entities."""
    names = dict(conn.execute("SELECT city_id, name FROM cities").fetchall())
    store_city = dict(conn.execute("SELECT store_id, city_id FROM dark_stores").fetchall())
    sku_cat = dict(
        conn.execute("SELECT sku_id, category_id FROM products WHERE is_active").fetchall()
    )
    chosen_stores = _select(sorted(store_city), stores, "store")
    chosen_skus = _select(sorted(sku_cat), skus, "SKU")
    if not chosen_stores:
        raise ValueError("no store: seed the city first (`qc seed`)")
    if not chosen_skus:
        raise ValueError("no active product: seed the city first (`qc seed`)")
    return CityEntities(
        stores=tuple(Store(s, names[store_city[s]]) for s in chosen_stores),
        skus=tuple(Sku(k, sku_cat[k]) for k in chosen_skus),
        city_id_by_name={n: c for c, n in names.items()},
        city_name_by_id=names,
    )


def _day_start_utc(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=IST).astimezone(UTC)


def ist_midnight(moment: datetime) -> datetime:
    """The Asia/Kolkata midnight at or before ``moment`` (as a UTC datetime)."""
    return _day_start_utc(moment.astimezone(IST).date())


# --------------------------------------------------------------------------- factors


def _event_id(ev: Event, city_id: str | None) -> str:
    key = f"{ev.day.isoformat()}|{ev.start_hour}|{ev.kind}|{city_id or '*'}|{ev.name}"
    return uuid.uuid5(_EVENT_NAMESPACE, key).hex


_UPSERT_WEATHER = """
    INSERT INTO weather_days (city_id, day, rain_mm, rainy, source)
    VALUES (%s, %s, %s, %s, %s)
    ON CONFLICT (city_id, day) DO {action}"""
_UPSERT_EVENT = """
    INSERT INTO calendar_events (event_id, day, start_hour, duration_hours, kind, name,
      city_id, source)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
    ON CONFLICT (event_id) DO {action}"""
_UPSERT_FLASH = """
    INSERT INTO flash_sale_schedule (day, sku_id, store_id, source) VALUES (%s, %s, %s, %s)
    ON CONFLICT ON CONSTRAINT uq_flash_sale_day_sku_store DO {action}"""

_IMPORT_WINS = {
    "weather": "UPDATE SET rain_mm = EXCLUDED.rain_mm, rainy = EXCLUDED.rainy, "
    "source = EXCLUDED.source",
    "event": "UPDATE SET duration_hours = EXCLUDED.duration_hours, source = EXCLUDED.source",
    "flash": "UPDATE SET source = EXCLUDED.source",
}


def _weather_rows(
    weather: Iterable[WeatherDay], city_ids: dict[str, str], source: FactorSource
) -> list[tuple[object, ...]]:
    return [(city_ids[w.city], w.day, w.rain_mm, w.rainy, source.value) for w in weather]


def _event_rows(
    events: Iterable[Event], city_ids: dict[str, str], source: FactorSource
) -> list[tuple[object, ...]]:
    rows: list[tuple[object, ...]] = []
    for ev in events:
        cid = city_ids[ev.city] if ev.city is not None else None
        rows.append(
            (
                _event_id(ev, cid),
                ev.day,
                ev.start_hour,
                ev.duration_hours,
                ev.kind,
                ev.name,
                cid,
                source.value,
            )
        )
    return rows


def _flash_rows(sales: Iterable[FlashSale], source: FactorSource) -> list[tuple[object, ...]]:
    rows: list[tuple[object, ...]] = []
    for fs in sales:
        if fs.store_ids is None:
            rows.append((fs.day, fs.sku_id, None, source.value))
        else:
            rows.extend((fs.day, fs.sku_id, s, source.value) for s in sorted(fs.store_ids))
    return rows


def _write_synthetic_factors(
    conn: psycopg.Connection[Any], *, start: date, days: int, seed: int
) -> None:
    """Replace the window's synthetic factor rows; imported rows win every conflict.

    The synthetic drivers belong to the whole city (every operational store and active
    SKU) and the seed, not to the stores/SKUs being loaded, so reloading part of the
    history regenerates the same drivers the rest of it was generated with.
    """
    city = load_entities(conn)
    ahead = days + FACTOR_LEAD_DAYS
    last, last_ahead = start + timedelta(days=days), start + timedelta(days=ahead)
    cities = {s.city for s in city.stores}
    with conn.cursor() as cur:
        syn = FactorSource.SYNTHETIC.value
        cur.execute(
            "DELETE FROM weather_days WHERE source = %s AND day >= %s AND day < %s",
            (syn, start, last_ahead),
        )
        cur.execute(
            "DELETE FROM calendar_events WHERE source = %s AND day >= %s AND day < %s",
            (syn, start, last_ahead),
        )
        cur.execute(
            "DELETE FROM flash_sale_schedule WHERE source = %s AND day >= %s AND day < %s",
            (syn, start, last),
        )
        weather = synthetic_weather(cities, start, ahead, seed)
        events = synthetic_matches(start, ahead, seed)
        sales = synthetic_flash_sales(city.stores, city.skus, start, days, seed)
        source = FactorSource.SYNTHETIC
        cur.executemany(
            _UPSERT_WEATHER.format(action="NOTHING"),
            _weather_rows(weather, city.city_id_by_name, source),
        )
        cur.executemany(
            _UPSERT_EVENT.format(action="NOTHING"),
            _event_rows(events, city.city_id_by_name, source),
        )
        cur.executemany(_UPSERT_FLASH.format(action="NOTHING"), _flash_rows(sales, source))


def read_factors(
    conn: psycopg.Connection[Any], city: CityEntities, *, first: date, last: date
) -> ExternalFactors:
    """Weather, events and flash sales of local days ``first..last`` (inclusive) as the
    core's :class:`ExternalFactors` (holidays come from ``holidays.India``)."""
    names = city.city_name_by_id
    weather = tuple(
        WeatherDay(names[c], d, mm, rainy)
        for c, d, mm, rainy in conn.execute(
            "SELECT city_id, day, rain_mm, rainy FROM weather_days "
            "WHERE day BETWEEN %s AND %s ORDER BY city_id, day",
            (first, last),
        )
    )
    events = tuple(
        Event(d, h, kind, name, names[c] if c is not None else None, dur)
        for d, h, kind, name, c, dur in conn.execute(
            "SELECT day, start_hour, kind, name, city_id, duration_hours FROM calendar_events "
            "WHERE day BETWEEN %s AND %s ORDER BY day, start_hour, event_id",
            (first, last),
        )
    )
    everywhere: list[FlashSale] = []
    somewhere: dict[tuple[date, str], set[str]] = {}
    for d, sku, store in conn.execute(
        "SELECT day, sku_id, store_id FROM flash_sale_schedule "
        "WHERE day BETWEEN %s AND %s ORDER BY day, sku_id, store_id",
        (first, last),
    ):
        if store is None:
            everywhere.append(FlashSale(d, sku, None))
        else:
            somewhere.setdefault((d, sku), set()).add(store)
    sales = everywhere + [FlashSale(d, k, frozenset(s)) for (d, k), s in somewhere.items()]
    return ExternalFactors(weather=weather, events=events, flash_sales=tuple(sales))


def _resolve_city(
    conn: psycopg.Connection[Any],
) -> tuple[dict[str, str], dict[str, str]]:
    """(lower-case city id or name -> city_id, city_id -> name)."""
    rows = conn.execute("SELECT city_id, name FROM cities").fetchall()
    lookup: dict[str, str] = {}
    for cid, name in rows:
        lookup[cid.lower()] = cid
        lookup[name.lower()] = cid
    return lookup, dict(rows)


def _data_lines(source: PathOrText, required: Sequence[str]) -> tuple[str, list[int]]:
    """Display name and line number of every data row, in the order the core's loaders
    return them (same parser: blank lines skipped, header first)."""
    name, rows = core_factors._rows(source, required)
    return name, [line for line, _ in rows]


def import_weather(url: str, source: PathOrText) -> int:
    """Upsert ``city,date,rain_mm|rainy`` rows (``city``: a city id or name). Returns the
    number of rows; a bad row raises :class:`CsvError` naming its line and field."""
    parsed = load_weather_csv(source)
    name, lines = _data_lines(source, ("city", "date"))
    with psycopg.connect(url) as conn:
        lookup, _ = _resolve_city(conn)
        rows: list[tuple[object, ...]] = []
        seen: dict[tuple[str, date], int] = {}
        for line, w in zip(lines, parsed, strict=True):
            cid = lookup.get(w.city.lower())
            if cid is None:
                raise CsvError(name, line, "city", f"unknown city {w.city!r}")
            if (cid, w.day) in seen:
                raise CsvError(name, line, "date", f"duplicate of line {seen[cid, w.day]}")
            seen[cid, w.day] = line
            rows.append((cid, w.day, w.rain_mm, w.rainy, FactorSource.IMPORT.value))
        with conn.cursor() as cur:
            cur.executemany(_UPSERT_WEATHER.format(action=_IMPORT_WINS["weather"]), rows)
    return len(rows)


def import_events(url: str, source: PathOrText) -> int:
    """Upsert ``date,start_hour[,kind,name,city,duration_hours]`` rows; the same event
    imported twice is updated, not duplicated. Returns the number of rows."""
    parsed = load_events_csv(source)
    name, lines = _data_lines(source, ("date", "start_hour"))
    with psycopg.connect(url) as conn:
        lookup, _ = _resolve_city(conn)
        rows: list[tuple[object, ...]] = []
        for line, ev in zip(lines, parsed, strict=True):
            cid: str | None = None
            if ev.city is not None:
                cid = lookup.get(ev.city.lower())
                if cid is None:
                    raise CsvError(name, line, "city", f"unknown city {ev.city!r}")
            rows.append(
                (
                    _event_id(ev, cid),
                    ev.day,
                    ev.start_hour,
                    ev.duration_hours,
                    ev.kind,
                    ev.name,
                    cid,
                    FactorSource.IMPORT.value,
                )
            )
        with conn.cursor() as cur:
            cur.executemany(_UPSERT_EVENT.format(action=_IMPORT_WINS["event"]), rows)
    return len(rows)


def import_flash_sales(url: str, source: PathOrText) -> int:
    """Upsert ``date,sku_id[,store_ids]`` rows (``;``-separated stores, ``*``/empty: all).
    Unknown SKUs and stores are errors naming the line. Returns the number of rows."""
    parsed = load_flash_schedule_csv(source)
    name, lines = _data_lines(source, ("date", "sku_id"))
    with psycopg.connect(url) as conn:
        skus = {r[0] for r in conn.execute("SELECT sku_id FROM products")}
        stores = {r[0] for r in conn.execute("SELECT store_id FROM dark_stores")}
        for line, fs in zip(lines, parsed, strict=True):
            if fs.sku_id not in skus:
                raise CsvError(name, line, "sku_id", f"unknown SKU {fs.sku_id!r}")
            unknown = sorted((fs.store_ids or frozenset()) - stores)
            if unknown:
                raise CsvError(name, line, "store_ids", f"unknown store(s) {', '.join(unknown)}")
        rows = _flash_rows(parsed, FactorSource.IMPORT)
        with conn.cursor() as cur:
            cur.executemany(_UPSERT_FLASH.format(action=_IMPORT_WINS["flash"]), rows)
    return len(rows)


# --------------------------------------------------------------------------- sales history

_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_COPY_TRAILER = struct.pack(">h", -1)
_US_PER_HOUR = 3_600_000_000
_COPY_CHUNK_ROWS = 500_000


def _binary_history_rows(history: History) -> Iterator[bytes]:
    """The non-zero cells as a PostgreSQL binary COPY stream for
    ``(store_id, sku_id, hour_start, units)``, packed with numpy in the history's order
    (store, SKU, hour: the primary-key order when stores and SKUs are in id order)."""
    series, hours, units = history.nonzero()
    store_b = [s.store_id.encode() for s in history.stores]
    sku_b = [k.sku_id.encode() for k in history.skus]
    s_len = np.array([len(b) for b in store_b], dtype=np.int64)[history.series_store]
    k_len = np.array([len(b) for b in sku_b], dtype=np.int64)[history.series_sku]
    store_arr = np.array(store_b, dtype=f"S{max(1, int(s_len.max()))}")
    sku_arr = np.array(sku_b, dtype=f"S{max(1, int(k_len.max()))}")
    base_us = (history.start_utc - _PG_EPOCH) // timedelta(microseconds=1)
    yield _COPY_HEADER
    for c0 in range(0, series.size, _COPY_CHUNK_ROWS):
        cs, ct, cu = (a[c0 : c0 + _COPY_CHUNK_ROWS] for a in (series, hours, units))
        # one fixed-width record layout per (store id length, SKU id length) combination
        combos = np.unique(np.stack([s_len[cs], k_len[cs]], axis=1), axis=0)
        for ls, lk in combos.tolist():
            pick = (s_len[cs] == ls) & (k_len[cs] == lk) if len(combos) > 1 else slice(None)
            ps = cs[pick]
            rec = np.empty(
                ps.size,
                dtype=[
                    ("n", ">i2"),
                    ("ls", ">i4"),
                    ("store", f"S{ls}"),
                    ("lk", ">i4"),
                    ("sku", f"S{lk}"),
                    ("lt", ">i4"),
                    ("ts", ">i8"),
                    ("lu", ">i4"),
                    ("units", ">i4"),
                ],
            )
            rec["n"], rec["ls"], rec["lk"], rec["lt"], rec["lu"] = 4, ls, lk, 8, 4
            rec["store"] = store_arr[history.series_store[ps]]
            rec["sku"] = sku_arr[history.series_sku[ps]]
            rec["ts"] = base_us + ct[pick].astype(np.int64) * _US_PER_HOUR
            rec["units"] = cu[pick]
            yield rec.tobytes()
    yield _COPY_TRAILER


@dataclass(frozen=True)
class HistoryLoad:
    history: History
    rows: int
    replaced_rows: int  # rows of the same window (and stores/SKUs) removed first
    whole_table: bool  # the load replaced the whole table (truncate + index rebuild)
    generate_s: float
    load_s: float

    def describe(self) -> str:
        h = self.history
        return (
            f"{len(h.stores)} stores x {len(h.skus)} SKUs x {h.days} days from {h.start}: "
            f"{self.rows:,} non-zero hourly rows; generate {self.generate_s:.1f} s, "
            f"load {self.load_s:.1f} s" + (" (whole table rebuilt)" if self.whole_table else "")
        )


def _primary_key(conn: psycopg.Connection[Any], table: str) -> tuple[str, str]:
    row = conn.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = %s::regclass AND contype = 'p'",
        (table,),
    ).fetchone()
    if row is None:
        raise RuntimeError(f"{table} has no primary key")
    return row[0], row[1]


def _copy_history(
    conn: psycopg.Connection[Any], history: History, city: CityEntities
) -> tuple[int, bool]:
    """Replace the history's window for its stores x SKUs. Returns (rows removed, whether
    the whole table was rebuilt).

    When nothing else is in the table (the usual seed), it is truncated and loaded with
    ``COPY FREEZE`` with the primary key dropped and rebuilt afterwards in the same
    transaction (pg_restore's technique: one sort instead of millions of index inserts,
    and no hint-bit rewrite on the first read). Otherwise the window's rows are deleted and
    the new ones appended with the index in place.
    """
    lo = history.start_utc
    hi = lo + timedelta(hours=history.hours)
    window = (
        "store_id = ANY(%(stores)s) AND sku_id = ANY(%(skus)s) "
        "AND hour_start >= %(lo)s AND hour_start < %(hi)s"
    )
    params = {"stores": city.store_ids, "skus": city.sku_ids, "lo": lo, "hi": hi}
    with conn.cursor() as cur:
        # a lock first: a concurrent load of the same table waits instead of interleaving
        cur.execute("LOCK TABLE sales_history IN SHARE ROW EXCLUSIVE MODE")
        others = cur.execute(
            f"SELECT EXISTS (SELECT 1 FROM sales_history WHERE NOT ({window}))", params
        ).fetchone()
        whole = not (others and others[0])
        if whole:
            removed_row = cur.execute("SELECT count(*) FROM sales_history").fetchone()
            removed = int(removed_row[0]) if removed_row else 0
            name, definition = _primary_key(conn, "sales_history")
            cur.execute("TRUNCATE sales_history")
            cur.execute("SET LOCAL maintenance_work_mem = '512MB'")
            cur.execute(f'ALTER TABLE sales_history DROP CONSTRAINT "{name}"')
            statement = (
                "COPY sales_history (store_id, sku_id, hour_start, units) "
                "FROM STDIN (FORMAT BINARY, FREEZE)"
            )
        else:
            removed = cur.execute(f"DELETE FROM sales_history WHERE {window}", params).rowcount
            statement = (
                "COPY sales_history (store_id, sku_id, hour_start, units) "
                "FROM STDIN (FORMAT BINARY)"
            )
        with cur.copy(statement) as copy:
            for block in _binary_history_rows(history):
                copy.write(block)
        if whole:
            cur.execute(f'ALTER TABLE sales_history ADD CONSTRAINT "{name}" {definition}')
    return removed, whole


def load_history(
    url: str,
    *,
    start: date,
    days: int,
    seed: int = 0,
    stores: StoreSelection = None,
    skus: StoreSelection = None,
    factors: FactorMode = "synthetic",
) -> HistoryLoad:
    """Generate ``days`` days of hourly sales from ``start`` (IST) for the city's stores x
    SKUs with the core's generator and bulk-load the non-zero hours (one transaction).

    ``factors="synthetic"`` first writes generated weather, cricket fixtures and flash
    sales for the window (weather and fixtures for ``FACTOR_LEAD_DAYS`` more) into the
    factor tables, never over imported rows; ``"database"`` uses only what is there. Either
    way the generator reads the factors back from the tables, so the history and the
    forecasts later made on it see exactly the same drivers.
    """
    if days < 1:
        raise ValueError("days must be positive")
    with psycopg.connect(url) as conn:
        city = load_entities(conn, stores=stores, skus=skus)
        t0 = time.perf_counter()
        if factors == "synthetic":
            _write_synthetic_factors(conn, start=start, days=days, seed=seed)
        drivers = read_factors(conn, city, first=start, last=start + timedelta(days=days - 1))
        history = generate_history(
            city.stores, city.skus, start=start, days=days, factors=drivers, seed=seed
        )
        rows = int(np.count_nonzero(history.units))
        t1 = time.perf_counter()
        removed, whole = _copy_history(conn, history, city)
        conn.commit()
        t2 = time.perf_counter()
        conn.execute("ANALYZE sales_history")
        conn.commit()
    return HistoryLoad(history, rows, removed, whole, t1 - t0, t2 - t1)


def seed_history(
    url: str, days: int = 90, seed: int = 42, *, today: date | None = None
) -> HistoryLoad:
    """``qc seed --history-days N``: N days of synthetic history ending at today's IST
    midnight (so ``qc forecast run`` can forecast from today 00:00), synthetic factors."""
    end = today if today is not None else datetime.now(IST).date()
    return load_history(url, start=end - timedelta(days=days), days=days, seed=seed)


def read_history(
    conn: psycopg.Connection[Any],
    city: CityEntities,
    *,
    start: date,
    days: int,
    until: datetime | None = None,
) -> History:
    """The stores x SKUs history of ``days`` local days from ``start`` (rows at or after
    ``until`` are left out: zero). A row not on an IST hour boundary counts in the hour it
    falls in."""
    empty = History.empty(stores=city.stores, skus=city.skus, start=start, days=days)
    lo = empty.start_utc
    hi = lo + timedelta(hours=empty.hours)
    if until is not None:
        hi = min(hi, until)
    n_sku, hours = len(city.skus), empty.hours
    with conn.cursor(binary=True) as cur:
        cur.execute("SET LOCAL work_mem = '256MB'")
        # one packed (sku, hour, units) int4 triple per row, one bytea per store: the
        # per-row work stays inside PostgreSQL and numpy
        cur.execute(
            """
            SELECT (st.i - 1)::int4, string_agg(
                int4send((sk.i - 1)::int4)
                || int4send(((extract(epoch FROM h.hour_start)::int8 - %(lo_s)s) / 3600)::int4)
                || int4send(h.units), ''::bytea)
            FROM sales_history h
            JOIN unnest(%(stores)s::text[]) WITH ORDINALITY AS st (id, i) ON st.id = h.store_id
            JOIN unnest(%(skus)s::text[]) WITH ORDINALITY AS sk (id, i) ON sk.id = h.sku_id
            WHERE h.hour_start >= %(lo)s AND h.hour_start < %(hi)s
            GROUP BY 1""",
            {
                "stores": city.store_ids,
                "skus": city.sku_ids,
                "lo": lo,
                "hi": hi,
                "lo_s": int(lo.timestamp()),
            },
        )
        for store_i, packed in cur:
            k, t, u = np.frombuffer(packed, dtype=">i4").reshape(-1, 3).T.astype(np.int64)
            # bincount sums rows that share an hour (rows off the IST hour boundary)
            block = np.bincount(k * hours + t, weights=u, minlength=n_sku * hours)
            if block.max(initial=0) > MAX_UNITS:
                raise ValueError(
                    f"an hour of store {city.store_ids[store_i]} holds > {MAX_UNITS} units"
                )
            rows = slice(store_i * n_sku, (store_i + 1) * n_sku)
            empty.units[rows] = block.reshape(n_sku, hours).astype(np.uint16)
    return empty


def _history_bounds(
    conn: psycopg.Connection[Any], city: CityEntities, before: datetime | None = None
) -> tuple[datetime, datetime] | None:
    row = conn.execute(
        "SELECT min(hour_start), max(hour_start) FROM sales_history "
        "WHERE store_id = ANY(%s) AND (%s::timestamptz IS NULL OR hour_start < %s)",
        (city.store_ids, before, before),
    ).fetchone()
    if row is None or row[0] is None:
        return None
    return row[0], row[1]


# --------------------------------------------------------------------------- forecasts


@dataclass(frozen=True)
class ForecastRun:
    forecast_at: datetime
    history_start: date
    history_days: int
    series: int
    train_rows: int
    read_s: float
    fit_s: float
    predict_s: float
    write_s: float

    def describe(self) -> str:
        return (
            f"forecast at {self.forecast_at.astimezone(IST):%Y-%m-%d %H:%M} IST for "
            f"{self.series:,} store x SKU series from {self.history_days} days of history "
            f"(since {self.history_start}): read {self.read_s:.1f} s, fit {self.fit_s:.1f} s "
            f"on {self.train_rows:,} rows, predict {self.predict_s:.1f} s, "
            f"write {self.write_s:.1f} s"
        )


def _check_origin(origin: datetime) -> None:
    if origin.tzinfo is None:
        raise ValueError("origin must be timezone-aware")
    if (origin - ist_midnight(origin)) % timedelta(hours=1):
        raise ValueError(f"origin {origin.isoformat()} is not on an Asia/Kolkata hour")


def run_forecast(
    url: str,
    *,
    origin: datetime,
    days: int = 90,
    config: ForecastConfig | None = None,
    stores: StoreSelection = None,
    skus: StoreSelection = None,
) -> ForecastRun:
    """Fit the model on up to ``days`` days of history before ``origin`` (an IST hour),
    forecast the next 72 h of every store x SKU and write one ``demand_forecasts`` row per
    series (``forecast_at = origin``, replacing an earlier run at the same origin)."""
    _check_origin(origin)
    t0 = time.perf_counter()
    with psycopg.connect(url) as conn:
        city = load_entities(conn, stores=stores, skus=skus)
        bounds = _history_bounds(conn, city, before=origin)
        if bounds is None:
            raise ValueError("no sales history before the origin: run `qc forecast history`")
        origin_day = origin.astimezone(IST).date()
        first_day = max(origin_day - timedelta(days=days), bounds[0].astimezone(IST).date())
        origin_hour = (origin - _day_start_utc(first_day)) // timedelta(hours=1)
        n_days = math.ceil(origin_hour / HOURS_PER_DAY)
        history = read_history(conn, city, start=first_day, days=n_days, until=origin)
        drivers = read_factors(
            conn, city, first=first_day, last=origin_day + timedelta(days=FACTOR_LEAD_DAYS)
        )
        conn.rollback()  # end the read snapshot: no transaction stays open while fitting
        t1 = time.perf_counter()
        model = DemandModel(config).fit(history, drivers, until_hour=origin_hour)
        t2 = time.perf_counter()
        forecast = model.predict(
            history, drivers, origin_hour=origin_hour, horizon_hours=HORIZON_HOURS
        )
        t3 = time.perf_counter()
        with conn.cursor() as cur:
            cur.execute(
                "DELETE FROM demand_forecasts WHERE forecast_at = %s AND store_id = ANY(%s)",
                (origin, city.store_ids),
            )
            with cur.copy(
                "COPY demand_forecasts (store_id, sku_id, forecast_at, next_24h, next_72h) "
                "FROM STDIN"
            ) as copy:
                for store_id, sku_id, f24, f72 in forecast.totals():
                    copy.write_row((store_id, sku_id, origin, f24, f72))
        conn.commit()
        t4 = time.perf_counter()
    return ForecastRun(
        forecast_at=origin,
        history_start=first_day,
        history_days=n_days,
        series=history.n_series,
        train_rows=model.train_rows,
        read_s=t1 - t0,
        fit_s=t2 - t1,
        predict_s=t3 - t2,
        write_s=t4 - t3,
    )


def backtest(
    url: str,
    *,
    days: int = 56,
    origins: int = 4,
    config: ForecastConfig | None = None,
    stores: StoreSelection = None,
    skus: StoreSelection = None,
) -> BacktestReport:
    """Rolling-origin backtest (model vs seasonal-naive, refit at each origin) on the last
    ``days`` whole local days of the stored history."""
    with psycopg.connect(url) as conn:
        city = load_entities(conn, stores=stores, skus=skus)
        bounds = _history_bounds(conn, city)
        if bounds is None:
            raise ValueError("no sales history: run `qc forecast history`")
        first_data = bounds[0].astimezone(IST).date()
        # the day after the last row's day: the stored history is taken to cover whole days
        end = bounds[1].astimezone(IST).date() + timedelta(days=1)
        start = max(first_data, end - timedelta(days=days))
        n_days = (end - start).days
        history = read_history(conn, city, start=start, days=n_days)
        drivers = read_factors(conn, city, first=start, last=end)
    return run_backtest(
        history,
        drivers,
        origins=rolling_origins(n_days, count=origins, max_horizon_hours=HORIZON_HOURS),
        config=config,
    )


# --------------------------------------------------------------------------- replenishment


@dataclass(frozen=True)
class PlannedLine:
    order: ReplenishmentOrder
    position: StockPosition  # in_transit includes units already PLANNED, not yet dispatched


@dataclass(frozen=True)
class ReplenishmentPlan:
    lines: list[PlannedLine]
    reasons: Counter[Reason]  # decisions per reason over every position considered
    positions: int
    forecast_at: dict[str, datetime | None]  # per store: the forecast run used


_POSITIONS_SQL = text("""
    WITH latest AS (
      SELECT s.store_id, (SELECT max(f.forecast_at) FROM demand_forecasts f
                          WHERE f.store_id = s.store_id AND f.forecast_at <= :now) AS at
      FROM dark_stores s
      WHERE CAST(:store AS varchar) IS NULL OR s.store_id = :store
    ), planned AS (
      SELECT store_id, sku_id, sum(quantity) AS qty FROM replenishment_orders
      WHERE status = 'PLANNED' AND (CAST(:store AS varchar) IS NULL OR store_id = :store)
      GROUP BY store_id, sku_id
    )
    SELECT i.store_id, i.sku_id, i.available_qty, i.in_transit_qty + coalesce(p.qty, 0),
           i.max_capacity, pr.case_pack, f.next_24h, f.next_72h, l.at
    FROM latest l
    JOIN store_inventory i ON i.store_id = l.store_id
    JOIN products pr ON pr.sku_id = i.sku_id
    LEFT JOIN demand_forecasts f
      ON f.store_id = i.store_id AND f.sku_id = i.sku_id AND f.forecast_at = l.at
    LEFT JOIN planned p ON p.store_id = i.store_id AND p.sku_id = i.sku_id
    ORDER BY i.store_id, i.sku_id""")


async def plan_replenishment(
    session: AsyncSession, *, now: datetime, store_id: str | None = None
) -> ReplenishmentPlan:
    """Apply the reorder rule to every SKU of every store (or one store) with the store's
    latest forecast at or before ``now``, and write a PLANNED order per SKU that needs one.

    Units PLANNED but not yet dispatched count as in transit, so planning again before
    dispatch orders nothing twice. A SKU without a forecast is never reordered.
    """
    rows = (await session.exec(_POSITIONS_SQL, params={"now": now, "store": store_id})).all()  # type: ignore[call-overload]
    if store_id is not None and not rows:
        exists = (
            await session.exec(  # type: ignore[call-overload]
                text("SELECT 1 FROM dark_stores WHERE store_id = :s"), params={"s": store_id}
            )
        ).first()
        if exists is None:
            raise NotFound(f"no store {store_id}", code="store_not_found")
    positions: list[StockPosition] = []
    forecasts: dict[tuple[str, str], tuple[float, float]] = {}
    used: dict[str, datetime | None] = {}
    for store, sku, available, in_transit, capacity, case_pack, f24, f72, at in rows:
        positions.append(StockPosition(store, sku, available, in_transit, capacity, case_pack))
        used[store] = at
        if f24 is not None:
            forecasts[store, sku] = (float(f24), float(f72))
    decisions = plan(positions, forecasts)
    lines: list[PlannedLine] = []
    for position, decision in zip(positions, decisions, strict=True):
        if decision.quantity <= 0:
            continue
        f24, f72 = forecasts[position.store_id, position.sku_id]
        order = ReplenishmentOrder(
            store_id=position.store_id,
            sku_id=position.sku_id,
            quantity=decision.quantity,
            cases=decision.cases,
            status=ReplenishmentStatus.PLANNED,
            created_at=now,
            forecast_24h=f24,
            forecast_72h=f72,
        )
        session.add(order)
        lines.append(PlannedLine(order, position))
    await session.flush()
    return ReplenishmentPlan(
        lines=lines,
        reasons=Counter(d.reason for d in decisions),
        positions=len(positions),
        forecast_at=used,
    )


async def _locked(session: AsyncSession, replenishment_id: uuid.UUID) -> ReplenishmentOrder:
    query = (
        select(ReplenishmentOrder)
        .where(col(ReplenishmentOrder.replenishment_id) == replenishment_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    order = (await session.exec(query)).first()
    if order is None:
        raise NotFound(f"no replenishment {replenishment_id}", code="replenishment_not_found")
    return order


def _require(order: ReplenishmentOrder, status: ReplenishmentStatus, action: str) -> None:
    if order.status != status:
        raise Conflict(
            f"replenishment {order.replenishment_id} is {order.status}; only a "
            f"{status} one can be {action}",
            code="replenishment_state",
            status_now=str(order.status),
        )


async def dispatch(
    session: AsyncSession, redis: aioredis.Redis, *, replenishment_id: uuid.UUID, now: datetime
) -> ReplenishmentOrder:
    """Send a PLANNED order: its units enter the store's in_transit bucket (Redis gate,
    then the books and the ledger, through ``move_stock``) and it becomes DISPATCHED."""
    order = await _locked(session, replenishment_id)
    _require(order, ReplenishmentStatus.PLANNED, "dispatched")
    await move_stock(
        session,
        redis,
        store_id=order.store_id,
        sku_id=order.sku_id,
        movement=Movement.DISPATCH,
        now=now,
        d_in_transit=order.quantity,
        reference=str(order.replenishment_id),
        reason="replenishment",
    )
    order.status = ReplenishmentStatus.DISPATCHED
    order.dispatched_at = now
    session.add(order)
    await session.flush()
    return order


async def receive(
    session: AsyncSession, redis: aioredis.Redis, *, replenishment_id: uuid.UUID, now: datetime
) -> ReplenishmentOrder:
    """A DISPATCHED order arrives: in_transit -> available (RECEIPT), status RECEIVED.

    (Staff receiving through ``POST /v1/stores/{id}/inventory/{sku}/receive`` with
    ``from_transit`` moves the same stock but does not know the order; use this instead
    when the replenishment id is known.)
    """
    order = await _locked(session, replenishment_id)
    _require(order, ReplenishmentStatus.DISPATCHED, "received")
    await move_stock(
        session,
        redis,
        store_id=order.store_id,
        sku_id=order.sku_id,
        movement=Movement.RECEIPT,
        now=now,
        d_available=order.quantity,
        d_in_transit=-order.quantity,
        reference=str(order.replenishment_id),
        reason="replenishment",
    )
    order.status = ReplenishmentStatus.RECEIVED
    order.received_at = now
    session.add(order)
    await session.flush()
    return order


_RISK_SQL = text("""
    SELECT s.store_id, count(f.sku_id) FILTER (WHERE i.available_qty < f.next_24h)
    FROM dark_stores s
    LEFT JOIN LATERAL (SELECT max(forecast_at) AS at FROM demand_forecasts
                       WHERE store_id = s.store_id) l ON true
    LEFT JOIN demand_forecasts f ON f.store_id = s.store_id AND f.forecast_at = l.at
    LEFT JOIN store_inventory i ON i.store_id = f.store_id AND i.sku_id = f.sku_id
    WHERE CAST(:store AS varchar) IS NULL OR s.store_id = :store
    GROUP BY s.store_id
    ORDER BY s.store_id""")


async def stockout_risk(session: AsyncSession, *, store_id: str | None = None) -> dict[str, int]:
    """Per store: SKUs whose available units are below the next-24h forecast of the
    store's latest run (0 for a store without forecasts). For the control tower feed."""
    rows = (await session.exec(_RISK_SQL, params={"store": store_id})).all()  # type: ignore[call-overload]
    if store_id is not None and not rows:
        raise NotFound(f"no store {store_id}", code="store_not_found")
    return {store: int(n) for store, n in rows}
