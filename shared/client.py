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
    DeliverRequest,
    FailRequest,
    FixBatch,
    FixBatchResult,
    GpsFix,
    Health,
    LoginRequest,
    PackRequest,
    PackResult,
    PickList,
    PickTaskSummary,
    PickupRequest,
    Problem,
    RiderPublic,
    ScanRequest,
    ScanResult,
    ShiftChange,
    ShortPickRequest,
    ShortPickResult,
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
