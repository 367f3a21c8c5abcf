"""Stand-ins for the control tower's tests: a fixed city (schema objects), a scripted ops
API, and a real-socket fake of the ``/ws/ops`` feed (Starlette on a ``ThreadedServer``)
that can be stopped and started again on the same port."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from control_tower.app import ControlTowerApp
from shared.client import ApiError, ConnectionLost
from shared.enums import Role
from shared.schemas.flash import FlashSalePublic
from shared.schemas.identity import TokenResponse, UserPublic
from shared.schemas.ops import (
    AlertPublic,
    AuditEntry,
    CityOps,
    FlashQueueOps,
    OpsChanges,
    OpsOrder,
    OpsPicker,
    OpsRider,
    OpsSnapshot,
    RiderMoved,
    StageBreakdown,
    StageFigures,
    StoreOps,
    StoreStages,
)
from shared.schemas.orders import OrderPublic
from tests.control_tower.ct_data import stores as store_rows
from tests.helpers import ThreadedServer

AT = datetime(2026, 3, 2, 13, 0, tzinfo=UTC)
SLA = timedelta(minutes=15)
MANAGER = UserPublic(
    id=uuid.UUID("0f0e0d0c-0000-4000-8000-00000000beef"),
    login="manager.blr",
    name="Bengaluru Manager",
    role=Role.MANAGER,
    city_id="BLR",
)


def uid(prefix: str) -> uuid.UUID:
    """A readable UUID whose first 8 hex digits (what the board shows) are ``prefix``."""
    return uuid.UUID(f"{prefix:0<8}-0000-4000-8000-{int(prefix, 16) % 10**12:012d}")


def fixed_monotonic() -> float:
    return 1000.0


# --- the city ------------------------------------------------------------------------


def stores() -> list[StoreOps]:
    radius = {"BLR-WHF": 2500}
    return [
        StoreOps(
            store_id=r.store_id,
            name=r.name,
            lat=r.lat,
            lng=r.lng,
            is_operational=not r.paused,
            paused_reason="heavy rain" if r.paused else None,
            opens_at=r.opens_at,
            service_radius_m=radius.get(r.store_id, 3000),
            orders_by_state=r.orders_by_state,
            oldest_wait_s=r.oldest_wait_s,
            predicted_breaches=r.predicted_breaches,
            active_pickers=r.active_pickers,
            idle_riders=r.idle_riders,
            busy_riders=r.busy_riders,
            low_stock=r.low_stock,
            stock_outs=r.stock_outs,
            sold_out_today=r.sold_out_today,
            stockout_risk=3 if r.store_id == "BLR-KOR" else 0,
            risk=r.risk,
        )
        for r in store_rows()
    ]


RIDERS = {
    # prefix: (name, store, status, lat, lng, idle_s)
    "e1000001": ("Ravi Kumar", "BLR-KOR", "IDLE", 12.9360, 77.6250, 150.0),
    "e1000002": ("Suresh M", "BLR-KOR", "DELIVERING", 12.9400, 77.6300, None),
    "e1000003": ("Anil P", "BLR-KOR", "ASSIGNED", 12.9340, 77.6230, None),
    "e1000004": ("Imran S", "BLR-KOR", "OFFLINE", None, None, None),
    "e1000005": ("Kiran B", "BLR-HSR", "IDLE", 12.9120, 77.6480, 40.0),
    "e1000006": ("Manoj T", "BLR-IND", "AT_STORE", 12.9780, 77.6410, None),
}

ORDERS = [
    # prefix, store, status, age_s, rider, predicted breach, drop
    ("a1000001", "BLR-KOR", "CONFIRMED", 45.0, None, False, (12.9301, 77.6302)),
    ("a1000002", "BLR-KOR", "CONFIRMED", 130.0, None, False, (12.9420, 77.6190)),
    ("a1000003", "BLR-KOR", "PICKING", 610.0, None, True, (12.9290, 77.6350)),
    ("a1000004", "BLR-KOR", "PARTIALLY_FULFILLED", 700.0, None, True, (12.9450, 77.6350)),
    ("a1000005", "BLR-KOR", "PACKED", 420.0, "e1000003", False, (12.9250, 77.6200)),
    ("a1000006", "BLR-KOR", "OUT_FOR_DELIVERY", 820.0, "e1000002", True, (12.9450, 77.6350)),
    ("b2000001", "BLR-HSR", "PICKING", 200.0, None, False, (12.9150, 77.6400)),
    ("c3000001", "BLR-IND", "DISPATCHED", 300.0, "e1000006", False, (12.9800, 77.6450)),
]

PICKERS = {
    "d1000001": ("Priya N", "BLR-KOR", "a1000003"),
    "d1000002": ("Deepa R", "BLR-KOR", "a1000004"),
    "d1000003": ("Lakshmi V", "BLR-KOR", None),
    "d2000001": ("Farah Q", "BLR-HSR", "b2000001"),
}

ALERTS = [
    ("f1000001", "sla_breach_predicted", "critical", "BLR-KOR", "3 orders predicted to breach", 4),
    ("f1000002", "store_overloaded", "warning", "BLR-HSR", "Picking backlog: 6 orders", 9),
    ("f1000003", "top_seller_stock_out", "warning", "BLR-KOR", "SKU00042 Amul Taaza 1L out", 12),
    ("f1000004", "rider_idle", "info", "BLR-IND", "Rider idle for 20 min", 15),
]

SALE_ID = uid("5a1e0001")


def order(
    prefix: str,
    store_id: str,
    status: str,
    age_s: float,
    rider: str | None = None,
    breach: bool = False,
    drop: tuple[float, float] | None = None,
    *,
    at: datetime = AT,
) -> OpsOrder:
    placed = at - timedelta(seconds=age_s)
    return OpsOrder(
        order_id=uid(prefix),
        store_id=store_id,
        status=status,
        placed_at=placed,
        age_s=age_s,
        sla_deadline=placed + SLA,
        predicted_breach=breach,
        rider_id=uid(rider) if rider else None,
        drop_lat=drop[0] if drop else None,
        drop_lng=drop[1] if drop else None,
    )


def rider(prefix: str, **updates: Any) -> OpsRider:
    name, store_id, status, lat, lng, idle_s = RIDERS[prefix]
    base = OpsRider(
        rider_id=uid(prefix),
        name=name,
        store_id=store_id,
        status=status,
        lat=lat,
        lng=lng,
        idle_s=idle_s,
    )
    return base.model_copy(update=updates)


def alert(prefix: str, **updates: Any) -> AlertPublic:
    _, kind, severity, store_id, message, minutes = next(a for a in ALERTS if a[0] == prefix)
    base = AlertPublic(
        alert_id=uid(prefix),
        kind=kind,
        severity=severity,
        store_id=store_id,
        subject=None,
        message=message,
        raised_at=AT - timedelta(minutes=minutes),
    )
    return base.model_copy(update=updates)


def city(**updates: Any) -> CityOps:
    per_minute = [20 + (i * 7) % 13 + i // 2 for i in range(30)]
    base = CityOps(
        city_id="BLR",
        timezone="Asia/Kolkata",
        orders_last_minute=per_minute[-1],
        orders_per_minute=per_minute,
        delivered_today=1234,
        within_10_share=0.81,
        asks_today=1500,
        refused_share=0.18,
        within_15_share=0.95,
        p50_door_s=480.0,
        p90_door_s=780.0,
        cancellations_by_reason={"payment_failed": 3},
        flash_queues=[
            FlashQueueOps(
                sale_id=SALE_ID,
                sku_id="SKU00042",
                status="ACTIVE",
                waiting=120,
                in_checkout=8,
                tokens_left=40,
                sold=260,
            )
        ],
    )
    return base.model_copy(update=updates)


def snapshot(*, at: datetime = AT, **updates: Any) -> OpsSnapshot:
    base = OpsSnapshot(
        at=at,
        city=city(),
        stores=stores(),
        orders=[order(*row) for row in ORDERS],
        riders=[rider(prefix) for prefix in RIDERS],
        pickers=[
            OpsPicker(
                user_id=uid(prefix),
                name=name,
                store_id=store_id,
                picking_order_id=uid(doing) if doing else None,
            )
            for prefix, (name, store_id, doing) in PICKERS.items()
        ],
        alerts=[alert(a[0]) for a in ALERTS],
    )
    return base.model_copy(update=updates)


def store(store_id: str, **updates: Any) -> StoreOps:
    return next(s for s in stores() if s.store_id == store_id).model_copy(update=updates)


def changes(*, at: datetime = AT + timedelta(seconds=1), **fields: Any) -> OpsChanges:
    return OpsChanges(at=at, **fields)


# --- the API ---------------------------------------------------------------------------


@dataclass
class FakeOpsApi:
    """The control tower's API calls, answered from memory and recorded in ``calls``."""

    socket_url: str = "ws://127.0.0.1:9/ws/ops"
    base_url: str = "http://qc.test"
    token: str | None = None
    user: UserPublic | None = None
    secret: str = "manager-demo"
    account: UserPublic = field(default_factory=lambda: MANAGER)
    offline: bool = False
    refuse: dict[str, ApiError] = field(default_factory=dict)  # method name -> error
    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = field(default_factory=list)
    audit: list[AuditEntry] = field(default_factory=list)

    def _call(self, name: str, *args: Any, **kwargs: Any) -> None:
        self.calls.append((name, args, kwargs))
        if self.offline:
            raise ConnectionLost("[Errno 111] Connection refused")
        if name in self.refuse:
            raise self.refuse[name]

    def called(self, name: str) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
        return [(args, kwargs) for n, args, kwargs in self.calls if n == name]

    async def login(self, login: str, secret: str) -> TokenResponse:
        self._call("login", login)
        if login != self.account.login or secret != self.secret:
            raise ApiError(401, "invalid_credentials", "wrong login or secret")
        self.token = "tok-" + login
        self.user = self.account
        return TokenResponse(access_token=self.token, expires_at=AT + SLA, user=self.account)

    async def me(self) -> UserPublic:
        self._call("me")
        if self.token is None:
            raise ApiError(401, "unauthorized", "a bearer token is required")
        return self.account

    def ops_socket_url(self, city_id: str) -> str:
        return f"{self.socket_url}?city={city_id}&token={self.token or ''}"

    async def acknowledge_alert(self, alert_id: uuid.UUID | str) -> AlertPublic:
        self._call("acknowledge_alert", str(alert_id))
        prefix = str(alert_id)[:8]
        return alert(prefix, acknowledged_at=AT, acknowledged_by=self.account.id)

    async def pause_store(self, store_id: str, *, reason: str) -> StoreOps:
        self._call("pause_store", store_id, reason=reason)
        # the live numbers of an action's answer are not to be trusted over the feed's
        return store(store_id, is_operational=False, paused_reason=reason, risk=0.0)

    async def resume_store(self, store_id: str) -> StoreOps:
        self._call("resume_store", store_id)
        return store(store_id, is_operational=True, paused_reason=None, risk=0.0)

    async def set_store_radius(
        self, store_id: str, *, service_radius_m: int, reason: str | None = None
    ) -> StoreOps:
        self._call("set_store_radius", store_id, service_radius_m=service_radius_m, reason=reason)
        return store(store_id, service_radius_m=service_radius_m, risk=0.0)

    def _order(self, order_id: uuid.UUID | str, status: str) -> OrderPublic:
        prefix = str(order_id)[:8]
        store_id = next((o[1] for o in ORDERS if o[0] == prefix), "BLR-KOR")
        return OrderPublic(
            order_id=uuid.UUID(str(order_id)),
            store_id=store_id,
            status=status,
            items=[],
            subtotal_paise=0,
            delivery_fee_paise=0,
            handling_fee_paise=0,
            discount_paise=0,
            total_amount_paise=0,
            currency="INR",
        )

    async def reassign_order(
        self, order_id: uuid.UUID | str, *, rider_id: uuid.UUID | str, reason: str
    ) -> OrderPublic:
        self._call("reassign_order", str(order_id), rider_id=str(rider_id), reason=reason)
        return self._order(order_id, "PACKED")

    async def ops_cancel_order(self, order_id: uuid.UUID | str, *, reason: str) -> OrderPublic:
        self._call("ops_cancel_order", str(order_id), reason=reason)
        return self._order(order_id, "CANCELLED")

    async def move_rider(
        self, rider_id: uuid.UUID | str, *, store_id: str, reason: str
    ) -> RiderMoved:
        self._call("move_rider", str(rider_id), store_id=store_id, reason=reason)
        before = RIDERS[str(rider_id)[:8]][1]
        return RiderMoved(
            rider_id=uuid.UUID(str(rider_id)),
            from_store_id=before,
            store_id=store_id,
            status="IDLE",
        )

    async def stop_flash_sale(self, sale_id: uuid.UUID | str, *, reason: str) -> FlashSalePublic:
        self._call("stop_flash_sale", str(sale_id), reason=reason)
        return FlashSalePublic(
            sale_id=uuid.UUID(str(sale_id)),
            city_id="BLR",
            sku_id="SKU00042",
            name="Amul Taaza 1L",
            mrp_paise=6_800,
            sale_price_paise=3_400,
            starts_at=AT - timedelta(minutes=10),
            ends_at=AT + timedelta(minutes=50),
            per_customer_limit=1,
            status="STOPPED",
            units=300,
            sold=260,
            stores=[],
            stop_reason=reason,
        )

    async def audit_log(self, city_id: str, *, limit: int = 100) -> list[AuditEntry]:
        self._call("audit_log", city_id, limit=limit)
        return list(self.audit)

    async def stage_breakdown(self, city_id: str, *, window_min: int = 60) -> StageBreakdown:
        self._call("stage_breakdown", city_id, window_min=window_min)
        return stage_breakdown(city_id)

    async def aclose(self) -> None:
        pass


