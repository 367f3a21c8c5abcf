from __future__ import annotations

import asyncio
import sys
import threading
import types
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from rider_app.gps.base import GpsUnavailableError
from rider_app.gps.fix import Fix
from rider_app.gps.nmea import (
    KNOT_MPS,
    NmeaDecoder,
    NmeaFileSource,
    NmeaSerialSource,
    checksum,
    parse_nmea,
    split_sentence,
)
from tests.helpers import wait_until
from tests.rider_app.gps_helpers import T0, FakeTime

# The NMEA standard's own examples (Munich, 23 March 1994), with their published checksums.
TEXTBOOK_RMC = "$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A"
TEXTBOOK_GGA = "$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47"

# A scooter in Koramangala, Bengaluru, from a multi-constellation (GN) receiver.
LOG = [
    "$GNRMC,093000.00,A,1256.1120,N,07737.4700,E,10.80,15.3,010625,,,A*71",
    "$GNGGA,093000.00,1256.1120,N,07737.4700,E,1,12,0.8,920.1,M,-86.5,M,,*5A",
    "$GPGSV,3,1,11,10,63,137,17,07,61,098,15,05,59,290,20,08,54,157,30*70",
    "$GNRMC,093001.00,A,1256.1150,N,07737.4710,E,11.20,16.0,010625,,,A*7D",
    "$GNGGA,093001.00,1256.1150,N,07737.4710,E,1,12,0.9,920.3,M,-86.5,M,,*5E",
    # one flipped digit in the latitude: the checksum no longer matches, the line is skipped
    "$GNRMC,093002.00,A,1256.1190,N,07737.4730,E,11.00,16.2,010625,,,A*7D",
    "$GPRMC,093003.00,V,,,,,,,010625,,,N*74",
    "$GPGGA,093003.00,,,,,0,00,99.99,,,,,,*6F",
    "$GPRMC,093004.00,A,1256.1250,N,07737.4900,E,0.00,,010625,,,A*41",
]


def test_checksum_matches_published_examples() -> None:
    assert checksum(TEXTBOOK_RMC[1:-3]) == "6A"
    assert checksum(TEXTBOOK_GGA[1:-3]) == "47"
    assert split_sentence(TEXTBOOK_GGA) is not None
    assert split_sentence(TEXTBOOK_GGA[:-2] + "48") is None
    assert split_sentence(TEXTBOOK_GGA[:-3]) is None  # no checksum at all
    assert split_sentence(TEXTBOOK_GGA[:40]) is None  # torn line
    assert split_sentence(TEXTBOOK_RMC[:-2] + "6a") is not None  # lower-case hex is tolerated


def test_textbook_epoch_joins_rmc_and_gga() -> None:
    (fix,) = parse_nmea([TEXTBOOK_RMC, TEXTBOOK_GGA])
    assert fix.lat == pytest.approx(48 + 7.038 / 60)
    assert fix.lng == pytest.approx(11 + 31.0 / 60)
    assert fix.at == datetime(1994, 3, 23, 12, 35, 19, tzinfo=UTC)
    assert fix.speed_mps == pytest.approx(22.4 * 0.514444, rel=1e-5)
    assert fix.heading_deg == pytest.approx(84.4)
    assert fix.accuracy_m == pytest.approx(0.9 * 5.0)
    assert fix.source == "nmea"


def test_log_is_decoded_in_order_and_bad_lines_are_skipped() -> None:
    decoder = NmeaDecoder()
    fixes = [fix for line in LOG if (fix := decoder.feed(line)) is not None]
    last = decoder.flush()
    assert last is not None
    fixes.append(last)

    assert [f.at.strftime("%H:%M:%S") for f in fixes] == ["09:30:00", "09:30:01", "09:30:04"]
    assert decoder.rejected == 1  # the bad checksum; the void epoch is valid NMEA, just no fix
    first, second, parked = fixes
    assert first.position == pytest.approx((12.9352, 77.6245))
    assert first.at.date() == date(2025, 6, 1)
    assert first.speed_mps == pytest.approx(10.8 * KNOT_MPS)
    assert first.heading_deg == pytest.approx(15.3)
    assert first.accuracy_m == pytest.approx(4.0)
    assert second.accuracy_m == pytest.approx(4.5)
    # RMC only: standing still, the receiver leaves the course empty; no GGA means no HDOP.
    assert (parked.speed_mps, parked.heading_deg, parked.accuracy_m) == (0.0, None, None)


def test_epoch_completes_whichever_sentence_comes_first() -> None:
    decoder = NmeaDecoder()
    assert decoder.feed(TEXTBOOK_GGA) is None
    fix = decoder.feed(TEXTBOOK_RMC)
    assert fix is not None and fix.accuracy_m == pytest.approx(4.5)
    # a second talker repeating the epoch does not produce a duplicate fix
    assert decoder.feed(TEXTBOOK_RMC) is None
    assert decoder.flush() is None


