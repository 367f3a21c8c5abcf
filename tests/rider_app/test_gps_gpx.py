from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rider_app.gps.gpx import GpxSource, parse_gpx
from shared.geo import LatLng, bearing_deg, destination, haversine_m
from tests.rider_app.gps_helpers import T0, FakeTime

GPX11 = "http://www.topografix.com/GPX/1/1"
START = LatLng(12.9352, 77.6245)


def make_gpx(
    segments: Sequence[Sequence[tuple[LatLng, datetime | None]]],
    *,
    namespace: str = GPX11,
    hdop: float | None = None,
) -> bytes:
    """A GPX document as a phone tracker writes it."""
    ET.register_namespace("", namespace)
    root = ET.Element(f"{{{namespace}}}gpx", version="1.1", creator="qc-tests")
    track = ET.SubElement(root, f"{{{namespace}}}trk")
    ET.SubElement(track, f"{{{namespace}}}name").text = "Koramangala run"
    for points in segments:
        segment = ET.SubElement(track, f"{{{namespace}}}trkseg")
        for position, at in points:
            point = ET.SubElement(
                segment,
                f"{{{namespace}}}trkpt",
                lat=f"{position.lat:.7f}",
                lon=f"{position.lng:.7f}",
            )
            ET.SubElement(point, f"{{{namespace}}}ele").text = "920.0"
            if at is not None:
                ET.SubElement(point, f"{{{namespace}}}time").text = at.strftime(
                    "%Y-%m-%dT%H:%M:%SZ"
                )
            if hdop is not None:
                ET.SubElement(point, f"{{{namespace}}}hdop").text = str(hdop)
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))


def ride(
    count: int, step_m: float, every_s: int, bearing: float = 30.0
) -> list[tuple[LatLng, datetime]]:
    return [
        (destination(START, bearing, i * step_m), T0 + timedelta(seconds=i * every_s))
        for i in range(count)
    ]


def test_parse_derives_speed_and_heading_from_consecutive_points() -> None:
    fixes = parse_gpx(make_gpx([ride(4, 25.0, 5)], hdop=1.2))
    assert len(fixes) == 4
    assert [f.at for f in fixes] == [T0 + timedelta(seconds=5 * i) for i in range(4)]
    assert fixes[0].position == pytest.approx(START)
    assert (fixes[0].speed_mps, fixes[0].heading_deg) == (None, None)  # nothing before it
    for fix in fixes[1:]:
        assert fix.speed_mps == pytest.approx(5.0, rel=1e-3)
        assert fix.heading_deg == pytest.approx(30.0, abs=0.1)  # 7-decimal coordinates
    assert [f.accuracy_m for f in fixes] == pytest.approx([6.0] * 4)
    assert {f.source for f in fixes} == {"gpx"}


def test_segments_do_not_derive_across_the_gap() -> None:
    first, second = ride(3, 20.0, 4), ride(6, 20.0, 4)[4:]
    fixes = parse_gpx(make_gpx([first, second]))
    assert len(fixes) == 5
    assert fixes[3].speed_mps is None  # first point after a signal loss
    assert fixes[4].speed_mps == pytest.approx(5.0, rel=1e-3)


def test_gpx_10_speed_and_course_are_used_when_given() -> None:
    doc = """<?xml version="1.0"?>
    <gpx version="1.0" xmlns="http://www.topografix.com/GPX/1/0"><trk><trkseg>
      <trkpt lat="12.9352" lon="77.6245"><time>2025-06-01T09:30:00Z</time>
        <speed>4.5</speed><course>270</course></trkpt>
      <trkpt lat="12.9353" lon="77.6245"><time>2025-06-01T09:30:05.5+05:30</time></trkpt>
    </trkseg></trk></gpx>"""
    first, second = parse_gpx(doc)
    assert (first.speed_mps, first.heading_deg) == (4.5, 270.0)
    assert second.at == datetime(2025, 6, 1, 4, 0, 5, 500_000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (make_gpx([[(START, None)]]), "time"),
        (b"<gpx><trk><trkseg><trkpt lat='1'/></trkseg></trk></gpx>", "lat/lon"),
        (b"<gpx><trk><trkseg><trkpt lat='x' lon='1'/></trkseg></trk></gpx>", "not a number"),
        (b"<gpx><trk>", "not a GPX document"),
    ],
)
def test_unusable_documents_are_rejected_clearly(doc: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_gpx(doc)


def test_routes_and_waypoints_are_not_track_points() -> None:
    doc = f'<gpx xmlns="{GPX11}"><wpt lat="1" lon="2"/><rte><rtept lat="1" lon="2"/></rte></gpx>'
    assert parse_gpx(doc) == []


async def test_playback_at_ten_times_the_recorded_pace(tmp_path: Path) -> None:
    path = tmp_path / "track.gpx"
    path.write_bytes(make_gpx([ride(5, 30.0, 6)]))
    time = FakeTime(T0 + timedelta(days=30))
    source = GpxSource(path, speed=10.0, clock=time.clock, sleep=time.sleep)
    fixes = [fix async for fix in source.fixes()]
    assert time.slept == pytest.approx([0.6] * 4)
    assert fixes[-1].at - fixes[0].at == timedelta(seconds=2.4)
    assert fixes[0].at == T0 + timedelta(days=30)  # played now, not on the recorded day
    assert haversine_m(fixes[0].position, fixes[-1].position) == pytest.approx(120.0, rel=1e-3)
    assert bearing_deg(fixes[0].position, fixes[-1].position) == pytest.approx(30.0, abs=0.01)


async def test_close_stops_playback(tmp_path: Path) -> None:
    path = tmp_path / "track.gpx"
    path.write_bytes(make_gpx([ride(5, 30.0, 6)]))
    time = FakeTime()
    source = GpxSource(path, clock=time.clock, sleep=time.sleep)
    got = []
    async for fix in source.fixes():
        got.append(fix)
        await source.close()
    assert len(got) == 1


def test_playback_speed_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="speed"):
        GpxSource(tmp_path / "x.gpx", speed=0)
