"""The picker app end to end against a live server: log in, queue, claim, scan in walking
order with a (simulated) USB scanner, a wrong item refused, short + substitute, pack."""

from __future__ import annotations

from typing import cast

import pytest
from textual.widgets import Input, OptionList, Static

from picker_app.app import PickerApp
from picker_app.screens.exception import ShortScreen, SubstituteScreen
from picker_app.screens.queue import QueueScreen
from picker_app.widgets.pick_lines import PickLines
from tests.helpers import SteppedClock, scanner_types, wait_for, wait_for_screen
from tests.picker_app.picker_live import (
    PICKER_LOGIN,
    STORE,
    Bells,
    barcode_not_in,
    claim,
    in_stock_skus,
    log_in,
    order_as_customer,
    pack,
    person_presses,
    picked,
    picked_in_db,
    picked_is,
    place_order,
)


@pytest.mark.slow
async def test_log_in_claim_scan_in_walking_order_refuse_wrong_item_and_pack(
    city, live_server
) -> None:
    skus = in_stock_skus(city.database_url, 3)
    order_id = await place_order(live_server.url, {skus[0]: 2, skus[1]: 1, skus[2]: 1})
    clock = SteppedClock()
    app = PickerApp(server_url=live_server.url, store=STORE, monotonic=clock, queue_poll_s=0.2)
    bells = Bells(app)
    async with app.run_test(size=(110, 34)) as pilot:
        queue = await log_in(pilot, app)
        assert app.client.user is not None and app.client.user.login == PICKER_LOGIN
        # the queue loads after the screen shows (slowly on a busy machine)
        await wait_for(pilot, lambda: [str(t.order_id) for t in queue.tasks] == [order_id])
        screen = await claim(pilot, app, order_id)
        lines = screen.pick.lines
        seqs = [ln.walk_seq or 0 for ln in lines]
        assert seqs == sorted(seqs) and {ln.sku_id for ln in lines} == set(skus)
        assert screen.query_one(PickLines).cursor == 0

        # a wrong item: refused with the bell and red feedback, nothing sent or counted
        await scanner_types(pilot, clock, barcode_not_in(city.database_url, skus))
        await wait_for(pilot, lambda: screen.feedback.kind == "error", what="refusal")
        assert "WRONG ITEM" in screen.feedback.text and bells.count == 1
        assert len(app.outbox) == 0
        # the server's own refusal reaches the screen the same way
        app.ctx.scans.submit(
            order_id=order_id, code=barcode_not_in(city.database_url, skus), source="t"
        )
        await wait_for(pilot, lambda: bells.count == 2, what="server refusal")
        assert "WRONG ITEM" in screen.feedback.text and "Next:" in screen.feedback.text
        assert picked_in_db(city.database_url, order_id) == dict.fromkeys(skus, 0)

        # scan everything in walking order; the highlight follows the path
        for index, line in enumerate(list(lines)):
            assert screen.query_one(PickLines).cursor == index
            for n in range(1, line.quantity + 1):
                await scanner_types(pilot, clock, line.barcode)
                await wait_for(pilot, picked_is(screen, line.sku_id, n))
                assert screen.feedback.kind == "ok"
                assert f"{n}/{line.quantity}" in screen.feedback.text
        assert "ALL PICKED" in screen.feedback.text
        assert picked_in_db(city.database_url, order_id) == {skus[0]: 2, skus[1]: 1, skus[2]: 1}

        # one too many: refused on the spot, the count stays
        await scanner_types(pilot, clock, lines[0].barcode)
        await wait_for(pilot, lambda: bells.count == 3, what="over-pick refusal")
        assert "TOO MANY" in screen.feedback.text
        assert picked_in_db(city.database_url, order_id)[lines[0].sku_id] == lines[0].quantity

        packed = await pack(pilot, app, clock)
        assert packed.result is not None and packed.result.bag_label.startswith("QC-KOR-")
        assert app.packed == [packed.result]
        assert (await order_as_customer(live_server.url, order_id))["status"] == "PACKED"

        # Enter: on to the next task - the queue is empty now
        await pilot.press("enter")
        await wait_for_screen(pilot, QueueScreen, what="back to queue")
        status = app.screen.query_one("#queue-status", Static)
        await wait_for(
            pilot,
            lambda: "Nothing to pick" in str(status.content) or "No orders" in str(status.content),
            what="empty queue",
        )
        assert cast(QueueScreen, app.screen).tasks == []
        assert app.pick_screen is None


