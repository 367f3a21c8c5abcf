"""The start-up line says where the servers are (URLs without passwords), not whether this
process started them: under ``qc serve`` the parent starts the embedded ones and hands
their URLs down, and the old ``"embedded_db": false`` read as if none were embedded."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from server.app import create_app
from tests.conftest import settings_for


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def test_server_ready_names_the_servers_it_uses(clean, clock) -> None:
    settings = settings_for(clean, log_level="INFO")
    app = create_app(settings, clock=clock)
    lines = Lines()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    logging.getLogger("server").addHandler(lines)  # the lifespan replaces the root's
    try:
        async with app.router.lifespan_context(app):
            pass
    finally:
        logging.getLogger("server").removeHandler(lines)
        root.handlers[:], root.level = handlers, level
    ready = next(r for r in lines.records if r.getMessage() == "server ready")
    assert not hasattr(ready, "embedded_db")
    assert ready.database.startswith("postgresql://")  # type: ignore[attr-defined]
    assert ready.redis.startswith("redis")  # type: ignore[attr-defined]
    password = urlsplit(settings.redis_url).password
    assert not password or password not in ready.redis  # type: ignore[attr-defined]


def test_the_embedded_servers_own_chatter_stays_out_of_the_log() -> None:
    from server.kit.logs import configure_logging

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        configure_logging(json_lines=True, level="INFO")
        assert logging.getLogger("server").isEnabledFor(logging.INFO)
        assert not logging.getLogger("pgserver").isEnabledFor(logging.INFO)  # pg_ctl lines
        assert logging.getLogger("pgserver").isEnabledFor(logging.WARNING)
    finally:
        root.handlers[:], root.level = handlers, level
        logging.getLogger("pgserver").setLevel(logging.NOTSET)
