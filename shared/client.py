"""The typed async API client the apps and the tests use (httpx + websockets).

Errors come back as ``ApiError`` carrying the problem's stable ``code``; callers branch
on it, never on message text.
"""

from __future__ import annotations

import uuid
from typing import Any, Self, TypeVar

import httpx
from pydantic import BaseModel

from shared.schemas import (
    AlertPublic,
    AuditEntry,
    Availability,
    CancelRequest,
    CartCreate,
    CartLineSet,
    CartPublic,
    CartSwitchStore,
    CategoryPublic,
    CheckoutRequest,
    DeliverRequest,
    DeliveryAddress,
    FailRequest,
    FixBatch,
    FixBatchResult,
    FlashSalePublic,
    FlashSaleStop,
    GpsFix,
    Health,
    LoginRequest,
    OpsCancelOrder,
    OpsSnapshot,
    OrderPublic,
    PackRequest,
    PackResult,
    Page,
    PauseStore,
    PickList,
    PickTaskSummary,
    PickupRequest,
    Problem,
    ProductCard,
    ProductDetail,
    ReassignOrder,
    ReleaseRequest,
    RiderPublic,
    ScanRequest,
    ScanResult,
    ShiftChange,
    ShortPickRequest,
    ShortPickResult,
    StoreOps,
    StorePublic,
    StoreRadius,
    StoreSelection,
    SubstituteRequest,
    TokenResponse,
    TripPublic,
    UserPublic,
)

M = TypeVar("M", bound=BaseModel)


