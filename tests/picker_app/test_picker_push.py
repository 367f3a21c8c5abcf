"""Work is pushed to the picker (issue 16 point 3, the terminal's side): the app opens
/ws/picker once logged in, and a new order reaches an idle picker's queue at once, with the
bell, though the terminal's own poll is minutes away."""

from __future__ import annotations

from picker_app.app import PickerApp
from server.events.relay import relay_once
from tests.helpers import SteppedClock, wait_for
from tests.picker_app.picker_live import STORE, Bells, in_stock_skus, log_in, place_order


async def test_a_new_task_is_pushed_to_an_idle_picker(city, live_server, stack) -> None:
    (sku,) = in_stock_skus(city.database_url, 1)
    app = PickerApp(
        server_url=live_server.url, store=STORE, monotonic=SteppedClock(), queue_poll_s=600
    )
    bells = Bells(app)
    async with app.run_test(size=(110, 34)) as pilot:
        queue = await log_in(pilot, app)
        await wait_for(pilot, lambda: app.ctx.pushed, what="work socket up")
        socket = app.work_socket
        assert socket is not None
        # the snapshot on connect came (an empty queue) and was read
        await wait_for(pilot, lambda: socket.received >= 1, what="queue snapshot")
        assert queue.tasks == []

        order_id = await place_order(live_server.url, {sku: 1})
        await relay_once(stack.engine, stack.redis)  # the outbox relay publishes the task
        await wait_for(
            pilot, lambda: [str(t.order_id) for t in queue.tasks] == [order_id], what="pushed"
        )
        assert bells.count >= 1  # an idle picker hears it
