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
from pathlib import Path
from types import FrameType
from typing import NoReturn

import fasteners
import psutil


class ServiceConfigError(RuntimeError):
    """A backing service is missing or unreachable; the message is one line for humans."""


def home_lock(home: Path) -> fasteners.InterProcessLock:
    home.mkdir(parents=True, exist_ok=True)
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
