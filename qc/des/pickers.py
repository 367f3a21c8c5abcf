"""Pickers: an idle picker is woken by a new task (push) or sees it at the next glance
(polling); claims through the server (earliest SLA first), walks the list in the order
the server gives it, scans every unit and packs (the server's scan and pack).

Walking is physical: the store is 8 aisles of 6 shelves x 4 bins; a picker walks bin by
bin, crosses between aisles at either end, and pays a fixed time per line, unit and pack.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Sequence

from qc.des.world import PickerSim, StoreSim, World
from server.kit.db import transaction
from server.kit.errors import NotFound
from server.picking import service as picking

AISLE_LENGTH = 25  # bin positions along an aisle, front (0) to back (25)


def _place(bin_code: str | None, aisles: dict[str, int]) -> tuple[int, int]:
    """(aisle index, position along the aisle) of a bin code such as ``C-03-2``."""
    if not bin_code:
        return (0, 0)
    aisle, shelf, slot = bin_code.split("-")
    index = aisles.setdefault(aisle, ord(aisle[0]) - ord("A"))
    return (index, (int(shelf) - 1) * 4 + int(slot))


def walk_steps(bins: Sequence[str | None]) -> tuple[int, int]:
    """Bin positions walked visiting ``bins`` in the given order from the packing station
    (front of the first aisle) and back, and how many times the picker changed aisle."""
    aisles: dict[str, int] = {}
    here, steps, changes = (0, 0), 0, 0
    for place in [*(_place(b, aisles) for b in bins), (0, 0)]:
        if place[0] == here[0]:
            steps += abs(place[1] - here[1])
        else:
            changes += 1
            front = here[1] + place[1]
            back = (AISLE_LENGTH - here[1]) + (AISLE_LENGTH - place[1])
            steps += min(front, back)
        here = place
    return steps, changes - 1


class Pickers:
    def __init__(self, world: World, on_packed: Callable[[StoreSim, uuid.UUID], None]) -> None:
        self.world = world
        self.on_packed = on_packed
        self.on_claimed: Callable[[StoreSim, uuid.UUID], None] = lambda s, o: None

    # --- work arrives -------------------------------------------------------------------
    def task_added(self, store: StoreSim) -> None:
        store.waiting_tasks += 1
        self._summon(store)

    def _summon(self, store: StoreSim) -> None:
        """Wake the idle picker who will see the new task first."""
        world, physics = self.world, self.world.config.physics
        idle = [
            p
            for p in store.pickers
            if p.on_shift and not p.leaving and p.task is None and not p.summoned
        ]
        if not idle or store.waiting_tasks <= sum(p.summoned for p in store.pickers):
            return
        now = world.now()
        if world.config.policies.push:
            picker, when = idle[0], now + physics.push_latency_s
        else:
            picker = min(
                idle,
                key=lambda p: (world.next_glance(now, p.phase_s, physics.picker_poll_s), p.index),
            )
            when = world.next_glance(now, picker.phase_s, physics.picker_poll_s)
        picker.summoned = True
        world.at(when, lambda: self.claim(picker))

    def shift_started(self, picker: PickerSim) -> None:
        store = self.world.stores[picker.store_id]
        picker.start_shift(self.world.now())
        if store.waiting_tasks > sum(p.summoned for p in store.pickers):
            picker.summoned = True
            self.world.at(self.world.now(), lambda: self.claim(picker))

    # --- a pick -----------------------------------------------------------------------------
    async def claim(self, picker: PickerSim) -> None:
        world = self.world
        store = world.stores[picker.store_id]
        picker.summoned = False
        if not picker.on_shift or picker.task is not None or store.waiting_tasks <= 0:
            return
        assert picker.user is not None
        now = world.clock.now()
        try:
            async with transaction(world.sessions) as session:
                task = await picking.claim_next(session, picker=picker.user, now=now)
                # the list as the server hands it over (QC_PICK_WALK_ORDER: the S-shaped
                # walk, or by bin code aisle after aisle), walked in that order
                lines = await picking.task_lines(
                    session,
                    task.store_id,
                    task.order_id,
                    walk_order=world.settings.pick_walk_order,
                )
        except NotFound:
            store.waiting_tasks = 0  # the queue is empty after all
            return
        store.waiting_tasks -= 1
        picker.task = task.order_id
        picker.busy(world.now())
        rng = random.Random(f"{world.config.seed}:pick:{task.order_id}")
        duration = self.pick_s(rng, [ln.bin_code for ln in lines], [ln.quantity for ln in lines])
        rec = world.orders.get(task.order_id)
        if rec is not None:
            rec.pick_s, rec.lines = duration, len(lines)
        world.count("picks")
        world.at(world.now() + duration, lambda: self.pack(picker, task.order_id))
        self.on_claimed(store, task.order_id)

    def pick_s(self, rng: random.Random, bins: Sequence[str | None], units: list[int]) -> float:
        """Seconds for a pick visiting ``bins`` in this order, ``units`` of each."""
        p = self.world.config.physics
        steps, changes = walk_steps(bins)
        return (
            rng.uniform(*p.pick_start_s)
            + steps * p.bin_step_s
            + sum(rng.uniform(*p.aisle_change_s) for _ in range(max(0, changes)))
            + sum(rng.uniform(*p.line_s) for _ in units)
            + sum(rng.uniform(*p.extra_unit_s) for u in units for _ in range(u - 1))
            + rng.uniform(*p.pack_s)
        )

    async def pack(self, picker: PickerSim, order_id: uuid.UUID) -> None:
        world = self.world
        store = world.stores[picker.store_id]
        assert picker.user is not None
        now = world.clock.now()
        async with transaction(world.sessions) as session:
            task = await picking.get_task(
                session, order_id=order_id, picker=picker.user, for_update=True
            )
            lines = await picking.task_lines(session, task.store_id, order_id)
            for line in lines:
                for n in range(line.picked_qty, line.quantity):
                    await picking.scan(
                        session,
                        task=task,
                        picker=picker.user,
                        scan_id=f"{order_id}:{line.sku_id}:{n}",
                        code=line.barcode,
                        now=now,
                    )
            units = sum(line.quantity for line in lines)  # scans count units, not quantities
            await picking.pack(
                session,
                task=task,
                picker=picker.user,
                bag_count=1 + max(0, units - 1) // 8,
                now=now,
            )
        picker.task = None
        picker.free(world.now())
        world.count("packed")
        self.on_packed(store, order_id)
        if picker.leaving:
            picker.end_shift(world.now())
        elif store.waiting_tasks > sum(p.summoned for p in store.pickers):
            picker.summoned = True
            world.at(world.now(), lambda: self.claim(picker))
