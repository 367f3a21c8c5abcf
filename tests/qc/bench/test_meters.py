"""The benchmarks' process meters: CPU over a window learned after the fact."""

from __future__ import annotations

import os
import time

from hypothesis import given
from hypothesis import strategies as st

from qc.bench.wrk import cpu_timeline, cpu_within

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
