"""What every terminal asks of the API client, and how it reads the client's errors."""

from __future__ import annotations

from typing import Protocol

from shared.client import ApiError, ConnectionLost
from shared.schemas.common import Health
from shared.schemas.identity import TokenResponse, UserPublic

DEFAULT_SERVER = "http://127.0.0.1:8000"
RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)  # seconds between retries; then the last, for ever


class SessionApi(Protocol):
    """A logged-in (or not yet) client; ``shared.client`` fits it structurally."""

    base_url: str
    token: str | None
    user: UserPublic | None

    async def login(self, login: str, secret: str) -> TokenResponse: ...

    async def aclose(self) -> None: ...


class HealthApi(SessionApi, Protocol):
    async def health(self) -> Health: ...


def is_transient(exc: ApiError) -> bool:
    """Worth retrying unchanged: the server was unreachable, overloaded or failing, or the
    session needs renewing. Anything else is the server's final answer."""
    return isinstance(exc, ConnectionLost) or exc.status >= 500 or exc.status in (401, 429)


def describe(exc: ApiError) -> str:
    if isinstance(exc, ConnectionLost):
        return "server unreachable"
    return exc.detail or exc.code
