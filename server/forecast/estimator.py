"""Global demand model: one Poisson gradient-boosted model across all store x SKU series.

Every hourly forecast is ``base x ratio``:

* ``base`` = level x 24 x hour share x event lifts, where
  - level: the series' hourly rate over its last 28 days as a gamma-Poisson posterior,
    shrunk toward the same SKU in all stores, which is shrunk toward the store's category
    rate (see :meth:`DemandModel._rates`);
  - hour share: the category's share of a day's units in that hour on match-free days
    (weekday, or weekend/holiday profile);
  - event lifts: the category's multiplier on match hours, rainy days and holidays,
    measured on category totals and shrunk by their own noise;
* ``ratio`` = a scikit-learn ``HistGradientBoostingRegressor`` with Poisson loss fitted on
  ``units / base`` with ``base`` as sample weight. That is exactly Poisson regression with
  ``log(base)`` as offset, so the trees only learn multiplicative corrections: day of week,
  rain intensity, flash sales, product age, recent-vs-long level, store, what the lifts
  missed. Sparse series stay near their shrunk level instead of chasing single sales.

Training rows are a weighted random sample of (series, origin, target hour) triples: busy
series and rare flagged hours (match windows, flash-sale days) are over-sampled, and the
sample weights undo it, so the fitted mean stays unbiased while 60,000 series fit in well under
a minute on two cores (see server/forecast/bench.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

from server.forecast.factors import RAINY_DAY_MM, ExternalFactors, FactorCalendar, build_calendar
from server.forecast.history import HOURS_PER_DAY, History
from server.forecast.result import Forecast

FEATURES: tuple[str, ...] = (
    "store",
    "category",
    "hour",
    "dow",
    "lead_day",
    "holiday",
    "rain_mm",
    "match_offset",
    "flash",
    "hour_share",
    "log_rate",
    "rel_1d",
    "rel_7d",
    "rel_28d",
    "count_28d",
    "age_days",
    "sku_rel_28d",
    "sku_count_28d",
    # the category's measured lift under each event while it is on, else 1 (also in base)
    "match_lift",
    "rain_lift",
    "holiday_lift",
)
_CATEGORICAL = (0, 1)

_AGE_CAP_DAYS = 60.0
_OLD = -(10**9)  # "active since before the history" sentinel hour


@dataclass(frozen=True)
class ForecastConfig:
    max_train_rows: int = 1_200_000
    min_history_days: int = 7  # an origin needs at least this much history behind it
    max_lead_hours: int = 72
    # strength, in units, of the gamma priors: series <- same SKU in all stores <- category
    prior_units: float = 5.0
    sku_prior_units: float = 3.0
    profile_days: int = 56  # days behind the cut used for category hour shares
    flagged_oversample: float = 4.0  # match hours, flash-sale days: sampled 4x (weights undo it)
    max_iter: int = 250
    learning_rate: float = 0.08
    max_leaf_nodes: int = 31
    min_samples_leaf: int = 200
    l2_regularization: float = 1.0
    max_ratio: float = 12.0  # guard: no forecast above 12x the series' shrunk base
    seed: int = 0
    # OpenMP threads for the trees; None = all cores. Set 1 when sharing the box with the
    # API: two threads on one free core spin-wait and run several times slower, not 2x.
    threads: int | None = None


@dataclass(frozen=True, eq=False)
class _Context:
    """Per-history arrays shared by training and prediction."""

    history: History
    calendar: FactorCalendar
    cum: NDArray[np.int32]  # [series, hour + 1] cumulative units
    sku_cum: NDArray[np.int64]  # [sku, hour + 1] cumulative units over all stores
    sku: NDArray[np.int64]  # SKU index per series
    sku_stores: NDArray[np.float64]  # stores carrying each SKU
    cat: NDArray[np.int64]  # category code per series (-1: unknown to the model)
    store: NDArray[np.int64]  # store code per series (-1: unknown)
    city: NDArray[np.int64]  # calendar city index per series
    active_from: NDArray[np.int64]  # first local hour on sale (_OLD: before the history)
    active_until: NDArray[np.int64]  # first hour no longer sold (huge: still sold)
    weekday0: int  # weekday of day 0
    flash_keys: NDArray[np.int64]  # sorted series * n_days + day of flash-sale cells


class DemandModel:
    """Fit on a :class:`History` and external factors; forecast any origin after that."""

    def __init__(self, config: ForecastConfig | None = None) -> None:
        self.config = config or ForecastConfig()
        self._regressor: HistGradientBoostingRegressor | None = None
        self.categories: tuple[str, ...] = ()
        self.store_ids: tuple[str, ...] = ()
        self._prior: NDArray[np.float64] = np.zeros((0, 0))  # [store, category] hourly rate
        self._prior_global = 0.0
        self._store_factor: NDArray[np.float64] = np.ones(0)  # store volume / mean store volume
        self._share: NDArray[np.float64] = np.zeros((0, 2, 24))  # [category, daytype, hour]
        self._share_global: NDArray[np.float64] = np.full((2, 24), 1 / 24)
        self._event_lift: NDArray[np.float64] = np.ones((3, 0))  # [match/rain/holiday, category]
        self.train_rows = 0

    # ------------------------------------------------------------------ public API
    def fit(
        self, history: History, factors: ExternalFactors, *, until_hour: int | None = None
    ) -> DemandModel:
        """Learn from hours ``[0, until_hour)`` (default: the whole history)."""
        cfg = self.config
        cut = history.hours if until_hour is None else until_hour
        min_hours = cfg.min_history_days * HOURS_PER_DAY
        if cut > history.hours or cut < min_hours + HOURS_PER_DAY:
            raise ValueError(
                f"need {cfg.min_history_days + 1}+ days of history before the cut (cut={cut} h)"
            )
        self.categories = tuple(sorted({k.category for k in history.skus}))
        self.store_ids = tuple(s.store_id for s in history.stores)
        ctx = self._context(history, factors, days=history.days)
        self._fit_levels(ctx, cut)
        rows_i, rows_t0, rows_t, weight = self._sample(ctx, cut)
        X, base = self._features(ctx, rows_i, rows_t0, rows_t)
        y = history.units[rows_i, rows_t].astype(np.float64)
        reg = HistGradientBoostingRegressor(
            loss="poisson",
            learning_rate=cfg.learning_rate,
            max_iter=cfg.max_iter,
            max_leaf_nodes=cfg.max_leaf_nodes,
            min_samples_leaf=cfg.min_samples_leaf,
            l2_regularization=cfg.l2_regularization,
            categorical_features=list(_CATEGORICAL),
            early_stopping=False,
            random_state=cfg.seed,
        )
        # Poisson with offset log(base) == Poisson on y/base weighted by base
        with threadpool_limits(limits=cfg.threads, user_api="openmp"):
            reg.fit(X, y / base, sample_weight=base * weight)
        self._regressor = reg
        self.train_rows = int(rows_i.size)
        return self

    def predict(
        self,
        history: History,
        factors: ExternalFactors,
        *,
        origin_hour: int | None = None,
        horizon_hours: int = 72,
        chunk_series: int = 8192,
    ) -> Forecast:
        """Expected units for ``horizon_hours`` from ``origin_hour`` (default: history end).

        Only hours before the origin are read; factors must cover the horizon (missing
        weather counts as dry).
        """
        if self._regressor is None:
            raise RuntimeError("fit the model first")
        t0 = history.hours if origin_hour is None else origin_hour
        min_hours = self.config.min_history_days * HOURS_PER_DAY
        if not min_hours <= t0 <= history.hours:
            raise ValueError(f"origin hour {t0} must be in [{min_hours}, {history.hours}]")
        if not 0 < horizon_hours <= self.config.max_lead_hours:
            raise ValueError(f"horizon must be 1..{self.config.max_lead_hours} hours")
        days = max(history.days, math.ceil((t0 + horizon_hours) / HOURS_PER_DAY))
        ctx = self._context(history, factors, days=days)
        out = np.zeros((history.n_series, horizon_hours), dtype=np.float32)
        leads = np.arange(horizon_hours, dtype=np.int64)
        for c0 in range(0, history.n_series, chunk_series):
            idx = np.arange(c0, min(history.n_series, c0 + chunk_series), dtype=np.int64)
            rows_i = np.repeat(idx, horizon_hours)
            rows_t = t0 + np.tile(leads, idx.size)
            mu = self._predict_rows(ctx, rows_i, np.full_like(rows_i, t0), rows_t)
            out[idx] = mu.reshape(idx.size, horizon_hours)
        return Forecast(history=history, origin_hour=t0, units=out)

    def predict_at(
        self, history: History, factors: ExternalFactors, origin: datetime, horizon_hours: int = 72
    ) -> Forecast:
        """:meth:`predict` from an aware datetime on an IST hour boundary."""
        return self.predict(
            history, factors, origin_hour=history.hour_index(origin), horizon_hours=horizon_hours
        )

    # ------------------------------------------------------------------ internals
    def _context(self, history: History, factors: ExternalFactors, *, days: int) -> _Context:
        cal = build_calendar(
            factors, stores=history.stores, skus=history.skus, start=history.start, days=days
        )
        cum = np.zeros((history.n_series, history.hours + 1), dtype=np.int32)
        np.cumsum(history.units, axis=1, dtype=np.int32, out=cum[:, 1:])
        sku_units = np.zeros((len(history.skus), history.hours), dtype=np.int64)
        for s in range(len(history.stores)):
            m = history.series_store == s  # a SKU appears at most once per store
            sku_units[history.series_sku[m]] += history.units[m]
        sku_cum = np.zeros((len(history.skus), history.hours + 1), dtype=np.int64)
        np.cumsum(sku_units, axis=1, out=sku_cum[:, 1:])
        del sku_units
        cat_code = {c: i for i, c in enumerate(self.categories)}
        store_code = {s: i for i, s in enumerate(self.store_ids)}
        sku_cat = np.array([cat_code.get(k.category, -1) for k in history.skus], dtype=np.int64)
        st_code = np.array([store_code.get(s.store_id, -1) for s in history.stores], dtype=np.int64)
        st_city = np.array([cal.city_index(s.city) for s in history.stores], dtype=np.int64)
        big = np.iinfo(np.int64).max // 4
        frm = np.full(len(history.skus), _OLD, dtype=np.int64)
        until = np.full(len(history.skus), big, dtype=np.int64)
        for j, k in enumerate(history.skus):
            if k.launched_on is not None and k.launched_on > history.start:
                frm[j] = (k.launched_on - history.start).days * HOURS_PER_DAY
            if k.discontinued_on is not None:
                until[j] = (k.discontinued_on - history.start).days * HOURS_PER_DAY
        pos = history.series_index()
        keys = [pos[key] * days + d for key, ds in cal.flash_days.items() if key in pos for d in ds]
        ss, sk = history.series_store, history.series_sku
        return _Context(
            history=history,
            calendar=cal,
            cum=cum,
            sku_cum=sku_cum,
            sku=sk.astype(np.int64),
            sku_stores=np.maximum(np.bincount(sk, minlength=len(history.skus)), 1).astype(float),
            cat=sku_cat[sk],
            store=st_code[ss],
            city=st_city[ss],
            active_from=frm[sk],
            active_until=until[sk],
            weekday0=history.start.weekday(),
            flash_keys=np.sort(np.array(keys, dtype=np.int64)),
        )

    def _daytype(
        self, ctx: _Context, city: NDArray[np.int64], t: NDArray[np.int64]
    ) -> NDArray[np.int64]:
        day = t // HOURS_PER_DAY
        weekend = (ctx.weekday0 + day) % 7 >= 5
        return (weekend | ctx.calendar.holiday[city, day]).astype(np.int64)

    def _fit_levels(self, ctx: _Context, cut: int) -> None:
        """Store x category prior rates, store sizes, category hour shares and event lifts,
        all from before ``cut``."""
        n_store, n_cat = len(self.store_ids), len(self.categories)
        lo = max(0, cut - 28 * HOURS_PER_DAY)
        start = np.maximum(lo, ctx.active_from)
        exposure = np.clip(cut - start, 0, None).astype(np.float64)
        rate = np.where(
            exposure > 0, (ctx.cum[:, cut] - ctx.cum[:, lo]) / np.maximum(exposure, 1), np.nan
        )
        prior = np.zeros((n_store, n_cat))
        ok = ~np.isnan(rate)
        for s in range(n_store):
            for c in range(n_cat):
                r = rate[ok & (ctx.store == s) & (ctx.cat == c)]
                if r.size:
                    # winsorised mean: the typical item, not the category's one best seller
                    prior[s, c] = np.minimum(r, np.quantile(r, 0.9)).mean()
        self._prior_global = float(np.nanmean(rate)) if ok.any() else 1e-3
        self._prior = np.maximum(prior, 1e-4)
        volume = np.bincount(ctx.store, weights=ctx.cum[:, cut] - ctx.cum[:, lo], minlength=n_store)
        self._store_factor = np.maximum(volume, 1.0) / max(1.0, float(volume.mean()))

        days = np.arange(cut // HOURS_PER_DAY)
        units = self._category_hours(ctx, days)  # [category, city, day, hour]
        self._fit_shares(ctx, units, days)
        self._event_lift = self._fit_event_lifts(ctx, units, days)

    def _category_hours(self, ctx: _Context, days: NDArray[np.int64]) -> NDArray[np.float64]:
        h = ctx.history
        n_city = len(ctx.calendar.cities)
        hours = (days[:, None] * HOURS_PER_DAY + np.arange(HOURS_PER_DAY)).ravel()
        out = np.zeros((len(self.categories), n_city, days.size, HOURS_PER_DAY))
        for c in range(len(self.categories)):
            for ci in range(n_city):
                m = (ctx.cat == c) & (ctx.city == ci)
                if m.any():
                    tot = h.units[m][:, hours].sum(axis=0, dtype=np.float64)
                    out[c, ci] = tot.reshape(days.size, HOURS_PER_DAY)
        return out

    def _fit_shares(
        self, ctx: _Context, units: NDArray[np.float64], days: NDArray[np.int64]
    ) -> None:
        """Category hour-of-day shares (weekday vs weekend/holiday) over recent days."""
        recent = days >= days.size - self.config.profile_days
        counts = np.zeros((units.shape[0], 2, HOURS_PER_DAY))
        for ci in range(units.shape[1]):
            daytype = self._daytype(ctx, np.full(days.size, ci), days * HOURS_PER_DAY)
            # match-free days only: the trees then learn match evenings as a pure lift
            quiet = (ctx.calendar.match_offset[ci, days] < 0).all(axis=1)
            use = recent & quiet if (recent & quiet).sum() >= 7 else recent
            for d in (0, 1):
                counts[:, d] += units[:, ci, use & (daytype == d)].sum(axis=1)
        glob = counts.sum(axis=0) + 1.0
        self._share_global = glob / glob.sum(axis=1, keepdims=True)
        # thin categories lean on the all-category profile
        share = counts + 200.0 * self._share_global[None]
        self._share = share / share.sum(axis=2, keepdims=True)

    def _fit_event_lifts(
        self, ctx: _Context, units: NDArray[np.float64], days: NDArray[np.int64]
    ) -> NDArray[np.float64]:
        """[match/rain/holiday, category] multipliers measured on category totals.

        Rain and holidays: a log-linear regression of daily category units on city, weekday,
        trend, rainy, holiday and match-day indicators. Matches: per match day, the log odds
        ratio of the match hours' share of the day against the same hours on match-free
        days of the same day type. Each log-lift is shrunk toward 0 by its own noise
        (``b * b^2 / (b^2 + se^2)``), so a category that moves the same way on every match day
        keeps its lift and one that only looks lifted by chance does not.
        """
        cal = ctx.calendar
        n_cat, n_city = units.shape[:2]
        out = np.zeros((3, n_cat))
        daily = units.sum(axis=3)  # [category, city, day]
        weekday = (ctx.weekday0 + days) % 7
        match_hours = cal.match_offset[:, days] >= 0  # [city, day, hour]
        match_day: NDArray[np.bool_] = np.asarray(match_hours.any(axis=2))
        rainy = cal.rain_mm[:, days] >= RAINY_DAY_MM
        holiday = cal.holiday[:, days]
        shape = (n_city, days.size)
        cols: list[NDArray[Any]] = [np.ones(shape)]
        cols += [
            np.broadcast_to(np.arange(n_city)[:, None] == ci, shape) for ci in range(1, n_city)
        ]
        cols += [np.broadcast_to(weekday == wd, shape) for wd in range(1, 7)]
        cols += [np.broadcast_to(days / max(1, days.size), shape), rainy, holiday, match_day]
        design = np.stack([c.astype(np.float64).ravel() for c in cols], axis=1)
        dof = design.shape[0] - design.shape[1]
        xtx_inv = np.linalg.pinv(design.T @ design) if dof > 5 else None
        daytypes = [
            self._daytype(ctx, np.full(days.size, ci), days * HOURS_PER_DAY) for ci in range(n_city)
        ]
        for c in range(n_cat):
            if xtx_inv is not None and daily[c].sum() > 0:
                y = np.log(daily[c].ravel() + 0.5)
                coef = xtx_inv @ design.T @ y
                sigma2 = float(((y - design @ coef) ** 2).sum()) / dof
                for e, j in ((1, -3), (2, -2)):
                    out[e, c] = _shrink(coef[j], sigma2 * xtx_inv[j, j])
            logs: list[float] = []
            weights: list[float] = []
            for ci in range(n_city):
                for d in np.flatnonzero(match_day[ci]):
                    # reference: the same hours on match-free days of the same day type
                    quiet = ~match_day[ci] & (daytypes[ci] == daytypes[ci][d])
                    q_total = daily[c, ci, quiet].sum()
                    total = daily[c, ci, d]
                    if q_total <= 0 or total <= 0:
                        continue
                    w = match_hours[ci, d]
                    ref = units[c, ci, quiet][:, w].sum() / q_total
                    on = units[c, ci, d, w].sum()
                    if not 0 < ref < 1:
                        continue
                    odds = (on + 0.5) / (total - on + 0.5)
                    logs.append(float(np.log(odds) - np.log(ref / (1 - ref))))
                    weights.append(float(total))
            if len(logs) >= 3:
                lv, wv = np.array(logs), np.array(weights)
                mean = float(np.average(lv, weights=wv))
                var = float(np.average((lv - mean) ** 2, weights=wv))
                n_eff = wv.sum() ** 2 / (wv**2).sum()
                out[0, c] = _shrink(mean, var / max(1.0, n_eff - 1))
        return np.clip(np.exp(out), 0.5, 3.0)

    def _sample(
        self, ctx: _Context, cut: int
    ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
        """Weighted sample of (series, origin, target) rows with targets before ``cut``."""
        cfg = self.config
        h = ctx.history
        rng = np.random.default_rng([cfg.seed, 7])
        min_hours = cfg.min_history_days * HOURS_PER_DAY
        lower = np.maximum(min_hours, ctx.active_from)  # earliest origin / target
        upper = np.minimum(cut, ctx.active_until)  # targets stop at the cut or discontinuation
        eligible = np.clip(upper - lower, 0, None).astype(np.float64)
        rate = self._base_rate(ctx, np.arange(h.n_series), np.full(h.n_series, cut))
        # busy series get more rows (sqrt: do not starve the slow movers entirely)
        w = np.sqrt(rate * HOURS_PER_DAY + 0.1)
        match_any = (ctx.calendar.match_offset >= 0).reshape(len(ctx.calendar.cities), -1)
        boost = cfg.flagged_oversample
        k = cfg.max_train_rows / max(1.0, float((w * eligible).sum()) * 1.1)
        p_series = np.minimum(1.0, k * w)
        days = ctx.calendar.days
        picks_i: list[NDArray[np.int64]] = []
        picks_t: list[NDArray[np.int64]] = []
        picks_p: list[NDArray[np.float64]] = []
        t_all = np.arange(min_hours, cut, dtype=np.int64)
        for c0 in range(0, h.n_series, 2048):
            idx = np.arange(c0, min(h.n_series, c0 + 2048), dtype=np.int64)
            ok = (t_all[None, :] >= lower[idx, None]) & (t_all[None, :] < upper[idx, None])
            flagged = match_any[ctx.city[idx]][:, t_all]
            if ctx.flash_keys.size:
                keys = idx[:, None] * days + (t_all // HOURS_PER_DAY)[None, :]
                flagged |= np.isin(keys, ctx.flash_keys)
            p = np.minimum(1.0, p_series[idx, None] * np.where(flagged, boost, 1.0))
            chosen = ok & (rng.random(ok.shape, dtype=np.float32) < p)
            r, c = np.nonzero(chosen)
            picks_i.append(idx[r])
            picks_t.append(t_all[c])
            picks_p.append(p[r, c])
        rows_i = np.concatenate(picks_i)
        rows_t = np.concatenate(picks_t)
        prob = np.concatenate(picks_p)
        max_lead = np.minimum(cfg.max_lead_hours - 1, rows_t - lower[rows_i])
        lead = np.floor(rng.random(rows_i.size) * (max_lead + 1)).astype(np.int64)
        return rows_i, rows_t - lead, rows_t, 1.0 / prob

    def _base_rate(
        self, ctx: _Context, i: NDArray[np.int64], t0: NDArray[np.int64]
    ) -> NDArray[np.float64]:
        return self._rates(ctx, i, t0)[0]

    def _rates(
        self, ctx: _Context, i: NDArray[np.int64], t0: NDArray[np.int64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """(base hourly rate as of ``t0``, the SKU's all-store rate scaled to this store or
        nan, the SKU's all-store units) for series ``i``.

        Two gamma-Poisson posteriors: the SKU across all stores is shrunk toward the store's
        category rate, and the series toward that SKU rate, each with a Gamma prior worth
        ``*_prior_units`` units. ``(C + k) / (E + k / prior)`` keeps a busy series at its own
        rate, pulls a thin one toward the prior, and lets a long run of zeros where the prior
        expected sales (delisted, out of stock) drive the rate down.
        """
        cfg = self.config
        count, exposure = self._window(ctx, i, t0, 28 * HOURS_PER_DAY)
        lo = t0 - exposure.astype(np.int64)
        k = ctx.sku[i]
        sku_count = (ctx.sku_cum[k, t0] - ctx.sku_cum[k, lo]).astype(np.float64)
        s, c = ctx.store[i], ctx.cat[i]
        known = (s >= 0) & (c >= 0)
        cat_prior = np.full(i.size, self._prior_global)
        cat_prior[known] = self._prior[s[known], c[known]]
        factor = np.where(s >= 0, self._store_factor[np.maximum(s, 0)], 1.0)
        sku_exposure = exposure * ctx.sku_stores[k] / factor  # in "this store" hours
        kk, ks = cfg.sku_prior_units, cfg.prior_units
        prior = (sku_count + kk) / (sku_exposure + kk / cat_prior)
        rate = (count + ks) / (exposure + ks / prior)
        with np.errstate(invalid="ignore", divide="ignore"):
            sku_rate = np.where(exposure > 0, sku_count / sku_exposure, np.nan)
        return rate, sku_rate, sku_count

    @staticmethod
    def _window(
        ctx: _Context, i: NDArray[np.int64], t0: NDArray[np.int64], width: int
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        lo = np.maximum(np.maximum(t0 - width, 0), ctx.active_from[i])
        lo = np.minimum(lo, t0)
        count = (ctx.cum[i, t0] - ctx.cum[i, lo]).astype(np.float64)
        return count, (t0 - lo).astype(np.float64)

    def _features(
        self,
        ctx: _Context,
        i: NDArray[np.int64],
        t0: NDArray[np.int64],
        t: NDArray[np.int64],
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        cal = ctx.calendar
        day = t // HOURS_PER_DAY
        hour = t % HOURS_PER_DAY
        city = ctx.city[i]
        cat = ctx.cat[i]
        daytype = self._daytype(ctx, city, t)
        share = np.where(
            cat >= 0,
            self._share[np.maximum(cat, 0), daytype, hour],
            self._share_global[daytype, hour],
        )
        rate, sku_rate, sku_count = self._rates(ctx, i, t0)
        base = rate * HOURS_PER_DAY * share
        X = np.empty((i.size, len(FEATURES)), dtype=np.float64)
        X[:, 0] = np.where(ctx.store[i] >= 0, ctx.store[i], np.nan)
        X[:, 1] = np.where(cat >= 0, cat, np.nan)
        X[:, 2] = hour
        X[:, 3] = (ctx.weekday0 + day) % 7
        X[:, 4] = (t - t0) // HOURS_PER_DAY
        X[:, 5] = cal.holiday[city, day]
        X[:, 6] = cal.rain_mm[city, day]
        X[:, 7] = cal.match_offset[city, day, hour]
        if ctx.flash_keys.size:
            X[:, 8] = np.isin(i * cal.days + day, ctx.flash_keys)
        else:
            X[:, 8] = 0.0
        X[:, 9] = share
        X[:, 10] = np.log(rate)
        for col, width in ((11, 1), (12, 7), (13, 28)):
            count, exposure = self._window(ctx, i, t0, width * HOURS_PER_DAY)
            with np.errstate(invalid="ignore", divide="ignore"):
                X[:, col] = np.where(exposure > 0, count / exposure / rate, np.nan)
            if width == 28:
                X[:, 14] = count
        old = ctx.active_from[i] == _OLD
        X[:, 15] = np.where(
            old, _AGE_CAP_DAYS, np.minimum(_AGE_CAP_DAYS, (t0 - ctx.active_from[i]) / 24.0)
        )
        X[:, 16] = sku_rate / rate
        X[:, 17] = sku_count
        lifts = np.ones((i.size, 3))
        for e, on in enumerate((X[:, 7] >= 0, X[:, 6] >= RAINY_DAY_MM, X[:, 5] > 0)):
            m = on & (cat >= 0)
            lifts[m, e] = self._event_lift[e, cat[m]]
        X[:, 18:21] = lifts
        # Measured category lifts go into the offset, so the trees only correct them. Trees
        # left to find category x event interactions themselves split categories into noisy
        # groups (a flat category picked up a match "lift" from its neighbours).
        return X, base * lifts.prod(axis=1)

    def _predict_rows(
        self,
        ctx: _Context,
        i: NDArray[np.int64],
        t0: NDArray[np.int64],
        t: NDArray[np.int64],
    ) -> NDArray[np.float64]:
        assert self._regressor is not None
        X, base = self._features(ctx, i, t0, t)
        with threadpool_limits(limits=self.config.threads, user_api="openmp"):
            raw = self._regressor.predict(X)
        ratio = np.clip(raw, 0.0, self.config.max_ratio)
        mu = base * ratio
        on_sale = (t >= np.maximum(ctx.active_from[i], 0)) & (t < ctx.active_until[i])
        return np.where(on_sale, mu, 0.0)


def _shrink(log_lift: float, variance: float) -> float:
    """Shrink an estimated log-lift toward 0 by its sampling variance."""
    b2 = log_lift * log_lift
    return log_lift * b2 / (b2 + variance) if b2 + variance > 0 else 0.0
