"""A scripted stand-in for the rider API, fixed data, a GPS source the test feeds, and
opening a screen from the trip, for the rider app's offline tests and its snapshots
(deterministic: a fixed clock and fixed answers)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from textual.pilot import Pilot

from rider_app.app import RiderApp
from rider_app.gps.fix import Fix
from rider_app.screens.trip import TripScreen
from shared.client import ApiError
from shared.enums import Role
from shared.schemas.delivery import (
    FixBatchResult,
    GpsFix,
    RefusedFix,
    RiderPublic,
    TripPublic,
    TripStopPublic,
)
from shared.schemas.identity import UserPublic
from tests.fake_api import FakeApi
from tests.helpers import wait_for, wait_for_screen

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
KOR = (12.9352, 77.6245)
HERE = (12.9389, 77.6271)  # ~500 m north-east of the Koramangala store
TRIP = uuid.UUID("5b1f0c2e-7d4a-4f39-9a61-0c8e2d7f4b10")
RIDER = UserPublic(
    id=uuid.UUID("9d3c8a71-2b4e-4c6f-8e1a-5f7b9c0d2e43"),
    login="rider.001",
    name="Rider 001",
    role=Role.RIDER,
    city_id="BLR",
)


def fixed_clock() -> datetime:
    return NOW


OFFER_LEFT_S = 45  # the offer lapses this long after the server built the payload


def offered_trip() -> TripPublic:
    """An offer as the server sends it: its clock at NOW, the offer's deadline and the
    server's ETA per drop."""
    drops = [
        ("0d6f5a3b-1c2e-4d7f-8a9b-0c1d2e3f4a51", "4th Cross, 5th Block", 12.9301, 77.6302, 540),
        ("7e8f9a0b-2c3d-4e5f-9a0b-1c2d3e4f5a62", "80 Feet Rd, 6th Block", 12.9266, 77.6349, 95),
    ]
    return TripPublic(
        trip_id=TRIP,
        store_id="BLR-KOR",
        store_lat=KOR[0],
        store_lng=KOR[1],
        status="OFFERED",
        stops=[
            TripStopPublic(
                order_id=uuid.UUID(oid),
                seq=seq,
                status="PENDING",
                lat=lat,
                lng=lng,
                address=address,
                planned_arrival_at=NOW + timedelta(minutes=6 * seq),
                sla_deadline=NOW + timedelta(seconds=left),
                order_status="PACKED",
                eta_at=NOW + timedelta(minutes=4 * seq + 3),
                instructions="3rd floor, ring twice" if seq == 1 else None,
                customer_phone=f"+9198765432{seq:02d}",
            )
            for seq, (oid, address, lat, lng, left) in enumerate(drops, start=1)
        ],
        server_now=NOW,
        offer_expires_at=NOW + timedelta(seconds=OFFER_LEFT_S),
    )


