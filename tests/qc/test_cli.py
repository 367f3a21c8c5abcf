"""``qc`` commands as a newcomer runs them: on the embedded stack, in fresh processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest

from tests.helpers import free_port

QC = [sys.executable, "-m", "qc.cli"]


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QC_")}
    return {**env, "QC_HOME": str(home), "QC_LOG_JSON": "false"}


def _wait_healthy(url: str, proc: subprocess.Popen[str], deadline_s: float = 90) -> dict:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else "server exited"
        try:
            r = httpx.get(url + "/healthz", timeout=2)
            if r.status_code == 200:
                return r.json()
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("server never became healthy")


def _serve(home: Path, port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*QC, "serve", "--port", str(port)],
        env=_env(home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)


def _seed_small(home: Path) -> None:
    """A tiny city, so that ``qc serve`` does not seed the full demo one."""
    subprocess.run(
        [*QC, "seed", "--stores", "1", "--skus", "20", "--riders", "1", "--customers", "1"],
        env=_env(home),
        check=True,
        capture_output=True,
        timeout=120,
    )


@pytest.mark.slow
def test_serve_restart_keeps_the_data(qc_home: Path) -> None:
    home = qc_home
    seeded = subprocess.run(
        [*QC, "seed", "--stores", "2", "--skus", "60", "--riders", "3", "--customers", "2"],
        env=_env(home),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert seeded.returncode == 0, seeded.stderr
    assert "seeded 2 stores, 60 SKUs" in seeded.stderr
    assert "manager.blr" in seeded.stdout  # demo logins are printed

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _serve(home, port)
    try:
        assert _wait_healthy(url, proc)["migration"]["ok"]
        db = f"postgresql://postgres@/qc?host={home.resolve() / 'pg'}"
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO cities (city_id, name, timezone) VALUES ('TST', 'Marker', 'UTC')"
            )
    finally:
        _stop(proc)

    proc = _serve(home, port)
    try:
        _wait_healthy(url, proc)
        stores = httpx.get(url + "/v1/stores").json()["items"]
        assert sorted(s["store_id"] for s in stores) == ["BLR-IND", "BLR-KOR"]  # not re-seeded
        with psycopg.connect(db) as conn:
            assert conn.execute("SELECT name FROM cities WHERE city_id = 'TST'").fetchone()
    finally:
        _stop(proc)


@pytest.mark.slow
def test_serve_on_an_empty_database_seeds_no_demo_logins(qc_home: Path) -> None:
    """Production starts empty: `qc serve` loads no city and no public demo secrets."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _serve(qc_home, port)
    try:
        _wait_healthy(url, proc)
        assert httpx.get(url + "/v1/stores").json()["items"] == []
        for login, secret in (("admin", "admin-demo"), ("manager.blr", "manager-demo")):
            answer = httpx.post(url + "/v1/auth/login", json={"login": login, "secret": secret})
            assert answer.status_code == 401, answer.text
    finally:
        _stop(proc)


@pytest.mark.slow
def test_seed_refuses_to_seed_twice_without_reset(qc_home: Path) -> None:
    home = qc_home
    args = [*QC, "seed", "--stores", "1", "--skus", "20", "--riders", "1", "--customers", "1"]
    assert subprocess.run(args, env=_env(home), capture_output=True, timeout=120).returncode == 0
    again = subprocess.run(args, env=_env(home), capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "--reset" in again.stderr
    reset = subprocess.run(
        [*args, "--reset"], env=_env(home), capture_output=True, text=True, timeout=120
    )
    assert reset.returncode == 0, reset.stderr


@pytest.mark.slow
def test_token_prints_a_staff_token_usable_on_the_api(qc_home: Path) -> None:
    home = qc_home
    _seed_small(home)
    out = subprocess.run(
        [*QC, "token", "manager.blr"], env=_env(home), capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    token = out.stdout.strip()
    port = free_port()
    proc = _serve(home, port)
    try:
        _wait_healthy(f"http://127.0.0.1:{port}", proc)
        me = httpx.get(
            f"http://127.0.0.1:{port}/v1/me", headers={"Authorization": f"Bearer {token}"}
        )
        assert me.status_code == 200 and me.json()["login"] == "manager.blr"
    finally:
        _stop(proc)
    refused = subprocess.run(
        [*QC, "token", "customer.001"], env=_env(home), capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 2


def _embedded_pids(home: Path) -> dict[str, int]:
    pg = int((home / "pg" / "postmaster.pid").read_text().splitlines()[0])
    valkey = json.loads((home / "valkey" / "server.json").read_text())["pid"]
    return {"postgres": pg, "valkey": valkey}


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _handle_pids(home: Path) -> dict[str, list[int]]:
    files = {
        "postgres": home / "pg" / ".handle_pids.json",
        "valkey": home / "valkey" / "handles.json",
    }
    return {name: json.loads(f.read_text()) if f.exists() else [] for name, f in files.items()}


@pytest.mark.slow
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["term", "int"])
def test_serve_stopped_by_a_signal_leaves_no_embedded_server_behind(
    qc_home: Path, stop_signal: signal.Signals
) -> None:
    home = qc_home
    _seed_small(home)
    port = free_port()
    proc = _serve(home, port)
    try:
        _wait_healthy(f"http://127.0.0.1:{port}", proc)
        servers = _embedded_pids(home)
        assert all(_running(pid) for pid in servers.values())
        assert _handle_pids(home) == {"postgres": [proc.pid], "valkey": [proc.pid]}
        proc.send_signal(stop_signal)
        proc.wait(timeout=60)
        # a clean exit: the lifespan's shutdown (every loop stopped together) did not fail
        err = proc.stderr.read() if proc.stderr else ""
        assert "Traceback" not in err and "shutdown failed" not in err, err[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    deadline = time.monotonic() + 30
    while any(_running(pid) for pid in servers.values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = {name: pid for name, pid in servers.items() if _running(pid)}
    for pid in left.values():  # a failing run must not leak servers into the machine
        psutil.Process(pid).kill()
    assert not left, f"still running after the serve process exited: {left}"
    handles = _handle_pids(home)
    assert not [pid for pids in handles.values() for pid in pids if not _running(pid)], handles