@pytest.mark.slow
async def test_short_pick_with_a_substitute_then_pack(city, live_server) -> None:
    short_sku, other = in_stock_skus(city.database_url, 2, substitutable=True)
    order_id = await place_order(live_server.url, {short_sku: 2, other: 1})
    clock = SteppedClock()
    app = PickerApp(server_url=live_server.url, store=STORE, monotonic=clock, queue_poll_s=0.2)
    async with app.run_test(size=(110, 34)) as pilot:
        await log_in(pilot, app)
        screen = await claim(pilot, app, order_id)
        target = next(i for i, ln in enumerate(screen.pick.lines) if ln.sku_id == short_sku)
        for _ in range(target):
            await person_presses(pilot, clock, "down")
        await wait_for(pilot, lambda: screen.query_one(PickLines).cursor == target)

        # scan one of the two, then find the shelf empty: short 1 (damaged), substitute
        await scanner_types(pilot, clock, screen.pick.lines[target].barcode)
        await wait_for(pilot, lambda: picked(screen, short_sku) == 1, what="first unit")
        await person_presses(pilot, clock, "d")
        await wait_for_screen(pilot, ShortScreen, what="short dialog")
        dialog = cast(ShortScreen, app.screen)
        assert dialog.reason == "damaged"
        # found = the one already scanned, in the field once the dialog has mounted
        await wait_for(pilot, lambda: dialog.query_one(Input).has_focus, what="found field")
        assert dialog.query_one(Input).value == "1"
        await pilot.press("enter")
        await wait_for_screen(pilot, SubstituteScreen, what="subs")
        subs = cast(SubstituteScreen, app.screen)
        offers = subs.short.substitutes
        assert subs.short.short_qty == 1 and subs.short.policy == "substitute" and offers
        # a key before the list has focus (its screen mounting) would go nowhere
        await wait_for(pilot, lambda: subs.query_one(OptionList).has_focus, what="offers")
        assert subs.query_one(OptionList).option_count == len(offers)
        await pilot.press("enter")  # the best match
        await wait_for(
            pilot,
            lambda: any(ln.sku_id == offers[0].sku_id for ln in screen.pick.lines),
            what="substitute line",
        )
        assert app.screen is screen and screen.feedback.kind == "ok"
        original = next(ln for ln in screen.pick.lines if ln.sku_id == short_sku)
        assert original.quantity == 1 and original.substitute_sku == offers[0].sku_id
        assert screen.shorts == {short_sku: 1}

        # the substitute is a line like any other: scan it, and the rest
        for line in list(screen.pick.lines):
            for n in range(line.picked_qty + 1, line.quantity + 1):
                await scanner_types(pilot, clock, line.barcode)
                await wait_for(pilot, picked_is(screen, line.sku_id, n))
        packed = await pack(pilot, app, clock)
        assert packed.result is not None
    order = await order_as_customer(live_server.url, order_id)
    assert order["status"] == "PACKED"
    items = {i["sku_id"]: i for i in order["items"]}
    assert items[short_sku]["status"] == "SUBSTITUTED"
    assert items[short_sku]["substitute_sku"] == offers[0].sku_id
    assert items[offers[0].sku_id]["status"] == "FULFILLED"
    assert items[offers[0].sku_id]["picked_qty"] == 1
    assert items[other]["status"] == "FULFILLED"
