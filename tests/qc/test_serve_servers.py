"""``qc serve`` runs granian unless told ``--server uvicorn``, and both serve the same app
(``qc.serving.served``): ``X-Forwarded-For`` names the client for the login guard only from
a ``QC_TRUSTED_PROXIES`` address, and answers do not name the server software.

The slow tests run it as a real process on a real socket on the suite's PostgreSQL and
Redis: it answers /healthz, a websocket gets its snapshot, the trust rule holds, and
SIGTERM stops it promptly (granian: exit code 0) with the background loops' leases given
back. The loops run in a process of their own beside the workers, started again if it
dies, and gone with a killed server like the workers."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil
import pytest
from fastapi import FastAPI
from typer.testing import CliRunner
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from qc import cli, serving
from server.kit import keys
from server.kit.config import Settings
from server.kit.redis import sync_client
from server.seed.generate import DEMO_SECRETS
from shared.enums import Role
from tests.conftest import TEST_SECRET, Services, settings_for
from tests.helpers import free_port
from tests.qc.test_cli import QC, _wait_healthy

TRUSTED, UNTRUSTED = "127.0.0.1", "127.0.0.2"  # two loopback sources: proxy and stranger
FAILURES_PER_ADDRESS = 3
STOP_DEADLINE_S = 30  # the servers' 10 s grace, and margin for a busy machine


def _env(services: Services) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QC_")}
    return env | {
        "QC_HOME": str(services.home),
        "QC_DATABASE_URL": services.database_url,
        "QC_REDIS_URL": services.redis_url,
        "QC_SECRET_KEY": TEST_SECRET,
        "QC_LOG_JSON": "false",
        "QC_LOG_LEVEL": "WARNING",
        "QC_TRUSTED_PROXIES": TRUSTED,
        "QC_LOGIN_FAILURES_PER_ADDRESS": f"{FAILURES_PER_ADDRESS}/5 minutes",
    }


@contextmanager
def _served(
    services: Services, args: list[str], log: Path
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``qc serve`` on a free port, its stderr in ``log``."""
    port = free_port()
    with log.open("w") as err:
        proc = subprocess.Popen(
            [*QC, "serve", "--port", str(port), *args],
            env=_env(services),
            stdout=subprocess.DEVNULL,
            stderr=err,
            text=True,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url, proc, deadline_s=180)  # imports are slow on a busy machine
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def settings(services: Services) -> Settings:
    return settings_for(services, login_failures_per_address=f"{FAILURES_PER_ADDRESS}/5 minutes")


def test_serve_defaults_to_granian(monkeypatch: pytest.MonkeyPatch) -> None:
    runs: list[tuple[str, dict[str, object]]] = []
    monkeypatch.setattr(cli, "_prepare_stack", lambda settings, **_: None)
    monkeypatch.setattr(serving, "run", lambda server, **kw: runs.append((server, kw)))
    for args in ([], ["--server", "uvicorn", "--workers", "2"]):
        result = CliRunner().invoke(cli.app, ["serve", "--port", "8124", *args])
        assert result.exit_code == 0, result.output
    assert runs == [
        ("granian", {"host": "127.0.0.1", "port": 8124, "workers": 1}),
        ("uvicorn", {"host": "127.0.0.1", "port": 8124, "workers": 2}),
    ]
    refused = CliRunner().invoke(cli.app, ["serve", "--server", "hypercorn"])
    assert refused.exit_code == 2


