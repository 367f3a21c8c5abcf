"""Time generation, fitting and forecasting at production scale (12 stores x 5,000 SKUs).

Run ``python -m server.forecast.bench`` (``--stores 3 --skus 200`` for a quick look).
"""

from __future__ import annotations

import argparse
import resource
import time
from dataclasses import dataclass
from datetime import date

import numpy as np

from server.forecast.entities import make_catalogue, make_stores
from server.forecast.estimator import DemandModel, ForecastConfig
from server.forecast.factors import synthetic_factors
from server.forecast.history import generate_history


@dataclass(frozen=True, slots=True)
class BenchResult:
    n_series: int
    days: int
    train_rows: int
    db_rows: int  # non-zero hourly cells = rows History.iter_rows() hands to COPY
    generate_s: float
    fit_s: float
    predict_s: float
    peak_rss_mib: float

    def describe(self) -> str:
        return (
            f"{self.n_series:,} series x {self.days} days ({self.db_rows:,} non-zero hourly "
            f"rows): generate {self.generate_s:.1f} s, "
            f"fit {self.fit_s:.1f} s on {self.train_rows:,} rows, "
            f"predict 72 h {self.predict_s:.1f} s; peak RSS {self.peak_rss_mib:,.0f} MiB"
        )


def run_benchmark(
    *,
    stores: int = 12,
    skus: int = 5000,
    days: int = 90,
    start: date = date(2025, 1, 1),
    seed: int = 0,
    config: ForecastConfig | None = None,
) -> BenchResult:
    t0 = time.perf_counter()
    store_list = make_stores(stores)
    catalogue = make_catalogue(skus, start=start, days=days, seed=seed)
    factors = synthetic_factors(store_list, catalogue, start, days, seed)
    history = generate_history(
        store_list, catalogue, start=start, days=days, factors=factors, seed=seed
    )
    t1 = time.perf_counter()
    model = DemandModel(config).fit(history, factors)
    t2 = time.perf_counter()
    forecast = model.predict(history, factors, horizon_hours=72)
    t3 = time.perf_counter()
    assert forecast.units.shape == (history.n_series, 72)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    db_rows = int(np.count_nonzero(history.units))
    return BenchResult(
        history.n_series, days, model.train_rows, db_rows, t1 - t0, t2 - t1, t3 - t2, rss
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stores", type=int, default=12)
    parser.add_argument("--skus", type=int, default=5000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--train-rows", type=int, default=ForecastConfig().max_train_rows)
    args = parser.parse_args(argv)
    result = run_benchmark(
        stores=args.stores,
        skus=args.skus,
        days=args.days,
        config=ForecastConfig(max_train_rows=args.train_rows),
    )
    print(result.describe())


if __name__ == "__main__":
    main()
