from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from rider_app.gps.fix import Fix, accuracy_from_hdop
from shared.geo import LatLng

AT = datetime(2025, 6, 1, 9, 30, 0, 250_000, tzinfo=UTC)


def test_json_round_trip_keeps_every_field() -> None:
    fix = Fix(12.9352, 77.6245, AT, 5.5, 15.25, 4.0, source="nmea")
    again = Fix.from_json(fix.to_json())
    assert again == fix
    assert again.at.tzinfo is not None and again.at.utcoffset() == timedelta(0)
    assert json.loads(fix.to_json())["at"] == "2025-06-01T09:30:00.250000+00:00"


def test_optional_fields_default_to_none_and_serialise_as_null() -> None:
    fix = Fix(12.9, 77.6, AT, source="sim")
    assert (fix.speed_mps, fix.heading_deg, fix.accuracy_m) == (None, None, None)
    assert json.loads(fix.to_json())["speed_mps"] is None
    assert Fix.from_json(fix.to_json()) == fix
    assert fix.position == LatLng(12.9, 77.6)


def test_from_dict_converts_other_offsets_to_utc() -> None:
    ist = timezone(timedelta(hours=5, minutes=30))
    data = Fix(12.9, 77.6, AT, source="gpsd").to_dict() | {"at": AT.astimezone(ist).isoformat()}
    assert Fix.from_dict(data).at == AT
    assert Fix.from_dict(data).at.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lat": 90.5},
        {"lng": -180.01},
        {"lat": float("nan")},
        {"at": datetime(2025, 6, 1, 9, 30)},  # naive
        {"at": datetime(2025, 6, 1, 9, 30, tzinfo=timezone(timedelta(hours=5, minutes=30)))},
        {"speed_mps": float("inf")},
    ],
)
def test_invalid_fixes_are_rejected(kwargs: dict[str, object]) -> None:
    base: dict[str, object] = {"lat": 12.9, "lng": 77.6, "at": AT, "source": "x"}
    with pytest.raises(ValueError):
        Fix(**(base | kwargs))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    [
        "[]",
        '{"lat": 1, "lng": 2}',
        '{"lat": 1, "lng": 2, "at": "2025-06-01T09:30:00"}',
        '{"lat": true, "lng": 2, "at": "2025-06-01T09:30:00Z"}',
        '{"lat": "1", "lng": 2, "at": "2025-06-01T09:30:00Z"}',
        '{"lat": 1, "lng": 2, "at": "2025-06-01T09:30:00Z", "speed_mps": "fast"}',
    ],
)
def test_from_json_rejects_malformed_input(text: str) -> None:
    with pytest.raises(ValueError):
        Fix.from_json(text)


def test_accuracy_from_hdop_scales_by_range_error() -> None:
    assert accuracy_from_hdop(1.0) == 5.0
    assert accuracy_from_hdop(0.8) == pytest.approx(4.0)
