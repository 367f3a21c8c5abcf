"""Helpers the tests share: logging in and packing an order through the API, waiting for a
condition with a deadline, a stepped clock, a free port, an ASGI app on a real socket."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal, TypeVar, cast

import httpx
import psycopg
import uvicorn
from fastapi import FastAPI
from textual.app import App
from textual.css.query import NoMatches
from textual.pilot import Pilot
from textual.screen import Screen

from server.kit.resources import resources_of
from server.payments.provider import SimulatedProvider
from server.seed.generate import DEMO_SECRETS
from shared.enums import Role


async def login(client: httpx.AsyncClient, login_name: str, secret: str) -> dict[str, str]:
    """Authorization headers for a seeded user."""
    response = await client.post("/v1/auth/login", json={"login": login_name, "secret": secret})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def pick_and_pack(client: httpx.AsyncClient, order_id: str) -> str:
    """BLR-KOR's first picker claims the next task (it must be this order) and packs it."""
    picker = await login(client, "picker.kor.1", DEMO_SECRETS[Role.PICKER])
    task = (await client.post("/v1/picking/claim", headers=picker)).json()
    assert task["order_id"] == order_id, task
    for line in task["lines"]:
        for _ in range(line["quantity"]):
            await client.post(
                f"/v1/picking/tasks/{order_id}/scans",
                headers=picker,
                json={"scan_id": uuid.uuid4().hex, "code": line["barcode"]},
            )
    packed = await client.post(
        f"/v1/picking/tasks/{order_id}/pack", json={"bag_count": 1}, headers=picker
    )
    assert packed.status_code == 200, packed.text
    return packed.json()["bag_label"]


# --- waiting -------------------------------------------------------------------------


