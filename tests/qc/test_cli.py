"""``qc`` commands as a newcomer runs them: on the embedded stack, in fresh processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg

QC = [sys.executable, "-m", "qc.cli"]


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QC_")}
    return {**env, "QC_HOME": str(home), "QC_LOG_JSON": "false"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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

    port = _free_port()
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


def test_token_prints_a_staff_token_usable_on_the_api(qc_home: Path) -> None:
    home = qc_home
    subprocess.run(
        [*QC, "seed", "--stores", "1", "--skus", "20", "--riders", "1", "--customers", "1"],
        env=_env(home),
        check=True,
        capture_output=True,
        timeout=120,
    )
    out = subprocess.run(
        [*QC, "token", "manager.blr"], env=_env(home), capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    token = out.stdout.strip()
    port = _free_port()
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
