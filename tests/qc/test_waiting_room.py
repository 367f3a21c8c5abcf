"""``qc serve`` with ``QC_WAITING_ROOM_PORT``: the flash queue's routes and socket on a
server of their own beside the API, as real processes on real sockets.

The sale names the waiting room; customers join, poll and watch there, the one admitted
checks out at the API, and the room's socket hears it (the line's pub/sub crosses the
processes); the room serves nothing but the line, and the API still serves the line too.
The room is started again if it dies, and stops with ``qc serve``."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil
import pytest
import websockets

from qc.serving import group_nice
from server.kit.clock import Clock
from tests.conftest import Services
from tests.helpers import free_port
from tests.qc.test_cli import QC, _wait_healthy
from tests.qc.test_serve_servers import STOP_DEADLINE_S, _env, _wait_for
from tests.server.flash.flash_helpers import (
    ADDRESS,
    STORE,
    create_sale,
    flash_sku,
    make_customers,
    manager_headers,
)

pytestmark = pytest.mark.slow


@contextmanager
def _served_with_room(
    services: Services, log: Path, *args: str, env: dict[str, str] | None = None
) -> Iterator[tuple[str, str, subprocess.Popen[str]]]:
    """``qc serve`` with its waiting room, both on free ports: the API's URL, the room's."""
    port, room_port = free_port(), free_port()
    env = _env(services) | {"QC_WAITING_ROOM_PORT": str(room_port)} | (env or {})
    with log.open("w") as err:
        proc = subprocess.Popen(
            [*QC, "serve", "--port", str(port), *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
            text=True,
        )
    try:
        url, room = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{room_port}"
        try:
            _wait_healthy(url, proc, deadline_s=180)  # imports are slow on a busy machine
            _wait_healthy(room, proc, deadline_s=180)
        except AssertionError as exc:  # what qc serve and the room said, to see why
            raise AssertionError(f"{exc}\n{log.read_text()[-4000:]}") from None
        yield url, room, proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def _rooms(proc: subprocess.Popen[str]) -> list[psutil.Process]:
    """The waiting room's server (its own workers are its children)."""
    return [
        p
        for p in psutil.Process(proc.pid).children()
        if p.cmdline()[1:4] == ["-m", "qc.serving", "room"]
    ]


AUTOGROUP = Path("/proc/self/autogroup")


def _group(process: psutil.Process) -> str:
    """The process's scheduling group and its niceness (``/autogroup-7 nice -10``; empty
    in the root group, where CI's sessions run)."""
    return Path(f"/proc/{process.pid}/autogroup").read_text().strip()


@pytest.mark.parametrize(
    ("autogroup", "nice"),
    [("/autogroup-7 nice 0\n", 0), ("/autogroup-85 nice -10\n", -10), ("", 0)],
    ids=["a-session-s-group", "ahead", "the-root-group"],
)
def test_a_scheduling_group_s_niceness_is_read_in_the_root_group_too(
    autogroup: str, nice: int
) -> None:
    """A session that never called ``setsid`` (under a container's init, as CI runs) is
    in the root group, whose ``/proc/<pid>/autogroup`` is empty: the room must still
    start, in a group of its own, rather than fail on every restart."""
    assert group_nice(autogroup) == nice


async def _next(ws: websockets.ClientConnection) -> dict[str, object]:
    message: dict[str, object] = json.loads(await asyncio.wait_for(ws.recv(), timeout=30))
    return message


