"""How the handheld writes riding times, distances and ages (countdowns: ``qc_tui.clock``)."""

from __future__ import annotations


def minutes(seconds: float) -> str:
    """A riding time as people say it: ``<1 min``, ``4 min``, ``1 h 05``."""
    if seconds < 60:
        return "<1 min"
    whole = round(seconds / 60)
    return f"{whole} min" if whole < 60 else f"{whole // 60} h {whole % 60:02d}"


def distance(metres: float | None) -> str:
    if metres is None:
        return "—"
    return f"{metres:.0f} m" if metres < 1000 else f"{metres / 1000:.1f} km"


def age(seconds: float) -> str:
    """How long ago: ``3 s``, ``2 min``."""
    seconds = max(0.0, seconds)
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def masked_phone(phone: str | None) -> str:
    """A customer's number with all but its last 4 digits hidden (``c`` on the drop shows it)."""
    if not phone:
        return "no number"
    return "•••" + phone[-4:]
