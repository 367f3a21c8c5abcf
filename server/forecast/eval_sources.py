"""The histories the evaluation runs on: the seed's generator (``history.py``, the family
qc's model was built beside), the second source (``second_source.py``, built apart), the
history a multi-day run of the city's simulation wrote (``sim_history.py``, its floor the
simulation's own expected demand), and the stored history (real or seeded, no floor)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from server.forecast.entities import make_catalogue, make_stores
from server.forecast.evaluate import Source
from server.forecast.factors import ExternalFactors, synthetic_factors
from server.forecast.history import expected_units, generate_history
from server.forecast.second_source import generate_second_source, second_catalogue
from server.forecast.sim_history import load as load_sim_history

GENERATOR = "generator"
SECOND = "second"
DATABASE = "database"
SIM = "sim"


def generator_source(stores: int, skus: int, days: int, start: date, seed: int = 0) -> Source:
    st = make_stores(stores)
    sk = make_catalogue(skus, start=start, days=days, seed=seed)
    factors = synthetic_factors(st, sk, start, days, seed)
    history = generate_history(st, sk, start=start, days=days, factors=factors, seed=seed)
    mean = expected_units(st, sk, start=start, days=days, factors=factors, seed=seed)
    return Source("seed generator (history.py)", history, factors, expected=mean)


def second_source(stores: int, skus: int, days: int, start: date, seed: int = 0) -> Source:
    st = make_stores(stores)
    sk = second_catalogue(skus, start=start, days=days, seed=seed)
    data = generate_second_source(st, sk, start=start, days=days, seed=seed)
    return Source(
        "second source (shifts, stock-outs, promos)",
        data.history,
        data.factors,
        demand=data.demand,
        expected=data.expected,
    )


def sim_source(path: str | Path) -> Source:
    """The simulation's history: no weather, matches, sale days or holidays reach its
    demand, so none reach the methods either."""
    data = load_sim_history(path)
    factors = ExternalFactors(holiday_dates=frozenset())
    return Source(
        "city simulation (qc simulate --days)", data.history, factors, expected=data.expected
    )


def database_source(url: str, *, days: int, stores: int | None, skus: int | None) -> Source:
    import psycopg

    from server.forecast.history import IST
    from server.forecast.inputs import load_entities, read_factors
    from server.forecast.sales_history import history_bounds, read_history, with_stockouts

    with psycopg.connect(url) as conn:
        city = load_entities(conn, stores=stores, skus=skus)
        bounds = history_bounds(conn, city)
        if bounds is None:
            raise ValueError("no sales history: run `qc forecast history`")
        end = bounds[1].astimezone(IST).date() + timedelta(days=1)
        start = max(bounds[0].astimezone(IST).date(), end - timedelta(days=days))
        history = read_history(conn, city, start=start, days=(end - start).days)
        history = with_stockouts(conn, history)
        factors = read_factors(conn, city, first=start, last=end + timedelta(days=3))
    return Source("stored history (database)", history, factors)
