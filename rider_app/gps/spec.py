"""Pick a GPS source from a URL-ish spec, as given in the rider app's settings or CLI.

    gpsd://[host][:port]                      gpsd JSON over TCP (default 127.0.0.1:2947)
    nmea:///dev/ttyUSB0[?baud=9600]           NMEA serial receiver (needs pyserial)
    nmea+file:///path/log.nmea[?speed=K]      recorded NMEA, at recorded pace or K times faster
    gpx:///path/track.gpx[?speed=K]           recorded GPX track, likewise
    sim://?from=LAT,LNG&to=LAT,LNG[&via=LAT,LNG...][&speed=M/S][&step=S]

Playback and sim sources stamp fixes with the time they are played; add ``restamp=0`` to a
file source to keep the recorded times. Unknown parameters are errors, so a typo is not
silently ignored.
"""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs, unquote, urlsplit

from rider_app.gps.base import Clock, GpsSource, Sleep
from rider_app.gps.fix import utc_now
from rider_app.gps.gpsd import DEFAULT_HOST, DEFAULT_PORT, GpsdSource
from rider_app.gps.gpx import GpxSource
from rider_app.gps.nmea import NmeaFileSource, NmeaSerialSource
from rider_app.gps.sim import DEFAULT_SPEED_MPS, SimSource
from shared.geo import LatLng

SCHEMES = ("gpsd", "nmea", "nmea+file", "gpx", "sim")
_TRUE, _FALSE = frozenset({"1", "true", "yes", "on"}), frozenset({"0", "false", "no", "off"})


class _Params:
    def __init__(self, spec: str, query: str) -> None:
        self.spec = spec
        self._values = parse_qs(query, keep_blank_values=True)

    def all(self, name: str) -> list[str]:
        return self._values.pop(name, [])

    def one(self, name: str) -> str | None:
        values = self.all(name)
        if len(values) > 1:
            raise ValueError(f"{self.spec!r}: {name} given more than once")
        return values[0] if values else None

    def number(self, name: str, default: float) -> float:
        text = self.one(name)
        try:
            return default if text is None else float(text)
        except ValueError:
            raise ValueError(f"{self.spec!r}: {name} must be a number, got {text!r}") from None

    def flag(self, name: str, default: bool) -> bool:
        text = self.one(name)
        if text is None:
            return default
        if text.lower() not in _TRUE | _FALSE:
            raise ValueError(f"{self.spec!r}: {name} must be 1 or 0, got {text!r}")
        return text.lower() in _TRUE

    def point(self, text: str, name: str) -> LatLng:
        try:
            lat, lng = (float(v) for v in text.split(","))
        except ValueError:
            raise ValueError(f"{self.spec!r}: {name} must be LAT,LNG, got {text!r}") from None
        if not (-90.0 <= lat <= 90.0 and -180.0 <= lng <= 180.0):
            raise ValueError(f"{self.spec!r}: {name} is off the globe: {text!r}")
        return LatLng(lat, lng)

    def done(self) -> None:
        if self._values:
            raise ValueError(f"{self.spec!r}: unknown parameter(s) {sorted(self._values)}")


def open_source(spec: str, *, clock: Clock = utc_now, sleep: Sleep = asyncio.sleep) -> GpsSource:
    """Build (not start) the source ``spec`` names; ``clock``/``sleep`` pace playback and sim."""
    parts = urlsplit(spec)
    params = _Params(spec, parts.query)
    # netloc + path, so both nmea:///dev/ttyUSB0 and a relative gpx://track.gpx work
    location = unquote(parts.netloc + parts.path)
    source: GpsSource
    match parts.scheme:
        case "gpsd":
            source = GpsdSource(parts.hostname or DEFAULT_HOST, parts.port or DEFAULT_PORT)
        case "nmea":
            if not location:
                raise ValueError(f"{spec!r}: no serial device given")
            source = NmeaSerialSource(location, baudrate=int(params.number("baud", 9600)))
        case "nmea+file" | "gpx":
            if not location:
                raise ValueError(f"{spec!r}: no file given")
            kind = NmeaFileSource if parts.scheme == "nmea+file" else GpxSource
            source = kind(
                location,
                speed=params.number("speed", 1.0),
                restamp=params.flag("restamp", True),
                clock=clock,
                sleep=sleep,
            )
        case "sim":
            start, end = params.one("from"), params.one("to")
            if start is None or end is None:
                raise ValueError(f"{spec!r}: sim needs from=LAT,LNG and to=LAT,LNG")
            via = [params.point(text, "via") for text in params.all("via")]
            source = SimSource(
                [params.point(start, "from"), *via, params.point(end, "to")],
                speed_mps=params.number("speed", DEFAULT_SPEED_MPS),
                step_s=params.number("step", 1.0),
                clock=clock,
                sleep=sleep,
            )
        case _:
            raise ValueError(f"{spec!r}: unknown GPS source; use one of {', '.join(SCHEMES)}")
    params.done()
    return source
