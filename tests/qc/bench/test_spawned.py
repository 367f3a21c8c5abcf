"""The benchmarks' load processes: released together, answers gathered, a failure named."""

from __future__ import annotations

import os
from multiprocessing.synchronize import Barrier
from pathlib import Path

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


async def niceness(_: int, barrier: Barrier) -> tuple[int, bool]:
    barrier.wait()
    return os.nice(0), os.getsid(0) == os.getpid()


async def test_load_processes_go_ahead_of_the_servers_where_the_os_lets_them() -> None:
    parent = os.nice(0)
    players = Spawned(niceness, [0, 0], nice=-1)
    await players.start()
    for nice, own_session in await players.results():
        if nice == parent:  # lowering a niceness needs CAP_SYS_NICE
            continue
        assert nice == parent - 1
        # a session of its own: where Linux groups processes by session, its niceness
        # weighs against the servers', not only inside the bench's group
        assert own_session == Path("/proc/self/autogroup").exists()


async def test_load_processes_stand_beside_the_servers_in_groups_of_their_own() -> None:
    """The flash crowd's default: each process a scheduling group of its own at the
    servers' niceness (in their group they waited for a core behind the API's workers);
    without ``nice`` a process stays in the caller's group."""
    parent, grouped = os.nice(0), Path("/proc/self/autogroup").exists()
    apart = Spawned(niceness, [0, 0], nice=0)
    await apart.start()
    assert await apart.results() == [(parent, grouped), (parent, grouped)]
    beside = Spawned(niceness, [0])
    await beside.start()
    assert await beside.results() == [(parent, False)]


def test_a_step_ahead_with_the_servers_group_is_refused_by_name() -> None:
    """`--generator-nice` steps groups of their own ahead: with `--generator-shared` there
    are none, so the two together are refused before anything starts."""
    from typer.testing import CliRunner

    from qc.bench.cli import bench_app

    result = CliRunner().invoke(  # wide: the message on one line
        bench_app, ["flash", "--generator-nice", "-3", "--generator-shared"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 2
    assert "--generator-nice" in result.output and "--generator-shared" in result.output
