from __future__ import annotations

import time

import pytest

from server.kit.clock import Clock


def test_sped_up_clock_runs_k_times_faster_from_its_anchor() -> None:
    anchor = time.time() - 10  # ten real seconds ago
    clock = Clock(speed=20, anchor=anchor)
    elapsed_sim = clock.timestamp() - anchor
    # 10 real seconds at 20x are ~200 simulated seconds
    assert 199 <= elapsed_sim <= 210
    assert clock.real_seconds(60) == pytest.approx(3.0)


def test_two_clocks_built_from_the_same_settings_agree() -> None:
    anchor = time.time() - 100
    a, b = Clock(speed=5, anchor=anchor), Clock(speed=5, anchor=anchor)
    assert abs(a.timestamp() - b.timestamp()) < 0.5


def test_advance_steps_time_and_never_backwards() -> None:
    clock = Clock()
    before = clock.now()
    clock.advance(600)
    assert (clock.now() - before).total_seconds() >= 600
    with pytest.raises(ValueError):
        clock.advance(-1)


def test_now_is_timezone_aware() -> None:
    assert Clock().now().tzinfo is not None


def test_speed_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Clock(speed=0)
