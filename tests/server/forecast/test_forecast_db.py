"""Forecasting on the real database: history load, CSV imports, forecast runs,
replenishment planning, dispatch/receipt through the inventory engine, stock-out risk."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest
from typer.testing import CliRunner

from server.forecast import inputs, runs, sales_history, service
from server.forecast.estimator import ForecastConfig
from server.forecast.factors import CsvError
from server.forecast.history import IST
from server.forecast.models import ReplenishmentStatus
from server.forecast.replenish import Reason
from server.inventory.reconcile import find_drift, load_store
from server.kit import keys
from server.kit.config import get_settings
from server.kit.db import transaction
from server.kit.errors import Conflict, NotFound
from tests.server.forecast.forecast_db_helpers import (
    put_forecasts,
    set_position,
    skus_of,
)
from tests.server.inventory.helpers import ledger_sum, pg_stock, redis_stock

START = date(2024, 7, 15)
STORE = "BLR-KOR"
# small and single-threaded: a couple of seconds per fit on a shared 2-core box
FAST = ForecastConfig(max_train_rows=40_000, max_iter=40, threads=1)


def _rows(url: str, sql: str, params: tuple[object, ...] = ()) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


# --------------------------------------------------------------------------- history


def test_history_load_round_trips(city) -> None:
    url = city.database_url
    load = sales_history.load_history(url, start=START, days=14, seed=3)
    h = load.history
    # the seeded city's real ids and categories are the core's entities
    assert [s.store_id for s in h.stores] == ["BLR-HSR", "BLR-IND", "BLR-KOR"]
    assert {s.city for s in h.stores} == {"Bengaluru"}
    assert len(h.skus) == 150
    cats = dict(_rows(url, "SELECT sku_id, category_id FROM products"))
    assert all(k.category == cats[k.sku_id] for k in h.skus)
    assert load.whole_table and load.replaced_rows == 0

    stored = _rows(url, "SELECT store_id, sku_id, hour_start, units FROM sales_history")
    generated = list(h.iter_rows())
    assert load.rows == len(generated) == len(stored) > 3_000
    assert set(stored) == set(generated)
    assert all(r[2].minute == 30 for r in stored[:100])  # IST hours start at :30 UTC

    # ... and back into the core's History, identical cell for cell
    with psycopg.connect(url) as conn:
        back = sales_history.read_history(conn, inputs.load_entities(conn), start=START, days=14)
    assert (back.units == h.units).all()

    # the synthetic drivers the generator used are in the factor tables (weather and
    # fixtures three days past the history, for the forecast made at its end)
    weather = _rows(url, "SELECT min(day), max(day), count(*), min(source) FROM weather_days")
    assert weather == [(START, START + timedelta(days=16), 17, "synthetic")]
    assert _rows(url, "SELECT count(*) FROM calendar_events")[0][0] > 0
    assert _rows(url, "SELECT count(*) FROM flash_sale_schedule")[0][0] > 0

    # the same arguments give the same rows; one store reloads without touching the others
    others_before = _rows(
        url, "SELECT count(*), sum(units) FROM sales_history WHERE store_id <> %s", (STORE,)
    )
    again = sales_history.load_history(url, start=START, days=14, seed=3, stores=[STORE], skus=20)
    assert not again.whole_table
    assert again.replaced_rows == sum(
        1 for s, k, *_ in generated if s == STORE and k in {x.sku_id for x in h.skus[:20]}
    )
    assert (
        _rows(url, "SELECT count(*), sum(units) FROM sales_history WHERE store_id <> %s", (STORE,))
        == others_before
    )
    kor = _rows(
        url,
        "SELECT store_id, sku_id, hour_start, units FROM sales_history WHERE store_id = %s "
        "AND sku_id <= 'SKU00020'",
        (STORE,),
    )
    assert set(kor) == set(again.history.iter_rows())


def test_seed_history_ends_at_today_ist_midnight_and_reruns_cleanly(city) -> None:
    url = city.database_url
    load = sales_history.seed_history(url, days=9, seed=1, today=date(2024, 8, 1))
    assert (load.history.start, load.history.days) == (date(2024, 7, 23), 9)
    ((lo, hi, n),) = _rows(
        url, "SELECT min(hour_start), max(hour_start), count(*) FROM sales_history"
    )
    assert datetime(2024, 7, 23, tzinfo=IST) <= lo and hi < datetime(2024, 8, 1, tzinfo=IST)
    assert n == load.rows
    # the same seed again: the whole table is replaced by identical rows
    again = sales_history.seed_history(url, days=9, seed=1, today=date(2024, 8, 1))
    assert again.whole_table and again.replaced_rows == load.rows == again.rows
    assert (again.history.units == load.history.units).all()


def test_history_needs_a_city(clean) -> None:
    with pytest.raises(ValueError, match="seed the city first"):
        sales_history.load_history(clean.database_url, start=START, days=3)


# --------------------------------------------------------------------------- CSV imports


def test_csv_imports_upsert_and_errors_name_the_bad_row(city) -> None:
    url = city.database_url
    weather = "city,date,rain_mm,rainy\nBLR,2024-07-15,12.5,\nBengaluru,2024-07-16,,yes\n"
    assert inputs.import_weather(url, weather) == 2
    assert inputs.import_weather(url, weather) == 2  # again: updated, not duplicated
    assert _rows(
        url, "SELECT city_id, day, rain_mm, rainy, source FROM weather_days ORDER BY day"
    ) == [
        ("BLR", date(2024, 7, 15), 12.5, True, "import"),
        ("BLR", date(2024, 7, 16), None, True, "import"),
    ]
    events = "date,start_hour,name,city\n2024-07-15,19,IND v AUS,\n2024-07-16,15,RCB v CSK,BLR\n"
    assert inputs.import_events(url, events) == 2
    assert inputs.import_events(url, events) == 2
    assert _rows(
        url, "SELECT day, start_hour, kind, city_id FROM calendar_events ORDER BY day"
    ) == [
        (date(2024, 7, 15), 19, "cricket", None),
        (date(2024, 7, 16), 15, "cricket", "BLR"),
    ]
    flash = "date,sku_id,store_ids\n2024-07-20,SKU00001,*\n2024-07-21,SKU00002,BLR-KOR;BLR-IND\n"
    assert inputs.import_flash_sales(url, flash) == 3
    assert inputs.import_flash_sales(url, flash) == 3
    assert _rows(url, "SELECT day, sku_id, store_id FROM flash_sale_schedule ORDER BY 1, 3") == [
        (date(2024, 7, 20), "SKU00001", None),
        (date(2024, 7, 21), "SKU00002", "BLR-IND"),
        (date(2024, 7, 21), "SKU00002", "BLR-KOR"),
    ]

    # imported rows win over synthetic ones, and the history reads them back
    sales_history.load_history(url, start=START, days=8, seed=1, skus=10)
    assert _rows(url, "SELECT rain_mm, source FROM weather_days WHERE day = %s", (START,)) == [
        (12.5, "import")
    ]
    with psycopg.connect(url) as conn:
        drivers = inputs.read_factors(
            conn, inputs.load_entities(conn), first=START, last=date(2024, 7, 21)
        )
    assert any(e.name == "RCB v CSK" and e.city == "Bengaluru" for e in drivers.events)
    assert any(f.sku_id == "SKU00001" and f.store_ids is None for f in drivers.flash_sales)

    bad = [
        # (loader, csv text, line, field): the core's parse errors and the DB's unknown ids
        (
            inputs.import_weather,
            "city,date,rain_mm\nBLR,2024-07-01,3\nPune,2024-07-02,1\n",
            3,
            "city",
        ),
        (
            inputs.import_weather,
            "city,date,rain_mm\nBLR,2024-07-01,3\nBLR,07/02/2024,1\n",
            3,
            "date",
        ),
        (
            inputs.import_weather,
            "city,date,rain_mm\n\nBLR,2024-07-01,3\nblr,2024-07-01,1\n",
            4,
            "date",
        ),
        (inputs.import_events, "date,start_hour\n2024-07-01,19\n2024-07-02,25\n", 3, "start_hour"),
        (inputs.import_events, "date,start_hour,city\n2024-07-01,19,Mumbai\n", 2, "city"),
        (
            inputs.import_flash_sales,
            "date,sku_id\n2024-07-01,SKU00001\n2024-07-01,NOPE\n",
            3,
            "sku_id",
        ),
        (
            inputs.import_flash_sales,
            "date,sku_id,store_ids\n2024-07-01,SKU00001,BLR-KOR;BLR-XXX\n",
            2,
            "store_ids",
        ),
    ]
    for loader, text, line, field in bad:
        with pytest.raises(CsvError) as err:
            loader(url, text)
        assert (err.value.line, err.value.field) == (line, field), str(err.value)
        assert f"line {line}" in str(err.value)
    # a failed import writes nothing
    assert _rows(url, "SELECT count(*) FROM weather_days WHERE day = '2024-07-01'") == [(0,)]


# --------------------------------------------------------------------------- forecast runs


@pytest.mark.slow
def test_forecast_run_writes_one_row_per_store_and_sku(city) -> None:
    url = city.database_url
    sales_history.load_history(url, start=START, days=21, seed=5)
    origin = datetime(2024, 8, 5, tzinfo=IST)  # the midnight that ends the history
    run = runs.run_forecast(url, origin=origin, days=90, config=FAST)
    assert run.series == 3 * 150
    assert (run.history_start, run.history_days) == (START, 21)
    rows = _rows(
        url, "SELECT store_id, sku_id, forecast_at, next_24h, next_72h FROM demand_forecasts"
    )
    assert len(rows) == 450
    assert len({(r[0], r[1]) for r in rows}) == 450
    assert {r[2] for r in rows} == {origin}
    assert all(0 <= r[3] <= r[4] for r in rows)
    assert sum(r[4] for r in rows) > 0

    # the same origin again replaces the run; a later IST hour adds another
    runs.run_forecast(url, origin=origin, config=FAST)
    later = origin - timedelta(hours=10)  # 14:00 IST on the history's last day
    run2 = runs.run_forecast(url, origin=later, config=FAST)
    assert run2.history_days == 21  # whole days; the hours after 14:00 are not read
    assert _rows(
        url, "SELECT forecast_at, count(*) FROM demand_forecasts GROUP BY 1 ORDER BY 1"
    ) == [
        (later, 450),
        (origin, 450),
    ]
    with pytest.raises(ValueError, match="not on an Asia/Kolkata hour"):
        runs.run_forecast(url, origin=datetime(2024, 8, 5, 3, 0, tzinfo=UTC), config=FAST)
    with pytest.raises(ValueError, match="no sales history"):
        runs.run_forecast(url, origin=datetime(2024, 7, 1, tzinfo=IST), config=FAST)


def test_backtest_on_the_stored_history(city) -> None:
    url = city.database_url
    sales_history.load_history(url, start=START, days=24, seed=2, skus=60)
    report = runs.backtest(url, days=24, origins=2, config=FAST, skus=60)
    overall = report.get(24)
    assert overall.actual_units > 0
    assert overall.model_wape > 0 and overall.baseline_wape > 0
    assert len(report.origin_dates) == 2


# --------------------------------------------------------------------------- replenishment


async def _reload(stack, store_id: str = STORE) -> None:
    await stack.redis.delete(keys.store_ready(store_id))
    await load_store(stack.engine, stack.redis, store_id)


async def test_replenishment_quantities_match_hand_computed_values(stack) -> None:
    url = stack.database_url
    a, b, c, d, e, f, g, h = skus_of(url, STORE, 8)
    # Rule: reorder when available < 1.5 x f24; need = f72 - (available + in_transit);
    # capped at headroom = capacity - (available + in_transit); rounded UP to case packs,
    # or DOWN when a whole case would overflow capacity.
    setup = {
        # sku: (available, in_transit, capacity, case_pack, f24, f72)
        a: (4, 0, 100, 12, 10.0, 30.0),  # 4 < 15; need 26; ceil(26/12) = 3 cases -> 36
        b: (4, 20, 100, 6, 10.0, 30.0),  # 4 < 15; need 30 - 24 = 6 -> 1 case of 6
        c: (5, 30, 100, 6, 10.0, 30.0),  # 5 < 15; need 30 - 35 < 0: in transit covers -> 0
        d: (2, 0, 40, 12, 20.0, 60.0),  # 2 < 30; need 58, headroom 38; ceil(38/12) = 4 -> 48
        #                                  > 38, so floor(38/12) = 3 cases -> 36
        e: (3, 0, 50, 24, 4.0, 13.5),  # 3 < 6; need 10.5; ceil(10.5/24) = 1 case -> 24 (<= 47)
        f: (30, 0, 100, 12, 20.0, 60.0),  # 30 < 30 is false: stock covers -> 0
        g: (1, 10, 16, 12, 5.0, 20.0),  # 1 < 7.5; need 9, headroom 5; 1 case = 12 > 5 and
        #                                 floor(5/12) = 0: no room -> 0
        h: (0, 0, 100, 12, 0.0, 0.0),  # no demand -> 0
    }
    t0 = datetime(2024, 8, 5, tzinfo=IST)
    for sku, (avail, transit, cap, pack, *_) in setup.items():
        set_position(
            url, STORE, sku, available=avail, in_transit=transit, capacity=cap, case_pack=pack
        )
    # another store: 0 < 1.5 x 500; need 900, headroom 100; ceil(100/12) = 9 cases -> 108
    # > 100, so floor(100/12) = 8 cases -> 96
    set_position(url, "BLR-IND", a, available=0, capacity=100)
    await _reload(stack)
    await _reload(stack, "BLR-IND")
    put_forecasts(url, t0, {(STORE, k): (v[4], v[5]) for k, v in setup.items()})
    # an older run and a run made after "now" must both be ignored
    put_forecasts(
        url, t0 - timedelta(days=1), {(STORE, f): (90.0, 300.0), (STORE, c): (90.0, 300.0)}
    )
    put_forecasts(url, t0 + timedelta(days=2), {(STORE, h): (90.0, 300.0)})
    # the other store's forecast does not leak into this store's plan
    put_forecasts(url, t0, {("BLR-IND", a): (500.0, 900.0)})

    now = t0 + timedelta(hours=1)
    async with transaction(stack.sessions) as s:
        first = await service.plan_replenishment(s, now=now, store_id=STORE)
    planned = {line.order.sku_id: (line.order.quantity, line.order.cases) for line in first.lines}
    assert planned == {a: (36, 3), b: (6, 1), d: (36, 3), e: (24, 1)}
    assert first.positions == 150
    assert first.forecast_at == {STORE: t0}
    assert first.reasons[Reason.IN_TRANSIT_COVERS] == 1  # c
    assert first.reasons[Reason.NO_ROOM] == 1  # g
    stored = _rows(
        url,
        "SELECT sku_id, quantity, cases, status, forecast_24h, forecast_72h, created_at "
        "FROM replenishment_orders ORDER BY sku_id",
    )
    assert stored == [
        (a, 36, 3, "PLANNED", 10.0, 30.0, now),
        (b, 6, 1, "PLANNED", 10.0, 30.0, now),
        (d, 36, 3, "PLANNED", 20.0, 60.0, now),
        (e, 24, 1, "PLANNED", 4.0, 13.5, now),
    ]

    # PLANNED units count as in transit: planning again orders nothing twice
    #   a: need 30 - (4 + 36) < 0; b: 30 - (4 + 26) = 0; e: 13.5 - 27 < 0 -> covered
    #   d: need 60 - 38 = 22 but headroom 40 - 38 = 2 < one case of 12 -> no room
    async with transaction(stack.sessions) as s:
        second = await service.plan_replenishment(s, now=now, store_id=STORE)
    assert second.lines == []
    assert second.reasons[Reason.IN_TRANSIT_COVERS] == 4 and second.reasons[Reason.NO_ROOM] == 2

    # every store: the other stores have no forecast at or before now -> nothing for them
    async with transaction(stack.sessions) as s:
        everywhere = await service.plan_replenishment(s, now=now)
    assert [(ln.order.store_id, ln.order.sku_id, ln.order.quantity) for ln in everywhere.lines] == [
        ("BLR-IND", a, 96)
    ]
    assert everywhere.forecast_at["BLR-HSR"] is None
    with pytest.raises(NotFound):
        async with transaction(stack.sessions) as s:
            await service.plan_replenishment(s, now=now, store_id="BLR-NOPE")


async def test_dispatch_and_receive_move_stock_in_postgres_and_redis(stack) -> None:
    url = stack.database_url
    (sku,) = skus_of(url, STORE, 1)
    set_position(url, STORE, sku, available=4, capacity=100, case_pack=12)
    await _reload(stack)
    t0 = datetime(2024, 8, 5, tzinfo=IST)
    put_forecasts(url, t0, {(STORE, sku): (10.0, 30.0)})  # -> 3 cases of 12 = 36
    async with transaction(stack.sessions) as s:
        (line,) = (await service.plan_replenishment(s, now=t0, store_id=STORE)).lines
    rid = line.order.replenishment_id
    assert line.order.quantity == 36

    # a failed unit of work puts Redis back and leaves the order PLANNED
    with pytest.raises(RuntimeError):
        async with transaction(stack.sessions) as s:
            await service.dispatch(s, stack.redis, replenishment_id=rid, now=t0)
            raise RuntimeError("crash before commit")
    assert pg_stock(url, STORE, sku) == (4, 0, 0, 0)
    assert await redis_stock(stack.redis, STORE, sku) == (4, 0, 0, 0)
    assert await find_drift(stack.engine, stack.redis, STORE) == []

    sent = t0 + timedelta(minutes=5)
    async with transaction(stack.sessions) as s:
        order = await service.dispatch(s, stack.redis, replenishment_id=rid, now=sent)
    assert (order.status, order.dispatched_at) == (ReplenishmentStatus.DISPATCHED, sent)
    assert pg_stock(url, STORE, sku) == (4, 0, 0, 36)  # available, reserved, damaged, transit
    assert await redis_stock(stack.redis, STORE, sku) == (4, 0, 0, 36)
    assert await find_drift(stack.engine, stack.redis, STORE) == []
    assert _rows(
        url,
        "SELECT movement, d_in_transit, reference FROM stock_ledger WHERE sku_id = %s",
        (sku,),
    ) == [("DISPATCH", 36, str(rid))]

    with pytest.raises(Conflict):
        async with transaction(stack.sessions) as s:
            await service.dispatch(s, stack.redis, replenishment_id=rid, now=sent)

    # in transit counts against the next plan: 30 - (4 + 36) < 0 -> nothing new
    async with transaction(stack.sessions) as s:
        assert (await service.plan_replenishment(s, now=sent, store_id=STORE)).lines == []

    got = sent + timedelta(hours=2)
    async with transaction(stack.sessions) as s:
        order = await service.receive(s, stack.redis, replenishment_id=rid, now=got)
    assert (order.status, order.received_at) == (ReplenishmentStatus.RECEIVED, got)
    assert pg_stock(url, STORE, sku) == (40, 0, 0, 0)
    assert await redis_stock(stack.redis, STORE, sku) == (40, 0, 0, 0)
    assert await find_drift(stack.engine, stack.redis, STORE) == []
    assert ledger_sum(url, STORE, sku) == (36, 0, 0, 0)

    with pytest.raises(Conflict):
        async with transaction(stack.sessions) as s:
            await service.receive(s, stack.redis, replenishment_id=rid, now=got)
    with pytest.raises(NotFound):
        async with transaction(stack.sessions) as s:
            await service.dispatch(s, stack.redis, replenishment_id=uuid.uuid4(), now=got)


async def test_stockout_risk_counts_skus_below_the_next_24h(stack) -> None:
    url = stack.database_url
    a, b, c, d = skus_of(url, STORE, 4)
    for sku, avail in ((a, 2), (b, 5), (c, 0), (d, 10)):
        set_position(url, STORE, sku, available=avail)
        set_position(url, "BLR-IND", sku, available=0)
    await _reload(stack)
    await _reload(stack, "BLR-IND")
    t0 = datetime(2024, 8, 5, tzinfo=IST)
    put_forecasts(
        url,
        t0,
        {
            (STORE, a): (5.0, 12.0),  # 2 < 5: at risk
            (STORE, b): (5.0, 12.0),  # 5 < 5 is false
            (STORE, c): (0.3, 1.0),  # 0 < 0.3: at risk
            (STORE, d): (3.0, 9.0),  # 10 >= 3
            ("BLR-IND", a): (0.0, 0.0),  # the latest run says no demand ...
        },
    )
    put_forecasts(url, t0 - timedelta(days=1), {("BLR-IND", a): (8.0, 20.0)})  # ... not this
    async with transaction(stack.sessions) as s:
        assert await service.stockout_risk(s) == {"BLR-HSR": 0, "BLR-IND": 0, "BLR-KOR": 2}
        assert await service.stockout_risk(s, store_id=STORE) == {STORE: 2}
        with pytest.raises(NotFound):
            await service.stockout_risk(s, store_id="BLR-NOPE")


# --------------------------------------------------------------------------- CLI


def test_cli_runs_the_whole_loop(city, settings, monkeypatch, tmp_path) -> None:
    from qc.forecast_cli import forecast_app, replenish_app

    monkeypatch.setenv("QC_DATABASE_URL", city.database_url)
    monkeypatch.setenv("QC_REDIS_URL", city.redis_url)
    monkeypatch.setenv("QC_HOME", str(settings.home))
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        bad = tmp_path / "rain.csv"
        bad.write_text("city,date,rain_mm\nBLR,2024-07-01,3\nBLR,2024-07-02,lots\n")
        res = runner.invoke(forecast_app, ["import-weather", str(bad)])
        assert res.exit_code == 2
        assert "rain.csv, line 3, field 'rain_mm'" in " ".join(res.output.split())

        res = runner.invoke(
            forecast_app,
            ["history", "--days", "10", "--end", "2024-07-25", "--stores", "1", "--skus", "30"],
        )
        assert res.exit_code == 0, res.output
        res = runner.invoke(
            forecast_app,
            [
                "run",
                "--origin",
                "2024-07-25",
                "--threads",
                "1",
                "--train-rows",
                "20000",
                "--stores",
                "1",
                "--skus",
                "30",
            ],
        )
        assert res.exit_code == 0, res.output
        assert _rows(city.database_url, "SELECT count(*) FROM demand_forecasts") == [(30,)]

        # a newer run (hand-made) for one SKU with no stock: exactly one order (36 = 3 x 12)
        url = city.database_url
        set_position(url, "BLR-HSR", "SKU00001", available=0, capacity=100, case_pack=12)
        put_forecasts(
            url, datetime(2024, 7, 25, 1, tzinfo=IST), {("BLR-HSR", "SKU00001"): (10, 30)}
        )
        res = runner.invoke(replenish_app, ["run", "--store", "BLR-HSR"])
        assert res.exit_code == 0, res.output
        assert "1 orders planned" in res.output
        ((rid,),) = _rows(url, "SELECT replenishment_id FROM replenishment_orders")
        assert str(rid) in res.output
        res = runner.invoke(replenish_app, ["dispatch", str(rid)])
        assert res.exit_code == 0, res.output
        assert "36 x SKU00001 in transit to BLR-HSR" in res.output
        assert pg_stock(url, "BLR-HSR", "SKU00001") == (0, 0, 0, 36)
        res = runner.invoke(replenish_app, ["receive", str(rid)])
        assert res.exit_code == 0, res.output
        assert pg_stock(url, "BLR-HSR", "SKU00001") == (36, 0, 0, 0)
        res = runner.invoke(replenish_app, ["receive", str(rid)])
        assert res.exit_code == 2 and "is RECEIVED" in res.output
        res = runner.invoke(replenish_app, ["dispatch", str(uuid.uuid4())])
        assert res.exit_code == 2
    finally:
        get_settings.cache_clear()
