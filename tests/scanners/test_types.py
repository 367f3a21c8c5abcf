from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from scanners.camera import CameraScanner
from scanners.types import Scan, Scanner, Symbology

AT = datetime(2025, 6, 1, 9, 30, tzinfo=UTC)


def test_scan_is_frozen_value() -> None:
    scan = Scan("4006381333931", Symbology.EAN13, "wedge", AT)
    assert scan == Scan("4006381333931", Symbology.EAN13, "wedge", AT)
    with pytest.raises(AttributeError):
        scan.code = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    "at", [datetime(2025, 6, 1, 9, 30), datetime(2025, 6, 1, tzinfo=timezone(timedelta(hours=5)))]
)
def test_scan_requires_utc(at: datetime) -> None:
    with pytest.raises(ValueError, match="UTC"):
        Scan("4006381333931", Symbology.EAN13, "wedge", at)


def test_scan_requires_code() -> None:
    with pytest.raises(ValueError, match="empty"):
        Scan("", Symbology.UNKNOWN, "wedge", AT)


def test_symbology_round_trips_through_its_string_value() -> None:
    assert Symbology("gs1_128") is Symbology.GS1_128
    assert f"{Symbology.EAN13}" == "ean13"


def test_camera_scanner_is_a_scanner() -> None:
    assert isinstance(CameraScanner(0, lambda scan: None), Scanner)
