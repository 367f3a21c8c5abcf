"""Fixes taken while offline, kept on disk until the server has acknowledged them.

Two files side by side:

* ``<path>``: JSON lines ``{"seq": N, "fix": {...}}``, appended and fsync'd one fix at a time.
* ``<path>.state``: ``{"acked_seq": N, "dropped": D}``, replaced atomically (tmp + rename).
  Every record with ``seq <= acked_seq`` is done: acknowledged by the server or dropped.

Why this survives a crash anywhere: a batch is marked done only after the server acknowledged
it, and the mark is one atomic rename, so a crash before it resends that batch (the server
ignores duplicates) and a crash after it cannot resend or lose anything. Compaction rewrites
the log through tmp + rename and keeps each record's ``seq``, so the state file stays valid
for whichever version of the log a crash leaves behind. A torn last line (crash inside an
append) is cut off on load; that fix was never reported stored.

Bounded at ``max_fixes`` (24 h at one fix per 5 s by default): beyond that the oldest fixes
are dropped and counted in ``dropped``, because the recent track matters most to dispatch.

Not thread-safe: use it from one task (the pusher). Each append costs one fsync.
"""

from __future__ import annotations

import json
import logging
import os
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from itertools import islice
from pathlib import Path
from typing import Any

from rider_app.gps.fix import Fix

log = logging.getLogger(__name__)

SendBatch = Callable[[Sequence[Fix]], Awaitable[None]]

DEFAULT_MAX_FIXES = 24 * 3600 // 5
DEFAULT_BATCH_SIZE = 500
# Rewrite the log once it holds this many finished records and at least as many as live ones.
_COMPACT_AFTER = 1000


