import numpy as np
import pytest

from server.picking.walk import (
    DEFAULT_PICK_TIME_MODEL,
    BinKey,
    PickFeatures,
    PickLine,
    PickTimeModel,
    calibrate,
    pick_features,
    sort_pick_lines,
    walk_sequence,
)


def layout(aisles: str, shelves: int, bins: int = 1) -> list[BinKey]:
    return [(a, s, b) for a in aisles for s in range(1, shelves + 1) for b in range(1, bins + 1)]


def test_serpentine_3_aisles_by_3_shelves() -> None:
    seq = walk_sequence(reversed(layout("ABC", 3)))
    # A up, B down, C up: the picker leaves each aisle where the next one starts.
    assert sorted(seq, key=seq.__getitem__) == [
        ("A", 1, 1),
        ("A", 2, 1),
        ("A", 3, 1),
        ("B", 3, 1),
        ("B", 2, 1),
        ("B", 1, 1),
        ("C", 1, 1),
        ("C", 2, 1),
        ("C", 3, 1),
    ]
    assert sorted(seq.values()) == list(range(1, 10))


def test_bins_follow_the_aisle_direction() -> None:
    seq = walk_sequence(layout("AB", 2, 2))
    assert sorted(seq, key=seq.__getitem__) == [
        ("A", 1, 1),
        ("A", 1, 2),
        ("A", 2, 1),
        ("A", 2, 2),
        ("B", 2, 2),
        ("B", 2, 1),
        ("B", 1, 2),
        ("B", 1, 1),
    ]


def test_aisle_order_is_natural() -> None:
    seq = walk_sequence([("A10", 1, 1), ("A2", 1, 1), (3, 1, 1), (1, 1, 1), ("a1", 1, 1)])
    # Numbers first by value, then names with their digits compared as numbers.
    assert sorted(seq, key=seq.__getitem__) == [
        (1, 1, 1),
        (3, 1, 1),
        ("a1", 1, 1),
        ("A2", 1, 1),
        ("A10", 1, 1),
    ]


def test_duplicate_bins_are_numbered_once() -> None:
    assert walk_sequence([("A", 1, 1), ("A", 1, 1), ("A", 2, 1)]) == {
        ("A", 1, 1): 1,
        ("A", 2, 1): 2,
    }


# The seed's reference store: aisles A-D, shelves 1-5, one bin each, so
# A-1..A-5 = 1..5, B-5..B-1 = 6..10, C-1..C-5 = 11..15, D-5..D-1 = 16..20.
SEED_SEQ = walk_sequence(layout("ABCD", 5))


def line(sku: str, qty: int, aisle: str, shelf: int) -> PickLine:
    return PickLine(sku, qty, aisle, SEED_SEQ[(aisle, shelf, 1)])


SEED_ORDER = [
    line("Bread", 1, "A", 5),  # seq 5
    line("Chips", 1, "C", 3),  # seq 13
    line("Coke", 3, "D", 2),  # seq 19
    line("Eggs", 1, "B", 1),  # seq 10
    line("Milk", 2, "A", 2),  # seq 2
]


def test_seed_example_sorts_in_walk_order_not_alphabetically() -> None:
    assert [x.walk_seq for x in SEED_ORDER] == [5, 13, 19, 10, 2]
    assert [x.sku for x in sort_pick_lines(SEED_ORDER)] == [
        "Milk",
        "Bread",
        "Eggs",
        "Chips",
        "Coke",
    ]


def test_sort_ties_by_sku_and_accepts_a_key() -> None:
    same_bin = [PickLine("b", 1, "A", 4), PickLine("a", 1, "A", 4), PickLine("c", 1, "A", 1)]
    assert [x.sku for x in sort_pick_lines(same_bin)] == ["c", "a", "b"]
    reverse = {"a": 3, "b": 2, "c": 1}
    assert [x.sku for x in sort_pick_lines(same_bin, key=lambda x: reverse[x.sku])] == [
        "c",
        "b",
        "a",
    ]


def test_seed_example_estimate_is_2_min_15_s() -> None:
    # Walk from the path start to Coke at seq 19: 19 bin steps; A->B->C->D: 3 aisle changes;
    # units 2 + 1 + 1 + 1 + 3 = 8. 40 + 19*1 + 3*12 + 8*5 = 40 + 19 + 36 + 40 = 135 s.
    assert pick_features(SEED_ORDER) == PickFeatures(bin_steps=19, aisle_changes=3, units=8)
    assert DEFAULT_PICK_TIME_MODEL.estimate_s(SEED_ORDER) == pytest.approx(135)


def test_estimate_for_a_hand_worked_case() -> None:
    model = PickTimeModel(walk_s_per_bin_step=2, s_per_aisle_change=10, s_per_unit=4, base_s=30)
    lines = [line("Tea", 2, "C", 1), line("Salt", 1, "B", 4)]  # seq 11 and 7
    # Path B-4 (7) then C-1 (11): 11 steps, 1 aisle change, 3 units.
    # 30 + 11*2 + 1*10 + 3*4 = 30 + 22 + 10 + 12 = 74 s
    assert model.estimate_s(lines) == pytest.approx(74)
    # One line in the first bin: 40 + 1 + 0 + 5 = 46 s with the defaults.
    assert DEFAULT_PICK_TIME_MODEL.estimate_s([line("Milk", 1, "A", 1)]) == pytest.approx(46)
    assert DEFAULT_PICK_TIME_MODEL.estimate_s([]) == 0


def _synthetic(model: PickTimeModel, n: int, seed: int) -> list[tuple[PickFeatures, float]]:
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(n):
        f = PickFeatures(
            int(rng.integers(1, 60)), int(rng.integers(0, 7)), int(rng.integers(1, 25))
        )
        samples.append((f, model.features_s(f)))
    return samples


def test_calibration_recovers_known_coefficients() -> None:
    truth = PickTimeModel(walk_s_per_bin_step=0.8, s_per_aisle_change=15, s_per_unit=4, base_s=30)
    fitted = calibrate(_synthetic(truth, 40, seed=1))
    assert fitted.walk_s_per_bin_step == pytest.approx(0.8, abs=1e-6)
    assert fitted.s_per_aisle_change == pytest.approx(15, abs=1e-6)
    assert fitted.s_per_unit == pytest.approx(4, abs=1e-6)
    assert fitted.base_s == pytest.approx(30, abs=1e-6)


def test_calibration_keeps_coefficients_non_negative() -> None:
    # Data where aisle changes "save" 5 s each: least squares would go negative, NNLS stops at 0.
    samples = [
        (f, 30 + 1.0 * f.bin_steps - 5 * f.aisle_changes + 4 * f.units)
        for f, _ in _synthetic(DEFAULT_PICK_TIME_MODEL, 40, seed=2)
    ]
    fitted = calibrate(samples)
    assert fitted.s_per_aisle_change == 0
    assert min(fitted.walk_s_per_bin_step, fitted.s_per_unit, fitted.base_s) >= 0


def test_calibration_falls_back_with_too_few_samples() -> None:
    truth = PickTimeModel(walk_s_per_bin_step=0.8, s_per_aisle_change=15, s_per_unit=4, base_s=30)
    assert calibrate(_synthetic(truth, 19, seed=1)) is DEFAULT_PICK_TIME_MODEL
    assert calibrate([]) is DEFAULT_PICK_TIME_MODEL
    assert calibrate(_synthetic(truth, 5, seed=1), min_samples=5) != DEFAULT_PICK_TIME_MODEL
    assert calibrate(_synthetic(truth, 4, seed=1), min_samples=5, default=truth) is truth
