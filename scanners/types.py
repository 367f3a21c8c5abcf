"""Shared scan types: what every scanner produces and the interface it offers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum, auto
from typing import Protocol, runtime_checkable


class Symbology(StrEnum):
    EAN13 = auto()
    EAN8 = auto()
    UPCA = auto()
    CODE128 = auto()
    GS1_128 = auto()
    DATAMATRIX = auto()
    QR = auto()
    UNKNOWN = auto()


@dataclass(frozen=True, slots=True)
class Scan:
    """One read barcode. ``code`` is the decoded data without any ``]Xn`` symbology identifier;
    GS1 element strings keep FNC1 as ASCII 29 (GS) so ``scanners.gs1.parse`` can read them."""

    code: str
    symbology: Symbology
    source: str
    at: datetime

    def __post_init__(self) -> None:
        if not self.code:
            raise ValueError("Scan.code must not be empty")
        if self.at.utcoffset() != timedelta(0):
            raise ValueError(f"Scan.at must be a UTC-aware datetime, got {self.at!r}")


OnScan = Callable[[Scan], None]


def utc_now() -> datetime:
    return datetime.now(UTC)


@runtime_checkable
class Scanner(Protocol):
    """A scan source that runs on its own (e.g. a camera thread) and reports every scan through
    the ``on_scan`` callback it was built with. The callback runs on the scanner's thread, so a
    Textual app should hand results over with ``App.call_from_thread``.

    A keyboard wedge is not a ``Scanner``: the UI owns the key events and drives
    ``scanners.wedge.WedgeDetector`` itself, which returns scans synchronously.
    """

    def start(self) -> None: ...

    def stop(self) -> None: ...
