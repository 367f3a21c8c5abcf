"""BrailleCanvas: exact characters for dots and lines."""

from __future__ import annotations

import pytest

from control_tower.widgets.braille import BrailleCanvas

BLANK = "\u2800"


def dots(*points: tuple[int, int], width: int = 1, height: int = 1) -> list[str]:
    canvas = BrailleCanvas(width, height)
    for x, y in points:
        canvas.set(x, y)
    return canvas.rows()


def test_empty_canvas_is_blank_braille() -> None:
    assert BrailleCanvas(3, 2).rows() == [BLANK * 3, BLANK * 3]


@pytest.mark.parametrize(
    ("point", "char"),
    [
        ((0, 0), "\u2801"),
        ((0, 1), "\u2802"),
        ((0, 2), "\u2804"),
        ((1, 0), "\u2808"),
        ((1, 1), "\u2810"),
        ((1, 2), "\u2820"),
        ((0, 3), "\u2840"),
        ((1, 3), "\u2880"),
    ],
)
def test_each_dot_of_a_cell(point: tuple[int, int], char: str) -> None:
    assert dots(point) == [char]


def test_all_eight_dots_fill_the_cell() -> None:
    assert dots(*[(x, y) for x in range(2) for y in range(4)]) == ["\u28ff"]


def test_dots_land_in_the_right_cell() -> None:
    assert dots((2, 0), (1, 7), width=2, height=2) == [BLANK + "\u2801", "\u2880" + BLANK]


def test_setting_a_dot_twice_is_idempotent() -> None:
    assert dots((0, 0), (0, 0)) == ["\u2801"]


def test_dots_off_the_canvas_are_ignored() -> None:
    assert dots((-1, 0), (0, -1), (2, 0), (0, 4)) == [BLANK]


def test_size_in_dots() -> None:
    canvas = BrailleCanvas(5, 3)
    assert (canvas.width, canvas.height) == (10, 12)


def test_negative_size_is_rejected() -> None:
    with pytest.raises(ValueError):
        BrailleCanvas(-1, 1)


def line(x0: int, y0: int, x1: int, y1: int, width: int = 2, height: int = 1) -> list[str]:
    canvas = BrailleCanvas(width, height)
    canvas.line(x0, y0, x1, y1)
    return canvas.rows()


def test_horizontal_line() -> None:
    assert line(0, 0, 3, 0) == ["\u2809\u2809"]


def test_vertical_line() -> None:
    assert line(0, 0, 0, 3, width=1) == ["\u2847"]


def test_diagonal_line() -> None:
    # (0,0) (1,1) in the first cell, (2,2) (3,3) in the second.
    assert line(0, 0, 3, 3) == ["\u2811\u2884"]


def test_line_direction_does_not_matter() -> None:
    assert line(3, 3, 0, 0) == line(0, 0, 3, 3)
    assert line(3, 1, 0, 2) == line(0, 2, 3, 1)


def test_shallow_line_has_no_gaps() -> None:
    canvas = BrailleCanvas(4, 1)
    canvas.line(0, 0, 7, 3)
    # Two dots per cell, stepping down one row per cell: (0,0) (1,0) | (2,1) (3,1) | ...
    assert canvas.rows() == ["\u2809\u2812\u2824\u28c0"]


def test_single_point_line() -> None:
    assert line(1, 2, 1, 2, width=1) == ["\u2820"]


def test_line_leaving_the_canvas_is_clipped() -> None:
    assert line(-4, 0, 9, 0) == ["\u2809\u2809"]


def test_cell_exposes_the_bits() -> None:
    canvas = BrailleCanvas(2, 1)
    canvas.set(3, 3)
    assert (canvas.cell(0, 0), canvas.cell(1, 0)) == (0, 0x80)
