"""Where the minutes go: for every store of a city, the time orders spent in each stage of
their way to the door (placed -> confirmed -> picking started -> packed -> picked up by the
rider -> at the door -> delivered), p50 and p90 over the stages that ended in a recent
window, read from the orders' own timestamps."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.schemas.ops import StageBreakdown, StageFigures, StoreStages

# (key, label, started, ended): the stage runs from one timestamp to the next. The rider's
# wait at the store is inside "handover" (packed -> picked up): a trip records no arrival
# at the store of its own.
STAGES: tuple[tuple[str, str, str, str], ...] = (
    ("confirm", "placed→confirmed", "o.placed_at", "o.confirmed_at"),
    ("queue", "confirmed→picking", "o.confirmed_at", "o.picking_at"),
    ("pick", "picking→packed", "o.picking_at", "o.packed_at"),
    ("handover", "packed→picked up", "o.packed_at", "o.dispatched_at"),
    ("ride", "picked up→at door", "o.dispatched_at", "ts.arrived_at"),
    ("door", "at door→delivered", "ts.arrived_at", "o.delivered_at"),
    ("total", "placed→delivered", "o.placed_at", "o.delivered_at"),
)
STAGE_KEYS = tuple(key for key, *_ in STAGES)
LABELS = {key: label for key, label, *_ in STAGES}
LONGEST_ORDER = timedelta(hours=6)  # orders placed earlier cannot end a stage in the window

_VALUES = ",\n".join(f"('{key}', {start}, {end})" for key, _, start, end in STAGES)
_QUERY = text(
    f"""
    SELECT o.store_id, st.stage, count(*) AS n,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY st.secs) AS p50,
           percentile_cont(0.9) WITHIN GROUP (ORDER BY st.secs) AS p90
    FROM orders o
    JOIN dark_stores d ON d.store_id = o.store_id
    LEFT JOIN trip_stops ts ON ts.order_id = o.order_id AND ts.status = 'DELIVERED'
    CROSS JOIN LATERAL (
        SELECT v.stage, EXTRACT(EPOCH FROM v.ended - v.started) AS secs, v.ended
        FROM (VALUES {_VALUES}) AS v(stage, started, ended)
    ) AS st
    WHERE d.city_id = :city
      AND o.placed_at >= :oldest
      AND st.ended > :since AND st.ended <= :now
      AND st.secs >= 0
    GROUP BY o.store_id, st.stage
    """  # the stage list is this module's constant, not input
)


async def stage_breakdown(
    session: AsyncSession, *, city_id: str, now: datetime, window: timedelta
) -> StageBreakdown:
    since = now - window
    rows = (
        await session.execute(
            _QUERY,
            {"city": city_id, "since": since, "now": now, "oldest": since - LONGEST_ORDER},
        )
    ).all()
    found: dict[str, dict[str, StageFigures]] = {}
    for store_id, stage, count, p50, p90 in rows:
        found.setdefault(store_id, {})[stage] = StageFigures(
            stage=stage,
            label=LABELS[stage],
            count=count,
            p50_s=round(float(p50), 1),
            p90_s=round(float(p90), 1),
        )
    stores = (
        await session.execute(
            text("SELECT store_id FROM dark_stores WHERE city_id = :city ORDER BY store_id"),
            {"city": city_id},
        )
    ).scalars()
    return StageBreakdown(
        city_id=city_id,
        now=now,
        window_s=int(window.total_seconds()),
        stores=[
            StoreStages(
                store_id=store_id,
                stages=[
                    found.get(store_id, {}).get(key)
                    or StageFigures(stage=key, label=LABELS[key], count=0)
                    for key in STAGE_KEYS
                ],
            )
            for store_id in stores
        ],
    )