def test_gga_only_epochs_take_the_last_rmc_date_else_today() -> None:
    gga_next_second = "$GPGGA,123520,4807.038,S,01131.000,W,1,08,0.9,545.4,M,46.9,M,,*42"
    assert split_sentence(gga_next_second) is not None
    rmc_then_gga = parse_nmea([TEXTBOOK_RMC, gga_next_second])
    assert [f.at.date() for f in rmc_then_gga] == [date(1994, 3, 23)] * 2
    # southern and western hemispheres are negative
    assert rmc_then_gga[1].lat < 0 and rmc_then_gga[1].lng < 0
    assert rmc_then_gga[1].speed_mps is None

    (only,) = parse_nmea([TEXTBOOK_GGA], today=lambda: date(2025, 6, 1))
    assert only.at == datetime(2025, 6, 1, 12, 35, 19, tzinfo=UTC)


@pytest.mark.parametrize(
    "body",
    [
        "GPRMC,123519,A,4867.038,N,01131.000,E,022.4,084.4,230394,003.1,W",  # 67 minutes
        "GPRMC,123519,A,4807.038,X,01131.000,E,022.4,084.4,230394,003.1,W",  # hemisphere
        "GPRMC,123519,A,4807.038,N,01131.000,E,nan,084.4,230394,003.1,W",
        "GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,320394,003.1,W",  # 32 March
        "GPRMC,123519,A,4807.038,N,01131.000,E",  # fields missing
        "GPGGA,1235,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,",  # short time
    ],
)
def test_valid_checksum_but_malformed_fields_is_rejected(body: str) -> None:
    decoder = NmeaDecoder()
    assert decoder.feed(f"${body}*{checksum(body)}") is None
    assert decoder.flush() is None
    assert decoder.rejected == 1


async def test_file_playback_keeps_recorded_pace(tmp_path: Path) -> None:
    path = tmp_path / "ride.nmea"
    path.write_text("\r\n".join(LOG) + "\r\n", encoding="ascii")
    time = FakeTime()
    source = NmeaFileSource(path, speed=2.0, clock=time.clock, sleep=time.sleep)
    fixes = [fix async for fix in source.fixes()]
    await source.close()
    assert len(fixes) == 3
    assert time.slept == [0.5, 1.5]  # 1 s and 3 s apart, played twice as fast
    # restamped with the playback clock
    assert [f.at - T0 for f in fixes] == [
        timedelta(0),
        timedelta(seconds=0.5),
        timedelta(seconds=2),
    ]


async def test_file_playback_can_keep_recorded_times(tmp_path: Path) -> None:
    path = tmp_path / "ride.nmea"
    path.write_text("\n".join([TEXTBOOK_RMC, TEXTBOOK_GGA]), encoding="ascii")
    time = FakeTime()
    source = NmeaFileSource(path, restamp=False, clock=time.clock, sleep=time.sleep)
    assert [f.at.year async for f in source.fixes()] == [1994]


def test_serial_source_names_pyserial_when_it_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "serial", None)  # makes `import serial` fail
    with pytest.raises(GpsUnavailableError, match="pyserial"):
        NmeaSerialSource("/dev/ttyUSB0")


class FakePort:
    """Stands in for serial.Serial: hands out chunks, then blocks like a read timeout."""

    instances: list[FakePort] = []

    def __init__(self, device: str, baudrate: int, *, timeout: float) -> None:
        self.device, self.baudrate, self.timeout = device, baudrate, timeout
        self.chunks = [
            (TEXTBOOK_RMC + "\r\n").encode(),
            TEXTBOOK_GGA[:30].encode(),  # a read timeout mid-sentence
            (TEXTBOOK_GGA[30:] + "\r\n").encode(),
            b"\xff\xfe garbage\r\n",
        ]
        self.cancelled = threading.Event()
        self.closed = False
        FakePort.instances.append(self)

    def readline(self) -> bytes:
        if self.chunks:
            return self.chunks.pop(0)
        self.cancelled.wait(self.timeout)
        return b""

    def cancel_read(self) -> None:
        self.cancelled.set()

    def close(self) -> None:
        self.closed = True


async def test_serial_source_reads_lines_and_closes_the_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "serial", types.SimpleNamespace(Serial=FakePort))
    source = NmeaSerialSource("/dev/ttyACM0", baudrate=4800, read_timeout_s=5.0)
    got: list[Fix] = []

    async def consume() -> None:
        async for fix in source.fixes():
            got.append(fix)

    task = asyncio.create_task(consume())
    await wait_until(lambda: len(got) == 1)
    port = FakePort.instances[-1]
    assert (port.device, port.baudrate) == ("/dev/ttyACM0", 4800)
    await source.close()
    await asyncio.wait_for(task, 2.0)  # cancel_read wakes the blocked read: no 5 s wait
    assert port.closed
    assert got[0].accuracy_m == pytest.approx(4.5)  # the split GGA was reassembled