class ApiError(Exception):
    def __init__(
        self, status: int, code: str, detail: str, problem: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.problem = problem or {}


class ConnectionLost(ApiError):
    """The server could not be reached; the apps show a banner and retry."""

    def __init__(self, detail: str) -> None:
        super().__init__(0, "connection_lost", detail)


class QcClient:
    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.user: UserPublic | None = None
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout, transport=transport)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return headers | (extra or {})

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        try:
            response = await self._http.request(
                method, path, json=json, params=params, headers=self._headers(headers)
            )
        except httpx.TransportError as exc:
            raise ConnectionLost(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code >= 400:
            try:
                problem = Problem.model_validate(response.json())
                raise ApiError(problem.status, problem.code, problem.detail, response.json())
            except ValueError:
                raise ApiError(response.status_code, "http_error", response.text) from None
        return response

    async def _get(self, path: str, model: type[M], **params: Any) -> M:
        response = await self.request("GET", path, params=params or None)
        return model.model_validate(response.json())

    # --- identity -------------------------------------------------------------------
    async def login(self, login: str, secret: str) -> TokenResponse:
        body = LoginRequest(login=login, secret=secret).model_dump()
        response = await self.request("POST", "/v1/auth/login", json=body)
        result = TokenResponse.model_validate(response.json())
        self.token = result.access_token
        self.user = result.user
        return result

    async def me(self) -> UserPublic:
        return await self._get("/v1/me", UserPublic)

    # --- service --------------------------------------------------------------------
    async def health(self) -> Health:
        try:
            response = await self._http.get("/healthz")
        except httpx.TransportError as exc:
            raise ConnectionLost(str(exc)) from exc
        return Health.model_validate(response.json())

    # --- picking (the picker terminal) ------------------------------------------------
    async def queue(self, store_id: str) -> list[PickTaskSummary]:
        """Tasks waiting or being picked at ``store_id``, most urgent (SLA) first."""
        response = await self.request("GET", f"/v1/picking/stores/{store_id}/queue")
        return [PickTaskSummary.model_validate(row) for row in response.json()]

    async def claim(self) -> PickList:
        """Claim the most urgent waiting task (or get back this picker's unfinished one)."""
        response = await self.request("POST", "/v1/picking/claim")
        return PickList.model_validate(response.json())

    async def pick_list(self, order_id: uuid.UUID | str) -> PickList:
        return await self._get(f"/v1/picking/tasks/{order_id}", PickList)

    async def scan(self, order_id: uuid.UUID | str, *, scan_id: str, code: str) -> ScanResult:
        """Count one scanned unit; resending the same ``scan_id`` counts it once."""
        body = ScanRequest(scan_id=scan_id, code=code).model_dump()
        response = await self.request("POST", f"/v1/picking/tasks/{order_id}/scans", json=body)
        return ScanResult.model_validate(response.json())

    async def short_pick(
        self, order_id: uuid.UUID | str, *, sku_id: str, found_qty: int, reason: str = "missing"
    ) -> ShortPickResult:
        body = ShortPickRequest(sku_id=sku_id, found_qty=found_qty, reason=reason).model_dump()
        response = await self.request("POST", f"/v1/picking/tasks/{order_id}/short", json=body)
        return ShortPickResult.model_validate(response.json())

    async def substitute(
        self, order_id: uuid.UUID | str, *, sku_id: str, substitute_sku: str, quantity: int
    ) -> PickList:
        body = SubstituteRequest(
            sku_id=sku_id, substitute_sku=substitute_sku, quantity=quantity
        ).model_dump()
        response = await self.request("POST", f"/v1/picking/tasks/{order_id}/substitute", json=body)
        return PickList.model_validate(response.json())

    async def pack(self, order_id: uuid.UUID | str, *, bag_count: int) -> PackResult:
        body = PackRequest(bag_count=bag_count).model_dump()
        response = await self.request("POST", f"/v1/picking/tasks/{order_id}/pack", json=body)
        return PackResult.model_validate(response.json())

    # --- control tower (manager) -----------------------------------------------------------
    def ops_socket_url(self, city_id: str) -> str:
        """The ``/ws/ops`` feed URL (token in the query: websockets cannot always set headers)."""
        scheme = "wss" if self.base_url.startswith("https") else "ws"
        host = self.base_url.split("://", 1)[1]
        return f"{scheme}://{host}/ws/ops?city={city_id}&token={self.token or ''}"

    async def ops_snapshot(self, city_id: str) -> OpsSnapshot:
        return await self._get("/v1/ops/snapshot", OpsSnapshot, city=city_id)

    async def acknowledge_alert(self, alert_id: uuid.UUID | str) -> AlertPublic:
        response = await self.request("POST", f"/v1/ops/alerts/{alert_id}/ack")
        return AlertPublic.model_validate(response.json())

    async def pause_store(self, store_id: str, *, reason: str) -> StoreOps:
        body = PauseStore(reason=reason).model_dump()
        response = await self.request("POST", f"/v1/ops/stores/{store_id}/pause", json=body)
        return StoreOps.model_validate(response.json())

    async def resume_store(self, store_id: str) -> StoreOps:
        response = await self.request("POST", f"/v1/ops/stores/{store_id}/resume")
        return StoreOps.model_validate(response.json())

    async def set_store_radius(
        self, store_id: str, *, service_radius_m: int, reason: str | None = None
    ) -> StoreOps:
        body = StoreRadius(service_radius_m=service_radius_m, reason=reason).model_dump()
        response = await self.request("PUT", f"/v1/ops/stores/{store_id}/radius", json=body)
        return StoreOps.model_validate(response.json())

    async def reassign_order(
        self, order_id: uuid.UUID | str, *, rider_id: uuid.UUID | str, reason: str
    ) -> OrderPublic:
        body = ReassignOrder(rider_id=uuid.UUID(str(rider_id)), reason=reason).model_dump(
            mode="json"
        )
        response = await self.request("POST", f"/v1/ops/orders/{order_id}/reassign", json=body)
        return OrderPublic.model_validate(response.json())

    async def ops_cancel_order(self, order_id: uuid.UUID | str, *, reason: str) -> OrderPublic:
        body = OpsCancelOrder(reason=reason).model_dump()
        response = await self.request("POST", f"/v1/ops/orders/{order_id}/cancel", json=body)
        return OrderPublic.model_validate(response.json())

    async def stop_flash_sale(self, sale_id: uuid.UUID | str, *, reason: str) -> FlashSalePublic:
        """End a flash sale now (the manager's stop button): unsold units go back."""
        body = FlashSaleStop(reason=reason).model_dump()
        response = await self.request("POST", f"/v1/flash-sales/{sale_id}/stop", json=body)
        return FlashSalePublic.model_validate(response.json())

    async def audit_log(self, city_id: str, *, limit: int = 100) -> list[AuditEntry]:
        response = await self.request(
            "GET", "/v1/ops/audit", params={"city": city_id, "limit": limit}
        )
        return [AuditEntry.model_validate(row) for row in response.json()]

    # --- delivery (the rider handheld) --------------------------------------------------
    async def rider_me(self) -> RiderPublic:
        """The rider's status, duty, last known position and current trip id."""
        return await self._get("/v1/riders/me", RiderPublic)

    async def set_shift(self, *, on_duty: bool) -> RiderPublic:
        body = ShiftChange(on_duty=on_duty).model_dump()
        response = await self.request("POST", "/v1/riders/me/shift", json=body)
        return RiderPublic.model_validate(response.json())

    async def post_locations(self, fixes: list[GpsFix]) -> FixBatchResult:
        """Replay fixes kept while offline, oldest first; the server ignores duplicates."""
        body = FixBatch(fixes=fixes).model_dump(mode="json")
        response = await self.request("POST", "/v1/riders/me/locations", json=body)
        return FixBatchResult.model_validate(response.json())

    async def my_trip(self) -> TripPublic | None:
        """The rider's current trip (stops in route order), or None."""
        response = await self.request("GET", "/v1/riders/me/trip")
        data = response.json()
        return None if data is None else TripPublic.model_validate(data)

    async def trip_step(self, trip_id: uuid.UUID | str, step: str) -> TripPublic:
        """``step``: accept, reject, arrived or depart."""
        if step not in ("accept", "reject", "arrived", "depart"):
            raise ValueError(f"unknown trip step {step!r}")
        response = await self.request("POST", f"/v1/trips/{trip_id}/{step}")
        return TripPublic.model_validate(response.json())

    async def release_trip(self, trip_id: uuid.UUID | str, *, reason: str) -> TripPublic:
        """Give an accepted trip back before pickup; after pickup a 409
        ``invalid_trip_state``."""
        body = ReleaseRequest(reason=reason).model_dump()
        response = await self.request("POST", f"/v1/trips/{trip_id}/release", json=body)
        return TripPublic.model_validate(response.json())

    async def pick_up(self, trip_id: uuid.UUID | str, *, bag_labels: list[str]) -> TripPublic:
        body = PickupRequest(bag_labels=bag_labels).model_dump()
        response = await self.request("POST", f"/v1/trips/{trip_id}/pickup", json=body)
        return TripPublic.model_validate(response.json())

    async def deliver(
        self, trip_id: uuid.UUID | str, order_id: uuid.UUID | str, *, otp: str
    ) -> TripPublic:
        """Hand over with the customer's OTP; a wrong one is a 409 ``wrong_otp`` (with
        ``tries_left`` in the problem) or ``otp_locked``."""
        body = DeliverRequest(otp=otp).model_dump()
        path = f"/v1/trips/{trip_id}/stops/{order_id}/deliver"
        response = await self.request("POST", path, json=body)
        return TripPublic.model_validate(response.json())

    async def fail_drop(
        self, trip_id: uuid.UUID | str, order_id: uuid.UUID | str, *, reason: str
    ) -> TripPublic:
        body = FailRequest(reason=reason).model_dump()
        path = f"/v1/trips/{trip_id}/stops/{order_id}/fail"
        response = await self.request("POST", path, json=body)
        return TripPublic.model_validate(response.json())

    # --- customer: stores, catalogue, carts, checkout, orders, tracking -------------------
    async def stores(
        self, *, city: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> Page[StorePublic]:
        """Dark stores (optionally of one city), a page at a time."""
        params = {"city": city, "limit": limit, "cursor": cursor}
        return await self._get(
            "/v1/stores", Page[StorePublic], **{k: v for k, v in params.items() if v is not None}
        )

    async def serviceable_stores(self, lat: float, lng: float) -> StoreSelection:
        """Stores that deliver to a location, best first; 404 ``not_serviceable`` if none."""
        return await self._get("/v1/stores/serviceable", StoreSelection, lat=lat, lng=lng)

    async def store_staff(self, store_id: str) -> list[UserPublic]:
        """The pickers of a store (city manager only)."""
        response = await self.request("GET", f"/v1/stores/{store_id}/staff")
        return [UserPublic.model_validate(row) for row in response.json()]

    async def categories(self) -> list[CategoryPublic]:
        response = await self.request("GET", "/v1/categories")
        return [CategoryPublic.model_validate(row) for row in response.json()]

    async def products(
        self,
        store_id: str,
        *,
        category: str | None = None,
        limit: int = 40,
        cursor: str | None = None,
    ) -> Page[ProductCard]:
        """A store's products with live availability, a page at a time (by SKU id)."""
        params = {"category": category, "limit": limit, "cursor": cursor}
        return await self._get(
            f"/v1/stores/{store_id}/products",
            Page[ProductCard],
            **{k: v for k, v in params.items() if v is not None},
        )

    async def product(self, store_id: str, sku_id: str) -> ProductDetail:
        return await self._get(f"/v1/stores/{store_id}/products/{sku_id}", ProductDetail)

    async def availability(self, store_id: str, sku_ids: list[str]) -> Availability:
        """Live available units of up to 100 SKUs."""
        return await self._get(
            f"/v1/stores/{store_id}/availability", Availability, skus=",".join(sku_ids)
        )

    async def search(self, store_id: str, q: str, *, limit: int = 20) -> list[ProductCard]:
        response = await self.request(
            "GET", f"/v1/stores/{store_id}/search", params={"q": q, "limit": limit}
        )
        return [ProductCard.model_validate(row) for row in response.json()]

    async def create_cart(self, store_id: str) -> CartPublic:
        body = CartCreate(store_id=store_id).model_dump()
        response = await self.request("POST", "/v1/carts", json=body)
        return CartPublic.model_validate(response.json())

    async def cart(self, cart_id: uuid.UUID | str) -> CartPublic:
        return await self._get(f"/v1/carts/{cart_id}", CartPublic)

    async def set_cart_line(
        self, cart_id: uuid.UUID | str, sku_id: str, *, quantity: int
    ) -> CartPublic:
        """Set a line's quantity (a 10-minute soft hold; 0 removes it). Not enough stock is
        a 409 ``insufficient_stock``."""
        body = CartLineSet(quantity=quantity).model_dump()
        response = await self.request("PUT", f"/v1/carts/{cart_id}/lines/{sku_id}", json=body)
        return CartPublic.model_validate(response.json())

    async def remove_cart_line(self, cart_id: uuid.UUID | str, sku_id: str) -> CartPublic:
        response = await self.request("DELETE", f"/v1/carts/{cart_id}/lines/{sku_id}")
        return CartPublic.model_validate(response.json())

    async def switch_cart_store(self, cart_id: uuid.UUID | str, store_id: str) -> CartPublic:
        body = CartSwitchStore(store_id=store_id).model_dump()
        response = await self.request("PATCH", f"/v1/carts/{cart_id}", json=body)
        return CartPublic.model_validate(response.json())

    async def checkout(
        self,
        cart_id: uuid.UUID | str,
        *,
        address: DeliveryAddress,
        payment_method: str = "upi",
        idempotency_key: str | None = None,
    ) -> OrderPublic:
        """Place and pay for the cart: the order, CONFIRMED (or PLACED while the payment is
        pending). A declined payment is a 402 ``payment_failed`` whose problem names the
        cancelled ``order_id``; 503 ``payment_unavailable`` leaves the cart as it was.
        Pass the same ``idempotency_key`` on a retry to get the first answer again."""
        body = CheckoutRequest(address=address, payment_method=payment_method)
        response = await self.request(
            "POST",
            f"/v1/carts/{cart_id}/checkout",
            json=body.model_dump(mode="json"),
            headers={"Idempotency-Key": idempotency_key or uuid.uuid4().hex},
        )
        return OrderPublic.model_validate(response.json())

    async def orders(self, *, limit: int = 20, cursor: str | None = None) -> Page[OrderPublic]:
        """The customer's own orders, newest first."""
        params: dict[str, Any] = {"limit": limit} | ({"cursor": cursor} if cursor else {})
        return await self._get("/v1/orders", Page[OrderPublic], **params)

    async def order(self, order_id: uuid.UUID | str) -> OrderPublic:
        """One order with its state times; its customer also sees the delivery OTP once the
        rider has picked it up."""
        return await self._get(f"/v1/orders/{order_id}", OrderPublic)

    async def cancel_order(
        self, order_id: uuid.UUID | str, *, reason: str = "changed my mind"
    ) -> OrderPublic:
        """Cancel until picking starts; later it is a 409 ``too_late_to_cancel``."""
        body = CancelRequest(reason=reason).model_dump()
        response = await self.request("POST", f"/v1/orders/{order_id}/cancel", json=body)
        return OrderPublic.model_validate(response.json())

    def _socket_url(self, path: str) -> str:
        scheme = "wss" if self.base_url.startswith("https") else "ws"
        host = self.base_url.split("://", 1)[1]
        return f"{scheme}://{host}{path}?token={self.token or ''}"

    def order_socket_url(self, order_id: uuid.UUID | str) -> str:
        """``/ws/orders/{id}``: a snapshot (with the OTP for its customer), then every state
        change and, once a rider has it, the rider's position and ETA."""
        return self._socket_url(f"/ws/orders/{order_id}")

    def rider_socket_url(self) -> str:
        """``/ws/rider``: send a ``GpsFix`` per message (each acknowledged), receive offers
        and trip events."""
        return self._socket_url("/ws/rider")
