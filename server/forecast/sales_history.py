"""The ``sales_history`` table: generated history bulk-loaded with a binary COPY, and read
back as the core's :class:`History` (hourly units per store x SKU).

Operator/CLI work that moves millions of rows: it takes a database URL and opens its own
psycopg connection, one transaction per call.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import numpy as np
import psycopg

from server.forecast.history import IST, MAX_UNITS, History, generate_history
from server.forecast.inputs import (
    CityEntities,
    StoreSelection,
    load_entities,
    read_factors,
    write_synthetic_factors,
)

FactorMode = Literal["synthetic", "database"]


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
            write_synthetic_factors(conn, start=start, days=days, seed=seed)
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


def with_stockouts(
    conn: psycopg.Connection[Any], history: History, *, until: datetime | None = None
) -> History:
    """``history`` with its censored mask read from ``sales_stockout_hours`` (hours at or
    after ``until`` left unmarked)."""
    lo = history.start_utc
    hi = lo + timedelta(hours=history.hours)
    if until is not None:
        hi = min(hi, until)
    index = history.series_index()
    mask = np.zeros(history.units.shape, dtype=bool)
    rows = conn.execute(
        "SELECT store_id, sku_id, ((extract(epoch FROM hour_start)::int8 - %s) / 3600)::int4 "
        "FROM sales_stockout_hours WHERE store_id = ANY(%s) AND hour_start >= %s "
        "AND hour_start < %s",
        (int(lo.timestamp()), [s.store_id for s in history.stores], lo, hi),
    ).fetchall()
    for store_id, sku_id, t in rows:
        i = index.get((store_id, sku_id))
        if i is not None:
            mask[i, t] = True
    return replace(history, censored=mask)


def history_bounds(
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
