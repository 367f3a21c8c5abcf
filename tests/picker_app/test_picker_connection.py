"""A lost connection against a live server: the banner shows, the app retries, and no scan
is lost or counted twice (scans keep their scan_id through every retry)."""

from __future__ import annotations

import json

import httpx
import pytest

from picker_app.app import PickerApp
from picker_app.screens.pick import PickScreen
from qc_tui.banner import ConnectionBanner
from shared.client import PickerClient
from tests.helpers import SteppedClock, scanner_types, wait_for
from tests.picker_app.picker_live import (
    STORE,
    claim,
    in_stock_skus,
    log_in,
    picked,
    picked_in_db,
    place_order,
)


class FlakyTransport(httpx.AsyncBaseTransport):
    """The real network, except when ``down`` (nothing gets through) or while
    ``lose_answers`` > 0 (a scan reaches the server, its answer never comes back)."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.down = False
        self.lose_answers = 0
        self.delivered_scan_ids: list[str] = []  # every scan POST the server received

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        response = await self.inner.handle_async_request(request)
        if request.url.path.endswith("/scans"):
            self.delivered_scan_ids.append(json.loads(request.content)["scan_id"])
            if self.lose_answers:
                self.lose_answers -= 1
                await response.aclose()
                raise httpx.ReadError("connection reset while reading the answer", request=request)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.slow
async def test_lost_connection_keeps_scans_and_counts_each_once(city, live_server) -> None:
    a, b = in_stock_skus(city.database_url, 2)
    order_id = await place_order(live_server.url, {a: 2, b: 1})
    net = FlakyTransport()
    clock = SteppedClock()
    app = PickerApp(
        client=PickerClient(live_server.url, transport=net),
        store=STORE,
        monotonic=clock,
        queue_poll_s=0.2,
        retry_delays=(0.05, 0.1),
    )
    async with app.run_test(size=(110, 34)) as pilot:
        queue = await log_in(pilot, app)
        banner = queue.query_one(ConnectionBanner)

        # the queue poll notices, the banner shows, polling goes on, the banner goes
        net.down = True
        await wait_for(pilot, lambda: banner.has_class("-lost"), what="banner")
        assert not app.online and "Connection lost" in str(banner.content)
        net.down = False
        await wait_for(pilot, lambda: not banner.has_class("-lost"), what="banner gone")

        screen: PickScreen = await claim(pilot, app, order_id)
        line_a, line_b = (screen.line(a), screen.line(b))
        assert line_a is not None and line_b is not None

        # the server counts a scan but its answer is lost: resent with the same id, once
        net.lose_answers = 1
        await scanner_types(pilot, clock, line_a.barcode)
        await wait_for(pilot, lambda: picked(screen, a) == 1, what="first unit")
        assert len(net.delivered_scan_ids) == 2
        assert net.delivered_scan_ids[0] == net.delivered_scan_ids[1]
        assert picked_in_db(city.database_url, order_id)[a] == 1

        # offline: scans are kept (in order, with their ids) and the banner says so
        net.down = True
        await scanner_types(pilot, clock, line_a.barcode)
        await scanner_types(pilot, clock, line_b.barcode)
        banner = screen.query_one(ConnectionBanner)
        await wait_for(pilot, lambda: banner.has_class("-lost"), what="offline banner")
        kept = [e.scan_id for e in app.outbox]
        assert len(kept) == 2 and app.pending_scans == 2
        await wait_for(pilot, lambda: "2 scans kept" in str(banner.content), what="banner count")
        assert picked_in_db(city.database_url, order_id) == {a: 1, b: 0}
        # one more of a would exceed the line with the kept scan: refused at once
        await scanner_types(pilot, clock, line_a.barcode)
        assert screen.feedback.kind == "error" and len(app.outbox) == 2

        # back online: sent in order, each counted once, the banner goes
        net.down = False
        await wait_for(pilot, lambda: len(app.outbox) == 0, what="outbox drained")
        await wait_for(pilot, lambda: picked(screen, b) == 1 and picked(screen, a) == 2)
        await wait_for(pilot, lambda: not banner.has_class("-lost"), what="banner gone")
        assert net.delivered_scan_ids[2:] == kept
        assert picked_in_db(city.database_url, order_id) == {a: 2, b: 1}
        assert "ALL PICKED" in screen.feedback.text
