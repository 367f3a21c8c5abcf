"""The pick-time estimate learns from recorded pick durations once there are enough."""

from __future__ import annotations

import uuid

import psycopg

from server.kit.db import transaction
from server.picking import service
from server.picking.walk import DEFAULT_PICK_TIME_MODEL, PickFeatures
from tests.helpers import another_store

STORE = "BLR-KOR"


def _record(url: str, rows: list[tuple[int, int, int, float]], store: str = STORE) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for steps, changes, units, seconds in rows:
            conn.execute(
                "INSERT INTO pick_tasks (store_id, order_id, status, estimate_s, "
                "bin_steps, aisle_changes, units, duration_s, packed_at) VALUES "
                "(%s, %s, 'PACKED', 0, %s, %s, %s, %s, now())",
                (store, uuid.uuid4(), steps, changes, units, seconds),
            )


async def test_few_recordings_keep_the_default_and_enough_recalibrate(stack) -> None:
    # a slow store: base 60 s, 2 s per bin step, 20 s per aisle change, 8 s per unit
    truth = lambda s, c, u: 60 + 2 * s + 20 * c + 8 * u  # noqa: E731
    samples = [
        (s, c, u, truth(s, c, u)) for s in (5, 20, 40, 70) for c in (0, 1, 3) for u in (1, 4)
    ]
    _record(stack.database_url, samples[:5])
    service._models.clear()
    async with transaction(stack.sessions) as session:
        model = await service.pick_time_model(session, store_id=STORE)
    assert model == DEFAULT_PICK_TIME_MODEL  # 5 < 20 samples: not enough to trust
    _record(stack.database_url, samples[5:])
    service._models.clear()
    async with transaction(stack.sessions) as session:
        model = await service.pick_time_model(session, store_id=STORE)
    assert abs(model.features_s(PickFeatures(30, 2, 5)) - truth(30, 2, 5)) < 1.0


async def test_a_store_with_too_few_picks_of_its_own_learns_from_its_city(stack) -> None:
    truth = lambda s, c, u: 30 + 0.4 * s + 5 * c + 9 * u  # noqa: E731
    samples = [
        (s, c, u, truth(s, c, u)) for s in (5, 20, 40, 70) for c in (0, 1, 3) for u in (1, 4)
    ]
    other = another_store(stack.database_url, STORE)
    _record(stack.database_url, samples, store=other)  # picks elsewhere in Bengaluru
    _record(stack.database_url, samples[:3])  # a few of its own: too few to fit alone
    service._models.clear()
    async with transaction(stack.sessions) as session:
        model = await service.pick_time_model(session, store_id=STORE)
    assert abs(model.features_s(PickFeatures(30, 2, 5)) - truth(30, 2, 5)) < 1.0
