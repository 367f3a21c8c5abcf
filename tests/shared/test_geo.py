import pytest

from shared.geo import (
    EARTH_RADIUS_M,
    LatLng,
    angle_diff_deg,
    bearing_deg,
    destination,
    haversine_m,
    interpolate,
    location_cell,
    point_in_geojson,
    within_radius,
)

# One degree of arc on the sphere: 6,371,008.8 m * pi / 180 = 111,195.08 m.
ONE_DEG_M = 111_195.08
BLR = LatLng(12.9716, 77.5946)


def test_one_degree_of_arc() -> None:
    assert EARTH_RADIUS_M * 3.141592653589793 / 180 == pytest.approx(ONE_DEG_M, abs=0.01)
    assert haversine_m(LatLng(0, 0), LatLng(1, 0)) == pytest.approx(ONE_DEG_M, abs=0.01)
    assert haversine_m(LatLng(0, 0), LatLng(0, 1)) == pytest.approx(ONE_DEG_M, abs=0.01)
    # Along a meridian the distance is the same at any longitude.
    assert haversine_m(LatLng(12, 77), LatLng(13, 77)) == pytest.approx(ONE_DEG_M, abs=0.01)


def test_haversine_zero_and_symmetric() -> None:
    other = LatLng(12.99, 77.61)
    assert haversine_m(BLR, BLR) == 0.0
    assert haversine_m(BLR, other) == haversine_m(other, BLR)


@pytest.mark.parametrize(
    ("to", "expected"),
    [(LatLng(1, 0), 0.0), (LatLng(0, 1), 90.0), (LatLng(-1, 0), 180.0), (LatLng(0, -1), 270.0)],
)
def test_bearing_cardinal_directions(to: LatLng, expected: float) -> None:
    assert bearing_deg(LatLng(0, 0), to) == pytest.approx(expected)


def test_bearing_of_same_point_is_zero() -> None:
    assert bearing_deg(BLR, BLR) == 0.0


@pytest.mark.parametrize(
    ("x", "y", "expected"),
    [(350, 10, 20), (10, 350, 20), (0, 180, 180), (90, 270, 180), (725, 0, 5), (-30, 30, 60)],
)
def test_angle_diff(x: float, y: float, expected: float) -> None:
    assert angle_diff_deg(x, y) == pytest.approx(expected)


def test_destination_one_degree_east_on_equator() -> None:
    p = destination(LatLng(0, 0), 90, ONE_DEG_M)
    assert p.lat == pytest.approx(0, abs=1e-9)
    assert p.lng == pytest.approx(1, abs=1e-7)


def test_destination_round_trips_with_distance_and_bearing() -> None:
    p = destination(BLR, 37.0, 1234.0)
    assert haversine_m(BLR, p) == pytest.approx(1234.0, abs=1e-6)
    assert bearing_deg(BLR, p) == pytest.approx(37.0, abs=1e-3)


def test_destination_wraps_longitude() -> None:
    p = destination(LatLng(0, 179.5), 90, ONE_DEG_M)
    assert p.lng == pytest.approx(-179.5, abs=1e-7)


def test_interpolate() -> None:
    a, b = LatLng(0, 0), LatLng(0, 2)
    mid = interpolate(a, b, 0.5)
    assert mid.lat == pytest.approx(0, abs=1e-12)
    assert mid.lng == pytest.approx(1)
    assert interpolate(a, b, 0.0) == pytest.approx(a)
    assert interpolate(a, b, 1.0) == pytest.approx(b)
    # Clamped: never overshoots either end of the leg.
    assert interpolate(a, b, -0.5) == pytest.approx(a)
    assert interpolate(a, b, 1.5) == pytest.approx(b)
    assert interpolate(BLR, BLR, 0.3) == BLR


def test_interpolate_quarter_distance() -> None:
    far = destination(BLR, 120, 2000)
    p = interpolate(BLR, far, 0.25)
    assert haversine_m(BLR, p) == pytest.approx(500, abs=1e-6)
    assert haversine_m(p, far) == pytest.approx(1500, abs=1e-6)


def test_within_radius() -> None:
    assert within_radius(BLR, destination(BLR, 10, 1999), 2000)
    assert not within_radius(BLR, destination(BLR, 10, 2001), 2000)
    assert within_radius(BLR, BLR, 0)


