"""How ``qc serve`` and ``qc balance`` run the API: under granian (the default: 1.4-2.0x
uvicorn's req/s on two workers, README "Benchmarks") or uvicorn.

Both servers load :func:`create_served_app`, so the client address (the per-address
limits and the login guard read it) follows one rule whatever runs it: ``X-Forwarded-For``
names the client only when the connection comes from a ``QC_TRUSTED_PROXIES`` address.
Granian runs the ASGI lifespan in each worker; it cuts open websockets at shutdown without
a close frame (uvicorn sends 1012), and their clients reconnect as after any lost connection.

The background loops run in a process of their own beside the workers (:func:`run_loops`),
not in the workers: a loop's batch (the ops alerts' city snapshot, the outbox relay) is a
synchronous stretch of the event loop, and in a worker every request waiting on that loop
waited for it too. The loops are leased and fenced, so a
deployment that runs them elsewhere (``QC_BACKGROUND_LOOPS=false``, or a worker with
``QC_SERVE_API=false``) starts no such process.

With ``QC_WAITING_ROOM_PORT`` a flash sale's line (join, where am I, leave, its socket)
is served by a server of its own too, the waiting room (:func:`_waiting_room`), kept and
stopped like the loops' process: a crowd's joins wait behind no checkout or order.
A deployment runs it as a service of its own instead (``qc serve --waiting-room``,
:func:`run_room_alone`; deploy/), the API's ``QC_WAITING_ROOM_URL`` naming its address.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, cast

from qc.aio import loop_factory
from server.kit.config import Settings, get_settings

Server = Literal["granian", "uvicorn"]
TARGET = "qc.serving:create_served_app"
ROOM_TARGET = "qc.serving:create_waiting_room_app"
# seconds a stopping process gets to finish its requests and run the lifespan's shutdown
GRACEFUL_S = 10
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
STOPS = (signal.SIGTERM, signal.SIGINT)
RESTART_S = 1.0  # a loops' process that died is started again after this


def create_served_app() -> Any:
    """The app of ``server.app`` (settings from the environment) as :func:`served`."""
    return _worker_app(waiting_room=False)


def create_waiting_room_app() -> Any:
    """The waiting room's app (``create_app(waiting_room=True)``: a flash sale's line and
    its socket) as :func:`served`, for the waiting room's own server (:func:`run`)."""
    return _worker_app(waiting_room=True)


def _worker_app(*, waiting_room: bool) -> Any:
    from server.app import create_app

    parent = multiprocessing.parent_process()
    if parent is not None and parent.pid:  # a worker (granian's, uvicorn's with --workers N)
        _die_with(parent.pid)
    settings = get_settings()
    app = create_app(settings, waiting_room=waiting_room)
    return served(app, trusted_proxies=settings.trusted_proxies)


def served(app: Any, *, trusted_proxies: str) -> Any:
    """``app`` behind the trusted proxies' ``X-Forwarded-For`` (the rightmost address that
    is not a trusted proxy names the client), its answers named ``server: qc``, its
    start-up's objects set aside from the garbage collector."""
    from granian.utils.proxies import wrap_asgi_with_proxy_headers

    if trusted_proxies.strip():  # else trust none: no client picks its own address
        app = wrap_asgi_with_proxy_headers(app, trusted_hosts=trusted_proxies)
    return _frozen_after_startup(_named_qc(app))


def _die_with(parent: int) -> None:
    """SIGKILL this process (a worker, the loops' process) when ``parent``, the server that
    started it, dies. A killed ``qc serve`` is then gone whole, as one process would be,
    instead of leaving workers that go on serving its port and running its loops. Linux
    only (``prctl``); elsewhere a killed server leaves its children."""
    if sys.platform != "linux":
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:  # it died before the line above
        os.kill(os.getpid(), signal.SIGKILL)