async def wait_until(
    condition: Callable[[], object],
    *,
    timeout: float = 10.0,
    what: str = "",
    pause: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds. ``pause`` lets
    the rest of the event loop run between polls."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what or condition}"
        await pause(0.01)


async def wait_for(
    pilot: Pilot[Any], condition: Callable[[], object], *, timeout: float = 15.0, what: str = ""
) -> None:
    """Let the Textual app run until ``condition()`` holds; fail after ``timeout`` seconds.
    A widget the condition queries that is not mounted yet (a screen just pushed composes
    its children a moment later) counts as not yet, not as a failure."""

    def holds() -> object:
        try:
            return condition()
        except NoMatches:
            return False

    await wait_until(holds, timeout=timeout, what=what, pause=pilot.pause)


S = TypeVar("S", bound=Screen[Any])


def screen_ready(app: App[Any], kind: type[Screen[Any]]) -> bool:
    """The app shows a ``kind`` screen that is mounted and has its focus (or nothing to
    focus): keys pressed now reach it. A screen just pushed composes its children and
    focuses the first a moment later; keys before that go nowhere or to the wrong widget."""
    screen = app.screen
    return (
        isinstance(screen, kind)
        and screen.is_mounted
        and (screen.focused is not None or not screen.focus_chain)
    )


async def wait_for_screen(
    pilot: Pilot[Any], kind: type[S], *, timeout: float = 15.0, what: str = ""
) -> S:
    """Let the app run until a ``kind`` screen is ready for keys (``screen_ready``)."""
    await wait_for(
        pilot, lambda: screen_ready(pilot.app, kind), timeout=timeout, what=what or kind.__name__
    )
    return cast(S, pilot.app.screen)


class SteppedClock:
    """Monotonic seconds that move only when told: key timing for the wedge detector."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def footer_keys(app: App[Any]) -> dict[str, str]:
    """The keys the footer shows now (enabled, shown), with what each says it does."""
    return {
        key: active.binding.description
        for key, active in app.active_bindings.items()
        if active.binding.show and active.enabled
    }


async def scanner_types(pilot: Pilot[Any], clock: SteppedClock, code: str) -> None:
    """A USB wedge scanner: every key of the code and Enter inside one instant."""
    clock.advance(1.0)  # well apart from whatever came before
    await pilot.press(*code, "enter")


# --- servers on real sockets ---------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ThreadedServer:
    """An ASGI app under a real uvicorn, in a thread, on a loopback port that stays the
    same across :meth:`stop` and :meth:`start` (``app`` builds a fresh app each start)."""

    def __init__(self, app: Callable[[], Any], *, lifespan: Literal["on", "off"] = "on") -> None:
        self._app = app
        self._lifespan = lifespan
        self.port = free_port()
        self.app: Any = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.app = self._app()
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan=self._lifespan,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            assert self._thread.is_alive() and time.monotonic() < deadline, "did not start"
            time.sleep(0.01)

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout=15)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout=5)
        self._server = self._thread = None


def another_store(database_url: str, store_id: str, city_id: str = "BLR") -> str:
    """A store of the same city other than ``store_id`` (the first by id)."""
    import psycopg

    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT store_id FROM dark_stores WHERE city_id = %s AND store_id <> %s "
            "ORDER BY store_id LIMIT 1",
            (city_id, store_id),
        ).fetchone()
    assert row is not None, f"the seeded city has no store besides {store_id}"
    return str(row[0])


def stocked_skus(
    database_url: str, store_id: str, n: int, *, at_least: int = 0, also_at: str | None = None
) -> list[str]:
    """The store's first ``n`` SKUs (by id) with at least ``at_least`` units available
    (and as many at the store ``also_at``, when given)."""
    with psycopg.connect(database_url) as conn:
        found = [
            str(r[0])
            for r in conn.execute(
                "SELECT sku_id FROM store_inventory i WHERE store_id = %s AND available_qty >= %s "
                "AND (CAST(%s AS text) IS NULL OR EXISTS (SELECT 1 FROM store_inventory o "
                "WHERE o.store_id = %s AND o.sku_id = i.sku_id AND o.available_qty >= %s)) "
                "ORDER BY sku_id LIMIT %s",
                (store_id, at_least, also_at, also_at, at_least, n),
            )
        ]
    assert len(found) == n, f"{store_id} has {len(found)} SKUs with {at_least}+ units, not {n}"
    return found


def simulated_provider(app: FastAPI) -> SimulatedProvider:
    """The app's payment provider, which the tests steer (rates, outages, webhooks)."""
    provider = resources_of(app).payments.provider
    assert isinstance(provider, SimulatedProvider)
    return provider


Row = TypeVar("Row")


def one_row(cursor: psycopg.Cursor[Row]) -> Row:
    """The query's row: a query that finds none fails here, not as ``None[0]`` further on."""
    row = cursor.fetchone()
    assert row is not None, "the query found no row"
    return row


@contextmanager
def driver_statements(*, commands: bool = False) -> Iterator[list[str]]:
    """Every statement sent on an async psycopg cursor in the block, its whitespace folded:
    counted at the driver, so those sent past SQLAlchemy (``db.execute``) count too; with
    ``commands``, the connections' own commands as well (BEGIN, COMMIT, ROLLBACK)."""
    seen: list[str] = []
    execute, exec_command = psycopg.AsyncCursor.execute, psycopg.AsyncConnection._exec_command

    async def statement(cursor: Any, query: Any, params: Any = None, **kw: Any) -> Any:
        seen.append(" ".join(str(query).split()))
        return await execute(cursor, query, params, **kw)

    def command(conn: Any, sent: Any, *args: Any, **kw: Any) -> Any:
        seen.append(bytes(sent).decode() if isinstance(sent, bytes) else str(sent))
        return exec_command(conn, sent, *args, **kw)  # a generator, as the original

    setattr(psycopg.AsyncCursor, "execute", statement)  # noqa: B010 (spies that call through)
    if commands:
        setattr(psycopg.AsyncConnection, "_exec_command", command)  # noqa: B010
    try:
        yield seen
    finally:
        setattr(psycopg.AsyncCursor, "execute", execute)  # noqa: B010
        setattr(psycopg.AsyncConnection, "_exec_command", exec_command)  # noqa: B010
