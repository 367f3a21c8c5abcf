"""The handheld's battery goes out with each fix (the dispatcher's battery term reads the
last one) and shows on the shift screen, with a warning when low; a manager's move to
another store is told to the rider as it is pushed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from textual.widgets import Static

from rider_app.app import RiderApp
from rider_app.battery import BatterySource, HandheldBattery
from rider_app.gps.fix import Fix, utc_now
from rider_app.messages import ServerPushed
from rider_app.screens.shift import ShiftScreen
from server.delivery import locations
from server.events.relay import relay_once
from shared.geo import destination
from tests.helpers import login, screen_ready, wait_for
from tests.rider_app.rider_fakes import NOW, RIDER, FakeRiderApi, QueueSource
from tests.rider_app.rider_live import KOR, db_one, rider_near_store
from tests.rider_app.test_rider_flow import fixes_acked, log_in_and_start_shift
from tests.server.ops.ops_script import MANAGER


class SteppingBattery:
    """A battery the test drains: each reading is the next value, the last one stays."""

    def __init__(self, *values: float) -> None:
        self._values: Iterator[float] = iter(values)
        self.now = values[0]

    def __call__(self) -> float:
        self.now = next(self._values, self.now)
        return self.now


def stored(api: FakeRiderApi, n: int) -> Callable[[], bool]:
    """Whether the fake server holds ``n`` fixes."""
    return lambda: len(api.stored) == n


def fake_app(
    api: FakeRiderApi, gps: QueueSource, tmp_path: Path, battery: BatterySource | None
) -> RiderApp:
    return RiderApp(
        client=api,
        gps=gps,
        battery=battery,
        buffer_dir=tmp_path,
        socket=False,  # every fix through the batch endpoint of the fake
        push_interval_s=0.02,
        trip_poll_s=3600,
        retry_delays=(0.05,),
    )


def shown(app: RiderApp, widget: str) -> str:
    return str(app.screen.query_one(widget, Static).content)


async def test_each_fix_carries_the_battery_as_it_is_sent_and_low_is_warned(
    tmp_path: Path,
) -> None:
    api, gps = FakeRiderApi(on_duty=True), QueueSource()
    battery = SteppingBattery(80.0, 80.0, 41.0, 12.0)
    app = fake_app(api, gps, tmp_path, battery)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: screen_ready(app, ShiftScreen) and app.on_duty)
        await wait_for(pilot, lambda: "Battery 80 %" in shown(app, "#battery"), what="80 %")
        for i in range(3):
            gps.put(Fix(KOR.lat, KOR.lng, NOW + timedelta(seconds=5 * i), 6.0, source="test"))
            await wait_for(pilot, stored(api, i + 1), what=f"fix {i}")
        assert [f.battery_pct for f in api.stored] == [80.0, 41.0, 12.0]
        await wait_for(pilot, lambda: "⚠ Battery 12 %" in shown(app, "#battery"), what="low")
        assert app.screen.query_one("#battery", Static).has_class("-low")


async def test_no_battery_on_the_machine_sends_none_and_shows_nothing(tmp_path: Path) -> None:
    api, gps = FakeRiderApi(on_duty=True), QueueSource()
    app = fake_app(api, gps, tmp_path, lambda: None)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: screen_ready(app, ShiftScreen) and app.on_duty)
        gps.put(Fix(KOR.lat, KOR.lng, NOW, 6.0, source="test"))
        await wait_for(pilot, lambda: len(api.stored) == 1, what="fix stored")
        assert api.stored[0].battery_pct is None
        assert shown(app, "#battery") == ""


def test_the_handheld_battery_is_read_at_most_once_a_minute(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reads: list[float] = []

    class Sensor:
        percent = 63.4

    def sensors_battery() -> Sensor:
        reads.append(1.0)
        return Sensor()

    monkeypatch.setattr("rider_app.battery.psutil.sensors_battery", sensors_battery)
    clock = iter([0.0, 5.0, 59.0, 60.0, 65.0])
    battery = HandheldBattery(lambda: next(clock))
    assert [battery() for _ in range(5)] == [63.4] * 5
    assert len(reads) == 2  # at 0 s and at 60 s
    monkeypatch.setattr("rider_app.battery.psutil.sensors_battery", lambda: None)
    assert HandheldBattery(lambda: 0.0)() is None  # a desktop: unknown


async def test_a_move_to_another_store_is_told_and_the_store_shown(tmp_path: Path) -> None:
    api, gps = FakeRiderApi(on_duty=True), QueueSource()
    app = fake_app(api, gps, tmp_path, lambda: 70.0)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: screen_ready(app, ShiftScreen) and app.on_duty)
        await wait_for(pilot, lambda: shown(app, "#home-store") == "Store: qc Koramangala")

        api.home_store = ("BLR-IND", "qc Indiranagar")  # the manager moved the rider
        app.post_message(
            ServerPushed(
                {
                    "type": "rider.move",
                    "rider_id": str(RIDER.id),
                    "from_store": "BLR-KOR",
                    "to_store": "BLR-IND",
                    "to_store_name": "qc Indiranagar",
                    "reason": "Indiranagar short of riders",
                }
            )
        )
        await wait_for(
            pilot,
            lambda: any(n.message == "You now work for qc Indiranagar" for n in app._notifications),
            what="the move told",
        )
        await wait_for(pilot, lambda: shown(app, "#home-store") == "Store: qc Indiranagar")
        assert api.called("rider_me")  # asked the server again


async def test_the_battery_reaches_the_servers_last_fix_and_a_move_reaches_the_handheld(
    city, live_server, stack, tmp_path: Path
) -> None:
    rider_login = rider_near_store(city.database_url)
    gps = QueueSource()
    app = RiderApp(
        server_url=live_server.url,
        login=rider_login,
        gps=gps,
        battery=lambda: 37.0,
        buffer_dir=tmp_path,
        push_interval_s=0.05,
        trip_poll_s=120,
        retry_delays=(0.05,),
    )
    async with app.run_test(size=(100, 36)) as pilot:
        await log_in_and_start_shift(pilot, app)
        await wait_for(pilot, lambda: app.socket_up, what="rider socket")
        near = destination(KOR, 90, 300)
        gps.put(Fix(near.lat, near.lng, utc_now(), 6.0, source="test"))
        assert app.link is not None
        await wait_for(pilot, lambda: fixes_acked(app) >= 1, what="fix acknowledged")
        rider_id = db_one(
            city.database_url,
            "SELECT r.rider_id FROM riders r JOIN users u ON u.id = r.rider_id WHERE u.login = %s",
            rider_login,
        )
        last = await locations.latest(stack.redis, city_id="BLR", rider_ids=[rider_id])
        assert last[rider_id].battery_pct == 37.0
        assert shown(app, "#home-store").startswith("Store: ")

        # a manager moves the rider: the push reaches the handheld, which says so
        async with live_server.client() as client:
            manager = await login(client, *MANAGER)
            r = await client.post(
                f"/v1/ops/riders/{rider_id}/move",
                json={"store_id": "BLR-IND", "reason": "Indiranagar short of riders"},
                headers=manager,
            )
            assert r.status_code == 200, r.text
        await relay_once(stack.engine, stack.redis)
        name = db_one(
            city.database_url, "SELECT store_name FROM dark_stores WHERE store_id = 'BLR-IND'"
        )
        await wait_for(
            pilot,
            lambda: any(n.message == f"You now work for {name}" for n in app._notifications),
            what="the move told",
        )
        await wait_for(pilot, lambda: shown(app, "#home-store") == f"Store: {name}")
