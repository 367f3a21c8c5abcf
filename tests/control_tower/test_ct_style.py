"""The colour rules: SLA and risk thresholds, KPI levels, duration text."""

from __future__ import annotations

import pytest

from control_tower.widgets.style import (
    Level,
    format_age,
    risk_level,
    sla_level,
    threshold_level,
)


@pytest.mark.parametrize(
    ("age_s", "level"),
    [
        (0, Level.OK),
        (629.9, Level.OK),
        (630, Level.WARN),  # 70 % of 900 s
        (809.9, Level.WARN),
        (810, Level.CRIT),  # 90 % of 900 s
        (900, Level.CRIT),
        (5000, Level.CRIT),
    ],
)
def test_sla_level_thresholds(age_s: float, level: Level) -> None:
    assert sla_level(age_s, 900) is level


def test_sla_level_scales_with_the_sla() -> None:
    assert sla_level(420, 600) is Level.WARN
    assert sla_level(540, 600) is Level.CRIT


def test_zero_sla_is_always_red() -> None:
    assert sla_level(0, 0) is Level.CRIT


@pytest.mark.parametrize(
    ("risk", "level"),
    [(0.0, Level.OK), (0.39, Level.OK), (0.4, Level.WARN), (0.69, Level.WARN), (0.7, Level.CRIT)],
)
def test_risk_level(risk: float, level: Level) -> None:
    assert risk_level(risk) is level


def test_threshold_level_for_higher_is_worse() -> None:
    assert threshold_level(5, 10, 20) is Level.OK
    assert threshold_level(10, 10, 20) is Level.WARN
    assert threshold_level(25, 10, 20) is Level.CRIT
    assert threshold_level(25, None, None) is Level.OK


def test_threshold_level_for_lower_is_worse() -> None:
    assert threshold_level(5, 3, 1, higher_is_worse=False) is Level.OK
    assert threshold_level(3, 3, 1, higher_is_worse=False) is Level.WARN
    assert threshold_level(0, 3, 1, higher_is_worse=False) is Level.CRIT


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0:00"), (59.9, "0:59"), (61, "1:01"), (754, "12:34"), (3725, "1:02:05"), (-5, "0:00")],
)
def test_format_age(seconds: float, text: str) -> None:
    assert format_age(seconds) == text
