"""Connection: lost and found again, requests resent while the server cannot be reached."""

from __future__ import annotations

from qc_tui.connection import Connection, worth_resending
from shared.client import ApiError, ConnectionLost


class Server:
    """Answers after failing ``failures`` times (each failure a ``error``)."""

    def __init__(self, failures: int, error: ApiError) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    async def call(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "answer"


async def test_resent_until_answered_and_the_changes_are_told() -> None:
    changes: list[bool] = []
    server = Server(2, ConnectionLost("refused"))
    connection = Connection(server.call, retry_delays=(0.001,), on_change=changes.append)
    waits: list[str] = []
    answer = await connection.send_until_answered(server.call, waiting=waits.append)
    assert (answer, server.calls) == ("answer", 3)
    assert waits == ["server unreachable", "server unreachable"]
    assert changes == [False, True] and connection.online and connection.detail == ""


async def test_a_final_refusal_is_raised_at_once() -> None:
    server = Server(1, ApiError(409, "wrong_item", "not in this order"))
    connection = Connection(server.call, retry_delays=(0.001,))
    try:
        await connection.send_until_answered(server.call, resend_on=worth_resending)
    except ApiError as exc:
        assert exc.code == "wrong_item"
    else:
        raise AssertionError("the refusal was not raised")
    assert server.calls == 1 and connection.online


async def test_the_probe_ends_when_the_server_answers() -> None:
    server = Server(2, ConnectionLost("refused"))
    connection = Connection(server.call, retry_delays=(0.001,))
    connection.lost(ConnectionLost("refused"))
    assert not connection.online and connection.detail == "refused"
    await connection.probe()
    assert connection.online and server.calls == 3
    assert connection.retry_delay(7) == 0.001
