"""gpsd sessions against a tiny gpsd speaking its JSON protocol on a real 127.0.0.1 socket."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest

from rider_app.gps.fix import Fix
from rider_app.gps.gpsd import WATCH_COMMAND, GpsdSource, parse_report
from tests.helpers import wait_until
from tests.rider_app.gps_helpers import T0

VERSION = {"class": "VERSION", "release": "3.25", "proto_major": 3, "proto_minor": 15}
DEVICES = {"class": "DEVICES", "devices": [{"class": "DEVICE", "path": "/dev/ttyACM0"}]}
WATCH = {"class": "WATCH", "enable": True, "json": True}
SKY = {"class": "SKY", "device": "/dev/ttyACM0", "satellites": [{"PRN": 10, "used": True}]}


def tpv(lat: float, lng: float, *, mode: int = 3, second: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "class": "TPV",
        "device": "/dev/ttyACM0",
        "mode": mode,
        "time": f"2025-06-01T09:30:{second:02d}.000Z",
        "lat": lat,
        "lon": lng,
        "speed": 5.2,
        "track": 15.3,
        "eph": 3.8,
        **extra,
    }


class FakeGpsd:
    """Plays one script per connection; after the last script it keeps the line open."""

    def __init__(self, scripts: Sequence[Sequence[dict[str, Any] | str]]) -> None:
        self.scripts = scripts
        self.commands: list[bytes] = []
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = self.connections
        self.connections += 1
        writer.write(json.dumps(VERSION).encode() + b"\n")
        self.commands.append(await reader.readline())
        for item in self.scripts[min(index, len(self.scripts) - 1)]:
            line = item if isinstance(item, str) else json.dumps(item)
            writer.write(line.encode() + b"\n")
        await writer.drain()
        if index < len(self.scripts) - 1:
            writer.close()  # the daemon drops the client (restart, receiver unplugged)
            return
        await reader.read()  # hold the session until the client hangs up
        writer.close()


@asynccontextmanager
async def serving(gpsd: FakeGpsd, port: int = 0) -> AsyncIterator[int]:
    server = await asyncio.start_server(gpsd.handle, "127.0.0.1", port)
    async with server:
        yield server.sockets[0].getsockname()[1]


async def take(source: GpsdSource, count: int) -> list[Fix]:
    got: list[Fix] = []
    async for fix in source.fixes():
        got.append(fix)
        if len(got) == count:
            break
    return got


def test_parse_report_reads_a_3d_tpv() -> None:
    fix = parse_report(json.dumps(tpv(12.9352, 77.6245)))
    assert fix == Fix(
        12.9352,
        77.6245,
        datetime(2025, 6, 1, 9, 30, tzinfo=UTC),
        speed_mps=5.2,
        heading_deg=15.3,
        accuracy_m=3.8,
        source="gpsd",
    )


@pytest.mark.parametrize(
    "line",
    [
        json.dumps(tpv(12.9, 77.6, mode=1)),  # no fix yet
        json.dumps(tpv(12.9, 77.6, mode=0)),
        json.dumps({"class": "TPV", "mode": 3}),  # no position
        json.dumps(tpv(12.9, 277.6)),  # off the globe
        json.dumps(tpv(12.9, 77.6, time="yesterday")),
        json.dumps(SKY),
        '{"class":"TPV","mode":3,"lat":12.9,',  # torn
        "not json",
        "[1, 2]",
    ],
)
def test_parse_report_ignores_everything_but_usable_tpv(line: str) -> None:
    assert parse_report(line) is None


def test_parse_report_fallbacks_for_older_daemons() -> None:
    report = tpv(12.9, 77.6, epx=4.0, epy=6.5)
    del report["eph"], report["time"], report["speed"]
    fix = parse_report(json.dumps(report), clock=lambda: T0)
    assert fix is not None
    assert fix.accuracy_m == 6.5
    assert fix.at == T0
    assert fix.speed_mps is None


async def test_session_watches_and_streams_fixes() -> None:
    gpsd = FakeGpsd(
        [
            [
                DEVICES,
                WATCH,
                tpv(0, 0, mode=1),
                SKY,
                "garbage",
                tpv(12.9352, 77.6245, second=1),
                tpv(12.9355, 77.6246, mode=2, second=2),
            ]
        ]
    )
    async with serving(gpsd) as port:
        source = GpsdSource("127.0.0.1", port)
        fixes = await asyncio.wait_for(take(source, 2), 5)
        await source.close()
    assert gpsd.commands == [WATCH_COMMAND]
    assert [(f.lat, f.at.second) for f in fixes] == [(12.9352, 1), (12.9355, 2)]


async def test_reconnects_after_the_daemon_drops_the_connection() -> None:
    gpsd = FakeGpsd(
        [[WATCH, tpv(12.9352, 77.6245, second=1)], [WATCH, tpv(12.94, 77.63, second=9)]]
    )
    async with serving(gpsd) as port:
        source = GpsdSource("127.0.0.1", port, backoff_initial_s=0.01)
        fixes = await asyncio.wait_for(take(source, 2), 5)
        await source.close()
    assert [f.at.second for f in fixes] == [1, 9]
    assert gpsd.connections == source.connections == 2
    assert gpsd.commands == [WATCH_COMMAND, WATCH_COMMAND]  # the watch is renewed


async def test_waits_for_a_daemon_that_is_not_up_yet(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as probe:  # a free port nobody listens on (yet)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    source = GpsdSource("127.0.0.1", port, backoff_initial_s=0.01, backoff_max_s=0.05)
    first = asyncio.create_task(take(source, 1))
    await wait_until(lambda: sum("unavailable" in r.getMessage() for r in caplog.records) >= 3)
    assert not first.done()
    gpsd = FakeGpsd([[tpv(12.9352, 77.6245)]])
    async with serving(gpsd, port):
        (fix,) = await asyncio.wait_for(first, 5)
        await source.close()
    assert fix.lat == 12.9352


async def test_close_ends_a_quiet_session_promptly() -> None:
    gpsd = FakeGpsd([[DEVICES, WATCH]])  # connected, but the receiver has no fix to report
    async with serving(gpsd) as port:
        source = GpsdSource("127.0.0.1", port)
        task = asyncio.create_task(take(source, 1))
        await wait_until(lambda: bool(gpsd.commands))
        await source.close()
        assert await asyncio.wait_for(task, 2) == []
    assert source.connections == 1
