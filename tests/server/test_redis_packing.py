"""The app's Redis client packs commands in one hiredis call, byte for byte as redis-py."""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.asyncio.connection import Connection
from redis.exceptions import DataError
from redis.typing import EncodableT

from server.kit import redis as qredis


class _Kind(enum.StrEnum):
    SOFT = "soft"


class _Rank(enum.IntEnum):
    FIRST = 1


SAMPLES: list[tuple[EncodableT, ...]] = [
    ("EVALSHA", "a" * 40, 2, "res:{BLR-KOR}:h", "inv:{BLR-KOR}:SKU-1", "SOFT", 1765000000.123456),
    ("SET", "k", "é ünïcode", "EX", 5),
    ("HSET", "h", b"\x00\xffbytes", 0.1 + 0.2, -7, 1e20, -0.0),
    ("CLIENT SETNAME", "x"),  # a command name with a space: redis-py splits it
    ("SET", "k", bytearray(b"v")),  # not hiredis's: redis-py's way
    ("SET", _Kind.SOFT, _Rank.FIRST),  # a str enum is its value; an int enum redis-py's way
]


def test_each_command_is_packed_as_redis_py_packs_it() -> None:
    mine = qredis._packing_in_c(Connection)()
    theirs = Connection()
    for command in SAMPLES:
        assert b"".join(mine.pack_command(*command)) == b"".join(theirs.pack_command(*command))


def test_a_bool_is_refused_as_redis_py_refuses_it() -> None:
    with pytest.raises(DataError):
        qredis._packing_in_c(Connection)().pack_command("SET", "k", True)


@pytest.fixture
async def client(clean) -> AsyncIterator[aioredis.Redis]:
    redis = qredis.create_redis(clean.redis_url)
    yield redis
    await redis.aclose()


async def test_the_app_client_round_trips_through_it(clean, client: aioredis.Redis) -> None:
    if not qredis.is_cluster_url(clean.redis_url):  # a cluster client packs redis-py's way
        assert client.connection_pool.connection_class.__name__.startswith("PackingInC")
    await client.hset("packing:h", mapping={"f": 1.5, "g": "ü"})
    assert await client.hgetall("packing:h") == {"f": "1.5", "g": "ü"}
    assert await client.eval("return ARGV[1] .. ARGV[2]", 0, 12, 0.25) == "120.25"