def _fsync_dir(directory: Path) -> None:
    """Make a create or rename in ``directory`` durable (POSIX; Windows cannot open dirs)."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _record(seq: int, fix: Fix) -> bytes:
    return json.dumps({"seq": seq, "fix": fix.to_dict()}, separators=(",", ":")).encode() + b"\n"


class OfflineBuffer:
    def __init__(self, path: str | Path, *, max_fixes: int = DEFAULT_MAX_FIXES) -> None:
        if max_fixes < 1:
            raise ValueError(f"max_fixes must be at least 1, got {max_fixes!r}")
        self.path = Path(path)
        self.max_fixes = max_fixes
        self._state_path = self.path.with_name(self.path.name + ".state")
        self._pending: deque[tuple[int, Fix]] = deque()
        self._acked_seq = 0
        self._dropped = 0
        self._next_seq = 1
        self._lines_on_disk = 0
        self.unreadable = 0  # corrupt records skipped on load (disk damage, not crashes)
        self._load()

    def __len__(self) -> int:
        return len(self._pending)

    @property
    def dropped(self) -> int:
        """Fixes discarded to stay within ``max_fixes``, over the buffer's whole life."""
        return self._dropped

    def pending(self) -> list[Fix]:
        """The fixes not yet acknowledged, oldest first."""
        return [fix for _, fix in self._pending]

    def append(self, fix: Fix) -> None:
        """Store ``fix`` durably: when this returns it is on disk (fsync'd)."""
        seq = self._next_seq
        record = memoryview(_record(seq, fix))
        created = not self.path.exists()
        # Raw fd, no buffering: on a failed write nothing is left over to be flushed later.
        # 0o600: a rider's location history is personal data.
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            size = os.fstat(fd).st_size
            try:
                while record:
                    record = record[os.write(fd, record) :]
                os.fsync(fd)
            except OSError:
                # A half-written line would swallow the next record: cut it off (best effort).
                with suppress(OSError):
                    os.ftruncate(fd, size)
                raise
        finally:
            os.close(fd)
        if created:
            _fsync_dir(self.path.parent)
        self._next_seq += 1
        self._lines_on_disk += 1
        self._pending.append((seq, fix))
        self._enforce_bound()

    async def replay(self, send_batch: SendBatch, *, batch_size: int = DEFAULT_BATCH_SIZE) -> int:
        """Send the pending fixes oldest first, ``batch_size`` at a time, and return how many
        were acknowledged. A batch counts as acknowledged when ``send_batch`` returns; if it
        raises, the exception propagates and that batch and everything after it stay pending.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size!r}")
        sent = 0
        while self._pending:
            batch = list(islice(self._pending, batch_size))
            await send_batch([fix for _, fix in batch])
            self._mark_done(batch[-1][0])
            sent += len(batch)
        return sent

    def _mark_done(self, seq: int) -> None:
        # max(): overflow may have dropped past ``seq`` while a batch was in flight.
        self._acked_seq = max(self._acked_seq, seq)
        self._write_state()
        while self._pending and self._pending[0][0] <= self._acked_seq:
            self._pending.popleft()
        self._compact_if_worthwhile()

    def _enforce_bound(self) -> None:
        excess = len(self._pending) - self.max_fixes
        if excess <= 0:
            return
        last_dropped = self._pending[excess - 1][0]
        self._dropped += excess
        log.warning("offline buffer full (%d fixes): dropped the oldest %d", self.max_fixes, excess)
        self._mark_done(last_dropped)

    def _compact_if_worthwhile(self) -> None:
        finished = self._lines_on_disk - len(self._pending)
        if finished and (not self._pending or finished >= max(_COMPACT_AFTER, len(self._pending))):
            self._rewrite_log()

    def _write_state(self) -> None:
        state = {"acked_seq": self._acked_seq, "dropped": self._dropped}
        self._replace(self._state_path, json.dumps(state).encode())

    def _rewrite_log(self) -> None:
        self._replace(self.path, b"".join(_record(seq, fix) for seq, fix in self._pending))
        self._lines_on_disk = len(self._pending)

    def _replace(self, target: Path, data: bytes) -> None:
        tmp = target.with_name(target.name + ".tmp")
        with tmp.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
        _fsync_dir(target.parent)

    def _load(self) -> None:
        state = self._read_state()
        self._acked_seq = state.get("acked_seq", 0)
        self._dropped = state.get("dropped", 0)
        last_seq = self._acked_seq
        for line in self._read_log_lines():
            self._lines_on_disk += 1
            try:
                record = json.loads(line)
                seq, fix = record["seq"], Fix.from_dict(record["fix"])
                if not isinstance(seq, int):
                    raise ValueError(f"bad seq {seq!r}")
            except (ValueError, KeyError, TypeError) as exc:
                self.unreadable += 1
                log.error("offline buffer %s: skipping unreadable record: %s", self.path, exc)
                continue
            last_seq = max(last_seq, seq)
            if seq > self._acked_seq:
                self._pending.append((seq, fix))
        self._next_seq = last_seq + 1
        self._enforce_bound()  # a crash between an append and its overflow drop, or a lower max
        self._compact_if_worthwhile()  # a crash between an ack and its compaction

    def _read_state(self) -> dict[str, int]:
        try:
            state: Any = json.loads(self._state_path.read_bytes())
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            # Only disk damage gets here (the file is replaced atomically). Starting from zero
            # resends what was already acknowledged, which the server ignores: nothing is lost.
            log.error("offline buffer state %s unreadable (%s): resending all", self.path, exc)
            return {}
        if not isinstance(state, dict):
            return {}
        return {k: v for k, v in state.items() if isinstance(v, int) and v >= 0}

    def _read_log_lines(self) -> list[bytes]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        complete = data.rfind(b"\n") + 1
        if complete < len(data):
            log.warning("offline buffer %s: cutting off a torn last record", self.path)
            with self.path.open("r+b") as f:
                f.truncate(complete)
                os.fsync(f.fileno())
        return [line for line in data[:complete].split(b"\n") if line.strip()]
