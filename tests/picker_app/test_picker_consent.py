"""Substitution asked of the customer (store policy ``ask``, issue 18 point 8), the
picker's side: the short line waits on the customer's answer while the picker goes on
with the other lines, and resolves when the answer is pushed on the work socket."""

from __future__ import annotations

from typing import cast

import psycopg

from picker_app.app import PickerApp
from picker_app.messages import WorkPushed
from picker_app.screens.exception import ShortScreen, SubstituteScreen
from picker_app.screens.pick import WAIT_RECHECK_S, PickScreen
from picker_app.widgets.pick_lines import PickLineRow
from server.events.relay import relay_once
from shared.client.customer import CustomerClient
from tests.helpers import SteppedClock, scanner_types, wait_for, wait_for_screen
from tests.picker_app.picker_fakes import BANANA, FakePickingApi, fake_app, open_task
from tests.picker_app.picker_live import (
    CUSTOMER,
    STORE,
    claim,
    in_stock_skus,
    log_in,
    person_presses,
    picked_is,
    place_order,
)

MILK, PAPAYA = "SKU00031", "SKU00002"


def row_state(screen: PickScreen, sku_id: str) -> str:
    row = next(r for r in screen.query(PickLineRow) if r.view.line.sku_id == sku_id)
    return row.view.state()


async def short_milk(pilot, app: PickerApp, clock: SteppedClock) -> PickScreen:
    screen = await open_task(pilot, app)
    await person_presses(pilot, clock, "down")
    await wait_for(pilot, lambda: getattr(screen.selected(), "sku_id", "") == MILK)
    await person_presses(pilot, clock, "s")
    await wait_for_screen(pilot, ShortScreen, what="short dialog")
    await pilot.press("enter")  # found: the one already scanned
    await wait_for(pilot, lambda: "offered to the customer" in screen.feedback.text)
    return screen


async def test_the_picker_picks_on_while_a_line_waits_and_it_resolves_when_pushed() -> None:
    api = FakePickingApi(policy="ask")
    app, clock = fake_app(api)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await short_milk(pilot, app, clock)
        # no substitute dialog for the picker: the customer chooses
        assert not isinstance(app.screen, SubstituteScreen) and app.screen is screen
        assert row_state(screen, MILK) == "⌛ ask customer"
        # no second short on the waiting line: it is the customer's turn
        await person_presses(pilot, clock, "down")
        await wait_for(pilot, lambda: getattr(screen.selected(), "sku_id", "") == MILK)
        await person_presses(pilot, clock, "s")
        await wait_for(pilot, lambda: "waits on the customer" in screen.feedback.text)
        assert not isinstance(app.screen, ShortScreen)
        # the rest of the pick goes on: the papaya is scanned and counted meanwhile
        papaya = screen.line(PAPAYA)
        assert papaya is not None
        await scanner_types(pilot, clock, papaya.barcode)
        await wait_for(pilot, picked_is(screen, PAPAYA, 1), what="papaya counted")
        assert row_state(screen, MILK) == "⌛ ask customer"
        # everything else picked, packing still waits on the answer
        for ln in list(screen.pick.lines):
            for _ in range(ln.quantity - ln.picked_qty):
                await scanner_types(pilot, clock, ln.barcode)
            await wait_for(pilot, picked_is(screen, ln.sku_id, ln.quantity))
        await person_presses(pilot, clock, "p")
        await wait_for(pilot, lambda: "Waiting on the customer" in screen.feedback.text)
        assert not api.called("pack")

        # the answer arrives on the work socket: the substitute line appears to be picked
        app.post_message(WorkPushed(api.customer_answers(MILK, accept=True)))
        await wait_for(pilot, lambda: screen.feedback.kind == "ok", what="resolved")
        assert "customer — substitute 2 x" in screen.feedback.text
        assert screen.line(BANANA.sku_id) is not None
        assert row_state(screen, MILK) != "⌛ ask customer"
        assert screen.selected() is not None
        banana = screen.line(BANANA.sku_id)
        assert banana is not None and banana.quantity == 2


async def test_a_refusal_pushed_drops_the_line_refunded() -> None:
    api = FakePickingApi(policy="ask")
    app, clock = fake_app(api)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await short_milk(pilot, app, clock)
        app.post_message(WorkPushed(api.customer_answers(MILK, accept=False)))
        await wait_for(pilot, lambda: "refunded" in screen.feedback.text, what="refused")
        assert screen.line(BANANA.sku_id) is None
        assert "short 2" in row_state(screen, MILK)
        # an answer about another picker's order changes nothing here
        other = api.customer_answers(PAPAYA, accept=False) | {"order_id": "someone-else"}
        app.post_message(WorkPushed(other))
        await pilot.pause()
        assert "refunded" in screen.feedback.text and screen.line(PAPAYA) is not None


async def test_a_missed_push_is_caught_up_once_the_deadline_is_past() -> None:
    api = FakePickingApi(policy="ask")
    api.answer_s = -10  # the deadline is already past on the server's clock
    app, clock = fake_app(api)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await short_milk(pilot, app, clock)
        api.customer_answers(MILK, accept=True)  # decided, but the push never came
        clock.advance(WAIT_RECHECK_S)  # a terminal asks again at most this often
        await wait_for(pilot, lambda: screen.line(BANANA.sku_id) is not None, what="caught up")
        assert api.called("pick_list")


async def test_the_answer_reaches_the_picker_over_the_real_work_socket(
    city, live_server, stack
) -> None:
    """Against the server: the customer accepts over REST, the relay publishes, the
    terminal's /ws/picker delivers it and the substitute line shows up to be picked."""
    with psycopg.connect(city.database_url) as conn:
        conn.execute(
            "UPDATE dark_stores SET substitution_policy = 'ask' WHERE store_id = %s", (STORE,)
        )
    short_sku, other_sku = in_stock_skus(city.database_url, 2, substitutable=True)
    order_id = await place_order(live_server.url, {short_sku: 2, other_sku: 1})
    app = PickerApp(
        server_url=live_server.url, store=STORE, monotonic=SteppedClock(), queue_poll_s=0.2
    )
    async with app.run_test(size=(110, 34)) as pilot:
        await log_in(pilot, app)
        await wait_for(pilot, lambda: app.ctx.pushed, what="work socket up")
        screen = await claim(pilot, app, order_id)
        result = await app.client.short_pick(order_id, sku_id=short_sku, found_qty=0)
        assert result.awaiting_customer_until is not None
        await screen.reload()
        assert row_state(screen, short_sku) == "⌛ ask customer"
        async with CustomerClient(live_server.url) as customer:
            await customer.login(*CUSTOMER)
            answered = await customer.answer_substitution(order_id, short_sku, answer="accept")
        (offer,) = answered.substitutions
        assert offer.status == "SUBSTITUTED" and offer.decided_by == "customer"
        chosen = cast(str, offer.chosen_sku)
        await relay_once(stack.engine, stack.redis)
        await wait_for(pilot, lambda: "substitute 2 x" in screen.feedback.text, what="pushed")
        assert screen.line(chosen) is not None and "customer —" in screen.feedback.text
        assert row_state(screen, short_sku) != "⌛ ask customer"