def stage_breakdown(city_id: str = "BLR") -> StageBreakdown:
    """Koramangala busy (its p90 to the door past the promise), Indiranagar quiet, HSR idle."""
    seconds = {
        "confirm": (4, 9),
        "queue": (35, 140),
        "pick": (110, 190),
        "handover": (60, 250),
        "ride": (240, 420),
        "door": (45, 80),
        "total": (520, 690),
    }

    def figures(scale: float, count: int) -> list[StageFigures]:
        return [
            StageFigures(
                stage=key,
                label=key,
                count=count if count else 0,
                p50_s=p50 * scale if count else None,
                p90_s=p90 * scale if count else None,
            )
            for key, (p50, p90) in seconds.items()
        ]

    return StageBreakdown(
        city_id=city_id,
        now=AT,
        window_s=3600,
        stores=[
            StoreStages(store_id="BLR-KOR", stages=figures(1.0, 42)),
            StoreStages(store_id="BLR-IND", stages=figures(0.8, 17)),
            StoreStages(store_id="BLR-HSR", stages=figures(1.0, 0)),
        ],
    )


def logged_in_api(**kwargs: Any) -> FakeOpsApi:
    return FakeOpsApi(token="tok-manager.blr", user=MANAGER, **kwargs)


def tower(api: FakeOpsApi, **kwargs: Any) -> ControlTowerApp:
    options: dict[str, Any] = {
        "tz": UTC,
        "monotonic": fixed_monotonic,
        "retry_base_s": 0.05,
        "retry_max_s": 0.2,
    }
    return ControlTowerApp(client=api, **(options | kwargs))


