"""Camera scanning: decode every frame of an OpenCV capture on a background thread.

The source is a device index, a video file path or a stream URL. The same code is not
reported again within ``debounce_s`` seconds unless it left the view (was not decoded for
``absent_frames`` consecutive frames) in between - like a handheld's "same code delay".
The thread ends on ``stop()`` or when the source runs dry (end of file, unplugged camera).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime

import cv2

from scanners.decode import active_decoder, decode_image
from scanners.types import OnScan, Scan, utc_now

log = logging.getLogger(__name__)


class CameraError(RuntimeError):
    pass


class Debouncer:
    """Decides which of the codes decoded in one frame are new enough to report."""

    def __init__(self, debounce_s: float, absent_frames: int) -> None:
        self.debounce_s = debounce_s
        self.absent_frames = absent_frames
        self._reported_at: dict[str, float] = {}
        self._absent: dict[str, int] = {}

    def update(self, codes: Iterable[str], now: float) -> list[str]:
        seen = dict.fromkeys(codes)
        fresh = [
            c
            for c in seen
            if c not in self._reported_at or now - self._reported_at[c] >= self.debounce_s
        ]
        for code in fresh:
            self._reported_at[code] = now
        for code in seen:
            self._absent[code] = 0
        for code in self._absent.keys() - seen.keys():
            self._absent[code] += 1
            # Once it has left the view it is forgotten, so its next sighting is reported.
            if self._absent[code] >= self.absent_frames:
                del self._absent[code], self._reported_at[code]
        return fresh


class CameraScanner:
    """A ``Scanner`` reading an OpenCV capture; ``on_scan`` runs on the camera thread."""

    def __init__(
        self,
        source: int | str | os.PathLike[str],
        on_scan: OnScan,
        *,
        debounce_s: float = 2.0,
        absent_frames: int = 15,
        decoder: str | None = None,
        name: str | None = None,
        clock: Callable[[], datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source if isinstance(source, int) else os.fspath(source)
        self.name = name or f"camera:{self.source}"
        self.decoder = active_decoder(decoder)  # fail now, not on the first frame
        self._on_scan = on_scan
        self._debounce_s = debounce_s
        self._absent_frames = absent_frames
        self._clock = clock
        self._monotonic = monotonic
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Open the source (may block for network streams) and start decoding."""
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        capture = cv2.VideoCapture(self.source)
        if not capture.isOpened():
            capture.release()
            raise CameraError(f"cannot open video source {self.source!r}")
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, args=(capture,), name=self.name, daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop and wait for the thread; safe to call from ``on_scan`` and more than once."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end (source exhausted or stopped); True if it has."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running

    def _run(self, capture: cv2.VideoCapture) -> None:
        debouncer = Debouncer(self._debounce_s, self._absent_frames)
        try:
            while not self._stop.is_set():
                ok, frame = capture.read()
                if not ok:
                    break
                found = decode_image(frame, self.decoder)
                decoded = {d.text: d.symbology for d in found if d.text}  # Scan needs a code
                for code in debouncer.update(decoded, self._monotonic()):
                    if self._stop.is_set():  # on_scan may have stopped us mid-frame
                        break
                    self._deliver(Scan(code, decoded[code], self.name, self._clock()))
        finally:
            capture.release()

    def _deliver(self, scan: Scan) -> None:
        try:
            self._on_scan(scan)
        except Exception:
            # A faulty handler must not kill the camera; the next scan gets another chance.
            log.exception("on_scan handler failed for %r", scan)
