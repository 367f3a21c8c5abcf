"""kit.coalesce: the calls of one event-loop turn go as one send, each caller its answer."""

from __future__ import annotations

import asyncio

import pytest

from server.kit.coalesce import TurnBatcher


class Recorder:
    """A send that answers each item with its double and remembers every batch."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.batches: list[tuple[str, list[int]]] = []
        self.fail = fail

    async def __call__(self, key: str, items: list[int]) -> list[int]:
        self.batches.append((key, list(items)))
        if self.fail is not None:
            raise self.fail
        return [2 * i for i in items]


async def test_one_turn_is_one_send_per_key_and_each_caller_gets_its_own_answer() -> None:
    sent = Recorder()
    batcher: TurnBatcher[str, int, int] = TurnBatcher(sent, max_items=100)
    answers = await asyncio.gather(*(batcher.submit("ab"[i % 2], i) for i in range(6)))
    assert answers == [0, 2, 4, 6, 8, 10]
    assert sorted(sent.batches) == [("a", [0, 2, 4]), ("b", [1, 3, 5])]
    assert batcher.open == {}
    await batcher.submit("a", 7)  # a later turn: a batch of its own
    assert sent.batches[-1] == ("a", [7])


async def test_a_full_batch_is_sent_as_it_is_and_the_rest_go_in_another() -> None:
    sent = Recorder()
    batcher: TurnBatcher[str, int, int] = TurnBatcher(sent, max_items=3)
    assert await asyncio.gather(*(batcher.submit("a", i) for i in range(5))) == [0, 2, 4, 6, 8]
    assert sent.batches == [("a", [0, 1, 2]), ("a", [3, 4])]


async def test_a_caller_cancelled_before_the_send_is_left_out() -> None:
    sent = Recorder()
    batcher: TurnBatcher[str, int, int] = TurnBatcher(sent, max_items=100)
    loop = asyncio.get_running_loop()
    # the second caller gives up in the turn it asked, before the batch goes out
    calls = [loop.create_task(batcher.submit("a", i)) for i in range(3)]
    loop.call_soon(calls[1].cancel)  # runs after the three joined, before the send
    done = await asyncio.gather(*calls, return_exceptions=True)
    assert done[0] == 0 and done[2] == 4
    assert isinstance(done[1], asyncio.CancelledError)
    assert sent.batches == [("a", [0, 2])]


async def test_an_error_of_the_call_reaches_every_caller() -> None:
    batcher: TurnBatcher[str, int, int] = TurnBatcher(
        Recorder(fail=ConnectionError("away")), max_items=100
    )
    done = await asyncio.gather(*(batcher.submit("a", i) for i in range(3)), return_exceptions=True)
    assert [type(d) for d in done] == [ConnectionError] * 3


async def test_a_send_answering_the_wrong_number_fails_every_caller() -> None:
    async def short(key: str, items: list[int]) -> list[int]:
        return items[:-1]

    batcher: TurnBatcher[str, int, int] = TurnBatcher(short, max_items=100)
    with pytest.raises(RuntimeError, match="2 answers to 3 calls"):
        await asyncio.gather(*(batcher.submit("a", i) for i in range(3)))


class Gated(Recorder):
    """A send that waits for its batch's gate before answering (a round trip held open)."""

    def __init__(self, fail_first: bool = False) -> None:
        super().__init__()
        self.gates: list[asyncio.Event] = []
        self.arrived = asyncio.Event()
        self.fail_first = fail_first

    async def __call__(self, key: str, items: list[int]) -> list[int]:
        self.batches.append((key, list(items)))
        gate = asyncio.Event()
        self.gates.append(gate)
        self.arrived.set()
        await gate.wait()
        if self.fail_first and len(self.batches) == 1:
            raise ConnectionError("away")
        return [2 * i for i in items]

    async def next_batch(self) -> None:
        await asyncio.wait_for(self.arrived.wait(), timeout=5)
        self.arrived.clear()


