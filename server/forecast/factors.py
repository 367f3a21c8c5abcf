"""External demand drivers: weather per city per day, events (cricket matches) and flash sales.

Everything here is plain data: the integrator loads it from CSV (the loaders below) or from
PostgreSQL, and the generator and the model read it through :func:`build_calendar`.
Dates and hours are Asia/Kolkata local: a match "starting at 19" starts at 19:00 IST.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import holidays as holidays_lib
import numpy as np
from numpy.typing import NDArray

from server.forecast.entities import Sku, Store

RAINY_DAY_MM = 2.5  # IMD calls a day with >= 2.5 mm a "rainy day"
FLAG_ONLY_RAIN_MM = 10.0  # intensity assumed when a source only says "rainy"
CRICKET = "cricket"

# holidays.India subdivision per city, so state holidays (Ugadi, Rajyotsava...) count too
CITY_SUBDIVISIONS: dict[str, str] = {
    "Bengaluru": "KA",
    "Mysuru": "KA",
    "Mumbai": "MH",
    "Pune": "MH",
    "Delhi": "DL",
    "Hyderabad": "TS",
    "Chennai": "TN",
    "Kolkata": "WB",
    "Ahmedabad": "GJ",
    "Jaipur": "RJ",
}


@dataclass(frozen=True, slots=True)
class WeatherDay:
    """Rain for one city on one local day: millimetres, a rainy flag, or both."""

    city: str
    day: date
    rain_mm: float | None = None
    rainy_flag: bool | None = None

    def __post_init__(self) -> None:
        if self.rain_mm is None and self.rainy_flag is None:
            raise ValueError(f"weather for {self.city} {self.day}: need rain_mm or rainy")
        if self.rain_mm is not None and not (0.0 <= self.rain_mm < 2000.0):
            raise ValueError(f"weather for {self.city} {self.day}: rain_mm out of range")

    @property
    def rainy(self) -> bool:
        if self.rainy_flag is not None:
            return self.rainy_flag
        return self.rain_mm is not None and self.rain_mm >= RAINY_DAY_MM

    @property
    def intensity_mm(self) -> float:
        """Rain in mm as the model sees it (a bare flag becomes a typical rainy day)."""
        if self.rain_mm is not None:
            return self.rain_mm if self.rainy else 0.0
        return FLAG_ONLY_RAIN_MM if self.rainy else 0.0


@dataclass(frozen=True, slots=True)
class Event:
    """A scheduled event; only ``kind == "cricket"`` moves demand in the generator/model."""

    day: date
    start_hour: int  # local (IST) hour bucket the event starts in
    kind: str = CRICKET
    name: str = ""
    city: str | None = None  # None: watched everywhere (televised)
    duration_hours: int = 5  # a 19:30 T20 spans the 19:00..23:59 buckets

    def __post_init__(self) -> None:
        if not 0 <= self.start_hour <= 23:
            raise ValueError(f"event on {self.day}: start_hour must be 0..23")
        if not 1 <= self.duration_hours <= 24:
            raise ValueError(f"event on {self.day}: duration_hours must be 1..24")
        if not self.kind:
            raise ValueError(f"event on {self.day}: kind must not be empty")

    def local_hours(self) -> range:
        """Hour buckets of ``day`` covered; clipped at midnight (late tails are negligible)."""
        return range(self.start_hour, min(24, self.start_hour + self.duration_hours))


@dataclass(frozen=True, slots=True)
class FlashSale:
    day: date
    sku_id: str
    store_ids: frozenset[str] | None = None  # None: every store

    def __post_init__(self) -> None:
        if not self.sku_id:
            raise ValueError(f"flash sale on {self.day}: sku_id must not be empty")
        if self.store_ids is not None and not self.store_ids:
            raise ValueError(f"flash sale on {self.day}: empty store list (use None for all)")

    def applies_to(self, store_id: str) -> bool:
        return self.store_ids is None or store_id in self.store_ids


@dataclass(frozen=True)
class ExternalFactors:
    weather: tuple[WeatherDay, ...] = ()
    events: tuple[Event, ...] = ()
    flash_sales: tuple[FlashSale, ...] = ()
    # None: holidays.India (+ the city's state); a set replaces it (tests, custom calendars)
    holiday_dates: frozenset[date] | None = None
    city_subdivisions: Mapping[str, str] = field(default_factory=lambda: dict(CITY_SUBDIVISIONS))

    def holidays_for(self, city: str, first: date, last: date) -> set[date]:
        if self.holiday_dates is not None:
            return {d for d in self.holiday_dates if first <= d <= last}
        years = list(range(first.year, last.year + 1))
        subdiv = self.city_subdivisions.get(city)
        cal = holidays_lib.country_holidays("IN", subdiv=subdiv, years=years)  # holidays.India
        return {d for d in cal if first <= d <= last}


@dataclass(frozen=True, eq=False)
class FactorCalendar:
    """Dense per-city/per-day arrays over ``days`` days from ``start`` (IST dates)."""

    start: date
    days: int
    cities: tuple[str, ...]
    holiday: NDArray[np.bool_]  # [city, day]
    rain_mm: NDArray[np.float32]  # [city, day]
    match_offset: NDArray[np.int8]  # [city, day, hour]: hours since match start, -1 if none
    flash_days: dict[tuple[str, str], frozenset[int]]  # (store_id, sku_id) -> day indices

    def city_index(self, city: str) -> int:
        return self.cities.index(city)


def build_calendar(
    factors: ExternalFactors,
    *,
    stores: Sequence[Store],
    skus: Sequence[Sku],
    start: date,
    days: int,
) -> FactorCalendar:
    cities = tuple(sorted({s.city for s in stores}))
    cidx = {c: i for i, c in enumerate(cities)}
    last = start + timedelta(days=days - 1)
    holiday = np.zeros((len(cities), days), dtype=bool)
    for c, city in enumerate(cities):
        for d in factors.holidays_for(city, start, last):
            holiday[c, (d - start).days] = True
    rain = np.zeros((len(cities), days), dtype=np.float32)
    for w in factors.weather:
        di = (w.day - start).days
        if w.city in cidx and 0 <= di < days:
            rain[cidx[w.city], di] = w.intensity_mm
    match = np.full((len(cities), days, 24), -1, dtype=np.int8)
    for ev in factors.events:
        di = (ev.day - start).days
        if ev.kind != CRICKET or not 0 <= di < days:
            continue
        targets = (
            range(len(cities)) if ev.city is None else [cidx[ev.city]] if ev.city in cidx else []
        )
        for c in targets:
            for h in ev.local_hours():
                cur = match[c, di, h]
                off = h - ev.start_hour
                # overlapping matches: keep the earliest-started one (offset is larger)
                match[c, di, h] = max(cur, off)
    store_ids = [s.store_id for s in stores]
    known_skus = {s.sku_id for s in skus}
    flash: dict[tuple[str, str], set[int]] = {}
    for fs in factors.flash_sales:
        di = (fs.day - start).days
        if fs.sku_id not in known_skus or not 0 <= di < days:
            continue
        for sid in store_ids:
            if fs.applies_to(sid):
                flash.setdefault((sid, fs.sku_id), set()).add(di)
    return FactorCalendar(
        start=start,
        days=days,
        cities=cities,
        holiday=holiday,
        rain_mm=rain,
        match_offset=match,
        flash_days={k: frozenset(v) for k, v in flash.items()},
    )


# --------------------------------------------------------------------------- CSV loading


class CsvError(ValueError):
    """A bad CSV input; the message names the source, line and field."""

    def __init__(self, source: str, line: int | None, field: str | None, problem: str) -> None:
        where = source
        if line is not None:
            where += f", line {line}"
        if field is not None:
            where += f", field {field!r}"
        super().__init__(f"{where}: {problem}")
        self.source = source
        self.line = line
        self.field = field
        self.problem = problem


PathOrText = str | os.PathLike[str]


def _open_csv(source: PathOrText) -> tuple[str, str]:
    """(display name, text). A str containing a newline is CSV text; otherwise a path."""
    if isinstance(source, str) and ("\n" in source or "\r" in source):
        return "<csv text>", source
    path = Path(source)
    try:
        return path.name, path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise CsvError(str(path), None, None, "file not found") from None


def _rows(
    source: PathOrText, required: Sequence[str], optional: Sequence[str] = ()
) -> tuple[str, list[tuple[int, dict[str, str]]]]:
    name, text = _open_csv(source)
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    header: list[str] | None = None
    out: list[tuple[int, dict[str, str]]] = []
    for raw in reader:
        if not any(cell.strip() for cell in raw):
            continue
        if header is None:
            header = [h.strip().lower() for h in raw]
            missing = [c for c in required if c not in header]
            if missing:
                raise CsvError(name, reader.line_num, None, f"missing column(s) {missing}")
            if len(set(header)) != len(header):
                raise CsvError(name, reader.line_num, None, "duplicate column names")
            continue
        if len(raw) != len(header):
            raise CsvError(
                name, reader.line_num, None, f"expected {len(header)} fields, got {len(raw)}"
            )
        row = {
            h: v.strip() for h, v in zip(header, raw, strict=True) if h in (*required, *optional)
        }
        out.append((reader.line_num, row))
    if header is None:
        raise CsvError(name, None, None, "empty file (no header)")
    return name, out


def _date(name: str, line: int, field_name: str, value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CsvError(
            name, line, field_name, f"invalid date {value!r} (want YYYY-MM-DD)"
        ) from None


def _int(name: str, line: int, field_name: str, value: str, lo: int, hi: int) -> int:
    try:
        v = int(value)
    except ValueError:
        raise CsvError(name, line, field_name, f"not an integer: {value!r}") from None
    if not lo <= v <= hi:
        raise CsvError(name, line, field_name, f"{v} is outside {lo}..{hi}")
    return v


_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"0", "false", "no", "n", "f"}


def _bool(name: str, line: int, field_name: str, value: str) -> bool:
    v = value.lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise CsvError(name, line, field_name, f"not a yes/no value: {value!r}")


def _text(name: str, line: int, field_name: str, value: str) -> str:
    if not value:
        raise CsvError(name, line, field_name, "must not be empty")
    return value


def load_weather_csv(source: PathOrText) -> list[WeatherDay]:
    """Columns ``city,date`` plus ``rain_mm`` and/or ``rainy`` (1/0, yes/no, true/false)."""
    name, rows = _rows(source, ("city", "date"), ("rain_mm", "rainy"))
    out: list[WeatherDay] = []
    seen: dict[tuple[str, date], int] = {}
    for line, row in rows:
        city = _text(name, line, "city", row["city"])
        day = _date(name, line, "date", row["date"])
        mm_raw, flag_raw = row.get("rain_mm", ""), row.get("rainy", "")
        if not mm_raw and not flag_raw:
            raise CsvError(name, line, "rain_mm", "need rain_mm or rainy")
        mm: float | None = None
        if mm_raw:
            try:
                mm = float(mm_raw)
            except ValueError:
                raise CsvError(name, line, "rain_mm", f"not a number: {mm_raw!r}") from None
            if not (0.0 <= mm < 2000.0):  # also rejects nan
                raise CsvError(name, line, "rain_mm", f"{mm_raw} is not a plausible rainfall")
        flag = _bool(name, line, "rainy", flag_raw) if flag_raw else None
        if (city, day) in seen:
            raise CsvError(name, line, "date", f"duplicate of line {seen[city, day]}")
        seen[city, day] = line
        out.append(WeatherDay(city, day, mm, flag))
    return out


def load_events_csv(source: PathOrText) -> list[Event]:
    """Columns ``date,start_hour`` plus optional ``kind`` (default cricket), ``name``,
    ``city`` (empty: everywhere) and ``duration_hours`` (default 5)."""
    name, rows = _rows(source, ("date", "start_hour"), ("kind", "name", "city", "duration_hours"))
    out: list[Event] = []
    for line, row in rows:
        day = _date(name, line, "date", row["date"])
        start_hour = _int(name, line, "start_hour", row["start_hour"], 0, 23)
        dur_raw = row.get("duration_hours", "")
        duration = _int(name, line, "duration_hours", dur_raw, 1, 24) if dur_raw else 5
        kind = (row.get("kind", "") or CRICKET).lower()
        out.append(
            Event(day, start_hour, kind, row.get("name", ""), row.get("city") or None, duration)
        )
    return out


def load_flash_schedule_csv(source: PathOrText) -> list[FlashSale]:
    """Columns ``date,sku_id,store_ids``; store_ids is ``;``-separated, or ``*``/empty for all."""
    name, rows = _rows(source, ("date", "sku_id"), ("store_ids",))
    out: list[FlashSale] = []
    for line, row in rows:
        day = _date(name, line, "date", row["date"])
        sku = _text(name, line, "sku_id", row["sku_id"])
        raw = row.get("store_ids", "")
        stores: frozenset[str] | None = None
        if raw and raw != "*":
            parts = [p.strip() for p in raw.split(";")]
            if any(not p for p in parts):
                raise CsvError(name, line, "store_ids", f"empty store id in {raw!r}")
            stores = frozenset(parts)
        out.append(FlashSale(day, sku, stores))
    return out


# --------------------------------------------------------------------------- synthetic calendars

# Bengaluru's chance of a rainy day by month (Jan..Dec): dry winter, pre-monsoon storms,
# south-west monsoon, then the north-east monsoon's October peak.
_RAIN_CHANCE = (0.03, 0.03, 0.06, 0.2, 0.35, 0.45, 0.5, 0.55, 0.55, 0.55, 0.35, 0.1)


def synthetic_weather(
    cities: Iterable[str], start: date, days: int, seed: int = 0
) -> list[WeatherDay]:
    """Persistent (Markov) daily rain per city with monthly climatology."""
    out: list[WeatherDay] = []
    for ci, city in enumerate(sorted(set(cities))):
        rng = np.random.default_rng([seed, 21, ci])
        wet = False
        for d in range(days):
            day = start + timedelta(days=d)
            p = _RAIN_CHANCE[day.month - 1]
            # wet spells persist: raise the chance after a wet day, lower it after a dry one
            chance = min(0.9, p + 0.35) if wet else p * 0.7
            wet = bool(rng.random() < chance)
            mm = (
                float(np.round(rng.gamma(1.2, 12.0), 1))
                if wet
                else float(np.round(rng.random() * 2, 1))
            )
            out.append(WeatherDay(city, day, mm))
    return out


def synthetic_matches(start: date, days: int, seed: int = 0, *, chance: float = 0.3) -> list[Event]:
    """Televised cricket: evening games (19:30 IST) on ~30 % of days, afternoon weekend ones."""
    rng = np.random.default_rng([seed, 31])
    out: list[Event] = []
    for d in range(days):
        day = start + timedelta(days=d)
        if day.weekday() >= 5 and rng.random() < chance:
            out.append(Event(day, 15, CRICKET, f"match {day.isoformat()} afternoon", None, 4))
        if rng.random() < chance:
            out.append(Event(day, 19, CRICKET, f"match {day.isoformat()} evening"))
    return out


def synthetic_flash_sales(
    stores: Sequence[Store],
    skus: Sequence[Sku],
    start: date,
    days: int,
    seed: int = 0,
    *,
    sale_days: int = 5,
    skus_per_sale: int = 15,
) -> list[FlashSale]:
    """A few sale days, each discounting some long-standing SKUs in all or half the stores."""
    rng = np.random.default_rng([seed, 41])
    steady = [s.sku_id for s in skus if s.launched_on is None and s.discontinued_on is None]
    if not steady or days < 8:
        return []
    chosen_days = rng.choice(np.arange(7, days), size=min(sale_days, days - 7), replace=False)
    ids = [s.store_id for s in stores]
    out: list[FlashSale] = []
    for d in sorted(int(x) for x in chosen_days):
        picks = rng.choice(len(steady), size=min(skus_per_sale, len(steady)), replace=False)
        where: frozenset[str] | None = None
        if len(ids) > 1 and rng.random() < 0.5:
            where = frozenset(rng.choice(ids, size=max(1, len(ids) // 2), replace=False).tolist())
        for p in picks:
            out.append(FlashSale(start + timedelta(days=d), steady[int(p)], where))
    return out


def synthetic_factors(
    stores: Sequence[Store], skus: Sequence[Sku], start: date, days: int, seed: int = 0
) -> ExternalFactors:
    return ExternalFactors(
        weather=tuple(synthetic_weather({s.city for s in stores}, start, days, seed)),
        events=tuple(synthetic_matches(start, days, seed)),
        flash_sales=tuple(synthetic_flash_sales(stores, skus, start, days, seed)),
    )
