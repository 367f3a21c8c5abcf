"""What the rider's screens work with, handed to each screen when it is made."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from qc_tui.clock import ServerClock
from qc_tui.connection import Connection
from rider_app.api import RiderApi
from rider_app.gps.fix import Fix
from shared.geo import LatLng
from shared.schemas.delivery import TripPublic


class RiderLive(Protocol):
    """The rider's live state as the screens read it; the app keeps it in reactives of
    the same names, so a screen watches the app for changes."""

    @property
    def trip(self) -> TripPublic | None: ...  # the active trip, if any

    @property
    def on_duty(self) -> bool: ...

    @property
    def rider_status(self) -> str: ...

    @property
    def last_fix(self) -> Fix | None: ...

    @property
    def gps_state(self) -> str: ...

    @property
    def socket_up(self) -> bool: ...

    @property
    def buffered_fixes(self) -> int: ...  # kept on disk, not yet on the server

    @property
    def last_push_at(self) -> datetime | None: ...  # when the server last took a fix

    @property
    def battery_pct(self) -> float | None: ...  # the handheld's, None unknown

    @property
    def home_store(self) -> str: ...  # the store the rider works for ("" not known yet)

    def position(self) -> LatLng | None: ...


@dataclass(frozen=True, slots=True)
class RiderContext:
    client: RiderApi
    connection: Connection
    clock: ServerClock  # the server's, for deadlines; its ``wall`` for ages of local things
    monotonic: Callable[[], float]  # key timing for the wedge detector
    live: RiderLive
    login_hint: str | None = None
    use_socket: bool = True
