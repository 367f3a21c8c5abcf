"""HTTP load from wrk (C, epoll), with Lua scripts, figures parsed and CPU split measured.

The Python client of the older benchmarks measured itself (578 req/s against a bare ASGI app
that wrk drives at 51,586). Here the generator is wrk, and every run says whether it was the
limit: run the same wrk settings against the references (a bare ASGI app and a bare FastAPI
route, served by the same server with the same workers, see ``qc.bench.serving``) and print
each figure as a ratio to them, with the CPU each party used.

Use::

    from qc.bench import wrk
    from qc.bench.serving import serve_process

    with serve_process("server.app:create_app", env=env, workers=2) as api:
        r = wrk.run(
            api.url + "/v1/stores/BLR-KOR/products/SKU00042",
            "get.lua",                      # a script of this folder, or a path to yours
            name="product detail",
            connections=64, threads=2, duration=10,
            cpu={"API": [api.pid], **wrk.service_pids(database_url, redis_url)},
        )
    r.per_second, r.p50_ms, r.p99_ms, r.errors, r.cpu   # cpu: % of one core per party

``WrkResult`` is a ``qc.bench.harness.Result`` (``print_table``, ``median_of`` and
``qc bench all`` take it as is); ``errors`` counts socket errors, time-outs, non-2xx/3xx
answers and what the script counted with ``qc.fail()``.

Scripts (this folder): ``get.lua`` (the URL as given, wrk's pre-built request: the cheapest
load), ``paths.lua`` (a random line of a paths file per request: ``args=[file]``). Your own
script loads the shared helpers with ``local qc = dofile(os.getenv("QC_WRK_LIB"))`` and calls
``qc.report()``, which prints the line this module parses; ``lib.lua`` documents the helpers
(UUIDs for Idempotency-Key, JSON field extraction, tokens from a file, failure and flow
counters). Multi-step flows (login token, cart id read from one answer and used by the
next, checkout with an Idempotency-Key) keep their state in the thread's Lua globals and run
with ``connections == threads`` (``per_connection_state=True``), because wrk does not say on
which connection an answer arrived; ``r.flows`` then counts finished flows (call
``qc.flow_done()``), so flows/s is ``r.flows / r.seconds``.

CPU split: ``cpu`` maps a party's name to root pids; each root and all its descendants
(PostgreSQL backends, uvicorn/granian workers) are summed, user + system time over the run,
as % of one core (the machine has ``os.cpu_count()`` * 100 %). The generator's own CPU is
wrk's rusage, reported as ``"wrk"``. ``service_pids`` finds the PostgreSQL postmaster
(the parent of a backend) and the Valkey/Redis server (``INFO server``) of local URLs.
``"other"`` is the rest of the machine's busy time meanwhile (a shared machine is noisy:
state it beside the figures).
"""

from __future__ import annotations

import bisect
import contextlib
import json
import os
import resource
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families

from qc.bench.harness import Result
from server.kit.looplag import LAG_METRIC

HERE = Path(__file__).parent
LIB = HERE / "lib.lua"
WRK = "wrk"


@dataclass
class WrkResult(Result):
    p90_ms: float = 0.0
    p999_ms: float = 0.0
    failures: int = 0
    failed: dict[str, int] = field(default_factory=dict)  # failures by what the script named
    flows: int = 0
    connections: int = 0
    threads: int = 0
    cpu: dict[str, float] = field(default_factory=dict)  # % of one core, per party

    def as_dict(self) -> dict[str, Any]:
        return super().as_dict()


def script_path(script: str | Path) -> Path:
    """A script of this folder by name, or the path given."""
    path = Path(script)
    if not path.is_absolute() and not path.exists():
        path = HERE / path
    if not path.exists():
        raise FileNotFoundError(f"no wrk script {script}")
    return path


def _family(roots: Iterable[int]) -> list[psutil.Process]:
    out: dict[int, psutil.Process] = {}
    for pid in roots:
        try:
            root = psutil.Process(pid)
            for p in [root, *root.children(recursive=True)]:
                out[p.pid] = p
        except psutil.Error:
            continue
    return list(out.values())


def _cpu_of(procs: Iterable[psutil.Process]) -> dict[int, float]:
    out: dict[int, float] = {}
    for p in procs:
        try:
            t = p.cpu_times()
            out[p.pid] = t.user + t.system
        except psutil.Error:
            continue
    return out