async def test_the_waiting_room_serves_the_line_and_the_api_the_checkout(
    city: Services, tmp_path: Path
) -> None:
    clock = Clock()
    log = tmp_path / "serve.log"
    with _served_with_room(city, log) as (url, room_url, proc):
        (server,) = _rooms(proc)
        processes = [server, *server.children()]  # uvicorn's one worker is the server
        if "runs at its parent's priority" not in log.read_text():  # the OS let it go ahead
            ahead = max(-20, psutil.Process(proc.pid).nice() - 10)  # QC_WAITING_ROOM_NICE
            assert {p.nice() for p in processes} == {ahead}
        if AUTOGROUP.exists() and "runs in its parent's scheduling group" not in log.read_text():
            # Linux weighs a niceness only inside a session's scheduling group: the room
            # (and any worker of its) is a group of its own, the step ahead
            room_group, serve_group = _group(server), _group(psutil.Process(proc.pid))
            assert room_group.split()[0] != (serve_group.split() or [""])[0]
            ahead = max(-20, group_nice(serve_group) - 10)
            assert room_group.split()[1:] == ["nice", str(ahead)]
            assert all(_group(p) == room_group for p in processes)
        api = httpx.AsyncClient(base_url=url, timeout=30)
        room = httpx.AsyncClient(base_url=room_url, timeout=30)
        async with api, room:
            boss = manager_headers(clock, city.database_url)
            sale = await create_sale(api, boss, clock, sku=flash_sku(city.database_url), units=1)
            sid = sale["sale_id"]
            assert sale["waiting_room_url"] == room_url  # the sale says where the line is
            assert (await api.get(f"/v1/flash-sales/{sid}")).json()["waiting_room_url"] == room_url
            # the room serves the line only: no sales, no orders, no other socket
            assert (await room.post("/v1/flash-sales", headers=boss, json={})).status_code == 404
            assert (await room.get(f"/v1/flash-sales/{sid}")).status_code == 404
            (_, buyer), (_, waiting), (_, at_api) = make_customers(city.database_url, clock, 3)
            line = f"/v1/flash-sales/{sid}/queue"
            joined = await room.post(line, json={"store_id": STORE}, headers=buyer)
            assert joined.status_code == 200, joined.text
            assert joined.json()["status"] == "ADMITTED"  # the first: a slot at once
            second = await room.post(line, json={"store_id": STORE}, headers=waiting)
            assert second.json()["status"] == "WAITING" and second.json()["position"] == 1
            # the API still serves the line (clients that never read the sale's view)
            third = await api.post(line, json={"store_id": STORE}, headers=at_api)
            assert third.json()["status"] == "WAITING" and third.json()["position"] == 2
            token = waiting["Authorization"].split()[1]
            ws_url = room_url.replace("http", "ws") + f"/ws/flash/{sid}?token={token}"
            async with websockets.connect(ws_url) as ws:  # offering permessage-deflate
                assert ws.response is not None  # positions go uncompressed, as granian's
                assert "sec-websocket-extensions" not in ws.response.headers
                assert (await _next(ws))["position"] == 1
                polled = await room.get(f"{line}/me", headers=waiting)
                assert polled.status_code == 200 and polled.json()["position"] == 1
                # admitted in the room, the customer buys at the API
                bought = await api.post(
                    f"/v1/flash-sales/{sid}/checkout",
                    json=ADDRESS,
                    headers={**buyer, "Idempotency-Key": uuid.uuid4().hex},
                )
                assert bought.status_code == 201, bought.text
                # and the room's socket hears the API's sale end the line
                assert await _next(ws) == {"type": "closed", "reason": "sold_out"}
            after = await room.get(f"{line}/me", headers=waiting)
            assert after.json()["status"] == "CLOSED"
            assert (await room.get(f"{line}/me", headers=buyer)).json()["status"] == "PURCHASED"


def test_a_killed_waiting_room_is_started_again_and_stops_with_serve(
    city: Services, tmp_path: Path
) -> None:
    log = tmp_path / "serve.log"
    with _served_with_room(city, log) as (url, room_url, proc):
        (first,) = _rooms(proc)
        first.kill()
        first.wait(timeout=60)  # gone once qc serve has reaped it: seconds on a loaded box
        _wait_for("another waiting room", lambda: [r for r in _rooms(proc) if r.pid != first.pid])
        _wait_healthy(room_url, proc, deadline_s=180)
        (second,) = _rooms(proc)
        assert "the waiting room exited" in log.read_text()
        assert httpx.get(url + "/healthz", timeout=10).status_code == 200
        room_family = [second, *second.children(recursive=True)]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=STOP_DEADLINE_S) == 0, log.read_text()[-3000:]
        _, alive = psutil.wait_procs(room_family, timeout=STOP_DEADLINE_S)
        assert not alive and "Traceback" not in log.read_text()
        with pytest.raises(httpx.TransportError):
            httpx.get(room_url + "/healthz", timeout=2)