async def test_served_app_takes_forwarded_for_only_from_a_trusted_proxy(app: FastAPI) -> None:
    """In process: the trusted proxy's forwarded clients are counted apart, anyone
    else's header is ignored (counted on the connection's own address)."""
    served_app = serving.served(app, trusted_proxies=f"10.0.0.9,{TRUSTED}")

    def client(source: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=served_app, client=(source, 40000))
        return httpx.AsyncClient(transport=transport, base_url="http://qc.test")

    async with client(TRUSTED) as proxy, client(UNTRUSTED) as stranger:
        for _ in range(FAILURES_PER_ADDRESS):
            assert await _failed_login_async(proxy, "203.0.113.1") == 401
        assert await _failed_login_async(proxy, "203.0.113.1") == 429
        assert await _failed_login_async(proxy, "203.0.113.2") == 401
        for n in range(FAILURES_PER_ADDRESS):
            assert await _failed_login_async(stranger, f"198.51.100.{n}") == 401
        assert await _failed_login_async(stranger, "198.51.100.99") == 429
        assert (await proxy.get("/healthz")).headers["server"] == "qc"
    untrusting = serving.served(app, trusted_proxies="")
    transport = httpx.ASGITransport(app=untrusting, client=("10.0.0.9", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://qc.test") as nobody:
        for n in range(FAILURES_PER_ADDRESS):
            assert await _failed_login_async(nobody, f"192.0.2.{n}") == 401
        assert await _failed_login_async(nobody, "192.0.2.99") == 429


def _wrong_pin() -> dict[str, str]:
    """A wrong PIN for an account of its own (the per-account limit stays out of it)."""
    return {"login": f"nobody.{uuid.uuid4().hex[:8]}", "secret": "0000"}


async def _failed_login_async(http: httpx.AsyncClient, forwarded_for: str) -> int:
    headers = {"X-Forwarded-For": forwarded_for}
    return (await http.post("/v1/auth/login", json=_wrong_pin(), headers=headers)).status_code


def _failed_login(http: httpx.Client, forwarded_for: str) -> int:
    headers = {"X-Forwarded-For": forwarded_for}
    return http.post("/v1/auth/login", json=_wrong_pin(), headers=headers).status_code


def _leases(services: Services) -> list[str]:
    client = sync_client(services.redis_url, decode_responses=True)
    try:
        return [k for k in client.scan_iter(match="lease:{*") if not k.endswith(":fence")]
    finally:
        client.close()


def _loops_processes(proc: subprocess.Popen[str]) -> list[psutil.Process]:
    return [
        p
        for p in psutil.Process(proc.pid).children()
        if p.cmdline()[1:4] == ["-m", "qc.serving", "loops"]
    ]


def _wait_for(what: str, check: Callable[[], object], deadline_s: float = 30) -> None:
    deadline = time.monotonic() + deadline_s
    while not check():
        assert time.monotonic() < deadline, f"no {what} after {deadline_s} s"
        time.sleep(0.1)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "workers"),
    [([], 1), (["--workers", "2"], 2), (["--server", "uvicorn"], 1)],
    ids=["granian", "granian-2-workers", "uvicorn"],
)
def test_serve_answers_forwards_only_trusted_addresses_and_stops_on_sigterm(
    city: Services, args: list[str], workers: int, tmp_path: Path
) -> None:
    server = "uvicorn" if "uvicorn" in args else "granian"
    log = tmp_path / "serve.log"
    with _served(city, args, log) as (url, proc):
        # granian always serves from worker processes; the loops run in one of their own
        children = workers + 1 if server == "granian" else 1
        _wait_for(
            f"{children} processes", lambda: len(psutil.Process(proc.pid).children()) >= children
        )
        assert len(psutil.Process(proc.pid).children()) == children
        assert len(_loops_processes(proc)) == 1
        proxy = httpx.Client(base_url=url, timeout=30)
        stranger = httpx.Client(
            base_url=url, timeout=30, transport=httpx.HTTPTransport(local_address=UNTRUSTED)
        )
        with proxy, stranger:
            health = proxy.get("/healthz")
            assert health.status_code == 200 and health.json()["status"] == "ok"
            assert health.headers["server"] == "qc"  # no server software advertised

            # from the trusted proxy: X-Forwarded-For is the client the guard counts
            for _ in range(FAILURES_PER_ADDRESS):
                assert _failed_login(proxy, "203.0.113.1") == 401
            assert _failed_login(proxy, "203.0.113.1") == 429
            assert _failed_login(proxy, "203.0.113.2") == 401  # another client, own count
            # from anyone else: the header is ignored, the connection's address counts
            for n in range(FAILURES_PER_ADDRESS):
                assert _failed_login(stranger, f"198.51.100.{n}") == 401
            assert _failed_login(stranger, "198.51.100.99") == 429

            login = proxy.post(
                "/v1/auth/login",
                json={"login": "manager.blr", "secret": DEMO_SECRETS[Role.MANAGER]},
            )
            assert login.status_code == 200, login.text
            token = login.json()["access_token"]

        ws_url = url.replace("http://", "ws://") + f"/ws/ops?token={token}"
        with connect(ws_url, open_timeout=30) as socket:
            assert '"type":"snapshot"' in str(socket.recv(timeout=30))
            _wait_for("background loop lease", lambda: _leases(city))

            before_stop = log.stat().st_size
            proc.send_signal(signal.SIGTERM)
            stopping = time.monotonic()
            with pytest.raises(ConnectionClosed):  # the server closes the socket
                while True:
                    socket.recv(timeout=STOP_DEADLINE_S)
        # uvicorn re-raises the signal it stopped on once its shutdown is done
        clean_exit = 0 if server == "granian" else -signal.SIGTERM
        assert proc.wait(timeout=STOP_DEADLINE_S) == clean_exit, log.read_text()[-3000:]
        assert time.monotonic() - stopping < STOP_DEADLINE_S
        assert f"/docs, {server})" in log.read_text()  # "API on ... (OpenAPI: .../docs, granian)"
        # the shutdown's own output (two workers starting together may fence each other's
        # first runs before it: the leases at work, not the server)
        stopped = log.read_text()[before_stop:]
        assert "Traceback" not in stopped and "after its grace" not in stopped, stopped[-3000:]
    # the lifespan's shutdown ran: every loop stopped and gave its lease back (a killed
    # worker's leases would stay until they expire)
    assert _leases(city) == []