@contextmanager
def cpu_meter(groups: dict[str, list[int]]) -> Iterator[dict[str, float]]:
    """CPU seconds each group (roots and descendants) used inside the block, filled on exit."""
    before = {name: _cpu_of(_family(pids)) for name, pids in groups.items()}
    used: dict[str, float] = {}
    yield used
    for name, pids in groups.items():
        after = _cpu_of(_family(pids))
        used[name] = sum(t - before[name].get(pid, 0.0) for pid, t in after.items())


def _resident_mib(procs: Iterable[psutil.Process]) -> float:
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total / 2**20


@contextmanager
def _sampled(every_s: float, sample: Callable[[], object]) -> Iterator[None]:
    """``sample()`` every ``every_s``, by a thread, while the block runs."""
    stop = threading.Event()

    def keep_sampling() -> None:
        while not stop.wait(every_s):
            sample()

    sampler = threading.Thread(target=keep_sampling, name="qc-sampler", daemon=True)
    sampler.start()
    try:
        yield
    finally:
        stop.set()
        sampler.join()


@contextmanager
def memory_meter(roots: list[int], every_s: float = 0.5) -> Iterator[dict[str, float]]:
    """Resident MiB of ``roots`` and their descendants at the block's start (``before``)
    and at its peak (``peak``, sampled every ``every_s`` by a thread), filled on exit."""
    seen = {"before": _resident_mib(_family(roots))}
    peak = [seen["before"]]

    def sample() -> None:
        peak[0] = max(peak[0], _resident_mib(_family(roots)))

    with _sampled(every_s, sample):
        yield seen
    seen["peak"] = max(peak[0], _resident_mib(_family(roots)))


@contextmanager
def cpu_timeline(roots: list[int], every_s: float = 0.5) -> Iterator[list[tuple[float, float]]]:
    """``(time.time(), CPU seconds)`` of ``roots`` and their descendants every ``every_s``
    while the block runs (by a thread; the list fills as it goes, a last sample on exit):
    what they used inside a window the block only learns later (:func:`cpu_within`)."""
    samples: list[tuple[float, float]] = []

    def sample() -> None:
        samples.append((time.time(), sum(_cpu_of(_family(roots)).values())))

    sample()
    with _sampled(every_s, sample):
        yield samples
    sample()


def cpu_within(samples: list[tuple[float, float]], start: float, end: float) -> float:
    """CPU seconds used from ``start`` to ``end`` (wall clock), read off a
    :func:`cpu_timeline` by linear interpolation between its samples."""

    times = [s[0] for s in samples]

    def at(t: float) -> float:
        i = bisect.bisect_left(times, t)
        if i == 0:
            return samples[0][1]
        if i == len(samples):
            return samples[-1][1]
        (t0, c0), (t1, c1) = samples[i - 1], samples[i]
        return c0 + (c1 - c0) * (t - t0) / (t1 - t0) if t1 > t0 else c1

    return max(0.0, at(end) - at(start))


LagCounts = dict[float, float]  # a bucket's upper bound (s) -> the observations up to it


def _lag_counts(metrics_url: str) -> LagCounts | None:
    try:
        text = httpx.get(metrics_url, timeout=2.0).text
    except httpx.HTTPError:
        return None  # a scrape lost to a busy moment: the window's ends come from others
    for family in text_string_to_metric_families(text):
        if family.name == LAG_METRIC:
            return {
                float(s.labels["le"]): s.value
                for s in family.samples
                if s.name == LAG_METRIC + "_bucket"
            }
    return None


@contextmanager
def lag_timeline(metrics_url: str, every_s: float = 0.5) -> Iterator[list[tuple[float, LagCounts]]]:
    """``(time.time(), its event-loop lag buckets)`` of a one-process server, read off its
    ``/metrics`` every ``every_s`` while the block runs (by a thread): how late its loop ran
    inside a window the block only learns later (:func:`lag_p99_within`)."""
    samples: list[tuple[float, LagCounts]] = []

    def sample() -> None:
        counts = _lag_counts(metrics_url)
        if counts is not None:
            samples.append((time.time(), counts))

    sample()
    with _sampled(every_s, sample):
        yield samples
    sample()


def lag_p99_within(
    samples: list[tuple[float, LagCounts]], start: float, end: float
) -> float | None:
    """The bucket bound (ms) the loop's lag stayed within 99 % of the time from ``start`` to
    ``end`` (wall clock): the samples just outside the window, their difference. None
    without two such samples or observations between them, past the last bound (1 s), or
    where a count went down (a server of several processes answers from any of them)."""
    before = [c for t, c in samples if t <= start]
    after = [c for t, c in samples if t >= end]
    if not before or not after:
        return None
    first, last = before[-1], after[0]
    if set(first) != set(last) or any(last[b] < first[b] for b in first):
        return None
    seen = {b: last[b] - first[b] for b in sorted(first)}
    total = seen.get(float("inf"), 0.0)
    if total <= 0:
        return None
    bound = next(b for b, n in seen.items() if n >= 0.99 * total)
    return None if bound == float("inf") else round(bound * 1000, 1)


