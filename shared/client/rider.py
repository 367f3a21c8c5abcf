"""The rider handheld's client: shift, GPS fixes, the trip from offer to the last drop."""

from __future__ import annotations

import uuid

from shared.client.base import ApiClient
from shared.schemas.delivery import (
    DeliverRequest,
    FailRequest,
    FixBatch,
    FixBatchResult,
    GpsFix,
    PickupRequest,
    ReleaseRequest,
    RiderPublic,
    ShiftChange,
    TripPublic,
)

TRIP_STEPS = ("accept", "reject", "arrived", "depart")


class RiderClient(ApiClient):
    async def rider_me(self) -> RiderPublic:
        """The rider's status, duty, last known position and current trip id."""
        return await self._get("/v1/riders/me", RiderPublic)

    async def set_shift(self, *, on_duty: bool) -> RiderPublic:
        body = ShiftChange(on_duty=on_duty)
        return await self._send("POST", "/v1/riders/me/shift", RiderPublic, body)

    async def post_locations(self, fixes: list[GpsFix]) -> FixBatchResult:
        """Replay fixes kept while offline, oldest first; the server ignores duplicates."""
        body = FixBatch(fixes=fixes)
        return await self._send("POST", "/v1/riders/me/locations", FixBatchResult, body)

    async def my_trip(self) -> TripPublic | None:
        """The rider's current trip (stops in route order), or None."""
        response = await self.request("GET", "/v1/riders/me/trip")
        data = response.json()
        return None if data is None else TripPublic.model_validate(data)

    async def trip_step(self, trip_id: uuid.UUID | str, step: str) -> TripPublic:
        """``step``: accept, reject, arrived or depart."""
        if step not in TRIP_STEPS:
            raise ValueError(f"unknown trip step {step!r}")
        return await self._send("POST", f"/v1/trips/{trip_id}/{step}", TripPublic)

    async def release_trip(self, trip_id: uuid.UUID | str, *, reason: str) -> TripPublic:
        """Give an accepted trip back before pickup; after pickup a 409
        ``invalid_trip_state``."""
        body = ReleaseRequest(reason=reason)
        return await self._send("POST", f"/v1/trips/{trip_id}/release", TripPublic, body)

    async def pick_up(self, trip_id: uuid.UUID | str, *, bag_labels: list[str]) -> TripPublic:
        body = PickupRequest(bag_labels=bag_labels)
        return await self._send("POST", f"/v1/trips/{trip_id}/pickup", TripPublic, body)

    async def deliver(
        self, trip_id: uuid.UUID | str, order_id: uuid.UUID | str, *, otp: str
    ) -> TripPublic:
        """Hand over with the customer's OTP; a wrong one is a 409 ``wrong_otp`` (with
        ``tries_left`` in the problem) or ``otp_locked``."""
        body = DeliverRequest(otp=otp)
        path = f"/v1/trips/{trip_id}/stops/{order_id}/deliver"
        return await self._send("POST", path, TripPublic, body)

    async def fail_drop(
        self, trip_id: uuid.UUID | str, order_id: uuid.UUID | str, *, reason: str
    ) -> TripPublic:
        body = FailRequest(reason=reason)
        path = f"/v1/trips/{trip_id}/stops/{order_id}/fail"
        return await self._send("POST", path, TripPublic, body)

    def rider_socket_url(self) -> str:
        """``/ws/rider``: send a ``GpsFix`` per message (each acknowledged), receive offers
        and trip events."""
        return self._socket_url("/ws/rider")
