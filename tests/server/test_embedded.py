"""The embedded stack: real PostgreSQL and Valkey under QC_HOME, shared and persistent.

Each scenario runs in fresh subprocesses, as ``qc`` commands would, on its own home.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import psutil
import pytest

PY = sys.executable

START_AND_WRITE = textwrap.dedent("""
    import json, sys
    import psycopg, redis
    from server.kit.config import Settings
    from server.kit.db import resolve_database_url
    from server.kit.redis import resolve_redis_url
    s = Settings(home=sys.argv[1])
    db, rd = resolve_database_url(s), resolve_redis_url(s)
    with psycopg.connect(db, autocommit=True) as c:
        # IF NOT EXISTS races in PostgreSQL (a peer's table, or its row type, appears between
        # the check and the create): peers create it one at a time
        with c.transaction():
            c.execute("SELECT pg_advisory_xact_lock(4242)")
            c.execute("CREATE TABLE IF NOT EXISTS marks (who text)")
        c.execute("INSERT INTO marks VALUES (%s)", (sys.argv[2],))
        rows = sorted(r[0] for r in c.execute("SELECT who FROM marks"))
    r = redis.Redis.from_url(rd, decode_responses=True)
    r.rpush("marks", sys.argv[2])
    if len(sys.argv) > 3:  # barrier: hold the servers until every peer has started too
        import pathlib, time
        pathlib.Path(sys.argv[1], "ready-" + sys.argv[2]).touch()
        deadline = time.monotonic() + 100  # a start on a loaded 2-core box can take a while
        while len(list(pathlib.Path(sys.argv[1]).glob("ready-*"))) < int(sys.argv[3]):
            assert time.monotonic() < deadline, "peer never started"
            time.sleep(0.05)
    print(json.dumps({"db": db, "redis": rd, "rows": rows, "list": r.lrange("marks", 0, -1)}))
""")


def run_start(home: Path, mark: str) -> dict[str, Any]:
    out = subprocess.run(
        [PY, "-c", START_AND_WRITE, str(home), mark],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(),
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QC_")}
    return env


def _postgres_pid(home: Path) -> int | None:
    pidfile = home / "pg" / "postmaster.pid"
    return int(pidfile.read_text().splitlines()[0]) if pidfile.exists() else None


def _valkey_pid(home: Path) -> int | None:
    state = home / "valkey" / "server.json"
    return json.loads(state.read_text())["pid"] if state.exists() else None


def _postgres_running(home: Path) -> bool:
    pid = _postgres_pid(home)
    return pid is not None and psutil.pid_exists(pid)


def _valkey_running(home: Path) -> bool:
    pid = _valkey_pid(home)
    return pid is not None and psutil.pid_exists(pid)


@pytest.mark.slow
def test_second_start_reuses_the_data_and_shutdown_stops_the_servers(qc_home: Path) -> None:
    home = qc_home
    first = run_start(home, "first")
    assert first["rows"] == ["first"] and first["list"] == ["first"]
    # the only user exited: both servers were stopped
    assert not _postgres_running(home)
    assert not _valkey_running(home)
    second = run_start(home, "second")
    assert second["rows"] == ["first", "second"]
    assert second["list"] == ["first", "second"]  # Valkey's AOF kept the data


@pytest.mark.slow
def test_a_user_killed_outright_does_not_keep_the_servers_running(qc_home: Path) -> None:
    home = qc_home
    killed = subprocess.run(
        [PY, "-c", START_AND_WRITE + "import os; os.kill(os.getpid(), 9)\n", str(home), "killed"],
        capture_output=True,
        timeout=120,
        env=_env(),
    )
    try:
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        assert _postgres_running(home) and _valkey_running(home)  # nobody let go
        # the next user reuses them and, the last live one, stops them
        assert run_start(home, "next")["rows"] == ["killed", "next"]
        assert not _postgres_running(home)
        assert not _valkey_running(home)
    finally:
        _kill_servers(home)


def _kill_servers(home: Path) -> None:
    """Servers a failing test left running: they must not outlive it."""
    for pid in (_postgres_pid(home), _valkey_pid(home)):
        if pid is not None and psutil.pid_exists(pid):
            psutil.Process(pid).kill()


@pytest.mark.slow
def test_two_processes_starting_at_once_share_one_server(qc_home: Path) -> None:
    home = qc_home
    procs = [
        subprocess.Popen(
            [PY, "-c", START_AND_WRITE, str(home), f"p{i}", "2"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    # both stderrs: when one waits out the barrier, the other's says why it never got there
    assert [p.returncode for p in procs] == [0, 0], "\n---\n".join(err for _, err in outputs)
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert results[0]["db"] == results[1]["db"]
    assert results[0]["redis"] == results[1]["redis"]
    final = run_start(home, "after")
    assert final["rows"] == ["after", "p0", "p1"]
    assert sorted(final["list"]) == ["after", "p0", "p1"]


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"QC_DATABASE_URL": "postgresql://postgres:hunter2@127.0.0.1:1/qc"}, "127.0.0.1:1"),
        (
            {
                "QC_DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/qc",
                "QC_REDIS_URL": "redis://127.0.0.1:1/0",
            },
            "redis://127.0.0.1:1/0",
        ),
    ],
)
def test_unreachable_external_server_fails_in_one_clear_line(
    qc_home: Path, env: dict[str, str], needle: str, services
) -> None:
    if "QC_REDIS_URL" in env:
        env = {**env, "QC_DATABASE_URL": services.database_url}
    command = "serve" if "QC_REDIS_URL" in env else "migrate"
    out = subprocess.run(
        [PY, "-m", "qc.cli", command],
        capture_output=True,
        text=True,
        timeout=60,
        env={**_env(), "QC_HOME": str(qc_home), **env},
    )
    assert out.returncode == 2
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, out.stderr
    assert needle in lines[0] and "Traceback" not in out.stderr
    assert "hunter2" not in out.stderr  # passwords are never printed


def test_no_runtime_dir_warning_without_xdg_runtime_dir() -> None:
    """Containers and shells without a login session have no XDG_RUNTIME_DIR: the embedded
    PostgreSQL's wheel falls back to /tmp and every qc command used to print a warning."""
    env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
    done = subprocess.run(
        [PY, "-W", "error", "-c", "from server.kit.db import import_pgserver; import_pgserver()"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Warning" not in done.stderr
