"""NMEA 0183 from a serial GPS receiver or a recorded file: RMC and GGA sentences.

A receiver reports each epoch (one instant) in several sentences: RMC carries date, speed and
course, GGA carries fix quality and HDOP. ``NmeaDecoder`` joins the sentences of an epoch
into one ``Fix`` and drops lines whose checksum does not match (serial noise, torn lines).
"""

from __future__ import annotations

import asyncio
import importlib
import math
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from functools import reduce
from types import ModuleType
from typing import Any

from rider_app.gps.base import GpsUnavailableError, TrackPlayback
from rider_app.gps.fix import Fix, accuracy_from_hdop, utc_now

KNOT_MPS = 1852.0 / 3600.0
_KINDS = frozenset({"RMC", "GGA"})
_MAX_SENTENCE = 1024  # the standard allows 82 characters; anything far longer is noise


def checksum(body: str) -> str:
    """XOR of the characters between ``$`` and ``*``, as two upper-case hex digits."""
    return f"{reduce(lambda acc, ch: acc ^ ord(ch), body, 0):02X}"


def split_sentence(line: str) -> list[str] | None:
    """The comma-separated fields of a sentence, or None when its checksum is missing or wrong."""
    line = line.strip()
    if not line.startswith("$") or len(line) < 4 or line[-3] != "*":
        return None
    body, given = line[1:-3], line[-2:].upper()
    if checksum(body) != given:
        return None
    return body.split(",")


@dataclass(frozen=True, slots=True)
class _Rmc:
    time: time
    day: date
    valid: bool
    lat: float
    lng: float
    speed_mps: float | None
    heading_deg: float | None


@dataclass(frozen=True, slots=True)
class _Gga:
    time: time
    valid: bool
    lat: float
    lng: float
    accuracy_m: float | None


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # float() accepts "nan" and "inf"; a receiver never sends them
        raise ValueError(f"not a finite number: {text!r}")
    return value


def _time(text: str) -> time:
    if len(text) < 6:
        raise ValueError(f"bad NMEA time {text!r}")
    seconds = _finite(text[4:])
    whole = int(seconds)
    micro = min(999_999, round((seconds - whole) * 1_000_000))
    return time(int(text[0:2]), int(text[2:4]), whole, micro)


def _date(text: str) -> date:
    if len(text) != 6:
        raise ValueError(f"bad NMEA date {text!r}")
    yy = int(text[4:6])
    # Two-digit years: GPS time starts in 1980, so 80-99 are the 1900s.
    return date(1900 + yy if yy >= 80 else 2000 + yy, int(text[2:4]), int(text[0:2]))


def _angle(text: str, hemisphere: str, positive: str, negative: str, limit: float) -> float:
    degrees, minutes = divmod(_finite(text), 100.0)
    if minutes >= 60.0:
        raise ValueError(f"bad NMEA angle {text!r}")
    value = degrees + minutes / 60.0
    if hemisphere not in (positive, negative) or value > limit:
        raise ValueError(f"bad NMEA angle {text!r} {hemisphere!r}")
    return -value if hemisphere == negative else value


def _parse_rmc(f: list[str]) -> _Rmc:
    # $xxRMC,time,status,lat,N/S,lon,E/W,knots,course,ddmmyy,magvar,E/W[,mode]
    mode = f[12] if len(f) > 12 else ""
    valid = f[2] == "A" and mode != "N"
    at, day = _time(f[1]), _date(f[9])
    if not valid:
        return _Rmc(at, day, False, 0.0, 0.0, None, None)
    return _Rmc(
        time=at,
        day=day,
        valid=True,
        lat=_angle(f[3], f[4], "N", "S", 90.0),
        lng=_angle(f[5], f[6], "E", "W", 180.0),
        speed_mps=_finite(f[7]) * KNOT_MPS if f[7] else None,
        heading_deg=_finite(f[8]) % 360.0 if f[8] else None,  # empty while standing still
    )


def _parse_gga(f: list[str]) -> _Gga:
    # $xxGGA,time,lat,N/S,lon,E/W,quality,satellites,hdop,altitude,M,geoid,M,age,station
    at = _time(f[1])
    if f[6] in ("", "0"):
        return _Gga(at, False, 0.0, 0.0, None)
    return _Gga(
        time=at,
        valid=True,
        lat=_angle(f[2], f[3], "N", "S", 90.0),
        lng=_angle(f[4], f[5], "E", "W", 180.0),
        accuracy_m=accuracy_from_hdop(_finite(f[8])) if f[8] else None,
    )