class FakeRiderApi(FakeApi):
    """The rider API; ``stored`` the fixes the server took."""

    ACCOUNT = RIDER
    PIN = "4321"
    NOW = NOW

    def __init__(self, *, logged_in: bool = True, on_duty: bool = True) -> None:
        super().__init__(logged_in=logged_in)
        self.on_duty = on_duty
        self.trip: TripPublic | None = None
        self.stored: list[GpsFix] = []
        self.batches: list[list[GpsFix]] = []  # batches that reached the "server"
        self.bag_labels: dict[str, str] = {}  # order id -> its bag label
        self.signal_lost = False  # dispatch set the rider OFFLINE though on duty
        self.home_store = ("BLR-KOR", "qc Koramangala")  # (id, name) the rider works for

    def _rider(self) -> RiderPublic:
        last = self.stored[-1] if self.stored else None
        return RiderPublic(
            rider_id=RIDER.id,
            status="IDLE" if self.on_duty and not self.signal_lost else "OFFLINE",
            on_duty=self.on_duty,
            lat=last.lat if last else HERE[0],
            lng=last.lng if last else HERE[1],
            trip_id=self.trip.trip_id if self.trip else None,
            home_store_id=self.home_store[0],
            home_store_name=self.home_store[1],
        )

    async def rider_me(self) -> RiderPublic:
        self._call("rider_me")
        return self._rider()

    async def set_shift(self, *, on_duty: bool) -> RiderPublic:
        self._call("set_shift", on_duty)
        if on_duty != self.on_duty:
            self.signal_lost = False  # like the server: only a real change resets the status
        self.on_duty = on_duty
        return self._rider()

    async def post_locations(self, fixes: list[GpsFix]) -> FixBatchResult:
        self._call("post_locations", [f.at for f in fixes])
        self.batches.append(list(fixes))
        if not self.on_duty:
            raise ApiError(409, "off_duty", "start a shift first")
        # like the server: unusable fixes are left out and listed; all unusable is a 422
        too_old = [f for f in fixes if f.at < NOW - timedelta(hours=24)]
        if too_old and len(too_old) == len(fixes):
            raise ApiError(422, "fix_too_old", "a fix older than the offline buffer keeps")
        usable = [f for f in fixes if f not in too_old]
        last = self.stored[-1].at if self.stored else None
        fresh = [f for f in sorted(usable, key=lambda f: f.at) if last is None or f.at > last]
        self.stored += fresh
        if fresh:
            self.signal_lost = False  # like the server: a fix taken makes the rider IDLE
        return FixBatchResult(
            accepted=len(fresh),
            duplicates=len(usable) - len(fresh),
            refused=[RefusedFix(at=f.at, code="fix_too_old", detail="too old") for f in too_old],
        )

    async def my_trip(self) -> TripPublic | None:
        self._call("my_trip")
        return self.trip

    def _moved(self, status: str, **stop_status: str) -> TripPublic:
        assert self.trip is not None
        stops = [
            s.model_copy(update={"status": stop_status.get(str(s.order_id), s.status)})
            for s in self.trip.stops
        ]
        expires = self.trip.offer_expires_at if status == "OFFERED" else None
        self.trip = self.trip.model_copy(
            update={"status": status, "stops": stops, "offer_expires_at": expires}
        )
        return self.trip

    async def trip_step(self, trip_id: uuid.UUID | str, step: str) -> TripPublic:
        self._call("trip_step", step)
        status = {"accept": "ACCEPTED", "arrived": "AT_STORE", "depart": "OUT"}
        return self._moved(status.get(step, "CANCELLED"))

    async def release_trip(self, trip_id: uuid.UUID | str, *, reason: str) -> TripPublic:
        self._call("release_trip", reason)
        assert self.trip is not None
        if self.trip.status not in ("ACCEPTED", "AT_STORE"):
            raise ApiError(
                409,
                "invalid_trip_state",
                f"the trip is {self.trip.status}",
                {"trip_status": self.trip.status},
            )
        trip = self._moved("CANCELLED")
        self.trip = None
        return trip

    async def pick_up(self, trip_id: uuid.UUID | str, *, bag_labels: list[str]) -> TripPublic:
        self._call("pick_up", bag_labels)
        missing = [o for o, label in self.bag_labels.items() if label not in bag_labels]
        if missing:
            raise ApiError(409, "bag_not_scanned", "scan every label", {"orders": missing})
        return self._moved("PICKED_UP")

    async def deliver(
        self, trip_id: uuid.UUID | str, order_id: uuid.UUID | str, *, otp: str
    ) -> TripPublic:
        self._call("deliver", otp)
        raise NotImplementedError

    async def fail_drop(
        self, trip_id: uuid.UUID | str, order_id: uuid.UUID | str, *, reason: str
    ) -> TripPublic:
        self._call("fail_drop", (str(order_id), reason))
        trip = self._moved("OUT", **{str(order_id): "FAILED"})
        if all(s.status in ("DELIVERED", "FAILED") for s in trip.stops):
            trip = self._moved("COMPLETED")
            self.trip = None
        return trip


def trip_api(status: str) -> FakeRiderApi:
    """A rider on duty whose offered trip has already moved on to ``status``."""
    api = FakeRiderApi(on_duty=True)
    api.trip = offered_trip().model_copy(update={"status": status, "offer_expires_at": None})
    return api


async def open_from_trip(pilot: Pilot[Any], app: RiderApp, key: str, screen: type) -> None:
    """On the trip screen, once the rider is loaded, ``key`` opens ``screen``."""
    await wait_for_screen(pilot, TripScreen, what="trip")
    await wait_for(pilot, lambda: app.rider is not None, what="the rider loaded")
    await pilot.press(key)
    await wait_for_screen(pilot, screen)


class QueueSource:
    """A GPS source the test feeds one fix at a time (``put``); ``end`` finishes it like a
    file played to its end, ``close`` too (and notes it was closed)."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Fix | None] = asyncio.Queue()
        self.closed = False

    def put(self, fix: Fix) -> None:
        self._queue.put_nowait(fix)

    async def fixes(self) -> AsyncIterator[Fix]:
        while (fix := await self._queue.get()) is not None:
            yield fix

    def end(self) -> None:
        self._queue.put_nowait(None)

    async def close(self) -> None:
        self.closed = True
        self.end()
