"""What every role's API client shares: the HTTP transport, the bearer token, sign-in,
problem details turned into ``ApiError``, and websocket URLs carrying the token.

Errors come back as ``ApiError`` carrying the problem's stable ``code``; callers branch
on it, never on message text.
"""

from __future__ import annotations

from typing import Any, Self, TypeVar

import httpx
from pydantic import BaseModel

from shared.schemas.common import Health, Problem
from shared.schemas.identity import LoginRequest, TokenResponse, UserPublic
from shared.schemas.ops import ServerClockPublic

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


class ApiClient:
    """The typed async client (httpx); each role's client adds the calls that role makes."""

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

    async def _send(
        self, method: str, path: str, model: type[M], body: BaseModel | None = None
    ) -> M:
        """A write (with ``body`` as JSON, if any) answered by one ``model``."""
        json = body.model_dump(mode="json") if body is not None else None
        response = await self.request(method, path, json=json)
        return model.model_validate(response.json())

    async def _get_list(self, path: str, model: type[M], **params: Any) -> list[M]:
        response = await self.request("GET", path, params=params or None)
        return [model.model_validate(row) for row in response.json()]

    def _socket_url(self, path: str, **query: str) -> str:
        """A websocket URL with the token in the query: websockets cannot always set headers."""
        scheme = "wss" if self.base_url.startswith("https") else "ws"
        host = self.base_url.split("://", 1)[1]
        pairs = query | {"token": self.token or ""}
        return f"{scheme}://{host}{path}?" + "&".join(f"{k}={v}" for k, v in pairs.items())

    # --- identity and service ------------------------------------------------------------
    async def login(self, login: str, secret: str) -> TokenResponse:
        body = LoginRequest(login=login, secret=secret)
        result = await self._send("POST", "/v1/auth/login", TokenResponse, body)
        self.token = result.access_token
        self.user = result.user
        return result

    async def me(self) -> UserPublic:
        return await self._get("/v1/me", UserPublic)

    async def health(self) -> Health:
        try:
            response = await self._http.get("/healthz")
        except httpx.TransportError as exc:
            raise ConnectionLost(str(exc)) from exc
        return Health.model_validate(response.json())

    async def server_clock(self) -> ServerClockPublic:
        """The server's "now" and clock speed (no login needed)."""
        return await self._get("/v1/ops/clock", ServerClockPublic)