class NmeaDecoder:
    """Feed lines one by one; get a ``Fix`` back when an epoch is complete.

    An epoch is complete once both its RMC and GGA arrived, or when a sentence of the next
    epoch shows up (receivers that send only one of the two); ``flush`` ends the last one.
    GGA carries no date, so a GGA-only epoch takes the date of the last RMC, else ``today``.
    """

    def __init__(self, *, source: str = "nmea", today: Callable[[], date] | None = None) -> None:
        self.source = source
        self.rejected = 0  # lines dropped for a bad checksum or malformed fields
        self._today = today or (lambda: utc_now().date())
        self._epoch: time | None = None
        self._emitted = False  # this epoch's fix is out; later sentences of it are duplicates
        self._rmc: _Rmc | None = None
        self._gga: _Gga | None = None
        self._last_day: date | None = None

    def feed(self, line: str) -> Fix | None:
        if not line.strip():
            return None
        fields = split_sentence(line)
        if fields is None:
            self.rejected += 1
            return None
        talker_kind = fields[0]
        if len(talker_kind) != 5 or talker_kind[2:] not in _KINDS:
            return None  # GSV, VTG, GSA...: valid but nothing we use
        try:
            part = _parse_rmc(fields) if talker_kind[2:] == "RMC" else _parse_gga(fields)
        except (ValueError, IndexError):
            self.rejected += 1
            return None
        done = None
        if part.time != self._epoch:
            done = self._take()
            self._epoch, self._emitted = part.time, False
        if self._emitted:
            return done
        if isinstance(part, _Rmc):
            self._rmc, self._last_day = part, part.day
        else:
            self._gga = part
        if self._rmc is not None and self._gga is not None:
            self._emitted = True
            return self._take()
        return done

    def flush(self) -> Fix | None:
        """The fix of the last, possibly incomplete, epoch (call at end of input)."""
        return self._take()

    def _take(self) -> Fix | None:
        rmc, gga, epoch = self._rmc, self._gga, self._epoch
        self._rmc = self._gga = None
        if epoch is None:
            return None
        accuracy = gga.accuracy_m if gga is not None and gga.valid else None
        if rmc is not None and rmc.valid:
            return Fix(
                rmc.lat,
                rmc.lng,
                datetime.combine(rmc.day, epoch, tzinfo=UTC),
                rmc.speed_mps,
                rmc.heading_deg,
                accuracy,
                source=self.source,
            )
        if rmc is None and gga is not None and gga.valid:
            day = self._last_day or self._today()
            return Fix(
                gga.lat,
                gga.lng,
                datetime.combine(day, epoch, tzinfo=UTC),
                accuracy_m=accuracy,
                source=self.source,
            )
        return None  # the receiver says it has no fix


def parse_nmea(
    lines: Iterable[str], *, source: str = "nmea", today: Callable[[], date] | None = None
) -> list[Fix]:
    """Every fix in a recorded NMEA log, in order; bad lines are skipped."""
    decoder = NmeaDecoder(source=source, today=today)
    fixes = [fix for line in lines if (fix := decoder.feed(line)) is not None]
    if (last := decoder.flush()) is not None:
        fixes.append(last)
    return fixes


class NmeaFileSource(TrackPlayback):
    """A recorded NMEA log (e.g. from ``gpspipe -r``) played back; see ``TrackPlayback``."""

    def parse(self, data: bytes) -> list[Fix]:
        text = data.decode("ascii", "replace")  # non-ASCII bytes are noise; checksums drop them
        return parse_nmea(text.splitlines(), today=lambda: self._clock().date())


def _import_pyserial() -> ModuleType:
    try:
        return importlib.import_module("serial")
    except ImportError as exc:
        raise GpsUnavailableError(
            "reading an NMEA serial device needs the optional package 'pyserial' "
            "(pip install pyserial)"
        ) from exc


class NmeaSerialSource:
    """A GPS receiver on a serial port (USB dongles show up as /dev/ttyUSB0 or /dev/ttyACM0).

    pyserial is optional: only this source needs it, so it is imported here and its absence
    is reported when the source is created, not when the app starts.
    """

    def __init__(self, device: str, *, baudrate: int = 9600, read_timeout_s: float = 1.0) -> None:
        self._serial = _import_pyserial()
        self.device = device
        self.baudrate = baudrate
        self.read_timeout_s = read_timeout_s  # also bounds how long close() takes to be seen
        self._port: Any = None
        self._closed = False

    async def fixes(self) -> AsyncIterator[Fix]:
        # pyserial blocks, so the port is opened and read on worker threads.
        self._port = await asyncio.to_thread(
            self._serial.Serial, self.device, self.baudrate, timeout=self.read_timeout_s
        )
        decoder = NmeaDecoder(source="nmea")
        partial = b""
        try:
            while not self._closed:
                raw: bytes = await asyncio.to_thread(self._port.readline)
                # A read timeout can split a sentence; keep the head until its newline arrives.
                partial += raw
                if not partial.endswith(b"\n"):
                    if len(partial) > _MAX_SENTENCE:
                        partial = b""  # a wrong baud rate gives endless noise, not NMEA
                    continue
                line, partial = partial.decode("ascii", "replace"), b""
                if (fix := decoder.feed(line)) is not None:
                    yield fix
        finally:
            self._port.close()
            self._port = None

    async def close(self) -> None:
        self._closed = True
        if self._port is not None:
            self._port.cancel_read()  # wakes a blocked readline instead of waiting out its timeout