# A 0.1 x 0.1 degree square zone with a 0.02 x 0.02 degree hole in the middle.
SQUARE_WITH_HOLE = {
    "type": "Polygon",
    "coordinates": [
        [[77.0, 12.0], [77.1, 12.0], [77.1, 12.1], [77.0, 12.1], [77.0, 12.0]],
        [[77.04, 12.04], [77.06, 12.04], [77.06, 12.06], [77.04, 12.06], [77.04, 12.04]],
    ],
}


@pytest.mark.parametrize(
    ("point", "inside"),
    [
        (LatLng(12.02, 77.02), True),
        (LatLng(12.05, 77.05), False),  # in the hole
        (LatLng(12.2, 77.05), False),  # north of the zone
        (LatLng(12.05, 76.99), False),  # west of the zone
        (LatLng(12.0, 77.05), True),  # on the outer edge
        (LatLng(12.1, 77.1), True),  # on a corner
        (LatLng(12.04, 77.05), True),  # on the hole's edge
    ],
)
def test_point_in_polygon_with_hole(point: LatLng, inside: bool) -> None:
    assert point_in_geojson(point, SQUARE_WITH_HOLE) is inside


def test_point_in_concave_polygon() -> None:
    # An L shape: the notch at the top right (lng > 77.05, lat > 12.05) is outside.
    l_shape = {
        "type": "Polygon",
        "coordinates": [
            [
                [77.0, 12.0],
                [77.1, 12.0],
                [77.1, 12.05],
                [77.05, 12.05],
                [77.05, 12.1],
                [77.0, 12.1],
                [77.0, 12.0],
            ]
        ],
    }
    assert point_in_geojson(LatLng(12.08, 77.02), l_shape)
    assert point_in_geojson(LatLng(12.02, 77.08), l_shape)
    assert not point_in_geojson(LatLng(12.08, 77.08), l_shape)


def test_point_in_multipolygon() -> None:
    multi = {
        "type": "MultiPolygon",
        "coordinates": [
            SQUARE_WITH_HOLE["coordinates"],
            [[[78.0, 13.0], [78.1, 13.0], [78.1, 13.1], [78.0, 13.0]]],  # a triangle
        ],
    }
    assert point_in_geojson(LatLng(12.02, 77.02), multi)
    assert not point_in_geojson(LatLng(12.05, 77.05), multi)  # the first polygon's hole
    assert point_in_geojson(LatLng(13.02, 78.08), multi)  # below the triangle's diagonal
    assert not point_in_geojson(LatLng(13.08, 78.02), multi)  # above it
    assert not point_in_geojson(LatLng(12.5, 77.5), multi)


def test_point_in_geojson_rejects_other_geometries() -> None:
    with pytest.raises(ValueError, match="Point"):
        point_in_geojson(BLR, {"type": "Point", "coordinates": [77.59, 12.97]})


@pytest.mark.parametrize(
    ("point", "cell"),
    [
        (LatLng(0.0, 0.0), "150m:0:0"),
        # 0.0013 deg = 144.6 m north and east: still the first cell.
        (LatLng(0.0013, 0.0013), "150m:0:0"),
        # 0.0014 deg = 155.7 m: the next row and column (cos of 0.002 deg lat is ~1).
        (LatLng(0.0014, 0.0014), "150m:1:1"),
        # 11 m south-west of the origin floors to -1, not 0.
        (LatLng(-0.0001, -0.0001), "150m:-1:-1"),
    ],
)
def test_location_cell_ids(point: LatLng, cell: str) -> None:
    assert location_cell(point) == cell


def test_location_cell_size_is_part_of_the_id() -> None:
    assert location_cell(LatLng(0.0, 0.0), 500) == "500m:0:0"
    assert location_cell(BLR, 150) != location_cell(BLR, 300)


def test_location_cell_is_about_size_m_across() -> None:
    # Walking 1,500 m east or north in 10 m steps crosses 10 (or 11) 150 m cells.
    for bearing in (0, 90):
        cells = {location_cell(destination(BLR, bearing, d)) for d in range(0, 1500, 10)}
        assert len(cells) in (10, 11)


def test_location_cell_rejects_non_positive_size() -> None:
    with pytest.raises(ValueError):
        location_cell(BLR, 0)
