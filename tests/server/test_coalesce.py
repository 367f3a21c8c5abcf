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
