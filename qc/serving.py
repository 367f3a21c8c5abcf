"""How ``qc serve`` and ``qc balance`` run the API: under granian (the default: 1.4-2.0x
uvicorn's req/s on two workers, README "Benchmarks") or uvicorn.

Both servers load :func:`create_served_app`, so the client address (the per-address
limits and the login guard read it) follows one rule whatever runs it: ``X-Forwarded-For``
names the client only when the connection comes from a ``QC_TRUSTED_PROXIES`` address.
Granian runs the ASGI lifespan in each worker (the background loops start there and stop
on SIGTERM/SIGINT); it cuts open websockets at shutdown without a close frame (uvicorn
sends 1012), and their clients reconnect as after any lost connection.
"""

from __future__ import annotations

import ctypes
import gc
import multiprocessing
import os
import signal
import sys
from typing import Any, Literal

from server.kit.config import get_settings

Server = Literal["granian", "uvicorn"]
TARGET = "qc.serving:create_served_app"
# seconds a stopping process gets to finish its requests and run the lifespan's shutdown
GRACEFUL_S = 10
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def create_served_app() -> Any:
    """The app of ``server.app`` (settings from the environment) as :func:`served`."""
    from server.app import create_app

    _die_with_the_server()
    settings = get_settings()
    return served(create_app(settings), trusted_proxies=settings.trusted_proxies)


def served(app: Any, *, trusted_proxies: str) -> Any:
    """``app`` behind the trusted proxies' ``X-Forwarded-For`` (the rightmost address that
    is not a trusted proxy names the client), its answers named ``server: qc``, its
    start-up's objects set aside from the garbage collector."""
    from granian.utils.proxies import wrap_asgi_with_proxy_headers

    if trusted_proxies.strip():  # else trust none: no client picks its own address
        app = wrap_asgi_with_proxy_headers(app, trusted_hosts=trusted_proxies)
    return _frozen_after_startup(_named_qc(app))


def _die_with_the_server() -> None:
    """In a worker process (granian's, or uvicorn's with ``--workers N``): SIGKILL when the
    process that started it dies. A killed ``qc serve`` is then gone whole, as one process
    would be, instead of leaving workers that go on serving its port and running its
    loops. Linux only (``prctl``); elsewhere a killed server leaves its workers."""
    parent = multiprocessing.parent_process()
    if parent is None or sys.platform != "linux":
        return  # the server's own process (uvicorn with one worker): nothing to outlive
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent.pid:  # it died before the line above
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
    for a catalogue it loads)."""

    async def frozen(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            return await app(scope, receive, send)

        async def send_frozen(message: dict[str, Any]) -> None:
            if message["type"] == "lifespan.startup.complete":
                gc.collect()
                gc.freeze()
            await send(message)

        return await app(scope, receive, send_frozen)

    return frozen


def command(
    server: Server,
    *,
    host: str,
    port: int,
    workers: int = 1,
    target: str = TARGET,
    factory: bool = True,
) -> list[str]:
    """The argv of a server process on ``host:port`` run as :func:`run` runs it (a ``qc
    balance`` replica; the benches' API, and their reference apps as ``target``)."""
    called = ("--factory",) if factory else ()
    if server == "granian":
        return [
            *(sys.executable, "-m", "granian", target, *called, "--interface", "asgi"),
            *("--host", host, "--port", str(port), "--workers", str(workers)),
            *("--log-level", "warning", "--no-access-log"),
            *("--workers-kill-timeout", str(GRACEFUL_S)),
        ]
    if server != "uvicorn":
        raise ValueError(f"unknown server {server}; one of granian, uvicorn")
    return [
        *(sys.executable, "-m", "uvicorn", target, *called, "--interface", "asgi3"),
        *("--host", host, "--port", str(port), "--workers", str(workers)),
        *("--log-level", "warning", "--no-access-log", "--no-server-header"),
        # the served app reads X-Forwarded-For itself (above), uvicorn must not
        "--no-proxy-headers",
        *("--timeout-graceful-shutdown", str(GRACEFUL_S)),
    ]


def run(server: Server, *, host: str, port: int, workers: int) -> None:
    """Serve in the foreground until SIGINT or SIGTERM, then stop gracefully."""
    if server == "granian":
        from granian import Granian
        from granian.constants import Interfaces
        from granian.log import LogLevels

        Granian(
            TARGET,
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
        TARGET,
        factory=True,
        interface="asgi3",
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
        server_header=False,  # do not advertise the server software
        proxy_headers=False,  # the served app reads X-Forwarded-For itself (above)
        timeout_graceful_shutdown=GRACEFUL_S,
    )
