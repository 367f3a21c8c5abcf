"""Several ``qc`` API replicas behind a real HAProxy (issue 20 point 2).

``balanced(env, replicas=N)`` starts N single-worker replicas of the API under the server
``qc serve`` runs (``qc.serving``: granian, or ``server="uvicorn"``) on free loopback
ports, all on the same PostgreSQL and Redis (``env`` names them), and HAProxy (Debian's
``/usr/sbin/haproxy``) in front: round robin,
health checks on ``/healthz`` every second (a replica is out after three failures,
back after one success), a connection refused is retried on another replica (nothing was sent,
so it is safe), and the websockets of a replica that went down are cut so their clients
reconnect elsewhere. ``qc balance`` runs it in the foreground; the replica-kill test and
``qc bench replicas`` use it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from qc import serving

HAPROXY = "/usr/sbin/haproxy"
CHECK_INTERVAL_MS = 1000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def haproxy_config(port: int, replicas: list[int]) -> str:
    """The balancer: HTTP mode, health-checked replicas, websockets tunnelled."""
    servers = "\n".join(
        f"    server r{i} 127.0.0.1:{p} check" for i, p in enumerate(replicas, start=1)
    )
    return f"""global
    maxconn 4000
    tune.bufsize 16384

defaults
    mode http
    timeout connect 2s
    timeout check 5s
    timeout client 120s
    timeout server 120s
    timeout tunnel 1h
    timeout http-keep-alive 60s
    # a client gets 10 s to send its request headers (half-sent requests are cut: 408),
    # and headers larger than the 16 KiB buffer are refused (400)
    timeout http-request 10s
    option redispatch
    retries 3
    retry-on conn-failure

frontend qc
    bind 127.0.0.1:{port}
    option forwardfor
    default_backend api

backend api
    balance roundrobin
    option httpchk GET /healthz
    http-check expect status 200
    default-server inter {CHECK_INTERVAL_MS}ms fall 3 rise 1 on-marked-down shutdown-sessions
    # which replica answered (tests follow a websocket to its replica)
    http-response set-header X-Qc-Replica %s
{servers}
"""


@dataclass
class Replica:
    name: str
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.process.poll() is None


@dataclass
class Balanced:
    url: str
    replicas: list[Replica]
    haproxy: subprocess.Popen[bytes]
    killed: list[str] = field(default_factory=list)

    def kill(self, index: int) -> Replica:
        """SIGKILL one replica, its worker process too: no shutdown, no goodbye to its
        sockets."""
        replica = self.replicas[index]
        _kill_group(replica.process)
        replica.process.wait(timeout=10)
        self.killed.append(replica.name)
        return replica


def _wait_healthy(
    url: str, process: subprocess.Popen[bytes], what: str, timeout: float, log: Path | None = None
) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        if process.poll() is None:
            try:
                r = httpx.get(url + "/healthz", timeout=2)
                if r.status_code == 200:
                    return
                last = f"{r.status_code} {r.text[:300]}"
            except httpx.TransportError as exc:
                last = type(exc).__name__
        if process.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
            state = (
                f"exited with {process.returncode}"
                if process.poll() is not None
                else (f"not healthy after {timeout:.0f} s")
            )
            raise RuntimeError(f"{what} {state}; last /healthz: {last}\n{tail}")
        time.sleep(0.1)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL a process started in a session of its own and everything in it (granian's
    worker outlives a killed main process otherwise)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            process.wait()


def _replica(env: dict[str, str], name: str, log_dir: Path, server: serving.Server) -> Replica:
    port = free_port()
    log = (log_dir / f"{name}.log").open("wb")
    process = subprocess.Popen(
        serving.command(server, host="127.0.0.1", port=port),
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # a group of its own: ``kill`` takes its workers too
    )
    log.close()
    return Replica(name, port, process)


@contextmanager
def balanced(
    env: dict[str, str],
    *,
    replicas: int = 3,
    port: int | None = None,
    startup_s: float = 90,
    server: serving.Server = "granian",
) -> Iterator[Balanced]:
    """N replicas behind HAProxy, all healthy through the balancer before it yields."""
    if not Path(HAPROXY).exists() and shutil.which("haproxy") is None:
        raise RuntimeError("haproxy is not installed (apt-get install haproxy)")
    binary = HAPROXY if Path(HAPROXY).exists() else str(shutil.which("haproxy"))
    # HAProxy's X-Forwarded-For names the client
    env = {"QC_TRUSTED_PROXIES": "127.0.0.1", **env}
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="qc-balance-")))
        started: list[Replica] = []

        def stop_replicas() -> None:
            for replica in started:
                _stop(replica.process)

        stack.callback(stop_replicas)
        for i in range(replicas):
            replica = _replica(env, f"r{i + 1}", work, server)
            started.append(replica)
        for replica in started:  # they start in parallel; the first migrates, others wait
            log = work / f"{replica.name}.log"
            _wait_healthy(replica.url, replica.process, f"replica {replica.name}", startup_s, log)
        front = port or free_port()
        config = work / "haproxy.cfg"
        config.write_text(haproxy_config(front, [r.port for r in started]))
        check = subprocess.run([binary, "-c", "-f", str(config)], capture_output=True)
        if check.returncode != 0:
            raise RuntimeError(f"haproxy refused its config: {check.stderr.decode()}")
        proxy = subprocess.Popen(
            [binary, "-db", "-f", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=(work / "haproxy.log").open("wb"),
        )
        stack.callback(_stop, proxy)
        url = f"http://127.0.0.1:{front}"
        _wait_healthy(url, proxy, "haproxy", 30, work / "haproxy.log")
        yield Balanced(url, started, proxy)