# --- the feed --------------------------------------------------------------------------


class FakeFeedServer(ThreadedServer):
    """``/ws/ops`` on a real socket: each connection gets ``snapshot()`` (the current
    one, so a restart can bring a different city), then whatever :meth:`send` pushes.
    ``refuse_with`` closes new connections with that code right after accepting."""

    def __init__(self, snapshot: Callable[[], OpsSnapshot] = snapshot) -> None:
        super().__init__(
            lambda: Starlette(routes=[WebSocketRoute("/ws/ops", self._ops)]), lifespan="off"
        )
        self.snapshot = snapshot
        self.refuse_with: int | None = None
        self.queries: list[dict[str, str]] = []  # the query of every connection
        self.open_sockets = 0
        self._queues: set[asyncio.Queue[str | int]] = set()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/ops"

    @property
    def connections(self) -> int:
        return len(self.queries)

    async def _ops(self, websocket: WebSocket) -> None:
        with self._lock:
            self.queries.append(dict(websocket.query_params))
        await websocket.accept()
        if self.refuse_with is not None:  # as the server does: say why, then close
            problem = {"code": "not_your_city", "detail": "city DEL is not yours"}
            await websocket.send_json({"type": "error", "error": problem})
            await websocket.close(code=self.refuse_with)
            return
        queue: asyncio.Queue[str | int] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        await websocket.send_text(self.snapshot().model_dump_json())
        with self._lock:
            self._queues.add(queue)
            self.open_sockets += 1
        receiver = asyncio.ensure_future(websocket.receive())
        try:
            while True:
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait(
                    {getter, receiver}, return_when=asyncio.FIRST_COMPLETED
                )
                if receiver in done:
                    getter.cancel()
                    return
                item = getter.result()
                if isinstance(item, int):
                    await websocket.close(code=item)
                    return
                await websocket.send_text(item)
        finally:
            receiver.cancel()
            with self._lock:
                self._queues.discard(queue)
                self.open_sockets -= 1

    def stop(self) -> None:
        super().stop()
        with self._lock:
            self._queues.clear()

    def _put(self, item: str | int) -> None:
        loop = self._loop
        assert loop is not None, "nobody connected yet"
        with self._lock:
            queues = list(self._queues)
        for queue in queues:
            loop.call_soon_threadsafe(queue.put_nowait, item)

    def send(self, message: OpsChanges | OpsSnapshot | dict[str, Any]) -> None:
        """Push a message to every open socket."""
        if isinstance(message, dict):
            import json

            self._put(json.dumps(message))
        else:
            self._put(message.model_dump_json())

    def close_all(self, code: int) -> None:
        self._put(code)

    def __enter__(self) -> FakeFeedServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self.stop()
