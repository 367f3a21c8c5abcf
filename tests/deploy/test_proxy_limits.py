"""The balancer in front (``qc.balance``'s HAProxy configuration) bounds what uvicorn alone
does not: request headers larger than its buffer are refused, and a client that sends its
headers slowly is cut off (over real sockets, with Debian's HAProxy)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from qc.balance import haproxy_config
from tests.helpers import free_port

pytestmark = pytest.mark.skipif(shutil.which("haproxy") is None, reason="needs haproxy")


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[int]:
    port = free_port()
    config = tmp_path / "haproxy.cfg"
    config.write_text(haproxy_config(port, [free_port()]))  # no replica behind: not needed
    process = subprocess.Popen(["haproxy", "-db", "-f", str(config)], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            time.sleep(0.1)
    yield port
    process.terminate()
    process.wait(timeout=10)


def _status(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1])


def test_headers_larger_than_the_buffer_are_refused(proxy: int) -> None:
    with socket.create_connection(("127.0.0.1", proxy), timeout=10) as conn:
        conn.sendall(b"GET /v1/me HTTP/1.1\r\nHost: qc\r\nX-Big: " + b"a" * 64_000 + b"\r\n\r\n")
        assert _status(conn.recv(4096)) in (400, 431)


@pytest.mark.slow
def test_a_half_sent_request_is_cut_off(proxy: int) -> None:
    with socket.create_connection(("127.0.0.1", proxy), timeout=30) as conn:
        conn.sendall(b"GET /v1/me HTTP/1.1\r\nHost: qc\r\n")  # and never the end of it
        started = time.monotonic()
        answer = conn.recv(4096)
        waited = time.monotonic() - started
    assert _status(answer) == 408
    assert 5 < waited < 25  # the configured 10 s, not the 120 s client timeout
