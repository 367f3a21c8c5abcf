"""Timing harness: N operations from C concurrent workers; medians and tails, not means."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import platform
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from multiprocessing.synchronize import Barrier
from typing import Any, Generic, TypeVar

from rich.console import Console
from rich.table import Table

from qc.aio import loop_factory
from qc.serving import schedule_ahead

S = TypeVar("S")  # what one load process is given
R = TypeVar("R")  # what it answers


@dataclass
class Result:
    name: str
    ops: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def per_second(self) -> float:
        return self.ops / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"per_second": round(self.per_second, 1)}


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, round(q * (len(sorted_values) - 1)))
    return sorted_values[index]


async def measure(
    name: str,
    op: Callable[[int], Awaitable[object]],
    *,
    total: int,
    concurrency: int,
    expected_errors: tuple[type[BaseException], ...] = (),
) -> Result:
    """Run ``op(i)`` for i in range(total) from ``concurrency`` workers."""
    latencies: list[float] = []
    errors = 0
    counter = iter(range(total))

    async def worker() -> None:
        nonlocal errors
        for i in counter:
            start = time.perf_counter()
            try:
                await op(i)
            except expected_errors:
                errors += 1
            latencies.append(time.perf_counter() - start)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return Result(
        name,
        total,
        errors,
        elapsed,
        percentile(latencies, 0.5) * 1000,
        percentile(latencies, 0.99) * 1000,
    )


def median_of(runs: list[Result]) -> Result:
    """The run with the median throughput of several repeats (the machine is noisy)."""
    ordered = sorted(runs, key=lambda r: r.per_second)
    return ordered[len(ordered) // 2]


def conditions(**extra: object) -> dict[str, object]:
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        **extra,
    }


def print_table(
    title: str, results: list[Result], baseline: str | None, cond: dict[str, object]
) -> None:
    base = next((r for r in results if r.name == baseline), None)
    table = Table(title=title)
    for column in ("scenario", "ops/s", "p50 ms", "p99 ms", "refused", "vs " + (baseline or "-")):
        table.add_column(column, justify="left" if column == "scenario" else "right")
    for r in results:
        ratio = f"{r.per_second / base.per_second:.2f}x" if base and base.per_second else "-"
        table.add_row(
            r.name,
            f"{r.per_second:,.0f}",
            f"{r.p50_ms:.2f}",
            f"{r.p99_ms:.2f}",
            str(r.errors),
            ratio,
        )
    console = Console()
    console.print(table)
    console.print("conditions: " + ", ".join(f"{k}={v}" for k, v in cond.items()))


class Spawned(Generic[S, R]):
    """``play(share, barrier)`` in a spawned process per share (one Python process is
    itself the limit long before the server): each gets ready (clients, connections), then
    waits at ``barrier``; ``start`` releases them together and returns the wall-clock start;
    ``results`` waits for every process's answer. A process that fails says why (its
    exception) instead of leaving the parent waiting. ``nice``: each process in a
    scheduling group of its own, that step ahead of the servers, where allowed
    (``schedule_ahead``; 0: beside them, as a machine of its own would be): on a machine
    the servers keep busy, a client's answer is read when it arrives, not when the
    client next gets a core, and its timings are the server's, not the queue's for a
    core (clients on phones share no CPU with the servers). None: in the caller's group."""

    def __init__(
        self,
        play: Callable[[S, Barrier], Awaitable[R]],
        shares: list[S],
        *,
        nice: int | None = None,
    ) -> None:
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked loop
        self._barrier = context.Barrier(len(shares) + 1)
        self._out: multiprocessing.Queue[R | _Failed] = context.Queue()
        self._processes = [
            # daemons: a failure in one leaves no other behind when the bench exits
            context.Process(
                target=_play_in_process,
                args=(play, share, self._barrier, self._out, nice),
                daemon=True,
            )
            for share in shares
        ]
        for process in self._processes:
            process.start()

    async def start(self) -> float:
        await asyncio.to_thread(self._barrier.wait, 300)
        return time.time()

    async def results(self) -> list[R]:
        answers: list[R] = []
        for _ in self._processes:
            answer = await asyncio.to_thread(self._out.get, True, 3600)
            if isinstance(answer, _Failed):
                raise RuntimeError(f"a load process failed: {answer.why}")
            answers.append(answer)
        for process in self._processes:
            await asyncio.to_thread(process.join, 60)
            if process.exitcode != 0:
                raise RuntimeError(f"a load process ended with exit code {process.exitcode}")
        return answers


@dataclass(frozen=True)
class _Failed:
    why: str


def _play_in_process(
    play: Callable[[S, Barrier], Awaitable[R]],
    share: S,
    barrier: Barrier,
    out: multiprocessing.Queue[R | _Failed],
    nice: int | None,
) -> None:
    if nice is not None:
        schedule_ahead(nice)
    try:
        # on uvloop, as the servers it loads: a client's turn costs as little as theirs,
        # so the generator's own delay stays out of the figures it takes
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            out.put(runner.run(play(share, barrier)))  # type: ignore[arg-type]
    except BaseException as exc:
        out.put(_Failed(f"{type(exc).__name__}: {exc}"))
        raise