@pytest.mark.slow
def test_a_killed_serve_takes_its_granian_worker_with_it(city: Services, tmp_path: Path) -> None:
    """SIGKILL (a crash, an OOM kill) of ``qc serve``: its worker does not go on serving
    the port, nor its loops' process running the loops on their own."""
    with _served(city, [], tmp_path / "serve.log") as (url, proc):
        _wait_for("a worker", lambda: len(psutil.Process(proc.pid).children()) >= 2)
        children = psutil.Process(proc.pid).children()
        assert len(children) == 2 and len(_loops_processes(proc)) == 1
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)  # a loaded box's exits can take seconds (see below)
        try:
            for child in children:  # psutil.TimeoutExpired if one outlived the server
                child.wait(timeout=60)
        finally:
            for child in children:  # a failing run leaves no orphan serving behind
                if child.is_running():
                    child.kill()
        with pytest.raises(httpx.TransportError):
            httpx.get(url + "/healthz", timeout=2)


@pytest.mark.slow
def test_a_killed_loops_process_is_started_again(city: Services, tmp_path: Path) -> None:
    """The loops' process dying (a crash, an OOM kill) does not leave the API serving
    without its loops: ``qc serve`` starts another, which takes the leases again."""
    relay = keys.lease("outbox-relay")  # a short lease: the killed holder's expires
    client = sync_client(city.redis_url, decode_responses=True)
    with _served(city, [], tmp_path / "serve.log") as (url, proc), contextlib.closing(client):
        _wait_for("the loops' process", lambda: _loops_processes(proc))
        _wait_for("the relay's lease", lambda: client.hget(relay, "owner"))
        killed = client.hget(relay, "owner")
        (first,) = _loops_processes(proc)
        first.kill()
        # gone once qc serve has reaped it: on a loaded box its exit (a zombie until then)
        # once took over 10 s
        first.wait(timeout=60)
        _wait_for("another loops' process", lambda: _loops_processes(proc))
        (second,) = _loops_processes(proc)
        assert second.pid != first.pid
        _wait_for(
            "the relay's lease taken again",
            lambda: client.hget(relay, "owner") not in (None, killed),
            deadline_s=60,
        )
        assert httpx.get(url + "/healthz", timeout=10).status_code == 200
