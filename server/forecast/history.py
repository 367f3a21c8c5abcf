"""Deterministic synthetic HOURLY sales history per store x SKU, and the container for it.

Shapes are built in Asia/Kolkata local time (the day starts at IST midnight); rows handed to
the database carry UTC-aware ``hour_start`` values. IST has no DST, so local hour ``t`` of
the history is always ``start 00:00 IST + t hours``.

The demand mean of series i (store s, SKU k) at local hour t of day d is::

    popularity[k] * store_size[s] * local_taste[i] * trend_i(d) * lifecycle_i(d)
      * day_shock[i, d] * flash[i, d] * pattern[category, city, t]

``pattern`` carries the hour-of-day profile (weekday/weekend), day of week, holidays, rain
and cricket evenings. Units are Poisson-gamma (negative binomial) draws around that mean.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

from server.forecast.entities import CategoryTraits, Sku, Store, traits_for
from server.forecast.factors import (
    RAINY_DAY_MM,
    ExternalFactors,
    FactorCalendar,
    build_calendar,
)

IST = ZoneInfo("Asia/Kolkata")
HOURS_PER_DAY = 24
MAX_UNITS = np.iinfo(np.uint16).max
_CHUNK = 2048  # series per generation chunk; fixed so results do not depend on memory

# Mon..Fri multipliers; the weekend uses 1 + weekend_lift
_WEEKDAY = (0.97, 0.94, 0.96, 0.98, 1.05)

Row = tuple[str, str, datetime, int]


def day_start_utc(day: date) -> datetime:
    """The Asia/Kolkata midnight that starts ``day``, as a UTC datetime."""
    return datetime.combine(day, time(0), tzinfo=IST).astimezone(UTC)


def ist_midnight(moment: datetime) -> datetime:
    """The Asia/Kolkata midnight at or before ``moment`` (as a UTC datetime)."""
    return day_start_utc(moment.astimezone(IST).date())


@dataclass(frozen=True)
class HistoryConfig:
    # popularity ~ 1 / rank^0.8, the seeded catalogue's curve (server/seed/generate.py);
    # 5,000 SKUs then sell ~6,900 units/day in an average store, the median SKU < 1/day
    zipf_exponent: float = 0.8
    top_daily_units: float = 300.0  # mean units/day of the best seller in an average store
    # A smaller catalogue takes one rank from each of n equal strata of a catalogue this big,
    # so a 200-SKU test fixture has the head/tail mix of the real 5,000-SKU catalogue.
    reference_catalogue_size: int = 5000
    store_size_sigma: float = 0.3
    local_taste_sigma: float = 0.35
    trend_sigma: float = 0.2  # log-change over the whole history, per series
    store_day_shock_shape: float = 50.0  # gamma shape of store-wide day shocks (CV ~0.14)
    day_shock_shape: float = 20.0  # gamma shape of per series-day shocks (CV ~0.22)
    hour_shape: float = 6.0  # gamma shape of the hourly Poisson-gamma intensity
    units_per_order: float = 1.3  # mean basket quantity: sales come in lumps, not singles
    flash_lift: float = 3.0  # a sale day sells (1 + flash_lift) times as much
    new_product_ramp_days: int = 14
    rain_full_effect_mm: float = 15.0  # rain lifts scale up linearly to this much rain
    # Per-category overrides of CategoryTraits (fractions: 0.40 = +40 %)
    match_lifts: Mapping[str, float] = field(default_factory=dict)
    rain_lifts: Mapping[str, float] = field(default_factory=dict)
    holiday_lifts: Mapping[str, float] = field(default_factory=dict)


def hour_profile(traits: CategoryTraits, *, weekend: bool) -> NDArray[np.float64]:
    """Share of a day's units per local hour: morning (8-10) and evening (18-22) peaks."""
    h = np.arange(24) + 0.5

    def bump(centre: float, width: float) -> NDArray[np.float64]:
        dist = np.minimum(np.abs(h - centre), 24 - np.abs(h - centre))  # wraps past midnight
        return np.asarray(np.exp(-0.5 * (dist / width) ** 2), dtype=np.float64)

    morning_at = 9.8 if weekend else 9.0  # weekend mornings start later
    midday = traits.midday * (1.25 if weekend else 1.0)
    p = (
        0.02
        + traits.morning * bump(morning_at, 1.2)
        + midday * bump(13.5, 2.2)
        + traits.evening * bump(20.0, 1.6)
        + traits.late * bump(23.2, 1.3)
    )
    return np.asarray(p / p.sum(), dtype=np.float64)


