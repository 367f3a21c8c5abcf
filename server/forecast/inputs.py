"""The forecast's inputs in PostgreSQL: the seeded city as the core's entities, and the
external factors (weather, calendar events, flash sales) written synthetically, imported
from CSV and read back as the core's :class:`ExternalFactors`.

Bulk, synchronous work on a psycopg connection, like ``server.seed`` (see ``runs``).
Entities: the core's ``Store(store_id, city)`` gets the store's real id and its city's
*name* (``cities.name``, so ``holidays.India`` finds the state, e.g. Karnataka for
Bengaluru); ``Sku(sku_id, category)`` gets the product's real id and ``category_id`` (the
seeded slugs are the core's category traits). Stores and SKUs are always taken in id
order, which is also the primary-key order of ``sales_history``: the load appends to the
right edge of the index.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import psycopg

from server.forecast import factors as core_factors
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
from server.forecast.history import HOURS_PER_DAY
from server.forecast.models import FactorSource

HORIZON_HOURS = 72  # what a forecast run covers
# Weather and fixtures are known a few days ahead (forecast, fixture list): the synthetic
# factors run this many days past the generated history, so a forecast made at its end
# sees them. (Flash sales are only generated inside the history window.)
FACTOR_LEAD_DAYS = math.ceil(HORIZON_HOURS / HOURS_PER_DAY)
_EVENT_NAMESPACE = uuid.UUID("5b0f3c64-2d1e-4a57-9b7e-6f1a0c2d9e41")

StoreSelection = int | Sequence[str] | None  # None: all; n: the first n by id; or ids


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


def _event_row(ev: Event, city_id: str | None, source: FactorSource) -> tuple[object, ...]:
    return (
        _event_id(ev, city_id),
        ev.day,
        ev.start_hour,
        ev.duration_hours,
        ev.kind,
        ev.name,
        city_id,
        source.value,
    )


def _event_rows(
    events: Iterable[Event], city_ids: dict[str, str], source: FactorSource
) -> list[tuple[object, ...]]:
    return [
        _event_row(ev, city_ids[ev.city] if ev.city is not None else None, source) for ev in events
    ]


def _flash_rows(sales: Iterable[FlashSale], source: FactorSource) -> list[tuple[object, ...]]:
    rows: list[tuple[object, ...]] = []
    for fs in sales:
        if fs.store_ids is None:
            rows.append((fs.day, fs.sku_id, None, source.value))
        else:
            rows.extend((fs.day, fs.sku_id, s, source.value) for s in sorted(fs.store_ids))
    return rows


def write_synthetic_factors(
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
            rows.append(_event_row(ev, cid, FactorSource.IMPORT))
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
