"""What the rider app needs from the server: ``shared.client.QcClient`` fits this protocol
structurally; tests may hand the app a fake with the same methods."""

from __future__ import annotations

import uuid
from typing import Protocol

from shared.client import ApiError, ConnectionLost
from shared.schemas import (
    FixBatchResult,
    GpsFix,
    Health,
    RiderPublic,
    TokenResponse,
    TripPublic,
    UserPublic,
)

Id = uuid.UUID | str

DEFAULT_SERVER = "http://127.0.0.1:8000"
RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)  # seconds between retries; then the last, for ever


class RiderApi(Protocol):
    base_url: str
    token: str | None
    user: UserPublic | None

    async def login(self, login: str, secret: str) -> TokenResponse: ...

    async def health(self) -> Health: ...

    async def rider_me(self) -> RiderPublic: ...

    async def set_shift(self, *, on_duty: bool) -> RiderPublic: ...

    async def post_locations(self, fixes: list[GpsFix]) -> FixBatchResult: ...

    async def my_trip(self) -> TripPublic | None: ...

    async def trip_step(self, trip_id: Id, step: str) -> TripPublic: ...

    async def release_trip(self, trip_id: Id, *, reason: str) -> TripPublic: ...

    async def pick_up(self, trip_id: Id, *, bag_labels: list[str]) -> TripPublic: ...

    async def deliver(self, trip_id: Id, order_id: Id, *, otp: str) -> TripPublic: ...

    async def fail_drop(self, trip_id: Id, order_id: Id, *, reason: str) -> TripPublic: ...

    async def aclose(self) -> None: ...


def is_transient(exc: ApiError) -> bool:
    """Worth retrying unchanged: the server was unreachable, overloaded or failing, or the
    session needs renewing. Anything else is the server's final answer."""
    return isinstance(exc, ConnectionLost) or exc.status >= 500 or exc.status in (401, 429)


def describe(exc: ApiError) -> str:
    if isinstance(exc, ConnectionLost):
        return "server unreachable"
    return exc.detail or exc.code
