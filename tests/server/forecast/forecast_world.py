"""The small generated world the forecast tests share (6 stores x 250 SKUs x 70 days)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from server.forecast.entities import Sku, Store, make_catalogue, make_stores
from server.forecast.estimator import ForecastConfig
from server.forecast.factors import ExternalFactors, synthetic_factors
from server.forecast.history import History, generate_history

START = date(2024, 7, 15)  # monsoon: plenty of rainy days to learn from
DAYS = 70
# A couple of seconds per fit, big enough to learn the effects. One thread: on a shared
# 2-core box two OpenMP threads slow to a crawl whenever another process holds a core.
TEST_CONFIG = ForecastConfig(max_train_rows=150_000, max_iter=120, threads=1)


@dataclass(frozen=True)
class World:
    stores: list[Store]
    skus: list[Sku]
    factors: ExternalFactors
    history: History


def make_world(seed: int = 0) -> World:
    stores = make_stores(6)
    skus = make_catalogue(250, start=START, days=DAYS, seed=seed)
    factors = synthetic_factors(stores, skus, START, DAYS, seed=seed)
    history = generate_history(stores, skus, start=START, days=DAYS, factors=factors, seed=seed)
    return World(stores, skus, factors, history)
