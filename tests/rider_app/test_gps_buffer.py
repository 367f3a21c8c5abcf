"""The offline buffer on a real filesystem. A "restart" is a new OfflineBuffer on the same path;
a "crash" is an exception thrown from inside the buffer's own disk writes."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from rider_app.gps import buffer as buffer_module
from rider_app.gps.buffer import OfflineBuffer
from rider_app.gps.fix import Fix
from tests.rider_app.gps_helpers import track


class Server:
    """The batch endpoint: records what it acknowledged; can go offline after some batches."""

    def __init__(self, fail_after_batches: int | None = None) -> None:
        self.batches: list[list[Fix]] = []
        self.fail_after_batches = fail_after_batches

    @property
    def received(self) -> list[Fix]:
        return [fix for batch in self.batches for fix in batch]

    async def send_batch(self, fixes: Sequence[Fix]) -> None:
        if self.fail_after_batches is not None and len(self.batches) >= self.fail_after_batches:
            raise ConnectionError("network unreachable")
        self.batches.append(list(fixes))


def filled(tmp_path: Path, count: int) -> tuple[Path, OfflineBuffer, list[Fix]]:
    """A buffer holding ``count`` fixes (in order)."""
    path = tmp_path / "offline.jsonl"
    buffer = OfflineBuffer(path)
    fixes = track(count)
    for fix in fixes:
        buffer.append(fix)
    return path, buffer, fixes


def test_appended_fixes_survive_a_restart_in_order(tmp_path: Path) -> None:
    path = tmp_path / "gps" / "offline.jsonl"
    path.parent.mkdir()
    fixes = track(5)
    buffer = OfflineBuffer(path)
    for fix in fixes:
        buffer.append(fix)
    assert len(buffer) == 5
    lines = path.read_text().splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [1, 2, 3, 4, 5]
    assert Fix.from_dict(json.loads(lines[0])["fix"]) == fixes[0]
    assert path.stat().st_mode & 0o077 == 0  # location history is private to the app

    assert OfflineBuffer(path).pending() == fixes


async def test_replay_sends_in_order_in_batches_then_empties(tmp_path: Path) -> None:
    path, buffer, fixes = filled(tmp_path, 7)
    server = Server()
    assert await buffer.replay(server.send_batch, batch_size=3) == 7
    assert [len(b) for b in server.batches] == [3, 3, 1]
    assert server.received == fixes
    assert len(buffer) == 0
    assert path.read_bytes() == b""  # drained: the log starts afresh

    restarted = OfflineBuffer(path)
    assert restarted.pending() == []
    assert await restarted.replay(server.send_batch) == 0
    assert len(server.received) == 7  # exactly once

    later = track(2, start=7)
    for fix in later:
        restarted.append(fix)
    assert OfflineBuffer(path).pending() == later
    assert [json.loads(line)["seq"] for line in path.read_text().splitlines()] == [8, 9]


async def test_partial_ack_keeps_the_rest_across_a_restart(tmp_path: Path) -> None:
    path, buffer, fixes = filled(tmp_path, 10)
    flaky = Server(fail_after_batches=2)
    with pytest.raises(ConnectionError):
        await buffer.replay(flaky.send_batch, batch_size=3)
    assert flaky.received == fixes[:6]
    assert buffer.pending() == fixes[6:]

    restarted = OfflineBuffer(path)
    assert restarted.pending() == fixes[6:]
    server = Server()
    await restarted.replay(server.send_batch, batch_size=3)
    assert flaky.received + server.received == fixes  # in order, nothing twice, nothing lost


async def test_crash_after_the_server_acked_but_before_the_ack_was_saved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, buffer, fixes = filled(tmp_path, 6)
    server = Server()
    real_replace = os.replace
    saves = 0

    def crash_on_second_ack(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        nonlocal saves
        if str(dst).endswith(".state"):
            saves += 1
            if saves == 2:
                raise SystemExit("power cut")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_second_ack)
    with pytest.raises(SystemExit):
        await buffer.replay(server.send_batch, batch_size=2)
    monkeypatch.setattr(os, "replace", real_replace)
    assert server.received == fixes[:4]  # the server has the second batch, we never noted it

    restarted = OfflineBuffer(path)
    assert restarted.pending() == fixes[2:]  # only the unconfirmed batch comes back
    await restarted.replay(server.send_batch, batch_size=2)
    # at-least-once: one batch arrives twice (the server ignores duplicates); order holds
    assert server.received == fixes[:4] + fixes[2:]
    assert len(OfflineBuffer(path)) == 0


def test_a_torn_last_record_is_cut_off(tmp_path: Path) -> None:
    path = tmp_path / "offline.jsonl"
    buffer = OfflineBuffer(path)
    fixes = track(4)
    for fix in fixes[:3]:
        buffer.append(fix)
    with path.open("ab") as f:  # the app died halfway through writing a fourth record
        f.write(b'{"seq":4,"fix":{"lat":12.93')

    restarted = OfflineBuffer(path)
    assert restarted.pending() == fixes[:3]
    restarted.append(fixes[3])
    assert OfflineBuffer(path).pending() == fixes
    assert restarted.unreadable == 0


def test_a_damaged_record_is_skipped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "offline.jsonl"
    buffer = OfflineBuffer(path)
    fixes = track(3)
    for fix in fixes:
        buffer.append(fix)
    lines = path.read_bytes().split(b"\n")
    lines[1] = b'{"seq":2,"fix":{"lat":"\xff"}}'
    path.write_bytes(b"\n".join(lines))

    restarted = OfflineBuffer(path)
    assert restarted.pending() == [fixes[0], fixes[2]]
    assert restarted.unreadable == 1


async def test_a_damaged_state_file_means_resending_not_losing(tmp_path: Path) -> None:
    path = tmp_path / "offline.jsonl"
    buffer = OfflineBuffer(path, max_fixes=10)
    fixes = track(4)
    for fix in fixes:
        buffer.append(fix)
    with pytest.raises(ConnectionError):
        await buffer.replay(Server(fail_after_batches=1).send_batch, batch_size=2)
    assert OfflineBuffer(path).pending() == fixes[2:]
    (tmp_path / "offline.jsonl.state").write_bytes(b"\x00\x00")
    assert OfflineBuffer(path).pending() == fixes


def test_overflow_drops_the_oldest_and_counts_them(tmp_path: Path) -> None:
    path = tmp_path / "offline.jsonl"
    buffer = OfflineBuffer(path, max_fixes=3)
    fixes = track(5)
    for fix in fixes:
        buffer.append(fix)
    assert buffer.pending() == fixes[2:]
    assert buffer.dropped == 2

    restarted = OfflineBuffer(path, max_fixes=3)
    assert restarted.pending() == fixes[2:]
    assert restarted.dropped == 2  # the count survives restarts
    smaller = OfflineBuffer(path, max_fixes=1)
    assert smaller.pending() == fixes[4:]
    assert smaller.dropped == 4


async def test_appends_during_a_replay_queue_behind_it(tmp_path: Path) -> None:
    buffer = OfflineBuffer(tmp_path / "offline.jsonl")
    fixes = track(6)
    for fix in fixes[:4]:
        buffer.append(fix)
    received: list[Fix] = []
    late = iter(fixes[4:])

    async def send_batch(batch: Sequence[Fix]) -> None:
        received.extend(batch)
        if (fix := next(late, None)) is not None:
            buffer.append(fix)  # a new fix arrives while the batch is in flight

    assert await buffer.replay(send_batch, batch_size=2) == 6
    assert received == fixes
    assert len(buffer) == 0


async def test_finished_records_are_compacted_away(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(buffer_module, "_COMPACT_AFTER", 4)
    path = tmp_path / "offline.jsonl"
    buffer = OfflineBuffer(path)
    fixes = track(12)
    for fix in fixes:
        buffer.append(fix)
    with pytest.raises(ConnectionError):
        await buffer.replay(Server(fail_after_batches=1).send_batch, batch_size=3)
    assert len(path.read_text().splitlines()) == 12  # 3 finished: too few to bother
    with pytest.raises(ConnectionError):
        await buffer.replay(Server(fail_after_batches=1).send_batch, batch_size=3)
    # 6 finished, as many as are pending: the log is rewritten with the pending ones only
    lines = path.read_text().splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [7, 8, 9, 10, 11, 12]
    assert OfflineBuffer(path).pending() == fixes[6:]


def test_max_fixes_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        OfflineBuffer(tmp_path / "x.jsonl", max_fixes=0)