def _machine_busy() -> float:
    t = psutil.cpu_times()
    return float(sum(t) - t.idle - getattr(t, "iowait", 0.0))


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run(
    url: str,
    script: str | Path = "get.lua",
    *,
    name: str | None = None,
    args: list[str] | None = None,
    connections: int = 64,
    threads: int = 2,
    duration: float = 10.0,
    timeout_s: float = 5.0,
    per_connection_state: bool = False,
    headers: dict[str, str] | None = None,
    cpu: dict[str, list[int]] | None = None,
) -> WrkResult:
    """Load ``url`` with wrk for ``duration`` seconds; figures as a ``WrkResult``."""
    if per_connection_state:
        threads = connections
    threads = max(1, min(threads, connections))
    cmd = [
        WRK,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        f"--timeout={max(1, round(timeout_s))}s",
        "--latency",
        "-s",
        str(script_path(script)),
    ]
    for key, value in (headers or {}).items():
        cmd += ["-H", f"{key}: {value}"]
    cmd += [url, *(["--", *args] if args else [])]
    env = {**os.environ, "QC_WRK_LIB": str(LIB)}
    started_cpu = _children_cpu()
    machine_before = _machine_busy()
    with cpu_meter(cpu or {}) as used:
        started = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - started
    generator_cpu = _children_cpu() - started_cpu
    machine = _machine_busy() - machine_before
    line = next((x for x in proc.stdout.splitlines() if x.startswith("QCWRK ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr or proc.stdout}")
    f = json.loads(line[len("QCWRK ") :])
    seconds = f["duration_us"] / 1e6 or wall
    errors = f["connect"] + f["read"] + f["write"] + f["status"] + f["timeout"] + f["failures"]
    shares = {"wrk": 100 * generator_cpu / seconds}
    shares |= {party: 100 * s / seconds for party, s in used.items()}
    # everything else the machine ran meanwhile (other processes: a shared machine is noisy)
    shares["other"] = max(0.0, 100 * (machine - generator_cpu - sum(used.values())) / wall)
    return WrkResult(
        name=name or url,
        ops=f["requests"],
        errors=errors,
        seconds=seconds,
        p50_ms=f["p50_us"] / 1000,
        p99_ms=f["p99_us"] / 1000,
        p90_ms=f["p90_us"] / 1000,
        p999_ms=f["p999_us"] / 1000,
        failures=f["failures"],
        failed=f.get("failed", {}),
        flows=f["flows"],
        connections=connections,
        threads=threads,
        cpu={k: round(v, 1) for k, v in shares.items()},
    )


def paths_file(paths: Iterable[str]) -> str:
    """A temporary file of request paths (one per line) for ``paths.lua``; caller deletes."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as fh:
        fh.write("\n".join(paths) + "\n")
        return fh.name


def service_pids(database_url: str | None, redis_url: str | None) -> dict[str, list[int]]:
    """The local PostgreSQL postmaster and Valkey/Redis server pids of these URLs (a party
    that is not on this machine, or not ours to read, is left out)."""
    out: dict[str, list[int]] = {}
    if database_url:
        try:
            import psycopg

            with psycopg.connect(database_url, connect_timeout=5) as conn:
                row = conn.execute("SELECT pg_backend_pid()").fetchone()
                # the postmaster is the backend's parent: ask while the backend still lives
                if row is not None:
                    out["PostgreSQL"] = [psutil.Process(int(row[0])).ppid()]
        except Exception:  # best effort: a remote or foreign server is left out
            pass
    if redis_url:
        try:
            import redis

            client = redis.Redis.from_url(redis_url)
            try:
                pid = int(client.info("server")["process_id"])
            finally:
                client.close()
            psutil.Process(pid).cpu_times()
            out["Valkey"] = [pid]
        except Exception:  # best effort, as above
            pass
    return out


def cpu_text(result: WrkResult) -> str:
    """``wrk 40% · API 180% · PostgreSQL 2% · Valkey 10%`` (of one core each)."""
    return " · ".join(f"{k} {v:.0f}%" for k, v in result.cpu.items())
