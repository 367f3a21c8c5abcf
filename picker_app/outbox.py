"""Scans waiting to reach the server, oldest first.

Every scan gets its ``scan_id`` when it is read and keeps it through every retry, so the
server (which dedupes by ``scan_id``) counts it exactly once however often it is sent. With a
``path`` the outbox is also a JSON-lines journal (``add`` / ``done`` records, fsynced), so
scans read before a crash or a power cut are sent after the restart.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from scanners.types import utc_now


@dataclass(frozen=True, slots=True)
class PendingScan:
    scan_id: str
    order_id: str
    code: str
    source: str
    read_at: str  # ISO 8601, UTC

    @classmethod
    def new(
        cls, *, order_id: str, code: str, source: str, read_at: datetime | None = None
    ) -> PendingScan:
        return cls(
            scan_id=uuid.uuid4().hex,
            order_id=order_id,
            code=code,
            source=source,
            read_at=(read_at or utc_now()).isoformat(),
        )


class ScanOutbox:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._entries: dict[str, PendingScan] = {}  # insertion order = send order
        if path is not None:
            self._load(path)

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[PendingScan]:
        return iter(list(self._entries.values()))

    def __contains__(self, scan_id: object) -> bool:
        return scan_id in self._entries

    def head(self) -> PendingScan | None:
        return next(iter(self._entries.values()), None)

    def for_order(self, order_id: str) -> list[PendingScan]:
        return [e for e in self._entries.values() if e.order_id == order_id]

    def add(self, entry: PendingScan) -> None:
        if entry.scan_id in self._entries:
            return
        self._entries[entry.scan_id] = entry
        self._append({"op": "add", **asdict(entry)})

    def done(self, scan_id: str) -> None:
        """The server answered for this scan (accepted or refused): it leaves the outbox."""
        if self._entries.pop(scan_id, None) is not None:
            self._append({"op": "done", "scan_id": scan_id})

    def _append(self, record: dict[str, str]) -> None:
        if self.path is None:
            return
        with self.path.open("a", encoding="utf-8") as journal:
            journal.write(json.dumps(record) + "\n")
            journal.flush()
            os.fsync(journal.fileno())

    def _load(self, path: Path) -> None:
        """Replay the journal, then rewrite it with only the scans still pending."""
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:  # a torn last line from a crash
                    continue
                if record.get("op") == "add":
                    entry = PendingScan(**{k: v for k, v in record.items() if k != "op"})
                    self._entries.setdefault(entry.scan_id, entry)
                elif record.get("op") == "done":
                    self._entries.pop(record.get("scan_id"), None)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(
            "".join(json.dumps({"op": "add", **asdict(e)}) + "\n" for e in self._entries.values()),
            encoding="utf-8",
        )
        os.replace(tmp, path)
