"""CityView: the feed applied to memory (snapshot replaces, changes upsert and remove) and
turned into the widgets' dataclasses. Pure: no sockets, no Textual."""

from __future__ import annotations

import json
from datetime import UTC, timedelta

import pytest

from control_tower.state import (
    ALERTS,
    CITY,
    ORDERS,
    PICKERS,
    RIDERS,
    SECTIONS,
    STORES,
    CityView,
    FeedFormatError,
    error_detail,
    parse_message,
)
from control_tower.widgets.models import Severity
from shared.schemas.ops import OpsChanges, OpsSnapshot
from tests.control_tower.ct_app_fakes import (
    AT,
    alert,
    changes,
    city,
    order,
    rider,
    snapshot,
    store,
    uid,
)


def fresh() -> CityView:
    view = CityView()
    assert view.apply(snapshot()) == SECTIONS
    return view


def test_snapshot_fills_the_view() -> None:
    view = fresh()
    assert view.ready and view.at == AT and view.snapshots == 1
    assert set(view.stores) == {"BLR-KOR", "BLR-IND", "BLR-HSR", "BLR-WHF", "BLR-JPN"}
    assert len(view.orders) == 8 and len(view.riders) == 6 and len(view.pickers) == 4
    assert len(view.alerts) == 4


def test_store_rows_carry_the_numbers_and_the_pause() -> None:
    rows = {r.store_id: r for r in fresh().store_rows()}
    kor = rows["BLR-KOR"]
    assert (kor.name, kor.risk, kor.queued, kor.on_road) == ("Koramangala", 0.82, 12, 7)
    assert (kor.predicted_breaches, kor.low_stock, kor.stock_outs) == (3, 12, 5)
    assert kor.sold_out_today == 2  # the rest: not on the shelf since before today
    assert rows["BLR-WHF"].paused and not kor.paused


def test_changes_upsert_and_remove_by_id() -> None:
    view = fresh()
    gone = uid("a1000001")
    moved = order("a1000002", "BLR-KOR", "PICKING", 131.0, at=AT + timedelta(seconds=1))
    fresh_order = order("a1000009", "BLR-KOR", "CONFIRMED", 0.0, at=AT + timedelta(seconds=1))
    changed = view.apply(
        changes(
            stores=[store("BLR-IND", risk=0.95)],
            orders=[moved, fresh_order],
            removed_orders=[gone],
            riders=[rider("e1000001", status="ASSIGNED", idle_s=None)],
            removed_riders=[uid("e1000004")],
        )
    )
    assert changed == {STORES, ORDERS, RIDERS}
    assert view.stores["BLR-IND"].risk == 0.95
    assert view.stores["BLR-KOR"].risk == 0.82  # untouched
    assert str(gone) not in view.orders
    assert view.orders[str(moved.order_id)].status == "PICKING"
    assert str(fresh_order.order_id) in view.orders
    assert view.riders[str(uid("e1000001"))].status == "ASSIGNED"
    assert str(uid("e1000004")) not in view.riders
    assert view.at == AT + timedelta(seconds=1)


def test_city_only_when_it_changed() -> None:
    view = fresh()
    assert view.apply(changes()) == frozenset()
    version = view.version
    assert view.apply(changes(city=city(orders_last_minute=99))) == {CITY}
    assert view.city is not None and view.city.orders_last_minute == 99
    assert view.version == version + 1


def test_pickers_and_alerts_sections() -> None:
    view = fresh()
    changed = view.apply(
        changes(removed_pickers=[uid("d1000003")], removed_alerts=[uid("f1000004")])
    )
    assert changed == {PICKERS, ALERTS}
    assert len(view.pickers) == 3 and len(view.alerts) == 3


def test_a_resolved_alert_leaves_the_view() -> None:
    view = fresh()
    view.apply(changes(alerts=[alert("f1000002", resolved_at=AT)]))
    assert str(uid("f1000002")) not in view.alerts


def test_a_new_snapshot_replaces_everything() -> None:
    view = fresh()
    view.apply(changes(orders=[order("a1000009", "BLR-KOR", "CONFIRMED", 0.0)]))
    later = AT + timedelta(minutes=5)
    view.apply(snapshot(at=later, orders=[], alerts=[]))
    assert view.orders == {} and view.alerts == {} and view.at == later
    assert view.snapshots == 2


def test_changes_before_any_snapshot_are_ignored() -> None:
    view = CityView()
    assert view.apply(changes(stores=[store("BLR-KOR")])) == frozenset()
    assert not view.ready and view.stores == {}


def test_pipeline_ages_follow_the_feed_time() -> None:
    view = fresh()
    # a message five seconds later that does not mention the picking order
    view.apply(changes(at=AT + timedelta(seconds=5), stores=[store("BLR-KOR")]))
    board = {o.order_id[:8]: o for o in view.pipeline("BLR-KOR")}
    assert set(board) == {f"a100000{i}" for i in range(1, 7)}
    picking = board["a1000003"]
    assert picking.state == "PICKING"
    assert picking.age_s == 615.0
    assert picking.sla_s == 900.0  # the age it will have at its deadline
    assert view.order_age_s(str(uid("a1000003"))) == 615.0
    assert view.pipeline("BLR-JPN") == []


def test_store_orders_are_oldest_first() -> None:
    ids = [str(o.order_id)[:8] for o in fresh().store_orders("BLR-KOR")]
    assert ids == ["a1000006", "a1000004", "a1000003", "a1000005", "a1000002", "a1000001"]


def test_map_layers() -> None:
    view = fresh()
    dots = view.rider_dots()
    assert len(dots) == 5  # the offline rider has no position
    assert {d.status for d in dots} >= {"IDLE", "DELIVERING", "ASSIGNED", "AT_STORE"}
    assert len(view.drop_dots()) == 8
    assert len(view.drop_dots("BLR-KOR")) == 6
    assert len(view.rider_dots("BLR-KOR")) == 3