async def test_with_one_in_flight_the_next_batch_gathers_until_the_first_returns() -> None:
    """Group commit: while a key's batch is out, the calls of later turns wait in one
    open batch (in the order they came), sent when the first comes back; another key's
    batch is not held behind it."""
    sent = Gated()
    batcher: TurnBatcher[str, int, int] = TurnBatcher(sent, max_items=100, in_flight=1)
    first = asyncio.gather(*(batcher.submit("a", i) for i in range(2)))
    await sent.next_batch()
    later = []
    for turn in range(3):  # three turns' calls while the first batch is out
        later.append(asyncio.ensure_future(batcher.submit("a", 10 + turn)))
        await asyncio.sleep(0)
    other = asyncio.ensure_future(batcher.submit("b", 99))
    await sent.next_batch()  # b's batch went at once
    assert sent.batches == [("a", [0, 1]), ("b", [99])]
    sent.gates[1].set()
    assert await other == 198
    sent.gates[0].set()
    assert await first == [0, 2]
    await sent.next_batch()
    assert sent.batches[2] == ("a", [10, 11, 12])  # one batch, in the order they came
    sent.gates[2].set()
    assert await asyncio.gather(*later) == [20, 22, 24]
    assert batcher.open == {} and batcher.out == {} and batcher.due == {}


async def test_a_failed_batch_in_flight_still_lets_the_next_one_go() -> None:
    sent = Gated(fail_first=True)
    batcher: TurnBatcher[str, int, int] = TurnBatcher(sent, max_items=100, in_flight=1)
    first = asyncio.ensure_future(batcher.submit("a", 1))
    await sent.next_batch()
    second = asyncio.ensure_future(batcher.submit("a", 2))
    sent.gates[0].set()
    with pytest.raises(ConnectionError):
        await first
    await sent.next_batch()
    sent.gates[1].set()
    assert await second == 4


async def test_without_a_bound_each_turns_batch_goes_at_once() -> None:
    sent = Gated()
    batcher: TurnBatcher[str, int, int] = TurnBatcher(sent, max_items=100)
    first = asyncio.ensure_future(batcher.submit("a", 1))
    await sent.next_batch()
    second = asyncio.ensure_future(batcher.submit("a", 2))
    await sent.next_batch()  # out beside the first, which has not come back
    assert sent.batches == [("a", [1]), ("a", [2])]
    for gate in sent.gates:
        gate.set()
    assert (await first, await second) == (2, 4)


async def test_full_batches_due_behind_one_in_flight_go_one_after_another_in_order() -> None:
    sent = Gated()
    batcher: TurnBatcher[str, int, int] = TurnBatcher(sent, max_items=2, in_flight=1)
    first = asyncio.ensure_future(batcher.submit("a", 0))
    await sent.next_batch()
    later = asyncio.gather(*(batcher.submit("a", i) for i in range(1, 6)))
    for n in range(3):
        sent.gates[n].set()
        await sent.next_batch()
        assert len(sent.batches) == n + 2  # one out at a time
    sent.gates[3].set()
    assert await first == 0 and await later == [2, 4, 6, 8, 10]
    assert sent.batches == [("a", [0]), ("a", [1, 2]), ("a", [3, 4]), ("a", [5])]


async def test_a_batch_out_too_long_stops_holding_the_next_back() -> None:
    """One stalled round trip does not stall every later caller of its key."""
    sent = Gated()
    batcher: TurnBatcher[str, int, int] = TurnBatcher(
        sent, max_items=100, in_flight=1, stall_s=0.05
    )
    stuck = asyncio.ensure_future(batcher.submit("a", 1))
    await sent.next_batch()
    later = asyncio.ensure_future(batcher.submit("a", 2))
    await sent.next_batch()  # went once the first had been out stall_s, still unanswered
    assert sent.batches == [("a", [1]), ("a", [2])]
    sent.gates[1].set()
    assert await later == 4
    sent.gates[0].set()
    assert await stuck == 2
    assert batcher.out == {} and batcher.due == {}
