"""From the GPS to the server: fixes as the API wants them, and where the offline buffer
lives (one per rider, so a shared handheld never replays one rider's track as another's)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from rider_app.gps.fix import Fix
from shared.schemas.delivery import GpsFix

DEFAULT_BUFFER_DIR = Path.home() / ".qc" / "rider"


def to_gps_fix(fix: Fix, battery_pct: float | None = None) -> GpsFix:
    """The API's ``GpsFix`` with the handheld's battery as it is when the fix is sent;
    optional values out of their range are dropped, not the fix."""

    def within(value: float | None, high: float) -> float | None:
        return value if value is not None and 0 <= value <= high else None

    return GpsFix(
        lat=fix.lat,
        lng=fix.lng,
        at=fix.at,
        speed_mps=within(fix.speed_mps, 60),
        heading_deg=within(fix.heading_deg, 360),
        accuracy_m=within(fix.accuracy_m, 10_000),
        battery_pct=within(battery_pct, 100),
    )


def to_gps_fixes(fixes: Sequence[Fix], battery_pct: float | None = None) -> list[GpsFix]:
    return [to_gps_fix(f, battery_pct) for f in fixes]


def buffer_path(directory: Path, login: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", login) or "rider"
    return directory / f"{safe}.fixes.jsonl"


def duty_path(directory: Path, login: str) -> Path:
    return buffer_path(directory, login).with_suffix(".duty")


def remembered_duty(directory: Path, login: str) -> bool:
    """Whether the rider was on duty when the handheld last heard from the server: a
    restart out of coverage keeps recording the shift's track instead of dropping it."""
    try:
        return duty_path(directory, login).read_text().strip() == "on"
    except OSError:
        return False


def remember_duty(directory: Path, login: str, on_duty: bool) -> None:
    path = duty_path(directory, login)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("on" if on_duty else "off")
    tmp.replace(path)
