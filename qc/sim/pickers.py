"""Pickers: claim the most urgent order, walk the aisles in path order, scan every unit
(grabbing the wrong product now and then), report shorts, take substitutes as the store's
policy allows (a store that asks its customers: the answer, or the fallback, first), pack."""

from __future__ import annotations

import asyncio
import uuid

from qc.sim.world import Login, World
from scanners.symbology import ean13_check_digit
from shared.client import ApiError, ConnectionLost, PickerClient
from shared.schemas.picking import PickLinePublic, PickList

# simulated seconds; the physical store of the deterministic simulation (qc/des Physics):
# a 5-line pick with its pack takes 1.5-2.5 minutes
START_S = (10.0, 20.0)  # read the list, grab a basket
STEP_S = 0.35  # per bin position along the walk
AISLE_CHANGE_S = (4.0, 7.0)
LINE_S = (7.0, 11.0)  # find the item on the shelf, scan the first unit
EXTRA_UNIT_S = (1.5, 3.0)  # each further unit of the line
PACK_S = (15.0, 25.0)
UNITS_PER_BAG = 8
ANSWER_LOOK_S = 15.0  # a picker waiting on a customer's answer looks at the list this often


class Picker:
    def __init__(self, world: World, login: Login[PickerClient], store_id: str) -> None:
        self.world = world
        self.login = login
        self.store_id = store_id
        self.rng = world.rng(login.login)

    async def run(self) -> None:
        world = self.world
        bell = world.bells[self.store_id]
        while True:
            rung = bell.rung
            try:
                client = await self.login.fresh(world.clock)
                task = await client.claim()
            except ApiError as exc:
                if exc.code != "queue_empty":
                    world.error("picker", exc)
                await bell.wait(world.real(world.config.queue_poll_s), since=rung)
                continue
            except ConnectionLost as exc:
                world.error("picker", exc)
                await world.sleep(10)
                continue
            try:
                await self._pick(client, task)
            except asyncio.CancelledError:
                raise
            except (ApiError, ConnectionLost) as exc:
                world.error("picker", exc)
                await world.sleep(10)

    def _wrong_code(self, task: PickList) -> str:
        """The neighbour's product (a barcode seen before), else an in-store label."""
        mine = {ln.barcode for ln in task.lines}
        seen = [b for b in self.world.barcodes[self.store_id] if b not in mine]
        if seen:
            return self.rng.choice(seen)
        body = "20" + "".join(str(self.rng.randint(0, 9)) for _ in range(10))
        return body + ean13_check_digit(body)

    async def _scan(
        self, client: PickerClient, task: PickList, line: PickLinePublic, n: int
    ) -> None:
        """Scan ``n`` units of the line: the first is in hand, each further one is reached."""
        world, rng = self.world, self.rng
        for unit in range(n):
            if unit:
                await world.sleep(rng.uniform(*EXTRA_UNIT_S))
            await client.scan(task.order_id, scan_id=uuid.uuid4().hex, code=line.barcode)

    async def _pick(self, client: PickerClient, task: PickList) -> None:
        world, rng, config = self.world, self.rng, self.world.config
        seen = world.barcodes[self.store_id]
        seen.extend(ln.barcode for ln in task.lines if ln.barcode not in seen)
        del seen[:-500]
        await world.sleep(rng.uniform(*START_S))
        position, aisle, asked = 0, None, False
        for line in sorted(task.lines, key=lambda ln: ln.walk_seq or 0):
            left = line.quantity - line.picked_qty
            if left <= 0:
                continue
            steps = abs((line.walk_seq or position) - position)
            walk = steps * STEP_S
            if aisle and line.aisle != aisle:
                walk += rng.uniform(*AISLE_CHANGE_S)
            await world.sleep(walk + rng.uniform(*LINE_S))
            position, aisle = line.walk_seq or position, line.aisle
            if rng.random() < config.wrong_scan_rate:
                try:
                    await client.scan(
                        task.order_id, scan_id=uuid.uuid4().hex, code=self._wrong_code(task)
                    )
                    world.count("wrong_scans_accepted")  # should never happen
                except ApiError as exc:
                    if exc.code != "wrong_item":
                        raise
                    world.count("wrong_scans")
                await world.sleep(rng.uniform(*EXTRA_UNIT_S))  # put it back, take the right one
            short = rng.random() < config.short_pick_rate
            found = line.picked_qty + (rng.randint(0, left - 1) if short else left)
            await self._scan(client, task, line, found - line.picked_qty)
            if short:
                asked = await self._short(client, task, line, found) or asked
        if asked:
            await self._answered(client, task)
        await world.sleep(rng.uniform(*PACK_S))
        units = sum(ln.quantity for ln in (await client.pick_list(task.order_id)).lines)
        packed = await client.pack(task.order_id, bag_count=1 + max(0, units - 1) // UNITS_PER_BAG)
        world.count("orders_packed")
        await world.shelves[self.store_id].put(str(task.order_id), packed.bag_label)

    async def _short(
        self, client: PickerClient, task: PickList, line: PickLinePublic, found: int
    ) -> bool:
        """Report the line short and substitute it as the store's policy allows; whether
        the customer was asked instead."""
        world, rng = self.world, self.rng
        reason = "damaged" if rng.random() < 0.25 else "missing"
        result = await client.short_pick(
            task.order_id, sku_id=line.sku_id, found_qty=found, reason=reason
        )
        world.count("short_picks")
        if result.policy != "substitute":
            # "never": the line is refunded; "ask": the customer was offered the
            # substitutes and answers (else the store's fallback), ``_answered`` waits
            return result.awaiting_customer_until is not None
        offers = [o for o in result.substitutes if o.available_qty > 0]
        if not offers or rng.random() >= world.config.substitute_rate:
            return False
        offer = offers[0]
        qty = min(result.short_qty, offer.available_qty)
        try:
            updated = await client.substitute(
                task.order_id, sku_id=line.sku_id, substitute_sku=offer.sku_id, quantity=qty
            )
        except ApiError as exc:
            # taken by someone else a moment ago, or no longer a fit: leave the line short
            if exc.code not in ("insufficient_stock", "not_a_substitute", "already_substituted"):
                raise
            world.count("substitutes_refused")
            return False
        world.count("substitutes")
        sub = next(ln for ln in updated.lines if ln.sku_id == offer.sku_id)
        await world.sleep(rng.uniform(15, 40))  # fetch it from its own aisle
        await self._scan(client, updated, sub, sub.quantity - sub.picked_qty)
        return False

    async def _answered(self, client: PickerClient, task: PickList) -> None:
        """Lines offered to the customer (policy "ask") wait on their answer, or on the
        store's fallback once it is due (the server's ``substitution-answers`` loop); a
        substitute either put in the order is then fetched and scanned, before the pack
        (which a waiting line refuses)."""
        world, rng = self.world, self.rng
        while True:
            current = await client.pick_list(task.order_id)
            if not any(ln.awaiting_customer_until for ln in current.lines):
                break
            await world.sleep(ANSWER_LOOK_S)
        for line in current.lines:
            if line.picked_qty < line.quantity:
                await world.sleep(rng.uniform(15, 40))  # fetch it from its own aisle
                await self._scan(client, current, line, line.quantity - line.picked_qty)