async def _first_two_join(room_url: str, api_url: str, services: Services) -> None:
    """A sale made at the API, its first customer admitted and its second in line, both
    joining at ``room_url``, whose answers name no server software."""
    clock = Clock()
    api = httpx.AsyncClient(base_url=api_url, timeout=30)
    room = httpx.AsyncClient(base_url=room_url, timeout=30)
    async with api, room:
        boss = manager_headers(clock, services.database_url)
        sale = await create_sale(api, boss, clock, sku=flash_sku(services.database_url), units=1)
        assert sale["waiting_room_url"] == room_url
        (_, first), (_, second) = make_customers(services.database_url, clock, 2)
        line = f"/v1/flash-sales/{sale['sale_id']}/queue"
        joined = await room.post(line, json={"store_id": STORE}, headers=first)
        assert joined.status_code == 200, joined.text
        assert joined.json()["status"] == "ADMITTED" and joined.headers["server"] == "qc"
        waiting = await room.post(line, json={"store_id": STORE}, headers=second)
        assert waiting.json()["status"] == "WAITING" and waiting.json()["position"] == 1
        polled = await room.get(f"{line}/me", headers=second)
        assert polled.status_code == 200 and polled.json()["position"] == 1


@pytest.mark.parametrize(
    ("room_server", "runs"),
    [(None, "uvicorn"), ("", "granian")],
    ids=["uvicorn-by-default", "qc-serve-s-own"],
)
async def test_the_waiting_room_runs_its_own_server_beside_the_apis(
    city: Services, tmp_path: Path, room_server: str | None, runs: str
) -> None:
    """The room runs ``QC_WAITING_ROOM_SERVER`` (uvicorn: more joins a second and half
    the memory a socket than granian, docs/benchmarks.md), or qc serve's own when that
    is empty, beside the API under granian; both take the joins and stop with serve."""
    log = tmp_path / "serve.log"
    env = {} if room_server is None else {"QC_WAITING_ROOM_SERVER": room_server}
    with _served_with_room(city, log, env=env) as (url, room_url, proc):
        (server,) = _rooms(proc)
        assert server.cmdline()[4:6] == [str(proc.pid), runs]
        await _first_two_join(room_url, url, city)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=STOP_DEADLINE_S) == 0, log.read_text()[-3000:]  # granian's
        _, alive = psutil.wait_procs([server], timeout=STOP_DEADLINE_S)
        assert not alive and "Traceback" not in log.read_text()


async def test_a_waiting_room_of_its_own_as_deployed(city: Services, tmp_path: Path) -> None:
    """As deploy/ runs it: ``qc serve --waiting-room`` alone (the line and its socket, no
    loops, no API routes), the API told its address by QC_WAITING_ROOM_URL."""
    room_port, port = free_port(), free_port()
    room_url = f"http://127.0.0.1:{room_port}"
    env = _env(city) | {"QC_BACKGROUND_LOOPS": "true"}  # the room runs none whatever it says
    log = tmp_path / "room.log"
    with log.open("w") as err:
        room = subprocess.Popen(
            [*QC, "serve", "--waiting-room", "--port", str(room_port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
            text=True,
        )
    try:
        with _served(port, env | {"QC_WAITING_ROOM_URL": room_url}) as api:
            _wait_healthy(room_url, room, deadline_s=180)
            workers = psutil.Process(room.pid).children(recursive=True)
            assert not [p for p in workers if "loops" in p.cmdline()]
            assert not [p for p in workers if p.cmdline()[1:4] == ["-m", "qc.serving", "room"]]
            await _first_two_join(room_url, f"http://127.0.0.1:{port}", city)
            assert httpx.post(room_url + "/v1/flash-sales", json={}).status_code == 404
            assert api.poll() is None
        room.send_signal(signal.SIGTERM)
        # under uvicorn (QC_WAITING_ROOM_SERVER): it re-raises the stop once it has stopped
        assert room.wait(timeout=STOP_DEADLINE_S) == -signal.SIGTERM, log.read_text()[-3000:]
        assert "waiting room on" in log.read_text() and "(uvicorn)" in log.read_text()
        assert "Traceback" not in log.read_text()
    finally:
        if room.poll() is None:
            room.kill()
            room.wait(timeout=10)


@contextmanager
def _served(port: int, env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """``qc serve`` (the API, no room of its own) on ``port`` with ``env``."""
    proc = subprocess.Popen(
        [*QC, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        _wait_healthy(f"http://127.0.0.1:{port}", proc, deadline_s=180)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
