"""Snapshots of the queue and the pick list with fixed data and a fixed clock, so the SLA
countdowns and the pick timer read the same on every run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from textual.pilot import Pilot

from picker_app.screens.pick import PickScreen
from picker_app.screens.queue import QueueScreen
from tests.helpers import scanner_types, wait_for
from tests.picker_app.picker_fakes import FakePickingApi, fake_app, open_task

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
        screen = cast(PickScreen, await open_task(pilot, app))
        await scanner_types(pilot, clock, "8901234567890")
        await wait_for(pilot, lambda: screen.feedback.kind == "error")

    assert snap_compare(app, terminal_size=SIZE, run_before=wrong_scan)
