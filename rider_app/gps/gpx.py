"""GPX tracks (what phone trackers and Strava export), played back at the recorded pace.

Only ``<trkpt>`` points count, and each needs a ``<time>``: without times there is no pace to
play back (use ``sim://`` for an untimed route). GPX 1.1 has no speed or course elements, so
they are derived from the previous point of the same segment; GPX 1.0's are used when given.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

from rider_app.gps.base import TrackPlayback
from rider_app.gps.fix import Fix, accuracy_from_hdop
from shared.geo import LatLng, bearing_deg, haversine_m


def _float(text: str | None, what: str) -> float | None:
    if text is None or not text.strip():
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"GPX {what} is not a number: {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"GPX {what} is not finite: {text!r}")
    return value


def _time(text: str | None) -> datetime:
    if text is None or not text.strip():
        raise ValueError("GPX track point without <time>: it cannot be played back at pace")
    parsed = datetime.fromisoformat(text.strip())
    # GPX times are UTC by the schema; a missing zone designator still means UTC.
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def parse_gpx(data: str | bytes, *, source: str = "gpx") -> list[Fix]:
    """Every track point of every segment, in document order."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise ValueError(f"not a GPX document: {exc}") from exc
    fixes: list[Fix] = []
    for segment in root.iterfind(".//{*}trkseg"):
        previous: Fix | None = None
        for point in segment.iterfind("{*}trkpt"):
            lat, lng = _float(point.get("lat"), "lat"), _float(point.get("lon"), "lon")
            if lat is None or lng is None:
                raise ValueError("GPX track point without lat/lon")
            at = _time(point.findtext("{*}time"))
            speed = _float(point.findtext("{*}speed"), "speed")
            heading = _float(point.findtext("{*}course"), "course")
            hdop = _float(point.findtext("{*}hdop"), "hdop")
            if previous is not None and (speed is None or heading is None):
                here = LatLng(lat, lng)
                moved = haversine_m(previous.position, here)
                seconds = (at - previous.at).total_seconds()
                if speed is None and seconds > 0:
                    speed = moved / seconds
                if heading is None and moved > 0:
                    heading = bearing_deg(previous.position, here)
            fix = Fix(
                lat,
                lng,
                at,
                speed_mps=speed,
                heading_deg=heading,
                accuracy_m=accuracy_from_hdop(hdop) if hdop is not None else None,
                source=source,
            )
            fixes.append(fix)
            previous = fix
    return fixes


class GpxSource(TrackPlayback):
    """A GPX file played back; see ``TrackPlayback`` for ``speed`` and ``restamp``."""

    def parse(self, data: bytes) -> list[Fix]:
        return parse_gpx(data)
