"""Shared display rules: risk levels, their colours and how durations read.

Kept apart from the widgets so the thresholds are pure functions a test can pin down.
"""

from __future__ import annotations

from enum import StrEnum


class Level(StrEnum):
    OK = "ok"
    WARN = "warn"
    CRIT = "crit"


# Truecolour rather than ANSI names so every terminal theme shows the same green/amber/red.
LEVEL_COLOUR: dict[Level, str] = {
    Level.OK: "#4ebf71",
    Level.WARN: "#ffb000",
    Level.CRIT: "#ff4d4f",
}

# An order is amber once it has used 70 % of its SLA and red from 90 %: red means
# "will breach unless someone acts now", not "has breached".
SLA_WARN_RATIO = 0.7
SLA_CRIT_RATIO = 0.9

# Store risk is a 0..1 score (higher is worse).
RISK_WARN = 0.4
RISK_CRIT = 0.7


def threshold_level(
    value: float,
    warn_at: float | None,
    crit_at: float | None,
    *,
    higher_is_worse: bool = True,
) -> Level:
    """Level of ``value`` against optional thresholds; reaching a threshold counts."""

    def reached(limit: float | None) -> bool:
        if limit is None:
            return False
        return value >= limit if higher_is_worse else value <= limit

    if reached(crit_at):
        return Level.CRIT
    if reached(warn_at):
        return Level.WARN
    return Level.OK


def sla_level(age_s: float, sla_s: float) -> Level:
    """How close an order of ``age_s`` seconds is to breaching an ``sla_s`` promise."""
    if sla_s <= 0:
        return Level.CRIT
    return threshold_level(age_s / sla_s, SLA_WARN_RATIO, SLA_CRIT_RATIO)


def risk_level(risk: float) -> Level:
    return threshold_level(risk, RISK_WARN, RISK_CRIT)


def format_age(seconds: float) -> str:
    """``m:ss`` under an hour, ``h:mm:ss`` beyond; negative ages (clock skew) read 0:00."""
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"
