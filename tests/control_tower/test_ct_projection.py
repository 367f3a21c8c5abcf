"""Projection keeps fitted points on the grid; the hull is the stores' outline."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from control_tower.widgets.projection import Projection, convex_hull
from shared.geo import LatLng
from tests.control_tower.ct_data import stores

# Bengaluru-sized boxes: city-scale spans are what the map is for.
lats = st.floats(min_value=12.80, max_value=13.15)
lngs = st.floats(min_value=77.45, max_value=77.80)
points = st.lists(st.builds(LatLng, lats, lngs), min_size=1, max_size=40)


def inside(xy: tuple[int, int], width: int, height: int) -> bool:
    return 0 <= xy[0] < width and 0 <= xy[1] < height


@given(
    pts=points,
    width=st.integers(1, 400),
    height=st.integers(1, 200),
    pad_m=st.sampled_from([0.0, 500.0, 2500.0]),
)
@example(  # two points a float's resolution apart: their span is one spot, not a scale
    pts=[LatLng(13.0, 77.45000000000002), LatLng(13.0, 77.45)], width=2, height=1, pad_m=0.0
)
def test_fitted_points_stay_on_the_grid(
    pts: list[LatLng], width: int, height: int, pad_m: float
) -> None:
    projection = Projection(pts, width, height, pad_m=pad_m)
    assert all(inside(projection.project(p), width, height) for p in pts)


def test_store_box_uses_the_limiting_axis_edge_to_edge() -> None:
    locations = [s.location for s in stores()]
    projection = Projection(locations, 200, 200)
    xs = [projection.project(p)[0] for p in locations]
    # The stores spread wider east-west than north-south, so width is the limit.
    assert (min(xs), max(xs)) == (0, 199)


def test_north_is_up_and_east_is_right() -> None:
    centre = LatLng(12.95, 77.6)
    north, east = LatLng(12.96, 77.6), LatLng(12.95, 77.61)
    projection = Projection([centre, north, east], 100, 100)
    cx, cy = projection.project(centre)
    assert projection.project(north)[1] < cy
    assert projection.project(east)[0] > cx


def test_aspect_ratio_is_kept() -> None:
    # 1 km north and 1 km east of a point should be the same number of dots away.
    origin = LatLng(12.95, 77.6)
    north = LatLng(12.95 + 1000 / 111_195, 77.6)
    east = LatLng(12.95, 77.6 + 1000 / (111_195 * 0.97437))  # cos(12.955 deg)
    projection = Projection([origin, north, east], 300, 100)
    ox, oy = projection.project(origin)
    assert abs((oy - projection.project(north)[1]) - (projection.project(east)[0] - ox)) <= 1


def test_single_point_sits_in_the_middle() -> None:
    projection = Projection([LatLng(12.9, 77.6)], 11, 21)
    assert projection.project(LatLng(12.9, 77.6)) == (5, 10)


def test_zoom_keeps_the_centre_and_spreads_the_rest() -> None:
    pts = [LatLng(12.9, 77.6), LatLng(13.0, 77.7)]
    base = Projection(pts, 101, 101)
    zoomed = Projection(pts, 101, 101, zoom=2)
    centre = LatLng(12.95, 77.65)
    assert zoomed.project(centre) == base.project(centre) == (50, 50)
    assert zoomed.project(pts[1])[1] < 0  # pushed off the top of the grid


def test_centre_moves_the_view() -> None:
    pts = [LatLng(12.9, 77.6), LatLng(13.0, 77.7)]
    east = Projection(pts, 101, 101, centre=(0.5, 0.0))
    # Centring on the east edge puts the east edge in the middle.
    assert east.project(LatLng(12.95, 77.7))[0] == 50


def test_projection_needs_points_and_a_grid() -> None:
    with pytest.raises(ValueError):
        Projection([], 10, 10)
    with pytest.raises(ValueError):
        Projection([LatLng(12.9, 77.6)], 0, 10)


def cross(o: LatLng, a: LatLng, b: LatLng) -> float:
    return (a.lng - o.lng) * (b.lat - o.lat) - (a.lat - o.lat) * (b.lng - o.lng)


def test_hull_of_a_square_with_an_inside_point() -> None:
    sw, se, ne, nw = LatLng(0, 0), LatLng(0, 1), LatLng(1, 1), LatLng(1, 0)
    hull = convex_hull([ne, LatLng(0.5, 0.5), sw, nw, se, LatLng(0, 0.5)])
    assert hull == [sw, se, ne, nw]  # counter-clockwise from the south-west corner


def test_hull_of_the_sample_city() -> None:
    by_id = {s.store_id: s.location for s in stores()}
    hull = convex_hull(list(by_id.values()))
    # Koramangala is surrounded by the other four.
    assert set(hull) == {by_id[k] for k in ("BLR-JPN", "BLR-HSR", "BLR-WHF", "BLR-IND")}


def test_degenerate_hulls() -> None:
    a, b, c = LatLng(0, 0), LatLng(1, 1), LatLng(2, 2)
    assert convex_hull([]) == []
    assert convex_hull([a, a]) == [a]
    assert convex_hull([b, a]) == [a, b]
    assert convex_hull([a, c, b]) == [a, c]  # collinear: just the ends


@given(points)
def test_hull_is_convex_and_contains_every_point(pts: list[LatLng]) -> None:
    hull = convex_hull(pts)
    assert set(hull) <= set(pts)
    if len(hull) < 3:
        return
    edges = list(zip(hull, hull[1:] + hull[:1], strict=True))
    for p in pts:
        assert all(cross(o, a, p) >= -1e-12 for o, a in edges)
    for i, (o, a) in enumerate(edges):
        nxt = hull[(i + 2) % len(hull)]
        assert cross(o, a, nxt) > 0  # strictly left turns: convex, no collinear corners
