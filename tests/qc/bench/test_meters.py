"""The benchmarks' process meters: CPU over a window learned after the fact."""

from __future__ import annotations

import os
import time

from hypothesis import given
from hypothesis import strategies as st

from qc.bench.wrk import cpu_timeline, cpu_within, lag_p99_within

_STEPS = st.lists(st.tuples(st.floats(0.01, 5.0), st.floats(0.0, 5.0)), min_size=1, max_size=20)


def _timeline(steps: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Samples as a meter takes them: time and CPU both only ever go up."""
    samples, t, cpu = [(100.0, 7.0)], 100.0, 7.0
    for dt, used in steps:
        t, cpu = t + dt, cpu + used
        samples.append((t, cpu))
    return samples


@given(_STEPS, st.lists(st.floats(95.0, 210.0), min_size=3, max_size=3))
def test_a_window_splits_into_the_sum_of_its_parts(steps, cuts) -> None:
    samples = _timeline(steps)
    t0, t1, t2 = sorted(cuts)
    whole = cpu_within(samples, t0, t2)
    assert abs(whole - (cpu_within(samples, t0, t1) + cpu_within(samples, t1, t2))) < 1e-6
    # never more than the timeline saw, never less than nothing
    assert 0.0 <= whole <= samples[-1][1] - samples[0][1] + 1e-6


def test_a_timeline_sees_the_cpu_its_process_burns() -> None:
    with cpu_timeline([os.getpid()], every_s=0.05) as samples:
        started = time.time()
        deadline = time.process_time() + 0.3
        while time.process_time() < deadline:  # burn 0.3 s of this process's CPU
            pass
        ended = time.time()
    assert len(samples) >= 2 and samples == sorted(samples)
    # /proc counts in 10 ms ticks; the window holds the whole burn, ticks aside
    assert cpu_within(samples, started, ended) >= 0.15


_BOUNDS = (0.001, 0.005, 0.025, 0.1, float("inf"))


def _lag(counts: list[float]) -> dict[float, float]:
    """A histogram's cumulative buckets from the observations falling in each."""
    total, cumulative = 0.0, {}
    for bound, n in zip(_BOUNDS, counts, strict=True):
        total += n
        cumulative[bound] = total
    return cumulative


def test_a_windows_lag_is_what_fell_between_the_samples_around_it() -> None:
    samples = [
        (10.0, _lag([500, 0, 0, 0, 0])),  # before the window: a quiet start
        (11.0, _lag([560, 30, 9, 1, 0])),
        (12.0, _lag([600, 60, 38, 2, 0])),  # after: 100 + 60 + 38 + 2 = 200 within
    ]
    # 99 % of the 200 is 198: reached at the 25 ms bucket (100 + 60 + 38)
    assert lag_p99_within(samples, 10.5, 11.5) == 25.0
    assert lag_p99_within(samples, 10.0, 10.5) == 25.0  # up to the first sample after it
    assert lag_p99_within(samples, 9.0, 11.5) is None  # nothing sampled before it began
    assert lag_p99_within(samples, 10.5, 12.5) is None  # nor after it ended


def test_counts_that_went_down_are_another_process_and_give_no_figure() -> None:
    samples = [(10.0, _lag([500, 0, 0, 0, 0])), (12.0, _lag([400, 0, 0, 0, 0]))]
    assert lag_p99_within(samples, 10.5, 11.5) is None
    stalled = [(10.0, _lag([5, 0, 0, 0, 0])), (12.0, _lag([5, 0, 0, 0, 3]))]
    assert lag_p99_within(stalled, 10.5, 11.5) is None  # past the last bound
