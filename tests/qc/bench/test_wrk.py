"""The wrk harness: figures parsed from wrk's own report, errors counted, CPU split by party
(real wrk against a real server in a subprocess; figures are not judged, only their shape)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from qc.bench import wrk
from qc.bench.serving import serve_process

pytestmark = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")


def test_wrk_runs_a_bare_app_and_splits_the_cpu() -> None:
    with serve_process("qc.bench.serving:bare_app", env={}, workers=1, factory=False) as server:
        r = wrk.run(
            server.url + "/",
            name="bare",
            connections=4,
            threads=1,
            duration=1,
            cpu={"API": [server.pid]},
        )
    assert r.name == "bare" and r.ops > 0 and r.errors == 0
    assert r.per_second == r.ops / r.seconds and 0 < r.p50_ms <= r.p99_ms
    assert set(r.cpu) == {"wrk", "API", "other"} and r.cpu["API"] > 0 and r.cpu["wrk"] > 0


def test_paths_script_spreads_requests_and_counts_refusals() -> None:
    paths = wrk.paths_file(["/v1/bare/SKU1", "/v1/bare/SKU2", "/nowhere"])
    try:
        with serve_process("qc.bench.serving:bare_fastapi", env={}, workers=1) as server:
            r = wrk.run(server.url, "paths.lua", args=[paths], connections=2, duration=1)
    finally:
        os.unlink(paths)
    # about a third of the requests hit the 404 path: counted as errors, the rest answered
    assert r.ops > 0 and 0 < r.errors < r.ops


def _run_flow(tmp_path: Path, response: str) -> wrk.WrkResult:
    """A two-step flow script against the bare FastAPI route: GETs counted in ``step``,
    ``response`` the body of its response(status, headers, body)."""
    script = tmp_path / "flow.lua"
    script.write_text(
        'local qc = dofile(os.getenv("QC_WRK_LIB"))\n'
        "qc.report()\n"
        "local step = 0\n"
        "function request()\n"
        "  step = step + 1\n"
        '  return wrk.format("GET", "/v1/bare/" .. qc.uuid())\n'
        "end\n"
        f"function response(status, headers, body)\n{response}end\n"
    )
    with serve_process("qc.bench.serving:bare_fastapi", env={}, workers=1) as server:
        return wrk.run(server.url, script, connections=2, per_connection_state=True, duration=1)


def test_a_flow_script_keeps_state_per_connection(tmp_path: Path) -> None:
    r = _run_flow(
        tmp_path,
        '  if qc.field(body, "price_paise") ~= "2900" then qc.fail() end\n'
        "  if step % 2 == 0 then qc.flow_done() end\n",
    )
    assert r.threads == 2 and r.failures == 0 and r.errors == 0
    assert r.flows >= 1 and abs(r.flows * 2 - r.ops) <= 2 * r.threads


def test_service_pids_finds_the_local_servers(settings) -> None:
    from server.kit import db
    from server.kit import redis as qredis

    found = wrk.service_pids(db.resolve_database_url(settings), qredis.resolve_redis_url(settings))
    assert set(found) == {"PostgreSQL", "Valkey"}


def test_failed_steps_are_counted_by_what_the_script_names(tmp_path: Path) -> None:
    r = _run_flow(
        tmp_path, '  if step % 2 == 1 then qc.fail("odd step " .. status .. " {\\"x\\"}") end\n'
    )
    # the name is kept JSON-safe (quotes and braces dropped), the counts add up
    assert r.failures > 0 and r.failed == {"odd step 200 x": r.failures}
