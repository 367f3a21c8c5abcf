"""What the rider app needs from the server: ``shared.client.RiderClient`` fits this protocol
structurally; tests may hand the app a fake with the same methods."""

from __future__ import annotations

import uuid
from typing import Protocol

from qc_tui.api import HealthApi
from shared.schemas.delivery import FixBatchResult, GpsFix, RiderPublic, TripPublic

Id = uuid.UUID | str


class RiderApi(HealthApi, Protocol):
    async def rider_me(self) -> RiderPublic: ...

    async def set_shift(self, *, on_duty: bool) -> RiderPublic: ...

    async def post_locations(self, fixes: list[GpsFix]) -> FixBatchResult: ...

    async def my_trip(self) -> TripPublic | None: ...

    async def trip_step(self, trip_id: Id, step: str) -> TripPublic: ...

    async def release_trip(self, trip_id: Id, *, reason: str) -> TripPublic: ...

    async def pick_up(self, trip_id: Id, *, bag_labels: list[str]) -> TripPublic: ...

    async def deliver(self, trip_id: Id, order_id: Id, *, otp: str) -> TripPublic: ...

    async def fail_drop(self, trip_id: Id, order_id: Id, *, reason: str) -> TripPublic: ...
