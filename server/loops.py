"""Every background loop the API process runs, each under its own Redis lease."""

from __future__ import annotations

from fastapi.datastructures import State

from server.background import LeasedLoop
from server.config import Settings
from server.delivery.worker import dispatch_all
from server.events.relay import relay_once
from server.inventory.worker import inventory_loops


def background_loops(settings: Settings, state: State) -> list[LeasedLoop]:
    return [
        *inventory_loops(settings, state.engine, state.sessions, state.redis, state.clock),
        LeasedLoop(
            state.redis,
            "outbox-relay",
            settings.relay_interval_s,
            lambda: relay_once(state.engine, state.redis),
        ),
        LeasedLoop(
            state.redis,
            "dispatcher",
            settings.dispatch_interval_s,
            lambda: dispatch_all(state.sessions, state.redis, state.clock),
        ),
    ]
