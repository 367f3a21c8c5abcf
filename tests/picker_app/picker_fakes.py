"""A scripted stand-in for the picking API and fixed data, for the app's offline tests and
snapshots (deterministic: a fixed clock and fixed answers)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

from textual.pilot import Pilot

from picker_app.app import PickerApp
from picker_app.screens.pick import PickScreen
from picker_app.screens.queue import QueueScreen
from scanners.symbology import ean13_check_digit
from shared.client import ApiError, ConnectionLost
from shared.enums import Role
from shared.schemas.identity import UserPublic
from shared.schemas.picking import (
    PackResult,
    PickLinePublic,
    PickList,
    PickTaskSummary,
    ScanResult,
    ShortPickResult,
    SubstituteOption,
)
from tests.fake_api import FakeApi
from tests.helpers import SteppedClock, wait_for_screen

T = TypeVar("T")
NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
ORDER = uuid.UUID("6340abe8-df3b-4a37-b901-b0005a1036a1")
PICKER = UserPublic(
    id=uuid.UUID("2e20657d-99e6-4304-b91f-55d4e1b7683a"),
    login="picker.kor.1",
    name="Koramangala Picker 1",
    role=Role.PICKER,
    store_id="BLR-KOR",
    city_id="BLR",
)


def fixed_clock() -> datetime:
    return NOW


def queue_rows() -> list[PickTaskSummary]:
    rows = [
        ("6340abe8-df3b-4a37-b901-b0005a1036a1", "WAITING", 75, 3, 4),
        ("8f1c2d3e-0000-4000-8000-000000000002", "WAITING", 260, 5, 9),
        ("a7b6c5d4-0000-4000-8000-000000000003", "PICKING", 540, 2, 2),
        ("0b0c0d0e-0000-4000-8000-000000000004", "WAITING", -30, 1, 1),
    ]
    return sorted(
        (
            PickTaskSummary(
                order_id=uuid.UUID(oid),
                store_id="BLR-KOR",
                status=status,
                sla_deadline=NOW + timedelta(seconds=left),
                seconds_left=left,
                lines=lines,
                units=units,
            )
            for oid, status, left, lines, units in rows
        ),
        key=lambda t: t.seconds_left or 0,
    )


def line(sku: str, name: str, qty: int, bin_code: str, seq: int, picked: int = 0) -> PickLinePublic:
    body = f"89000000{seq:04d}"  # a real EAN-13: 890 + 9 digits + check digit
    return PickLinePublic(
        sku_id=sku,
        name=name,
        pack_size=name.rsplit(" ", 2)[-2] + " " + name.rsplit(" ", 1)[-1],
        barcode=body + ean13_check_digit(body),
        quantity=qty,
        ordered_qty=qty,
        picked_qty=picked,
        status="PENDING",
        bin_code=bin_code,
        aisle=bin_code[0],
        walk_seq=seq,
    )


def pick_list() -> PickList:
    lines = [
        line("SKU00001", "Kisan Direct Hybrid Spinach 500 g", 2, "A-01-1", 1, picked=2),
        line("SKU00002", "Kisan Direct Premium Papaya 1 kg", 1, "A-01-2", 2),
        line("SKU00031", "Amul Taaza Toned Milk 1 l", 3, "C-02-4", 31, picked=1),
        line("SKU00077", "Britannia Good Day Cashew 200 g", 1, "F-05-2", 77),
    ]
    return PickList(
        order_id=ORDER,
        store_id="BLR-KOR",
        status="PICKING",
        picker_id=PICKER.id,
        sla_deadline=NOW + timedelta(seconds=75),
        estimate_s=95.0,
        claimed_at=NOW - timedelta(seconds=48),
        lines=lines,
    )


BANANA = line("SKU00011", "Fresho Robusta Banana 1 kg", 1, "B-03-1", 11)  # the substitute


class FakePickingApi(FakeApi):
    """The picking API; ``lose_answers`` loses the answers of that many applied requests."""

    ACCOUNT = PICKER
    PIN = "1234"
    NOW = NOW

    def __init__(self, *, logged_in: bool = True, policy: str = "substitute") -> None:
        super().__init__(logged_in=logged_in)
        self.policy = policy  # the store's substitution policy; "ask": the customer chooses
        self.answer_s = 120  # policy ask: the customer's time to answer
        self.pick = pick_list()
        self.tasks = queue_rows()
        self.seen_scans: dict[str, ScanResult] = {}
        self.lose_answers = 0  # requests applied whose answer is then lost on the way back

    def _answer(self, answer: T) -> T:
        if self.lose_answers:
            self.lose_answers -= 1
            raise ConnectionLost("ReadTimeout: the answer never came")
        return answer

    async def queue(self, store_id: str) -> list[PickTaskSummary]:
        self._call("queue", store_id)
        return list(self.tasks)

    async def claim(self) -> PickList:
        self._call("claim")
        return self.pick.model_copy(deep=True)

    async def pick_list(self, order_id: uuid.UUID | str) -> PickList:
        self._call("pick_list", str(order_id))
        return self.pick.model_copy(deep=True)

    async def scan(self, order_id: uuid.UUID | str, *, scan_id: str, code: str) -> ScanResult:
        self._call("scan", (scan_id, code))
        if scan_id in self.seen_scans:
            return self.seen_scans[scan_id].model_copy(update={"replayed": True})
        ln = next((x for x in self.pick.lines if x.barcode == code), None)
        if ln is None:
            raise ApiError(409, "wrong_item", f"{code} is not in this order")
        if ln.picked_qty >= ln.quantity:
            raise ApiError(409, "over_pick", f"all {ln.quantity} of {ln.name} are already picked")
        ln.picked_qty += 1
        result = ScanResult(
            sku_id=ln.sku_id,
            picked_qty=ln.picked_qty,
            quantity=ln.quantity,
            line_complete=ln.picked_qty >= ln.quantity,
            order_complete=all(x.picked_qty >= x.quantity for x in self.pick.lines),
        )
        self.seen_scans[scan_id] = result
        return self._answer(result)

    async def short_pick(
        self, order_id: uuid.UUID | str, *, sku_id: str, found_qty: int, reason: str = "missing"
    ) -> ShortPickResult:
        self._call("short_pick", (sku_id, found_qty, reason))
        ln = next(x for x in self.pick.lines if x.sku_id == sku_id)
        assert ln.ordered_qty is not None
        if not found_qty == ln.quantity < ln.ordered_qty:  # else: already applied
            ln.quantity = found_qty
        offers = [
            SubstituteOption(
                sku_id=BANANA.sku_id,
                name=BANANA.name,
                pack_size=BANANA.pack_size,
                price_paise=8700,
                available_qty=65,
            )
        ]
        if self.policy == "ask":
            ln.awaiting_customer_until = NOW + timedelta(seconds=self.answer_s)
        return self._answer(
            ShortPickResult(
                sku_id=sku_id,
                short_qty=ln.ordered_qty - found_qty,
                policy=self.policy,
                substitutes=offers,
                awaiting_customer_until=ln.awaiting_customer_until,
            )
        )

    def customer_answers(self, sku_id: str, *, accept: bool) -> dict[str, Any]:
        """The customer's answer as the server applies it and pushes it on /ws/picker:
        the banana in place of the short units, or the line left refunded."""
        ln = next(x for x in self.pick.lines if x.sku_id == sku_id)
        assert ln.ordered_qty is not None
        ln.awaiting_customer_until = None
        short = ln.ordered_qty - ln.quantity
        if accept:
            ln.substitute_sku = BANANA.sku_id
            self.pick.lines.insert(
                self.pick.lines.index(ln) + 1,
                BANANA.model_copy(update={"quantity": short, "ordered_qty": short}),
            )
        return {
            "type": "picking.substitution_resolved",
            "order_id": str(self.pick.order_id),
            "store_id": self.pick.store_id,
            "sku_id": sku_id,
            "status": "SUBSTITUTED" if accept else "REFUNDED",
            "chosen_sku": BANANA.sku_id if accept else None,
            "quantity": short,
            "decided_by": "customer",
        }

    async def substitute(
        self, order_id: uuid.UUID | str, *, sku_id: str, substitute_sku: str, quantity: int
    ) -> PickList:
        self._call("substitute", (sku_id, substitute_sku, quantity))
        ln = next(x for x in self.pick.lines if x.sku_id == sku_id)
        placed = next((x for x in self.pick.lines if x.sku_id == substitute_sku), None)
        if placed is None or ln.substitute_sku != substitute_sku:  # else: already in place
            if ln.substitute_sku is not None or placed is not None:
                raise ApiError(409, "already_substituted", "this line already has a substitute")
            ln.substitute_sku = substitute_sku
            index = self.pick.lines.index(ln) + 1
            self.pick.lines.insert(
                index, BANANA.model_copy(update={"quantity": quantity, "ordered_qty": quantity})
            )
        return self._answer(self.pick.model_copy(deep=True))

    async def pack(self, order_id: uuid.UUID | str, *, bag_count: int) -> PackResult:
        self._call("pack", bag_count)
        return PackResult(
            order_id=ORDER,
            status="PACKED",
            bag_label="QC-KOR-1A2B3C",
            bag_count=bag_count,
            pick_duration_s=95.0,
        )


def fake_app(api: FakePickingApi, **kwargs: object) -> tuple[PickerApp, SteppedClock]:
    clock = SteppedClock()
    options: dict[str, object] = {
        "store": "BLR-KOR",
        "clock": fixed_clock,
        "monotonic": clock,
        "retry_delays": (0.02,),
    }
    app = PickerApp(client=api, **(options | kwargs))  # type: ignore[arg-type]
    return app, clock


async def open_task(pilot: Pilot[Any], app: PickerApp) -> PickScreen:
    await wait_for_screen(pilot, QueueScreen, what="queue")
    await pilot.press("enter")
    await wait_for_screen(pilot, PickScreen, what="pick screen")
    return cast(PickScreen, app.screen)


def scans_sent(api: FakePickingApi) -> list[tuple[str, str]]:
    return [cast(tuple[str, str], arg) for arg in api.called("scan")]