def _named_qc(app: Any) -> Any:
    """Answers carry ``server: qc``: granian names itself unless the app names a server
    (it cannot leave the header out), and the server software is not to be advertised."""

    async def named(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await app(scope, receive, send)

        async def send_named(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", ()), (b"server", b"qc")]
                message = {**message, "headers": headers}
            await send(message)

        return await app(scope, receive, send_named)

    return named


def _frozen_after_startup(app: Any) -> Any:
    """Once the lifespan has started (modules, routes, schemas, pools: ~200,000 objects
    that live as long as the worker), ``gc.freeze`` keeps the collector's full collections
    from scanning them again: each one cost a worker 120-160 ms of CPU every few seconds
    under load, the search bench's p99 (``server.catalog.snapshot.settle`` does the same
    for a catalogue it loads); :func:`set_aside` also makes the collections rarer."""

    async def frozen(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            return await app(scope, receive, send)

        async def send_frozen(message: dict[str, Any]) -> None:
            if message["type"] == "lifespan.startup.complete":
                set_aside()
            await send(message)

        return await app(scope, receive, send_frozen)

    return frozen


# the collector's thresholds once the start-up is set aside (``gc.set_threshold``; Python's
# own are 700, 10, 10), why in set_aside
YOUNG_THRESHOLD = 3000
OLDEST_THRESHOLD = 100


def set_aside() -> None:
    """After start-up: collect, freeze what is left (it lives as long as the process), and
    collect less often. A full collection scans every object not frozen, and under a crowd
    those are the requests in flight (coroutines, tasks, sockets: 40,000-140,000 objects
    a worker at ``qc bench flash --users 4000``), 30-150 ms of CPU each, every request on
    the worker waiting. It runs after 10 middle ones once the objects promoted since the
    last exceed a quarter of the survivors then, and after a freeze those survivors are few:
    Python's thresholds gave 3-5 full collections a worker at that size (16-29 at 20,000
    customers), none of which found garbage once the hot paths' reference cycles were gone
    (``kit.db.driver``). A young threshold of 3,000 instead of 700 promotes fewer requests
    in flight (most finish between two young collections), and 100 middle collections
    instead of 10 before a full one: none ran during that crowd, the longest pause was a
    middle collection's ~35 ms, and the collector's CPU fell (docs/architecture.md)."""
    gc.collect()
    gc.freeze()
    _, middle, _ = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, OLDEST_THRESHOLD)


def command(
    server: Server,
    *,
    host: str,
    port: int,
    workers: int = 1,
    target: str = TARGET,
    factory: bool = True,
) -> list[str]:
    """The argv of a server process on ``host:port`` run as ``qc serve`` runs it (a ``qc
    balance`` replica, the demo's and the benches' API): the API through :func:`run`, its
    loops' process with it; a bench's reference app (``target``) straight under the server,
    with the options :func:`run` gives it."""
    if server not in ("granian", "uvicorn"):
        raise ValueError(f"unknown server {server}; one of granian, uvicorn")
    if target == TARGET:
        return [sys.executable, "-m", "qc.serving", server, host, str(port), str(workers)]
    called = ("--factory",) if factory else ()
    if server == "granian":
        return [
            *(sys.executable, "-m", "granian", target, *called, "--interface", "asgi"),
            *("--host", host, "--port", str(port), "--workers", str(workers)),
            *("--log-level", "warning", "--no-access-log"),
            *("--workers-kill-timeout", str(GRACEFUL_S)),
        ]
    return [
        *(sys.executable, "-m", "uvicorn", target, *called, "--interface", "asgi3"),
        *("--host", host, "--port", str(port), "--workers", str(workers)),
        *("--log-level", "warning", "--no-access-log", "--no-server-header"),
        # the served app reads X-Forwarded-For itself (above), uvicorn must not
        "--no-proxy-headers",
        *("--timeout-graceful-shutdown", str(GRACEFUL_S)),
    ]


def run(server: Server, *, host: str, port: int, workers: int) -> None:
    """Serve in the foreground until SIGINT or SIGTERM, then stop gracefully; the
    background loops meanwhile in a process of their own (:func:`run_loops`)."""
    # A stop before the server takes the signals over, or the one uvicorn re-raises as it
    # returns, ends this process only once the loops' process has stopped (it would be
    # killed with this one, its leases left to expire)
    before = {sig: signal.signal(sig, _stopped) for sig in STOPS}
    try:
        with _loops_process(), _waiting_room(server, host=host):
            _serve(server, host=host, port=port, workers=workers)
    except _Stopped as stop:
        signal.signal(stop.signal, before[stop.signal])
        signal.raise_signal(stop.signal)
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


class _Stopped(Exception):
    def __init__(self, number: int) -> None:
        super().__init__(number)
        self.signal = signal.Signals(number)


def _stopped(number: int, _: object) -> None:
    raise _Stopped(number)


def _serve(server: Server, *, host: str, port: int, workers: int, target: str = TARGET) -> None:
    if server == "granian":
        from granian import Granian
        from granian.constants import Interfaces
        from granian.log import LogLevels

        Granian(
            target,
            factory=True,
            address=host,
            port=port,
            interface=Interfaces.ASGI,
            workers=workers,
            log_level=LogLevels.warning,
            log_access=False,
            # a worker still busy after the grace is killed, so a stop never hangs
            workers_kill_timeout=GRACEFUL_S,
        ).serve()
        return
    import uvicorn

    uvicorn.run(
        target,
        factory=True,
        interface="asgi3",
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
        server_header=False,  # do not advertise the server software
        # no compression of socket messages (positions: ~100 bytes of JSON): a socket's
        # zlib streams cost the room ~38 KiB of memory each in the flash crowd
        # (docs/benchmarks.md); granian's sockets never compress
        ws_per_message_deflate=False,
        proxy_headers=False,  # the served app reads X-Forwarded-For itself (above)
        timeout_graceful_shutdown=GRACEFUL_S,
    )


@contextmanager
def _loops_process() -> Iterator[None]:
    """The loops' process while the block runs, started again if it dies (a crash, an OOM
    kill: the journal writer must not stay stopped under a serving API), stopped
    gracefully after; the workers run no loops. None where the loops run elsewhere."""
    settings = get_settings()
    if not (settings.background_loops and settings.serve_api):
        yield
        return
    argv = [sys.executable, "-m", "qc.serving", "loops", str(os.getpid())]
    env = {**os.environ, "QC_BACKGROUND_LOOPS": "true", "QC_SERVE_API": "false"}
    # what the workers (and the waiting room) inherit
    with _environ(QC_BACKGROUND_LOOPS="false"), _kept("the loops' process", argv, env):
        yield


def room_server(settings: Settings, server: Server) -> Server:
    """The waiting room's server: ``QC_WAITING_ROOM_SERVER``, else ``server`` (the API's)."""
    return settings.waiting_room_server or server


@contextmanager
def _waiting_room(server: Server, *, host: str) -> Iterator[None]:
    """The waiting room's own server while the block runs (``QC_WAITING_ROOM_PORT``, 0:
    none): the flash queue's routes and socket on a port and worker(s) of their own, so a
    crowd's joins and polls wait behind no checkout or order in an API worker's event loop
    (the API answers them too). Started again if it dies, stopped gracefully after. The
    workers are told its URL (``QC_WAITING_ROOM_URL``, unless set: behind an edge it is
    the edge's) to advertise in the sales' public view; on a wildcard address there is no
    URL to tell, and clients stay on the API unless it is set."""
    settings = get_settings()
    port = settings.waiting_room_port
    if not (port and settings.serve_api):
        yield
        return
    url = settings.waiting_room_url
    if not url and host not in ("0.0.0.0", "::", ""):
        url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    argv = [sys.executable, "-m", "qc.serving", "room", str(os.getpid())]
    argv += [room_server(settings, server), host]
    argv += [str(port), str(settings.waiting_room_workers)]
    with _environ(QC_WAITING_ROOM_URL=url), _kept("the waiting room", argv, {**os.environ}):
        yield


@contextmanager
def _environ(**values: str) -> Iterator[None]:
    """``os.environ`` (and so the settings) with ``values`` while the block runs."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    get_settings.cache_clear()
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        get_settings.cache_clear()


@contextmanager
def _kept(name: str, argv: list[str], env: dict[str, str]) -> Iterator[None]:
    """The process ``argv`` while the block runs, started again after ``RESTART_S`` if it
    dies, stopped with SIGTERM after (SIGKILL past the grace)."""
    stopping = threading.Event()
    current: list[subprocess.Popen[bytes]] = []
    lock = threading.Lock()

    def keep_running() -> None:
        while True:
            with lock:
                if stopping.is_set():
                    return
                current[:] = [subprocess.Popen(argv, env=env)]
            code = current[0].wait()
            if stopping.wait(RESTART_S):
                return
            print(f"qc serve: {name} exited ({code}); started again", file=sys.stderr)

    keeper = threading.Thread(target=keep_running, name=f"qc-{argv[3]}", daemon=True)
    keeper.start()
    try:
        yield
    finally:
        with lock:
            stopping.set()
        for proc in current:
            proc.terminate()
            try:  # a server's workers have GRACEFUL_S, then it kills them
                proc.wait(timeout=GRACEFUL_S + 5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        keeper.join()


def run_loops(parent: int) -> None:
    """The background loops of ``qc serve`` (started by :func:`run`, dying with
    ``parent``): the app's lifespan, its resources and loops and no routes, until SIGTERM
    or SIGINT."""
    _die_with(parent)
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(_loops_until_stopped())


async def _loops_until_stopped() -> None:
    from server.app import create_app

    app = create_app(get_settings())
    stopped = asyncio.Event()
    for sig in STOPS:
        asyncio.get_running_loop().add_signal_handler(sig, stopped.set)
    async with app.router.lifespan_context(app):
        set_aside()  # as a worker's start-up (_frozen_after_startup)
        await stopped.wait()


def run_waiting_room(parent: int, server: Server, *, host: str, port: int, workers: int) -> None:
    """The waiting room's server (started by :func:`run`, dying with ``parent``) until
    SIGTERM or SIGINT, stopped as the API's; ``QC_WAITING_ROOM_NICE`` steps ahead of the
    API in the OS's scheduling (its workers inherit it), where the OS allows it."""
    _die_with(parent)
    for refusal in schedule_ahead(get_settings().waiting_room_nice):
        print(f"qc serve: the waiting room {refusal}", file=sys.stderr)
    _serve(server, host=host, port=port, workers=workers, target=ROOM_TARGET)


AUTOGROUP = Path("/proc/self/autogroup")


def schedule_ahead(step: int) -> list[str]:
    """This process ``step`` ahead of its parent in the OS's scheduling, where the OS
    allows it: its niceness, and on Linux a scheduling group of its own the same step
    ahead (:func:`_scheduled_apart`); what was refused, said as "runs ..." phrases."""
    refused = []
    try:
        os.nice(step)
    except OSError as exc:  # lowering a niceness needs CAP_SYS_NICE
        refused.append(f"runs at its parent's priority ({exc})")
    try:
        _scheduled_apart(step)
    except OSError as exc:
        refused.append(f"runs in its parent's scheduling group ({exc})")
    return refused


def _scheduled_apart(step: int) -> None:
    """A scheduling group of this process's own, ``step`` ahead, where Linux groups
    processes by session (``sched_autogroup``, on by default): a process's niceness then
    only weighs inside its session's group, and that group (qc serve, its API workers, its
    loops, a benchmark's clients) gets one group's share against each PostgreSQL backend
    and Valkey, every one a session of its own. In the API's group the room got a share of
    that one share; in a session of its own it gets a group's, ``step`` ahead, as it
    would on a machine of its own."""
    if not AUTOGROUP.exists():  # no autogroups: the niceness alone decides
        return
    parent_group_nice = group_nice(AUTOGROUP.read_text())
    if os.getsid(0) != os.getpid():
        os.setsid()
    AUTOGROUP.write_text(str(max(-20, min(19, parent_group_nice + step))))


def group_nice(autogroup: str) -> int:
    """A scheduling group's niceness from ``/proc/<pid>/autogroup`` (``/autogroup-7 nice
    0``). The root group prints nothing: a session that never called ``setsid`` since
    boot, e.g. under a container's init, as CI runs; it stands at 0."""
    fields = autogroup.split()
    return int(fields[-1]) if fields else 0


def run_room_alone(server: Server, *, host: str, port: int, workers: int) -> None:
    """The waiting room as a deployment's own service (``qc serve --waiting-room``): the
    line's routes and socket in the foreground until SIGTERM or SIGINT, stopped as the
    API's. No loops (they are leased, but the worker runs them, and a room's event loop
    is the crowd's) and no niceness step (a container has its own CPU share, and
    CAP_SYS_NICE is dropped)."""
    with _environ(QC_BACKGROUND_LOOPS="false"):  # what its workers inherit
        _serve(server, host=host, port=port, workers=workers, target=ROOM_TARGET)


if __name__ == "__main__":  # command()'s argv
    if sys.argv[1] == "loops":
        run_loops(int(sys.argv[2]))
    elif sys.argv[1] == "room":
        parent, server, host, port, workers = sys.argv[2:7]
        run_waiting_room(
            int(parent), cast(Server, server), host=host, port=int(port), workers=int(workers)
        )
    else:
        server, host, port, workers = sys.argv[1:5]
        run(cast(Server, server), host=host, port=int(port), workers=int(workers))
