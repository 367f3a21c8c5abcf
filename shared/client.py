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
    Health,
    LoginRequest,
    PackRequest,
    PackResult,
    PickList,
    PickTaskSummary,
    Problem,
    ScanRequest,
    ScanResult,
    ShortPickRequest,
    ShortPickResult,
    SubstituteRequest,
    TokenResponse,
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