@dataclass(frozen=True, eq=False)
class History:
    """Hourly units per series; series i is (stores[series_store[i]], skus[series_sku[i]]).

    ``units[i, t]`` counts units sold in local hour ``t`` from ``start`` 00:00 IST.
    """

    start: date
    stores: tuple[Store, ...]
    skus: tuple[Sku, ...]
    series_store: NDArray[np.int32]
    series_sku: NDArray[np.int32]
    units: NDArray[np.uint16]  # [series, hour]
    # [series, hour] True where the shelf was empty at some moment: sales there are censored
    # (a lower bound on demand). None: no stock-out information (all hours taken as demand).
    censored: NDArray[np.bool_] | None = None

    def __post_init__(self) -> None:
        n = self.units.shape[0]
        if self.units.ndim != 2 or self.series_store.shape != (n,) or self.series_sku.shape != (n,):
            raise ValueError("units must be [series, hour] with one store/sku index per series")
        if self.censored is not None and self.censored.shape != self.units.shape:
            raise ValueError("censored must have the shape of units")
        if self.units.shape[1] % HOURS_PER_DAY:
            raise ValueError("history must cover whole local days")

    # ---- shape and lookup
    @property
    def n_series(self) -> int:
        return int(self.units.shape[0])

    @property
    def hours(self) -> int:
        return int(self.units.shape[1])

    @property
    def days(self) -> int:
        return self.hours // HOURS_PER_DAY

    @property
    def start_utc(self) -> datetime:
        return day_start_utc(self.start)

    def store_of(self, i: int) -> Store:
        return self.stores[int(self.series_store[i])]

    def sku_of(self, i: int) -> Sku:
        return self.skus[int(self.series_sku[i])]

    def series_categories(self) -> list[str]:
        return [self.skus[int(k)].category for k in self.series_sku]

    def series_index(self) -> dict[tuple[str, str], int]:
        return {
            (self.stores[int(s)].store_id, self.skus[int(k)].sku_id): i
            for i, (s, k) in enumerate(zip(self.series_store, self.series_sku, strict=True))
        }

    def hour_start_utc(self, t: int) -> datetime:
        return self.start_utc + timedelta(hours=t)

    def hour_index(self, when: datetime) -> int:
        """Local-hour index of an aware datetime that falls on an IST hour boundary."""
        if when.tzinfo is None:
            raise ValueError("datetime must be timezone-aware")
        secs = (when - self.start_utc).total_seconds()
        if secs % 3600:
            raise ValueError(f"{when.isoformat()} is not on an Asia/Kolkata hour boundary")
        return int(secs // 3600)

    def day_of(self, t: int) -> date:
        return self.start + timedelta(days=t // HOURS_PER_DAY)

    def truncated(self, hours: int) -> History:
        """The first ``hours`` hours (whole days), sharing memory with this history."""
        if hours % HOURS_PER_DAY or not 0 < hours <= self.hours:
            raise ValueError("truncate to a whole number of days inside the history")
        mask = None if self.censored is None else self.censored[:, :hours]
        return replace(self, units=self.units[:, :hours], censored=mask)

    # ---- export
    def nonzero(self) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.uint16]]:
        """(series, hour, units) of every non-zero cell: the compact bulk-load form."""
        s, t = np.nonzero(self.units)
        return s, t, self.units[s, t]

    def iter_rows(self, *, skip_zeros: bool = True) -> Iterator[Row]:
        """``(store_id, sku_id, hour_start UTC, units)`` rows for COPY, series by series.

        Zero hours are skipped by default (most cells are zero; absent means none sold).
        """
        stamps = [self.hour_start_utc(t) for t in range(self.hours)]
        for i in range(self.n_series):
            store_id = self.stores[int(self.series_store[i])].store_id
            sku_id = self.skus[int(self.series_sku[i])].sku_id
            row = self.units[i]
            hours = np.flatnonzero(row) if skip_zeros else np.arange(self.hours)
            for t, u in zip(hours.tolist(), row[hours].tolist(), strict=True):
                yield store_id, sku_id, stamps[t], u

    # ---- import
    @classmethod
    def from_rows(
        cls,
        rows: Iterable[Row],
        *,
        stores: Sequence[Store],
        skus: Sequence[Sku],
        start: date,
        days: int,
    ) -> History:
        """Dense history over every store x SKU from sparse DB rows (missing hours are 0)."""
        store_pos = {s.store_id: i for i, s in enumerate(stores)}
        sku_pos = {k.sku_id: i for i, k in enumerate(skus)}
        n_sku = len(skus)
        empty = cls.empty(stores=stores, skus=skus, start=start, days=days)
        units = empty.units
        for store_id, sku_id, when, qty in rows:
            try:
                i = store_pos[store_id] * n_sku + sku_pos[sku_id]
            except KeyError:
                raise ValueError(f"row for unknown store/SKU {store_id}/{sku_id}") from None
            t = empty.hour_index(when)
            if not 0 <= t < units.shape[1]:
                raise ValueError(f"row at {when.isoformat()} is outside the history window")
            total = int(units[i, t]) + int(qty)
            if qty < 0 or total > MAX_UNITS:
                raise ValueError(f"bad unit count {qty} for {store_id}/{sku_id} at {when}")
            units[i, t] = total
        return empty

    @classmethod
    def empty(
        cls, *, stores: Sequence[Store], skus: Sequence[Sku], start: date, days: int
    ) -> History:
        n_store, n_sku = len(stores), len(skus)
        return cls(
            start=start,
            stores=tuple(stores),
            skus=tuple(skus),
            series_store=np.repeat(np.arange(n_store, dtype=np.int32), n_sku),
            series_sku=np.tile(np.arange(n_sku, dtype=np.int32), n_store),
            units=np.zeros((n_store * n_sku, days * HOURS_PER_DAY), dtype=np.uint16),
        )


