"""Run the API (or a reference app) under uvicorn or granian in a subprocess for HTTP
benchmarks.

References, served exactly like the API (same server, workers, loop) so a figure's ratio to
them is the cost of qc's own code: ``bare_app`` (a raw ASGI app: the server's limit) and
``bare_fastapi`` (a factory: one FastAPI route with a path parameter answering a small JSON
document: what any FastAPI route costs; and a POST of a flash join's shape). ``serve_process``
yields the URL and the server's pid (its workers are its children) for the CPU split.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import cast

import httpx
from fastapi import FastAPI
from pydantic import BaseModel
from starlette.types import Receive, Scope, Send

from qc import serving


async def bare_app(scope: Scope, receive: Receive, send: Send) -> None:
    """The stack's limit: a raw ASGI app answering a small JSON document."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b'{"sku_id":"SKU00001","name":"Amul Toned Milk 500 ml","price_paise":2900}'
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BareJoin(BaseModel):
    store_id: str


def bare_fastapi() -> FastAPI:
    """The FastAPI reference: one route with a path parameter, a dict answered as JSON."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/v1/bare/{sku_id}")
    async def bare(sku_id: str) -> dict[str, object]:
        return {"sku_id": sku_id, "name": "Amul Toned Milk 500 ml", "price_paise": 2900}

    @app.post("/v1/bare/queue")
    async def join(body: BareJoin) -> dict[str, object]:
        """The flash bench's reference: a join's shape (a JSON body read and checked, a
        small document answered), none of its work."""
        return {"store_id": body.store_id, "ticket": 1, "position": 1, "status": "WAITING"}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


@dataclass(frozen=True)
class Served:
    url: str
    pid: int
    server: str
    workers: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve_process(
    target: str,
    *,
    env: dict[str, str],
    workers: int,
    factory: bool = True,
    server: str = "uvicorn",
    health: str | None = None,
) -> Iterator[Served]:
    """``target`` under ``server`` on a free port with ``workers`` processes. Its log goes
    to a file (a pipe nobody reads fills up, and the server blocks writing to it)."""
    port = free_port()
    log = tempfile.TemporaryFile("w+")
    proc = subprocess.Popen(
        # as qc serve runs it (its options, the workers' kill timeout)
        serving.command(
            cast(serving.Server, server),
            host="127.0.0.1",
            port=port,
            workers=workers,
            target=target,
            factory=factory,
        ),
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=log,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    probe = url + (health if health is not None else ("/healthz" if factory else "/"))
    deadline = time.monotonic() + 300  # a busy machine imports slowly
    try:
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"server exited: {log.read()[-4000:]}")
            try:
                if httpx.get(probe, timeout=1).status_code < 500:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.1)
        yield Served(url, proc.pid, server, workers)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@contextmanager
def serve(
    target: str, *, env: dict[str, str], workers: int, factory: bool, server: str = "uvicorn"
) -> Iterator[str]:
    """``target`` on a free port with ``workers`` processes; yields the base URL."""
    with serve_process(target, env=env, workers=workers, factory=factory, server=server) as s:
        yield s.url
