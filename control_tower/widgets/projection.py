"""Fitting a city onto a dot grid, and the outline (convex hull) of its stores.

Equirectangular with longitude scaled by cos(latitude) at the centre: at city scale the
distortion is negligible and distances stay proportional in both directions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from shared.geo import EARTH_RADIUS_M, LatLng

_M_PER_DEG_LAT = EARTH_RADIUS_M * math.pi / 180.0
# Points closer than this (in degrees, ~0.1 mm) are one spot: a span near a float's
# resolution at city coordinates (~1e-14) scaled to the grid put a dot off it.
_MIN_SPAN = 1e-9


class Projection:
    """Maps lat/lng onto integer dots of a ``width`` x ``height`` grid, north up.

    At ``zoom=1`` and the default ``centre`` every point in ``points`` (widened by ``pad_m`` metres
    on each side) lands inside the grid, with the aspect ratio kept and the box centred.
    ``centre`` moves the view centre by fractions of the fitted box's width and height
    (positive is east and north); points outside the view project off the grid.
    """

    def __init__(
        self,
        points: Sequence[LatLng],
        width: int,
        height: int,
        *,
        pad_m: float = 0.0,
        zoom: float = 1.0,
        centre: tuple[float, float] = (0.0, 0.0),
    ) -> None:
        if not points:
            raise ValueError("a projection needs at least one point to fit")
        if width < 1 or height < 1:
            raise ValueError("the grid must be at least one dot each way")
        lats = [p.lat for p in points]
        self._kx = math.cos(math.radians((min(lats) + max(lats)) / 2))
        xs = [p.lng * self._kx for p in points]
        pad = pad_m / _M_PER_DEG_LAT
        min_x, max_x = min(xs) - pad, max(xs) + pad
        min_y, max_y = min(lats) - pad, max(lats) + pad
        span_x, span_y = max_x - min_x, max_y - min_y
        fits = [
            (width - 1) / span_x if span_x > _MIN_SPAN else math.inf,
            (height - 1) / span_y if span_y > _MIN_SPAN else math.inf,
        ]
        # A single point (or several at one spot) fits at any scale: it sits in the middle.
        scale = min(fits) if min(fits) < math.inf else 1.0
        self._scale = scale * zoom
        self._cx = (min_x + max_x) / 2 + centre[0] * span_x
        self._cy = (min_y + max_y) / 2 + centre[1] * span_y
        self._ox = (width - 1) / 2
        self._oy = (height - 1) / 2

    def project(self, point: LatLng) -> tuple[int, int]:
        x = self._ox + (point.lng * self._kx - self._cx) * self._scale
        y = self._oy - (point.lat - self._cy) * self._scale
        return round(x), round(y)


def convex_hull(points: Sequence[LatLng]) -> list[LatLng]:
    """Corners of the convex hull, counter-clockwise (east = +x, north = +y).

    Andrew's monotone chain in the lng/lat plane; the map projection only scales the axes,
    so the hull is the same after projecting. Collinear and repeated points are dropped;
    one or two distinct points come back as they are.
    """
    unique = sorted(set(points), key=lambda p: (p.lng, p.lat))
    if len(unique) <= 2:
        return unique

    def cross(o: LatLng, a: LatLng, b: LatLng) -> float:
        return (a.lng - o.lng) * (b.lat - o.lat) - (a.lat - o.lat) * (b.lng - o.lng)

    def half(ordered: list[LatLng]) -> list[LatLng]:
        chain: list[LatLng] = []
        for p in ordered:
            while len(chain) >= 2 and cross(chain[-2], chain[-1], p) <= 0:
                chain.pop()
            chain.append(p)
        return chain

    lower, upper = half(unique), half(unique[::-1])
    return lower[:-1] + upper[:-1]
