"""The served app sets its start-up's objects aside from the garbage collector, and
collects less often from then on."""

from __future__ import annotations

import gc
from typing import Any

from qc.serving import OLDEST_THRESHOLD, YOUNG_THRESHOLD, served


async def test_the_served_app_freezes_once_started() -> None:
    seen: list[int] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "lifespan.startup"
        seen.append(gc.get_freeze_count())
        await send({"type": "lifespan.startup.complete"})

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    async def send(message: dict[str, Any]) -> None:
        seen.append(gc.get_freeze_count())

    assert gc.get_freeze_count() == 0
    python_s = gc.get_threshold()
    try:
        await served(app, trusted_proxies="")({"type": "lifespan"}, receive, send)
        assert seen[0] == 0 and seen[1] > 0  # frozen when the start-up completed
        assert gc.get_threshold() == (YOUNG_THRESHOLD, python_s[1], OLDEST_THRESHOLD)
        assert YOUNG_THRESHOLD > python_s[0] and OLDEST_THRESHOLD > python_s[2]
    finally:
        gc.unfreeze()
        gc.set_threshold(*python_s)
