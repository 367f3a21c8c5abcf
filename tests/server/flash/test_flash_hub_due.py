"""The hub visits only the sockets due a look (``hub._Due``), not every socket on every
refresh; which ones fall due, and when, is what ``Watcher.due_at`` said before. And it
tells a big line a turn's share at a time, so the process's requests run in between."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from server.flash.hub import (
    BEYOND_REACH_EVERY_S,
    FAR_BACK_PER_S,
    NEAR_FRONT,
    PUSHES_PER_TURN,
    Watcher,
    _Due,
    _Line,
)
from server.flash.queue import within_reach
from server.kit.resources import resources_of


def _looked(due: _Due, w: Watcher, *, position: int | None, at: float) -> None:
    w.position, w.told_at = position, at
    due.file(w)


def test_far_back_sockets_wait_their_interval_near_ones_every_refresh() -> None:
    due = _Due()
    far, near, new = Watcher("far"), Watcher("near"), Watcher("new")
    for w in (far, near, new):
        due.add(w)
    assert set(due.take(0.0, set())) == {far, near, new}  # new sockets: at once
    _looked(due, far, position=4000, at=0.0)  # 4000 / 200 = every 20 s, at most 10
    _looked(due, near, position=NEAR_FRONT, at=0.0)
    assert set(due.take(5.0, set())) == {near, new}  # new: not yet told a position
    assert set(due.take(9.9, set())) == {near, new}
    assert set(due.take(10.0, set())) == {far, near, new}
    assert set(due.take(10.5, set())) == {near, new}  # taken once, until filed again
    _looked(due, far, position=2 * FAR_BACK_PER_S, at=10.0)  # now every 2 s
    assert far not in due.take(11.9, set())
    assert far in due.take(12.0, set())


def test_named_admitted_customers_are_looked_up_at_once_and_gone_ones_never() -> None:
    due = _Due()
    a, b = Watcher("a"), Watcher("b")
    for w in (a, b):
        due.add(w)
        _looked(due, w, position=5000, at=0.0)
    assert due.take(1.0, set()) == []
    assert due.take(1.0, {"a"}) == [a]
    _looked(due, a, position=4999, at=1.0)  # due again at 11 s, b at 10 s
    due.remove(b)
    assert due.take(10.5, set()) == []  # b's entry is stale
    assert due.take(11.0, set()) == [a]
    _looked(due, a, position=4998, at=11.0)
    a.push({"type": "closed", "reason": "sold_out"})  # final: never looked up again
    assert a.done and due.take(100.0, {"a"}) == []
    due.file(a)
    assert not due.every and not due.filed


def test_sockets_behind_every_unit_left_hear_less_often() -> None:
    due = _Due()
    w = Watcher("behind")
    due.add(w)
    w.beyond_reach = True  # as the last look found it: behind every unit left
    _looked(due, w, position=4000, at=0.0)
    assert due.take(10.0, set()) == []
    assert due.take(BEYOND_REACH_EVERY_S, set()) == [w]
    w.beyond_reach = False  # the line moved up to it: back to position / 200 s
    _looked(due, w, position=1000, at=30.0)
    assert due.take(34.9, set()) == [] and due.take(35.0, set()) == [w]


def test_a_unit_is_within_reach_of_the_units_left_a_quarter_more_and_the_slots() -> None:
    assert within_reach(1350, units_left=1000, max_slots=100)
    assert not within_reach(1351, units_left=1000, max_slots=100)
    assert not within_reach(101, units_left=0, max_slots=100)


async def test_a_close_tells_a_big_line_a_turns_share_at_a_time() -> None:
    """Telling thousands of sockets in one turn held the loop ~100-400 ms under the crowd;
    the close now lets the loop turn every ``PUSHES_PER_TURN`` sockets."""
    line = _Line.__new__(_Line)  # its listener alone: no subscription needed
    line.watchers = {Watcher(f"c{i}") for i in range(3 * PUSHES_PER_TURN + 1)}
    line.closed, line.admitted, line.dirty = None, set(), asyncio.Event()
    told_when_others_ran: list[int] = []

    async def one_close() -> AsyncIterator[str]:
        yield json.dumps({"type": "closed", "reason": "sold_out"})

    async def other_requests() -> None:  # what else the process runs meanwhile
        for _ in range(10):
            told_when_others_ran.append(sum(w.done for w in line.watchers))
            await asyncio.sleep(0)

    others = asyncio.create_task(other_requests())
    await line._listen(one_close())
    await others
    everyone = len(line.watchers)
    assert all(w.inbox.get_nowait()["type"] == "closed" for w in line.watchers)
    assert any(0 < told < everyone for told in told_when_others_ran), told_when_others_ran


async def test_a_refresh_tells_its_sockets_a_turns_share_at_a_time(city, app) -> None:
    """The same for a refresh's look-ups: here every socket of a line Redis does not hold
    (so each hears it closed), and the loop turns while they are told."""
    line = _Line.__new__(_Line)  # its look-up alone, on the app's hub and Valkey
    line.hub, line.sale_id, line.store_id = resources_of(app).flash_hub, "no-sale", "BLR-KOR"
    watchers = [Watcher(f"c{i}") for i in range(3 * PUSHES_PER_TURN + 1)]
    told_when_others_ran: list[int] = []
    looked_up = asyncio.Event()

    async def other_requests() -> None:  # a turn of its own each time, to the end
        while not looked_up.is_set():
            told_when_others_ran.append(sum(w.done for w in watchers))
            await asyncio.sleep(0)

    others = asyncio.create_task(other_requests())
    await line._look_up(watchers, now=0.0)
    looked_up.set()
    await others
    assert all(w.inbox.get_nowait()["type"] == "closed" for w in watchers)
    assert any(0 < told < len(watchers) for told in told_when_others_ran), told_when_others_ran
