"""Pick-path ordering and pick-time estimation for a dark store.

Pure functions. A bin is ``(aisle, shelf, bin)``; shelves are sections along an aisle and
bins positions within a shelf, so ``(shelf, bin)`` orders bins along the aisle.
"""

import itertools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol, TypeAlias, TypeVar

import numpy as np
from scipy.optimize import nnls

Aisle: TypeAlias = str | int
BinKey: TypeAlias = tuple[Aisle, int, int]


class PickLineLike(Protocol):
    """What the estimator reads from a pick line; ORM rows with these attributes fit."""

    @property
    def sku(self) -> str: ...
    @property
    def qty(self) -> int: ...
    @property
    def aisle(self) -> Aisle: ...
    @property
    def walk_seq(self) -> int: ...


L = TypeVar("L", bound=PickLineLike)


@dataclass(frozen=True, slots=True)
class PickLine:
    sku: str
    qty: int
    aisle: Aisle
    walk_seq: int


def _aisle_key(aisle: Aisle) -> tuple[int, tuple[tuple[int, int, str], ...]]:
    """Numbers by value, then names in natural order ("A2" before "A10", "b" with "B")."""
    if isinstance(aisle, int):
        return (0, ((0, aisle, ""),))
    chunks = re.findall(r"\d+|\D+", aisle.upper())
    return (1, tuple((0, int(c), "") if c.isdecimal() else (1, 0, c) for c in chunks))


def walk_sequence(bins: Iterable[BinKey]) -> dict[BinKey, int]:
    """Serpentine walk order for a whole layout: ``{bin: walk_seq}`` numbered 1, 2, 3, ...

    Aisles in order; the 1st, 3rd, ... aisle is walked shelves and bins ascending, the 2nd,
    4th, ... descending, so the picker leaves each aisle at the end the next one starts from
    and never walks back down an aisle. ``walk_seq`` 0 is the start of the path (the packing
    station). Parity is by position among the aisles given, so pass the full layout.
    """
    by_aisle: dict[Aisle, set[tuple[int, int]]] = {}
    for aisle, shelf, bin_no in bins:
        by_aisle.setdefault(aisle, set()).add((shelf, bin_no))
    seq: dict[BinKey, int] = {}
    for i, aisle in enumerate(sorted(by_aisle, key=_aisle_key)):
        for shelf, bin_no in sorted(by_aisle[aisle], reverse=i % 2 == 1):
            seq[(aisle, shelf, bin_no)] = len(seq) + 1
    return seq


def sort_pick_lines(lines: Iterable[L], key: Callable[[L], int] | None = None) -> list[L]:
    """Lines in walk order (``key``, default ``line.walk_seq``), ties by sku; stable."""
    walk_key = key or (lambda line: line.walk_seq)
    return sorted(lines, key=lambda line: (walk_key(line), line.sku))


class PickFeatures(NamedTuple):
    bin_steps: int  # bins walked along the serpentine, from its start to the last pick
    aisle_changes: int
    units: int


def pick_features(lines: Iterable[PickLineLike]) -> PickFeatures:
    """Features of walking ``lines`` in walk order (they are sorted here)."""
    ordered = sort_pick_lines(lines)
    if not ordered:
        return PickFeatures(0, 0, 0)
    changes = sum(1 for a, b in itertools.pairwise(ordered) if a.aisle != b.aisle)
    # Sorted ascending, the steps from the path start telescope to the last line's position.
    return PickFeatures(ordered[-1].walk_seq, changes, sum(line.qty for line in ordered))


@dataclass(frozen=True, slots=True)
class PickTimeModel:
    """Linear pick time: walking + per-unit handling + a fixed base (start, bag, hand-off).

    Defaults: ~1 m bins at ~1 m/s, 12 s to cross into the next aisle, 5 s to reach, scan
    and place a unit, 40 s base. On the seed's reference layout (aisles A-D, shelves 1-5,
    one bin each) its example (Milk x2 A-2, Bread A-5, Eggs B-1, Chips C-3, Coke x3 D-2) is
    19 steps, 3 aisle changes, 8 units: 40 + 19*1 + 3*12 + 8*5 = 135 s = 2 min 15 s.
    """

    walk_s_per_bin_step: float = 1.0
    s_per_aisle_change: float = 12.0
    s_per_unit: float = 5.0
    base_s: float = 40.0

    def features_s(self, features: PickFeatures) -> float:
        return (
            self.base_s
            + self.walk_s_per_bin_step * features.bin_steps
            + self.s_per_aisle_change * features.aisle_changes
            + self.s_per_unit * features.units
        )

    def estimate_s(self, lines: Iterable[PickLineLike]) -> float:
        """Estimated seconds to pick ``lines``; an empty pick list costs nothing."""
        lines = list(lines)
        return self.features_s(pick_features(lines)) if lines else 0.0


DEFAULT_PICK_TIME_MODEL = PickTimeModel()


def calibrate(
    samples: Sequence[tuple[PickFeatures, float]],
    min_samples: int = 20,
    default: PickTimeModel = DEFAULT_PICK_TIME_MODEL,
) -> PickTimeModel:
    """Fit the model to recorded ``(features, actual_seconds)`` by non-negative least squares.

    Non-negativity keeps every coefficient physical (walking never saves time). With fewer
    than ``min_samples`` samples ``default`` is returned unchanged.
    """
    if len(samples) < min_samples:
        return default
    a = np.array(
        [[f.bin_steps, f.aisle_changes, f.units, 1.0] for f, _ in samples], dtype=np.float64
    )
    b = np.array([seconds for _, seconds in samples], dtype=np.float64)
    step, change, unit, base = nnls(a, b)[0]
    return PickTimeModel(float(step), float(change), float(unit), float(base))
