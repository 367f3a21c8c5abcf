"""The benchmarks' load processes: released together, answers gathered, a failure named."""

from __future__ import annotations

from multiprocessing.synchronize import Barrier

import pytest

from qc.bench.harness import Spawned


async def twice(share: int, barrier: Barrier) -> int:
    barrier.wait()
    if share < 0:
        raise ValueError(f"no load from {share}")
    return share * 2


async def test_every_process_answers_after_the_common_start() -> None:
    players = Spawned(twice, [1, 2, 3])
    await players.start()
    assert sorted(await players.results()) == [2, 4, 6]


async def test_a_failed_process_is_named_not_waited_for() -> None:
    players = Spawned(twice, [1, -1])
    await players.start()
    with pytest.raises(RuntimeError, match="ValueError: no load from -1"):
        await players.results()
