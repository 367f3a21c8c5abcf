"""Fixed sample data for the control-tower widget tests and the snapshot."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from control_tower.widgets.models import Alert, DropDot, RiderDot, Severity, StoreRow


def stores() -> list[StoreRow]:
    return [
        StoreRow(
            "BLR-KOR", "Koramangala", 12.9352, 77.6245,
            orders_by_state={"CONFIRMED": 4, "PICKING": 6, "PACKED": 2, "OUT_FOR_DELIVERY": 7},
            oldest_wait_s=610, predicted_breaches=3, active_pickers=5,
            idle_riders=0, busy_riders=9, low_stock=12, stock_outs=5, sold_out_today=2, risk=0.82,
        ),
        StoreRow(
            "BLR-IND", "Indiranagar", 12.9784, 77.6408,
            orders_by_state={"CONFIRMED": 1, "PICKING": 2, "DISPATCHED": 1},
            oldest_wait_s=95, active_pickers=4, idle_riders=3, busy_riders=4,
            low_stock=3, risk=0.21,
        ),
        StoreRow(
            "BLR-HSR", "HSR Layout", 12.9116, 77.6474,
            orders_by_state={"PICKING": 3, "PACKED": 3, "OUT_FOR_DELIVERY": 2},
            oldest_wait_s=420, predicted_breaches=1, active_pickers=3,
            idle_riders=1, busy_riders=5, low_stock=6, risk=0.55,
        ),
        StoreRow(
            "BLR-WHF", "Whitefield", 12.9698, 77.7500,
            orders_by_state={"CONFIRMED": 2},
            oldest_wait_s=40, active_pickers=2, idle_riders=4, busy_riders=1,
            paused=True, risk=0.10,
        ),
        StoreRow(
            "BLR-JPN", "JP Nagar", 12.9063, 77.5857,
            orders_by_state={"PICKING": 2, "DISPATCHED": 2},
            oldest_wait_s=230, active_pickers=3, idle_riders=2, busy_riders=3,
            low_stock=1, risk=0.35,
            opens_at=datetime(2026, 3, 3, 6, 0, tzinfo=ZoneInfo("Asia/Kolkata")),  # closed now
        ),
    ]  # fmt: skip


def riders() -> list[RiderDot]:
    return [
        RiderDot("r1", 12.9400, 77.6300, "DELIVERING"),
        RiderDot("r2", 12.9300, 77.6100, "IDLE"),
        RiderDot("r3", 12.9700, 77.6500, "ASSIGNED"),
        RiderDot("r4", 12.9200, 77.6600, "RETURNING"),
        RiderDot("r5", 12.9500, 77.7000, "AT_STORE"),
        RiderDot("r6", 12.9550, 77.6000, "OFFLINE"),
    ]


def drops() -> list[DropDot]:
    return [
        DropDot("o1", 12.9450, 77.6350),
        DropDot("o2", 12.9000, 77.6300),
        DropDot("o3", 12.9800, 77.7000),
    ]


def alerts() -> list[Alert]:
    t = datetime(2025, 3, 1, 18, 30, tzinfo=UTC)
    return [
        Alert("a1", "backlog", Severity.WARNING, "BLR-HSR", "Picking backlog: 6 orders", t),
        Alert("a2", "sla", Severity.CRITICAL, "BLR-KOR", "3 orders predicted to breach", t),
        Alert("a3", "stock", Severity.INFO, "BLR-IND", "3 SKUs low", t, acknowledged=True),
    ]
