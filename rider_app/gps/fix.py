"""One GPS position report, as every source produces it and the pusher sends it."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.geo import LatLng

# HDOP has no unit; times a typical consumer receiver's range error it gives a rough radius.
UERE_M = 5.0


def utc_now() -> datetime:
    return datetime.now(UTC)


def accuracy_from_hdop(hdop: float) -> float:
    """Rough horizontal accuracy in metres for receivers (NMEA GGA, GPX) that only give HDOP."""
    return hdop * UERE_M


def _number(value: Any, name: str) -> float:
    # bool is an int subclass; a JSON true where a coordinate belongs is corruption, not 1.0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, got {value!r}")
    return float(value)


def _optional_number(value: Any, name: str) -> float | None:
    return None if value is None else _number(value, name)


@dataclass(frozen=True, slots=True)
class Fix:
    """A position at a moment. ``at`` is when the receiver took it (UTC), not when it was sent;
    the server keys history on it, so a fix replayed after an outage lands in the right place.
    ``source`` names the kind of source (gpsd, nmea, gpx, sim) and is keyword-only."""

    lat: float
    lng: float
    at: datetime
    speed_mps: float | None = None
    heading_deg: float | None = None  # course over ground, clockwise from true north
    accuracy_m: float | None = None  # horizontal, roughly 95 % confidence where known
    source: str = field(default="unknown", kw_only=True)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.lat) and -90.0 <= self.lat <= 90.0):
            raise ValueError(f"latitude out of range: {self.lat!r}")
        if not (math.isfinite(self.lng) and -180.0 <= self.lng <= 180.0):
            raise ValueError(f"longitude out of range: {self.lng!r}")
        if self.at.utcoffset() != timedelta(0):
            raise ValueError(f"Fix.at must be a UTC-aware datetime, got {self.at!r}")
        for name in ("speed_mps", "heading_deg", "accuracy_m"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise ValueError(f"{name} must be finite, got {value!r}")

    @property
    def position(self) -> LatLng:
        return LatLng(self.lat, self.lng)

    def to_dict(self) -> dict[str, Any]:
        return {
            "lat": self.lat,
            "lng": self.lng,
            "at": self.at.isoformat(),
            "speed_mps": self.speed_mps,
            "heading_deg": self.heading_deg,
            "accuracy_m": self.accuracy_m,
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fix:
        """Inverse of ``to_dict``; ``at`` may carry any offset and is converted to UTC."""
        try:
            at = datetime.fromisoformat(data["at"])
            lat, lng = _number(data["lat"], "lat"), _number(data["lng"], "lng")
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a fix: {data!r}") from exc
        if at.tzinfo is None:
            raise ValueError(f"fix time has no UTC offset: {data['at']!r}")
        source = data.get("source", "unknown")
        if not isinstance(source, str):
            raise ValueError(f"source must be a string, got {source!r}")
        return cls(
            lat=lat,
            lng=lng,
            at=at.astimezone(UTC),
            speed_mps=_optional_number(data.get("speed_mps"), "speed_mps"),
            heading_deg=_optional_number(data.get("heading_deg"), "heading_deg"),
            accuracy_m=_optional_number(data.get("accuracy_m"), "accuracy_m"),
            source=source,
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> Fix:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"not a fix: {data!r}")
        return cls.from_dict(data)
