"""A monochrome dot canvas printed with Unicode braille (U+2800-U+28FF).

Each terminal cell holds a 2x4 grid of dots, so a W x H cell canvas has 2W x 4H dots,
roughly square on a typical terminal font. Dots outside the canvas are dropped, so
callers can draw lines that leave the view without clipping them first.
"""

from __future__ import annotations

BRAILLE_BASE = 0x2800

# Bit for the dot at (column, row) inside a cell, from the Unicode braille dot numbering:
# dots 1-3 and 7 run down the left column, dots 4-6 and 8 down the right one.
_DOT_BITS: tuple[tuple[int, ...], ...] = (
    (0x01, 0x02, 0x04, 0x40),
    (0x08, 0x10, 0x20, 0x80),
)


class BrailleCanvas:
    def __init__(self, width_cells: int, height_cells: int) -> None:
        if width_cells < 0 or height_cells < 0:
            raise ValueError("canvas size must not be negative")
        self.width_cells = width_cells
        self.height_cells = height_cells
        self._cells = [[0] * width_cells for _ in range(height_cells)]

    @property
    def width(self) -> int:
        """Width in dots."""
        return self.width_cells * 2

    @property
    def height(self) -> int:
        """Height in dots."""
        return self.height_cells * 4

    def set(self, x: int, y: int) -> None:
        """Turn on the dot at (x, y), origin top left; ignored when off the canvas."""
        if 0 <= x < self.width and 0 <= y < self.height:
            self._cells[y >> 2][x >> 1] |= _DOT_BITS[x & 1][y & 3]

    def line(self, x0: int, y0: int, x1: int, y1: int) -> None:
        """Draw a straight line between two dots, both ends included (Bresenham)."""
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx = 1 if x0 < x1 else -1
        sy = 1 if y0 < y1 else -1
        err = dx + dy
        while True:
            self.set(x0, y0)
            if x0 == x1 and y0 == y1:
                return
            e2 = 2 * err
            if e2 >= dy:
                err += dy
                x0 += sx
            if e2 <= dx:
                err += dx
                y0 += sy

    def cell(self, column: int, row: int) -> int:
        """The dot bits of one cell (0 when empty); its glyph is ``chr(0x2800 + bits)``."""
        return self._cells[row][column]

    def rows(self) -> list[str]:
        """One string per cell row; empty cells are the blank braille pattern U+2800."""
        return ["".join(chr(BRAILLE_BASE + bits) for bits in row) for row in self._cells]
