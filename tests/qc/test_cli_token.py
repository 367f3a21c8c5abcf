"""``qc token`` against a running demo: the server's clock runs faster than the wall (and was
started long ago), so a token dated by this machine's clock would be expired there; dated by
the server's clock (GET /v1/ops/clock) it is accepted."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import free_port
from tests.qc.test_cli import QC, _env, _seed_small, _stop, _wait_healthy


@pytest.mark.slow
def test_token_is_valid_on_a_sped_up_server(qc_home: Path) -> None:
    _seed_small(qc_home)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # a demo at 60x started an hour ago: its clock is 59 hours ahead of the wall
    env = _env(qc_home) | {"QC_CLOCK_SPEED": "60", "QC_CLOCK_ANCHOR": str(time.time() - 3600)}
    proc = subprocess.Popen(
        [*QC, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_healthy(url, proc)

        def me(*args: str) -> int:
            out = subprocess.run(
                [*QC, "token", "manager.blr", *args],
                env=_env(qc_home),  # the operator's shell: no demo clock settings
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert out.returncode == 0, out.stderr
            headers = {"Authorization": f"Bearer {out.stdout.strip()}"}
            return httpx.get(f"{url}/v1/me", headers=headers).status_code

        assert me("--server", url) == 200
        # dated by this machine (no server at that address): expired on the demo's clock
        assert me("--server", f"http://127.0.0.1:{free_port()}") == 401
    finally:
        _stop(proc)
