"""``python -m control_tower``: options, the secret or token from the environment."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import pytest

from control_tower import __main__ as cli
from control_tower.app import ControlTowerApp
from qc_tui.api import DEFAULT_SERVER


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[ControlTowerApp]:
    """Apps main() would run (not run: no terminal in tests)."""
    apps: list[ControlTowerApp] = []

    def run(self: ControlTowerApp, *args: Any, **kwargs: Any) -> None:
        apps.append(self)

    monkeypatch.setattr(ControlTowerApp, "run", run)
    return apps


def test_defaults() -> None:
    args = cli.parse_args([])
    assert args.server == DEFAULT_SERVER
    assert args.city is None and args.login is None
    assert args.password_env is None and args.token_env is None


def test_password_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, started: list[ControlTowerApp]
) -> None:
    monkeypatch.setenv("QC_MANAGER_SECRET", "manager-demo")
    argv = ["--server", "http://127.0.0.1:9", "--city", "blr", "--login", "manager.blr"]
    assert cli.main([*argv, "--password-env", "QC_MANAGER_SECRET"]) == 0
    (app,) = started
    assert app.client.base_url == "http://127.0.0.1:9"
    assert (app.requested_city, app.login_hint, app.password) == (
        "BLR",
        "manager.blr",
        "manager-demo",
    )
    assert app.client.token is None


def test_token_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, started: list[ControlTowerApp]
) -> None:
    monkeypatch.setenv("QC_TOKEN", "abc.def.ghi")
    assert cli.main(["--token-env", "QC_TOKEN"]) == 0
    assert started[0].client.token == "abc.def.ghi"


def test_missing_secrets_are_refused(
    monkeypatch: pytest.MonkeyPatch,
    started: list[ControlTowerApp],
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("QC_NOPE", raising=False)
    assert cli.main(["--login", "manager.blr", "--password-env", "QC_NOPE"]) == 2
    assert "QC_NOPE is not set" in capsys.readouterr().err
    assert cli.main(["--password-env", "QC_NOPE"]) == 2
    assert "needs --login" in capsys.readouterr().err
    assert cli.main(["--token-env", "QC_NOPE"]) == 2
    with pytest.raises(SystemExit):
        cli.parse_args(["--password-env", "A", "--token-env", "B"])
    assert started == []


def test_times_default_to_the_citys_zone_and_tz_changes_it(
    started: list[ControlTowerApp], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main([]) == 0
    assert started[-1].ctx.chosen_tz is None  # the city's zone, once the feed names it
    assert cli.main(["--tz", "UTC"]) == 0
    assert started[-1].ctx.chosen_tz == ZoneInfo("UTC")
    assert cli.main(["--tz", "local"]) == 0
    assert started[-1].ctx.chosen_tz is not None
    assert cli.main(["--tz", "Mars/Olympus"]) == 2
    assert "unknown time zone 'Mars/Olympus'" in capsys.readouterr().err
