"""changes_between: only what a client needs to catch up, nothing for a quiet city."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from server.ops.feed import changes_between
from shared.schemas.ops import CityOps, OpsOrder, OpsRider, OpsSnapshot, StoreOps

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
ORDER = uuid.UUID(int=1)
RIDER = uuid.UUID(int=2)


def snapshot(
    *, after_s: float = 0, status: str = "PICKING", rider_lat: float = 12.9
) -> OpsSnapshot:
    at = T0 + timedelta(seconds=after_s)
    return OpsSnapshot(
        at=at,
        city=CityOps(
            city_id="BLR",
            orders_last_minute=1,
            delivered_today=0,
            within_10_share=None,
            within_15_share=None,
            p50_door_s=None,
            p90_door_s=None,
        ),
        stores=[
            StoreOps(
                store_id="S1",
                name="one",
                lat=12.9,
                lng=77.6,
                is_operational=True,
                service_radius_m=3000,
                orders_by_state={status: 1},
                oldest_wait_s=30 + after_s,
            ),
            StoreOps(
                store_id="S2",
                name="two",
                lat=12.8,
                lng=77.5,
                is_operational=True,
                service_radius_m=3000,
            ),
        ],
        orders=[
            OpsOrder(
                order_id=ORDER,
                store_id="S1",
                status=status,
                placed_at=T0 - timedelta(seconds=30),
                age_s=30 + after_s,
                sla_deadline=T0 + timedelta(minutes=14),
                predicted_breach=False,
            )
        ],
        riders=[
            OpsRider(
                rider_id=RIDER,
                name="r",
                store_id="S1",
                status="IDLE",
                lat=rider_lat,
                lng=77.6,
                idle_s=10 + after_s,
            )
        ],
        pickers=[],
        alerts=[],
    )


def test_a_quiet_city_sends_nothing_as_time_passes() -> None:
    assert changes_between(snapshot(), snapshot(after_s=10)) is None


def test_ages_past_a_coarse_step_resend_only_the_store() -> None:
    changes = changes_between(snapshot(), snapshot(after_s=20))
    assert changes is not None
    assert [s.store_id for s in changes.stores] == ["S1"]  # its oldest wait moved a step
    assert changes.orders == [] and changes.riders == [] and changes.city is None


def test_a_state_change_and_a_moving_rider_are_sent_and_a_finished_order_removed() -> None:
    changes = changes_between(snapshot(), snapshot(status="PACKED", rider_lat=12.91))
    assert changes is not None
    assert [o.status for o in changes.orders] == ["PACKED"]
    assert [r.lat for r in changes.riders] == [12.91]
    assert [s.store_id for s in changes.stores] == ["S1"]
    done = snapshot().model_copy(update={"orders": []})
    gone = changes_between(snapshot(), done)
    assert gone is not None and gone.removed_orders == [ORDER] and gone.orders == []
