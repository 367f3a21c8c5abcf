from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from rider_app.gps.base import GpsSource, GpsUnavailableError
from rider_app.gps.gpsd import GpsdSource
from rider_app.gps.gpx import GpxSource
from rider_app.gps.nmea import NmeaFileSource, NmeaSerialSource
from rider_app.gps.sim import SimSource
from rider_app.gps.spec import open_source
from shared.geo import LatLng
from tests.rider_app.gps_helpers import FakeTime


def test_gpsd_host_and_port() -> None:
    source = open_source("gpsd://10.0.0.7:2948")
    assert isinstance(source, GpsdSource) and isinstance(source, GpsSource)
    assert (source.host, source.port) == ("10.0.0.7", 2948)
    default = open_source("gpsd://")
    assert isinstance(default, GpsdSource)
    assert (default.host, default.port) == ("127.0.0.1", 2947)


def test_nmea_file_and_gpx_paths_and_options() -> None:
    nmea = open_source("nmea+file:///var/log/ride%201.nmea?speed=4")
    assert isinstance(nmea, NmeaFileSource)
    assert (nmea.path, nmea.speed, nmea.restamp) == (Path("/var/log/ride 1.nmea"), 4.0, True)
    gpx = open_source("gpx://tracks/morning.gpx?restamp=0")
    assert isinstance(gpx, GpxSource)
    assert (gpx.path, gpx.speed, gpx.restamp) == (Path("tracks/morning.gpx"), 1.0, False)


def test_nmea_serial_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "serial", types.SimpleNamespace(Serial=object))
    source = open_source("nmea:///dev/ttyUSB0?baud=4800")
    assert isinstance(source, NmeaSerialSource)
    assert (source.device, source.baudrate) == ("/dev/ttyUSB0", 4800)


def test_nmea_serial_without_pyserial_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "serial", None)
    with pytest.raises(GpsUnavailableError, match="pip install pyserial"):
        open_source("nmea:///dev/ttyUSB0")


async def test_sim_route_from_the_spec_runs_to_the_destination() -> None:
    time = FakeTime()
    spec = "sim://?from=12.9352,77.6245&via=12.96,77.62&to=12.9784,77.6408&speed=6&step=5"
    source = open_source(spec, clock=time.clock, sleep=time.sleep)
    assert isinstance(source, SimSource)
    assert (source.speed_mps, source.step_s) == (6.0, 5.0)
    fixes = [fix async for fix in source.fixes()]
    assert fixes[-1].position == LatLng(12.9784, 77.6408)
    assert time.slept[0] == 5.0


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("bluetooth://gps", "unknown GPS source"),
        ("/dev/ttyUSB0", "unknown GPS source"),
        ("gpsd://localhost:2947?device=x", "unknown parameter"),
        ("gpx:///t.gpx?sped=4", "unknown parameter"),
        ("gpx:///t.gpx?speed=fast", "number"),
        ("gpx:///t.gpx?speed=0", "positive"),
        ("gpx:///t.gpx?speed=1&speed=2", "more than once"),
        ("nmea+file://?speed=2", "no file"),
        ("nmea://", "no serial device"),
        ("gpx:///t.gpx?restamp=maybe", "1 or 0"),
        ("sim://?from=12.9,77.6", "from=LAT,LNG and to=LAT,LNG"),
        ("sim://?from=12.9&to=12.97,77.64", "LAT,LNG"),
        ("sim://?from=99.9,77.6&to=12.97,77.64", "off the globe"),
        ("sim://?from=12.9,77.6&to=12.97,77.64&speed=-3", "speed"),
    ],
)
def test_bad_specs_say_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        open_source(spec)