# --------------------------------------------------------------------------- generator


def category_pattern(
    categories: Sequence[str],
    calendar: FactorCalendar,
    config: HistoryConfig,
) -> NDArray[np.float32]:
    """[category, city, hour] multiplier: profile x weekday x holiday x rain x match."""
    days = calendar.days
    weekday = np.array(
        [(calendar.start + timedelta(days=d)).weekday() for d in range(days)], dtype=np.int64
    )
    out = np.empty((len(categories), len(calendar.cities), days, 24), dtype=np.float64)
    for ci, cat in enumerate(categories):
        tr = traits_for(cat)
        prof_wd, prof_we = hour_profile(tr, weekend=False), hour_profile(tr, weekend=True)
        match_lift = config.match_lifts.get(cat, tr.match_lift)
        rain_lift = config.rain_lifts.get(cat, tr.rain_lift)
        hol_lift = config.holiday_lifts.get(cat, tr.holiday_lift)
        for c in range(len(calendar.cities)):
            hol = calendar.holiday[c]
            weekend = (weekday >= 5) | hol  # holidays shop like weekends
            dow = np.where(
                weekday >= 5, 1.0 + tr.weekend_lift, np.array((*_WEEKDAY, 1.0, 1.0))[weekday]
            )
            day_mult = dow * np.where(hol, 1.0 + hol_lift, 1.0)
            rain = calendar.rain_mm[c].astype(np.float64)
            wet = np.where(
                rain >= RAINY_DAY_MM, np.minimum(1.0, rain / config.rain_full_effect_mm), 0.0
            )
            day_mult = day_mult * (1.0 + rain_lift * wet)
            shape = np.where(weekend[:, None], prof_we[None, :], prof_wd[None, :])
            match = np.where(calendar.match_offset[c] >= 0, 1.0 + match_lift, 1.0)
            out[ci, c] = day_mult[:, None] * shape * match
    return out.reshape(len(categories), len(calendar.cities), days * 24).astype(np.float32)


def _popularity(n_sku: int, config: HistoryConfig, rng: np.random.Generator) -> NDArray[np.float64]:
    ref = max(n_sku, config.reference_catalogue_size)
    width = ref / n_sku
    ranks = 1.0 + np.floor(width * (np.arange(n_sku) + rng.random(n_sku)))
    return config.top_daily_units / rng.permutation(ranks) ** config.zipf_exponent


def _lifecycle(sku: Sku, start: date, days: int, ramp_days: int) -> NDArray[np.float64]:
    d = np.arange(days, dtype=np.float64)
    life = np.ones(days)
    if sku.launched_on is not None:
        since = d - (sku.launched_on - start).days
        # a new product builds up its buyers over a couple of weeks
        life = np.where(since < 0, 0.0, np.minimum(1.0, 0.3 + 0.7 * since / max(1, ramp_days)))
    if sku.discontinued_on is not None:
        life = np.where(d >= (sku.discontinued_on - start).days, 0.0, life)
    return life


