"""Snapshots of every picker screen (login, queue, pick list and a wrong item, short and
substitute, pack) with fixed data and a fixed clock, so the SLA countdowns and the pick
timer read the same on every run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from textual.pilot import Pilot

from picker_app.app import PickerApp
from picker_app.screens.exception import ShortScreen, SubstituteScreen
from picker_app.screens.login import LoginScreen
from picker_app.screens.pack import PackScreen
from picker_app.screens.pick import PickScreen
from picker_app.screens.queue import QueueScreen
from tests.helpers import SteppedClock, scanner_types, wait_for, wait_for_screen
from tests.picker_app.picker_fakes import FakePickingApi, fake_app, open_task
from tests.picker_app.picker_live import person_presses

SIZE = (100, 26)


def test_queue_snapshot(snap_compare: Callable[..., bool]) -> None:
    app, _ = fake_app(FakePickingApi())

    async def loaded(pilot: Pilot[Any]) -> None:
        await wait_for(pilot, lambda: isinstance(app.screen, QueueScreen) and app.screen.tasks)

    assert snap_compare(app, terminal_size=SIZE, run_before=loaded)


def test_pick_list_snapshot(snap_compare: Callable[..., bool]) -> None:
    app, _ = fake_app(FakePickingApi())

    async def claimed(pilot: Pilot[Any]) -> None:
        await open_task(pilot, app)

    assert snap_compare(app, terminal_size=SIZE, run_before=claimed)


def test_wrong_item_snapshot(snap_compare: Callable[..., bool]) -> None:
    app, clock = fake_app(FakePickingApi())

    async def wrong_scan(pilot: Pilot[Any]) -> None:
        screen = await open_task(pilot, app)
        await scanner_types(pilot, clock, "8901234567890")
        await wait_for(pilot, lambda: screen.feedback.kind == "error")
        await wait_for(pilot, lambda: screen.feedback.flashing is None)  # the red flash over

    assert snap_compare(app, terminal_size=SIZE, run_before=wrong_scan)


def test_login_snapshot(snap_compare: Callable[..., bool]) -> None:
    app, _ = fake_app(FakePickingApi(logged_in=False))

    async def shown(pilot: Pilot[Any]) -> None:
        await wait_for_screen(pilot, LoginScreen, what="login")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=shown)


async def milk_short(pilot: Pilot[Any], app: PickerApp, clock: SteppedClock) -> None:
    """The milk line reported short: the dialog asks how many were found."""
    screen = await open_task(pilot, app)
    await person_presses(pilot, clock, "down")
    await wait_for(pilot, lambda: getattr(screen.selected(), "sku_id", "") == "SKU00031")
    await person_presses(pilot, clock, "s")
    await wait_for_screen(pilot, ShortScreen, what="short dialog")
    await pilot.pause()


def test_short_snapshot(snap_compare: Callable[..., bool]) -> None:
    app, clock = fake_app(FakePickingApi())

    async def short(pilot: Pilot[Any]) -> None:
        await milk_short(pilot, app, clock)

    assert snap_compare(app, terminal_size=SIZE, run_before=short)


def test_substitute_snapshot(snap_compare: Callable[..., bool]) -> None:
    app, clock = fake_app(FakePickingApi())

    async def substitute(pilot: Pilot[Any]) -> None:
        await milk_short(pilot, app, clock)
        await pilot.press("enter")  # found: the one already scanned
        await wait_for_screen(pilot, SubstituteScreen, what="offers")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=substitute)


def test_waiting_on_customer_snapshot(snap_compare: Callable[..., bool]) -> None:
    """Store policy ask: the short milk line waits on the customer's answer."""
    app, clock = fake_app(FakePickingApi(policy="ask"))

    async def offered(pilot: Pilot[Any]) -> None:
        await milk_short(pilot, app, clock)
        await pilot.press("enter")  # found: the one already scanned
        screen = cast(PickScreen, app.screen_stack[-1])
        await wait_for(pilot, lambda: "offered to the customer" in screen.feedback.text)
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=offered)


def test_pack_snapshot(snap_compare: Callable[..., bool]) -> None:
    api = FakePickingApi()
    for ln in api.pick.lines:  # everything picked
        ln.picked_qty = ln.quantity
    app, clock = fake_app(api)

    async def packing(pilot: Pilot[Any]) -> None:
        await open_task(pilot, app)
        await person_presses(pilot, clock, "p")
        await wait_for_screen(pilot, PackScreen, what="pack")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=packing)
