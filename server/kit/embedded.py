"""Shared helpers for the embedded servers started by ``db.py`` and ``redis.py``.

Several processes may start on one ``QC_HOME`` at once (the API, the CLI, a test's
subprocess): an inter-process file lock serialises start-up, and a list of live handle
pids decides who stops a server: the last live process to let go. A process killed outright
leaves its pid behind; the list drops it the next time anyone reads it.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import NoReturn

import fasteners
import psutil


class ServiceConfigError(RuntimeError):
    """A backing service is missing or unreachable; the message is one line for humans."""


def secure_dir(path: Path, *, postgres_inside: bool = False) -> None:
    """Create ``path`` for this user only (0700). Under root, the embedded PostgreSQL runs
    as another user and must traverse to its data inside, so such a folder gets 0711 (no
    listing, no reading; pgserver opens it wider at each start, this closes it again)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o711 if postgres_inside and os.geteuid() == 0 else 0o700)


def private_file(path: Path, make: Callable[[], str]) -> str:
    """The text of ``path``, created 0600 from ``make()`` if missing (never readable by
    others, not even for an instant); racing processes all end with the first one's."""
    if not path.exists():
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(make())
        try:
            os.link(tmp, path)  # fails if another process got there first
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip()


def home_lock(home: Path) -> fasteners.InterProcessLock:
    secure_dir(home, postgres_inside=True)
    return fasteners.InterProcessLock(str(home / ".embedded.lock"))


class HandleList:
    """Pids of processes using an embedded server, kept in a JSON file (call under lock)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _live(self) -> list[int]:
        try:
            pids = json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError):
            return []
        return [p for p in pids if psutil.pid_exists(p)]

    def _write(self, pids: list[int]) -> None:
        self.path.write_text(json.dumps(sorted(set(pids))))

    def add(self, pid: int | None = None) -> None:
        self._write([*self._live(), pid or os.getpid()])

    def remove(self, pid: int | None = None) -> list[int]:
        """Drop ``pid``; returns the pids still holding the server."""
        me = pid or os.getpid()
        rest = [p for p in self._live() if p != me]
        self._write(rest)
        return rest

    def drop_dead(self) -> None:
        """Forget the pids of processes that died without letting go (killed, crashed)."""
        if self.path.exists():
            self._write(self._live())


def _exit_through_handlers(signum: int, frame: FrameType | None) -> NoReturn:
    raise SystemExit(128 + signum)


def exit_handlers_run_on_termination() -> None:
    """Make SIGTERM and SIGHUP end this process as Ctrl-C does, through its exit handlers.

    Their default ends the process on the spot, so the ``atexit`` handlers that stop the
    embedded servers never run (uvicorn, too, re-raises SIGTERM after its own shutdown, with
    the handler it found restored). A handler someone else installed is left alone.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) is signal.SIG_DFL:
            signal.signal(signum, _exit_through_handlers)


def redact_url(url: str) -> str:
    """The URL without its password, for error lines and logs."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}{':***' if ':' in creds else ''}@{host}"
