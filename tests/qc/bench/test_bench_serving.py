"""The benches run the API (and their reference apps) with ``qc serve``'s server options."""

from __future__ import annotations

from qc.serving import GRACEFUL_S, TARGET, command


def test_a_reference_app_gets_the_served_apis_options_but_its_own_target() -> None:
    api = command("granian", host="127.0.0.1", port=8000, workers=2)
    bare = command("granian", host="127.0.0.1", port=8000, workers=2, target="m:app", factory=False)
    assert api[api.index("--workers-kill-timeout") + 1] == str(GRACEFUL_S)
    assert TARGET in api and "--factory" in api
    assert "m:app" in bare and "--factory" not in bare
    assert [a for a in bare if a != "m:app"] == [a for a in api if a not in (TARGET, "--factory")]


def test_uvicorn_stops_as_gracefully() -> None:
    argv = command("uvicorn", host="127.0.0.1", port=8000, workers=1, target="m:f")
    assert argv[argv.index("--timeout-graceful-shutdown") + 1] == str(GRACEFUL_S)
    assert "m:f" in argv and "--factory" in argv