def generate_history(
    stores: Sequence[Store],
    skus: Sequence[Sku],
    *,
    start: date,
    days: int,
    factors: ExternalFactors,
    config: HistoryConfig | None = None,
    seed: int = 0,
) -> History:
    """Every store x SKU, ``days`` local days from ``start``; same inputs, same output."""
    history, _ = _simulate(stores, skus, start, days, factors, config, seed, noise=True)
    return history


def expected_units(
    stores: Sequence[Store],
    skus: Sequence[Sku],
    *,
    start: date,
    days: int,
    factors: ExternalFactors,
    config: HistoryConfig | None = None,
    seed: int = 0,
) -> NDArray[np.float32]:
    """The predictable mean behind :func:`generate_history` with the same arguments:
    everything except the random day shocks and hourly noise ([series, hour])."""
    _, mean = _simulate(stores, skus, start, days, factors, config, seed, noise=False)
    assert mean is not None
    return mean


def _simulate(
    stores: Sequence[Store],
    skus: Sequence[Sku],
    start: date,
    days: int,
    factors: ExternalFactors,
    config: HistoryConfig | None,
    seed: int,
    *,
    noise: bool,
) -> tuple[History, NDArray[np.float32] | None]:
    if days < 1:
        raise ValueError("days must be positive")
    config = config or HistoryConfig()
    history = History.empty(stores=stores, skus=skus, start=start, days=days)
    calendar = build_calendar(factors, stores=stores, skus=skus, start=start, days=days)
    categories = sorted({k.category for k in skus})
    cat_of_sku = np.array([categories.index(k.category) for k in skus], dtype=np.int64)
    city_of_store = np.array([calendar.city_index(s.city) for s in stores], dtype=np.int64)
    pattern = category_pattern(categories, calendar, config)

    rng = np.random.default_rng([seed, 1])
    popularity = _popularity(len(skus), config, rng)
    store_size = rng.lognormal(0.0, config.store_size_sigma, size=len(stores))
    sds = config.store_day_shock_shape
    store_day = rng.gamma(sds, 1.0 / sds, size=(len(stores), days))
    life = np.stack([_lifecycle(k, start, days, config.new_product_ramp_days) for k in skus])
    sku_pos = {k.sku_id: j for j, k in enumerate(skus)}
    store_pos = {s.store_id: j for j, s in enumerate(stores)}
    flash_cells = [
        (store_pos[sid] * len(skus) + sku_pos[kid], d)
        for (sid, kid), ds in calendar.flash_days.items()
        for d in ds
    ]
    frac = (np.arange(days) + 0.5) / days - 0.5

    n = history.n_series
    means = None if noise else np.empty(history.units.shape, dtype=np.float32)
    for c0 in range(0, n, _CHUNK):
        idx = np.arange(c0, min(n, c0 + _CHUNK))
        crng = np.random.default_rng([seed, 2, c0 // _CHUNK])
        st, sk = history.series_store[idx], history.series_sku[idx]
        taste = crng.lognormal(0.0, config.local_taste_sigma, idx.size)
        scale = popularity[sk] * store_size[st] * taste
        slope = crng.normal(0.0, config.trend_sigma, idx.size)
        day_mult = np.exp(slope[:, None] * frac[None, :]) * life[sk]
        for i, d in flash_cells:
            if c0 <= i < c0 + idx.size:
                day_mult[i - c0, d] *= 1.0 + config.flash_lift
        if noise:
            shape = config.day_shock_shape
            day_mult = day_mult * store_day[st] * crng.gamma(shape, 1.0 / shape, (idx.size, days))
        mean = (scale[:, None] * day_mult).repeat(24, axis=1) * pattern[
            cat_of_sku[sk], city_of_store[st]
        ]
        if means is not None:
            means[idx] = mean
            continue
        k, q = config.hour_shape, config.units_per_order
        lam = crng.gamma(k, 1.0, mean.shape) * (mean / (k * q))  # Poisson-gamma orders/hour
        orders = crng.poisson(lam)
        units = orders + crng.poisson(orders * (q - 1.0))  # each order: 1 + Poisson(q-1) units
        history.units[idx] = np.minimum(units, MAX_UNITS).astype(np.uint16)
    return history, means
