from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from scanners.gs1 import GS
from scanners.types import Scan, Symbology
from scanners.wedge import FeedResult, WedgeDetector

AT = datetime(2025, 6, 1, 9, 30, tzinfo=UTC)
SCANNER_GAP = 0.008  # a wedge scanner types a character every few milliseconds
HUMAN_GAP = 0.180


def detector(**kwargs: float) -> WedgeDetector:
    return WedgeDetector(clock=lambda: AT, **kwargs)  # type: ignore[arg-type]


class Session:
    """Feeds timed key events and collects what the UI would see."""

    def __init__(self, wedge: WedgeDetector) -> None:
        self.wedge = wedge
        self.now = 100.0
        self.results: list[FeedResult] = []

    def type(self, keys: Iterable[str], gap: float) -> None:
        for key in keys:
            self.now += gap
            self.results.append(self.wedge.feed(key, self.now))

    def idle(self, seconds: float) -> None:
        self.now += seconds
        self.results.append(self.wedge.poll(self.now))

    @property
    def scans(self) -> list[Scan]:
        return [r.scan for r in self.results if r.scan is not None]

    @property
    def passthrough(self) -> list[str]:
        return [key for r in self.results for key in r.passthrough]


def test_fast_burst_ending_in_enter_is_a_scan() -> None:
    s = Session(detector())
    s.type([*"4006381333931", "enter"], SCANNER_GAP)
    assert s.scans == [Scan("4006381333931", Symbology.EAN13, "wedge", AT)]
    assert s.passthrough == []
    assert all(r.pending for r in s.results[:-1])
    assert not s.results[-1].pending


def test_slow_typing_passes_through_every_key_in_order() -> None:
    s = Session(detector())
    s.type([*"4006381333931", "enter"], HUMAN_GAP)
    assert s.scans == []
    assert s.passthrough == [*"4006381333931", "enter"]
    # Each key is held for at most one gap: it is released when the next slow key arrives.
    assert s.results[1].passthrough == ("4",)


def test_burst_without_enter_is_released_once_it_goes_quiet() -> None:
    s = Session(detector(max_gap=0.05))
    s.type("96385074", SCANNER_GAP)
    s.idle(0.04)
    assert s.passthrough == []
    assert s.results[-1].pending
    s.idle(0.02)
    assert s.scans == []
    assert s.passthrough == list("96385074")
    assert not s.results[-1].pending


def test_enter_after_a_pause_does_not_complete_the_burst() -> None:
    s = Session(detector())
    s.type("96385074", SCANNER_GAP)
    s.type(["enter"], 0.3)
    assert s.scans == []
    assert s.passthrough == [*"96385074", "enter"]


def test_mixed_human_and_scanner_input() -> None:
    s = Session(detector())
    s.type("qty", HUMAN_GAP)
    s.now += HUMAN_GAP  # the picker reaches for the scanner
    s.type([*"036000291452", "\r"], SCANNER_GAP)
    s.type(["2", "enter"], HUMAN_GAP)
    assert [scan.code for scan in s.scans] == ["036000291452"]
    assert s.scans[0].symbology is Symbology.UPCA
    assert s.passthrough == [*"qty", "2", "enter"]


def test_short_fast_word_is_typing_not_a_scan() -> None:
    s = Session(detector(min_length=4))
    s.type(["o", "k", "\n"], 0.03)
    assert s.scans == []
    assert s.passthrough == ["o", "k", "\n"]


def test_held_down_key_auto_repeat_is_released_not_scanned() -> None:
    s = Session(detector(max_duration=1.0))
    s.type("a" * 40, 0.033)  # 1.3 s of auto-repeat at 30 Hz
    s.type(["enter"], 0.033)
    assert s.scans == []
    assert s.passthrough == [*"a" * 40, "enter"]
    # Held until the run outlasts max_duration (key 32 is 1.023 s after key 1), then released;
    # the rest of the run is typing and passes straight through.
    assert all(r.pending and not r.passthrough for r in s.results[:31])
    assert s.results[31].passthrough == tuple("a" * 32)
    assert [r.passthrough for r in s.results[32:]] == [(k,) for k in [*"a" * 8, "enter"]]


def test_keys_continuing_a_named_key_are_typing() -> None:
    s = Session(detector())
    s.type(["tab", *"96385074", "enter"], SCANNER_GAP)
    assert s.scans == []
    assert s.passthrough == ["tab", *"96385074", "enter"]
    s.now += 1.0
    s.type([*"96385074", "enter"], SCANNER_GAP)  # after a pause, a burst counts again
    assert [scan.code for scan in s.scans] == ["96385074"]


def test_mixed_input_without_a_pause_is_ambiguous_and_kept_as_typing() -> None:
    s = Session(detector())
    s.type(["left"], HUMAN_GAP)
    s.type([*"96385074", "enter"], SCANNER_GAP)
    assert s.scans == []
    assert s.passthrough == ["left", *"96385074", "enter"]


def test_named_key_breaks_a_burst() -> None:
    s = Session(detector())
    s.type(["1", "2", "3", "4", "left", "5", "enter"], SCANNER_GAP)
    assert s.scans == []
    assert s.passthrough == ["1", "2", "3", "4", "left", "5", "enter"]


def test_symbology_identifier_is_stripped_and_gs_kept() -> None:
    s = Session(detector())
    s.type([*f"]C10109506000134352{GS}10LOT7", "enter"], SCANNER_GAP)
    assert s.scans == [Scan(f"0109506000134352{GS}10LOT7", Symbology.GS1_128, "wedge", AT)]


def test_bare_symbology_identifier_is_not_a_scan() -> None:
    s = Session(detector(min_length=3))
    s.type(["]", "C", "1", "enter"], SCANNER_GAP)
    assert s.scans == []
    assert s.passthrough == ["]", "C", "1", "enter"]


def test_custom_terminator() -> None:
    s = Session(WedgeDetector(terminators=frozenset({"tab"}), source="gun-2", clock=lambda: AT))
    s.type([*"96385074", "tab"], SCANNER_GAP)
    assert s.scans == [Scan("96385074", Symbology.EAN8, "gun-2", AT)]


@given(
    st.lists(
        st.tuples(st.sampled_from(["1", "2", "a", "enter", "left"]), st.floats(0.001, 0.3)),
        max_size=60,
    )
)
def test_no_key_is_lost_or_duplicated(events: list[tuple[str, float]]) -> None:
    s = Session(detector())
    for key, gap in events:
        s.type([key], gap)
    s.idle(1.0)
    delivered = iter(s.passthrough)
    scanned = iter(s.scans)
    # Replaying the results reproduces the fed keys exactly: every key was either handed back
    # as typing or consumed as part of one scan (its characters plus the Enter).
    replay: list[str] = []
    for result in s.results:
        if result.scan is not None:
            replay += [*next(scanned).code, "enter"]
        replay += [next(delivered) for _ in result.passthrough]
    assert replay == [key for key, _ in events]
    assert not s.results[-1].pending
