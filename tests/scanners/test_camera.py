from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest
import zxingcpp

from scanners.camera import CameraError, CameraScanner, Debouncer
from scanners.types import Scan, Symbology

AT = datetime(2025, 6, 1, 9, 30, tzinfo=UTC)
EAN = "4006381333931"
DEADLINE = 20.0


@pytest.fixture
def write_video(
    tmp_path: Path, render: Callable[..., np.ndarray], on_canvas: Callable[..., np.ndarray]
) -> Callable[[str], Path]:
    """Writes an MJPG .avi from a pattern: '.' is a blank frame, 'B' shows the EAN-13."""
    blank, barcode = on_canvas(), on_canvas(render(EAN, zxingcpp.BarcodeFormat.EAN13))

    def write(pattern: str) -> Path:
        path = tmp_path / f"{len(list(tmp_path.iterdir()))}.avi"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10, (640, 480))
        assert writer.isOpened()
        for frame in pattern:
            writer.write(barcode if frame == "B" else blank)
        writer.release()
        return path

    return write


class Collector:
    def __init__(self) -> None:
        self.scans: list[Scan] = []
        self.first = threading.Event()

    def __call__(self, scan: Scan) -> None:
        self.scans.append(scan)
        self.first.set()


def play(path: Path, decoder: str, **kwargs: float) -> list[Scan]:
    collect = Collector()
    camera = CameraScanner(path, collect, decoder=decoder, clock=lambda: AT, **kwargs)  # type: ignore[arg-type]
    camera.start()
    assert collect.first.wait(DEADLINE), "no scan before the deadline"
    assert camera.wait(DEADLINE), "video did not finish before the deadline"
    return collect.scans


def test_video_yields_the_code_exactly_once(
    decoder: str, write_video: Callable[[str], Path]
) -> None:
    # A two-frame dropout is a flicker, not the code leaving the view.
    path = write_video("...BBBBBB..BBBBBB...")
    scans = play(path, decoder, debounce_s=60, absent_frames=5)
    assert scans == [Scan(EAN, Symbology.EAN13, f"camera:{path}", AT)]


def test_code_that_left_the_view_is_reported_again(
    decoder: str, write_video: Callable[[str], Path]
) -> None:
    scans = play(write_video("BBBB.....BBBB"), decoder, debounce_s=60, absent_frames=5)
    assert [s.code for s in scans] == [EAN, EAN]


def test_code_in_view_repeats_after_the_debounce_window(write_video: Callable[[str], Path]) -> None:
    scans = play(write_video("BBBBBB"), "zxing", debounce_s=0)
    assert len(scans) == 6


def test_stop_from_the_callback_ends_the_thread(write_video: Callable[[str], Path]) -> None:
    scans: list[Scan] = []

    def on_scan(scan: Scan) -> None:
        scans.append(scan)
        camera.stop()  # must not deadlock by joining its own thread

    camera = CameraScanner(write_video("B" * 30), on_scan, decoder="zxing", debounce_s=0)
    camera.start()
    assert camera.wait(DEADLINE)
    assert len(scans) == 1


def test_stop_joins_the_thread_and_can_restart(write_video: Callable[[str], Path]) -> None:
    collect = Collector()
    camera = CameraScanner(write_video("B" * 80), collect, decoder="zxing", debounce_s=0)
    camera.start()
    assert collect.first.wait(DEADLINE)
    with pytest.raises(RuntimeError, match="already running"):
        camera.start()
    camera.stop()
    assert not camera.running
    seen = len(collect.scans)
    assert seen < 80  # stopped in the middle of the video
    camera.stop()  # idempotent
    assert len(collect.scans) == seen  # nothing arrives once stop() has returned
    camera.start()
    assert camera.wait(DEADLINE)
    assert len(collect.scans) >= seen + 80


def test_a_failing_handler_does_not_kill_the_camera(
    write_video: Callable[[str], Path], caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[Scan] = []

    def on_scan(scan: Scan) -> None:
        calls.append(scan)
        raise RuntimeError("UI went away")

    camera = CameraScanner(write_video("BBB"), on_scan, decoder="zxing", debounce_s=0)
    camera.start()
    assert camera.wait(DEADLINE)
    assert len(calls) == 3
    assert "on_scan handler failed" in caplog.text


def test_unopenable_source_raises(tmp_path: Path) -> None:
    camera = CameraScanner(tmp_path / "missing.avi", lambda scan: None, decoder="zxing")
    with pytest.raises(CameraError, match="cannot open"):
        camera.start()
    assert not camera.running


def test_debouncer_suppresses_repeats_within_the_window() -> None:
    d = Debouncer(debounce_s=2.0, absent_frames=3)
    assert d.update(["A"], 0.0) == ["A"]
    assert d.update(["A", "A"], 0.5) == []
    assert d.update(["A", "B"], 1.0) == ["B"]
    assert d.update(["A"], 2.0) == ["A"]  # window over while still in view


def test_debouncer_reports_again_after_the_code_left_the_view() -> None:
    d = Debouncer(debounce_s=60.0, absent_frames=3)
    assert d.update(["A"], 0.0) == ["A"]
    for t in (0.1, 0.2):
        assert d.update([], t) == []
    assert d.update(["A"], 0.3) == []  # two missing frames: a flicker
    for t in (0.4, 0.5, 0.6):
        assert d.update([], t) == []
    assert d.update(["A"], 0.7) == ["A"]  # three missing frames: it left and came back
