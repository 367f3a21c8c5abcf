"""The benches run the API as ``qc serve`` runs it (``qc.serving.run``: its loops' process
with it), and their reference apps with its server options."""

from __future__ import annotations

import sys

import pytest

from qc.serving import GRACEFUL_S, command


def test_the_api_runs_as_qc_serve_runs_it() -> None:
    for server in ("granian", "uvicorn"):
        api = command(server, host="127.0.0.1", port=8000, workers=2)
        assert api == [sys.executable, "-m", "qc.serving", server, "127.0.0.1", "8000", "2"]
    with pytest.raises(ValueError, match="hypercorn"):
        command("hypercorn", host="127.0.0.1", port=8000)  # type: ignore[arg-type]


def test_a_reference_app_gets_the_served_apis_options_but_its_own_target() -> None:
    bare = command("granian", host="127.0.0.1", port=8000, workers=2, target="m:app", factory=False)
    factory = command("granian", host="127.0.0.1", port=8000, workers=2, target="m:f")
    assert bare[bare.index("--workers-kill-timeout") + 1] == str(GRACEFUL_S)
    assert "m:app" in bare and "--factory" not in bare
    assert "m:f" in factory and "--factory" in factory


def test_uvicorn_stops_as_gracefully() -> None:
    argv = command("uvicorn", host="127.0.0.1", port=8000, workers=1, target="m:f")
    assert argv[argv.index("--timeout-graceful-shutdown") + 1] == str(GRACEFUL_S)
    assert "m:f" in argv and "--factory" in argv
