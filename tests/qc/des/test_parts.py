"""A city simulated in groups of stores (``--workers``): the groups cover every store once,
and the groups' parts merge into one report over every order."""

from __future__ import annotations

import uuid

from qc.des.cli import store_groups
from qc.des.config import DesConfig
from qc.des.parts import Parts, build


def test_the_groups_cover_every_store_once() -> None:
    groups = store_groups(DesConfig(stores=12), 3)
    assert len(groups) == 3
    stores = [s for g in groups for s in g]
    assert len(stores) == len(set(stores)) == 12
    assert all(len(g) == 4 for g in groups)


def _part(store: str, minutes: list[float], arrivals: int) -> Parts:
    rows = [
        (uuid.uuid4(), store, [0.0, 0.0, 90.0, 0.0, 20.0, m * 60 - 150.0, 40.0]) for m in minutes
    ]
    return Parts(
        stores=1,
        events=10,
        rows=rows,
        promised={r[0]: 480.0 for r in rows},
        hour_of={r[0]: 19 for r in rows},
        by_hour={19: {"arrivals": arrivals, "refused": arrivals - len(rows)}},
        stats={"arrivals": arrivals, "not_serviceable": arrivals - len(rows)},
        rider_shift_s=3600.0,
        rider_busy_s=1800.0,
    )


def test_parts_merge_into_one_report_over_every_order() -> None:
    merged = Parts.merged([_part("A", [6, 7, 8], 4), _part("B", [9, 11], 3)])
    report = build(DesConfig(stores=2), merged, wall_s=1.0)
    assert report.stores == 2 and report.events == 20
    assert report.orders_delivered == 5 and report.arrivals == 7
    assert report.refused_share == round(2 / 7, 4)
    assert report.within_10_min == 0.8
    assert report.hourly[0]["arrivals"] == 7 and report.hourly[0]["delivered"] == 5
    assert report.rider_utilisation == 0.5