def test_alert_items() -> None:
    view = fresh()
    view.apply(changes(alerts=[alert("f1000001", acknowledged_at=AT)]))
    items = {a.alert_id[:8]: a for a in view.alert_items(tz=UTC)}
    assert items["f1000001"].severity is Severity.CRITICAL and items["f1000001"].acknowledged
    assert items["f1000002"].severity is Severity.WARNING and not items["f1000002"].acknowledged
    assert items["f1000004"].raised_at == AT - timedelta(minutes=15)
    assert {a.alert_id[:8] for a in view.alert_items("BLR-KOR")} == {"f1000001", "f1000003"}


def test_riders_of_a_store_and_reassign_candidates() -> None:
    view = fresh()
    names = [r.name for r in view.store_riders("BLR-KOR")]
    assert names == ["Ravi Kumar", "Anil P", "Suresh M", "Imran S"]  # idle first, offline last
    packed = view.orders[str(uid("a1000005"))]  # carried by Anil P
    assert [r.name for r in view.reassign_candidates(packed)] == ["Ravi Kumar"]  # idle only
    view.apply(changes(riders=[rider("e1000002", status="IDLE", idle_s=10.0)]))
    assert [r.name for r in view.reassign_candidates(packed)] == ["Ravi Kumar", "Suresh M"]
    on_the_road = ["a1000006"]
    waiting = [str(o.order_id)[:8] for o in view.reassignable_orders("BLR-KOR")]
    assert waiting == ["a1000004", "a1000003", "a1000005", "a1000002", "a1000001"]
    assert not set(on_the_road) & set(waiting)


def test_kpis() -> None:
    view = fresh()
    readings = {k.key: k for k in view.kpis()}
    assert readings["orders"].value == view.city.orders_last_minute  # type: ignore[union-attr]
    series = view.city.orders_per_minute  # type: ignore[union-attr]
    assert readings["orders"].delta == series[-1] - series[-2]
    assert readings["late"].value == 4  # 3 + 1 predicted breaches
    assert readings["idle"].value == 10
    assert readings["alerts"].value == 4
    assert readings["within10"].value == pytest.approx(81.0)
    assert readings["within10"].note == "18 % refused"  # read beside the promise
    assert readings["p90"].value == 13.0
    assert readings["delivered"].value == 1234
    view.apply(changes(city=city(refused_share=None)))
    assert {k.key: k for k in view.kpis()}["within10"].note is None  # no asks yet today
    view.apply(changes(city=city(p90_door_s=None, within_10_share=None)))
    assert {"p90", "within10"}.isdisjoint(k.key for k in view.kpis())
    assert CityView().kpis() == []


def test_action_answers_update_the_settings_not_the_live_numbers() -> None:
    view = fresh()
    answer = store("BLR-KOR", is_operational=False, paused_reason="rain", risk=0.0)
    assert view.put_store_settings(answer) == {STORES}
    kor = view.stores["BLR-KOR"]
    assert not kor.is_operational and kor.paused_reason == "rain"
    assert kor.risk == 0.82  # the feed's number stays
    assert view.put_store_settings(store("BLR-KOR").model_copy(update={"store_id": "X"})) == set()
    assert view.put_alert(alert("f1000002", acknowledged_at=AT)) == {ALERTS}
    assert view.alerts[str(uid("f1000002"))].acknowledged_at == AT


def test_flash_sales() -> None:
    view = fresh()
    assert [s.sku_id for s in view.flash_sales(open_only=True)] == ["SKU00042"]
    stopped = view.flash_sales()[0].model_copy(update={"status": "STOPPED"})
    view.apply(changes(city=city(flash_queues=[stopped])))
    assert view.flash_sales(open_only=True) == [] and len(view.flash_sales()) == 1


def test_parse_message() -> None:
    raw = snapshot().model_dump_json()
    assert isinstance(parse_message(raw), OpsSnapshot)
    assert isinstance(parse_message(raw.encode()), OpsSnapshot)
    assert isinstance(parse_message(json.loads(changes().model_dump_json())), OpsChanges)
    assert parse_message('{"type": "ping"}') is None
    assert parse_message('{"type": "something.new", "x": 1}') is None
    with pytest.raises(FeedFormatError):
        parse_message("not json")
    with pytest.raises(FeedFormatError):
        parse_message("[1, 2]")
    with pytest.raises(FeedFormatError):
        parse_message('{"type": "snapshot", "at": "yesterday"}')


def test_error_frames() -> None:
    frame = (
        '{"type": "error", "error": {"code": "not_your_city", "detail": "city DEL is not yours"}}'
    )
    assert error_detail(frame) == "city DEL is not yours"
    assert error_detail(frame.encode()) == "city DEL is not yours"
    assert error_detail('{"type": "error", "error": {"code": "forbidden"}}') == "forbidden"
    assert error_detail('{"type": "ping"}') is None
    assert error_detail(changes(alerts=[alert("f1000001")]).model_dump_json()) is None
    assert error_detail('{"error": ') is None


def test_pipeline_timers_run_at_the_server_clocks_speed() -> None:
    from control_tower.app import ControlTowerApp
    from tests.control_tower.ct_app_fakes import logged_in_api

    ticks = iter([100.0, 103.0])
    app = ControlTowerApp(client=logged_in_api(), monotonic=lambda: next(ticks), feed=False)
    app.view.apply(snapshot().model_copy(update={"clock_speed": 20.0}))
    assert app.view.clock_speed == 20.0
    # three real seconds are a minute of the sped-up city
    assert app.timer_clock() - 2000.0 == 0 and app.timer_clock() == 2060.0
