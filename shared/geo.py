"""Spherical-earth geometry for city-scale delivery work.

Pure functions: no I/O, no clock. Distances are metres, angles degrees, bearings are
clockwise from true north in [0, 360). GeoJSON coordinates are ``[lng, lat]``.
"""

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

# Mean earth radius (IUGG); the error of a sphere is well under 0.5 % at city scale.
EARTH_RADIUS_M = 6_371_008.8
_M_PER_DEG_LAT = EARTH_RADIUS_M * math.pi / 180.0
# Tolerance, in degrees, for treating a point as lying on a polygon edge (~1 mm).
_EDGE_EPS_DEG = 1e-8


class LatLng(NamedTuple):
    lat: float
    lng: float


def haversine_m(a: LatLng, b: LatLng) -> float:
    """Great-circle distance between two points."""
    phi1, phi2 = math.radians(a.lat), math.radians(b.lat)
    dphi = phi2 - phi1
    dlmb = math.radians(b.lng - a.lng)
    h = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    # min() guards asin against h creeping past 1.0 through rounding on antipodal points.
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def bearing_deg(a: LatLng, b: LatLng) -> float:
    """Initial great-circle bearing from ``a`` to ``b`` in [0, 360); 0 when a == b."""
    phi1, phi2 = math.radians(a.lat), math.radians(b.lat)
    dlmb = math.radians(b.lng - a.lng)
    y = math.sin(dlmb) * math.cos(phi2)
    x = math.cos(phi1) * math.sin(phi2) - math.sin(phi1) * math.cos(phi2) * math.cos(dlmb)
    return math.degrees(math.atan2(y, x)) % 360.0


def angle_diff_deg(x: float, y: float) -> float:
    """Smallest absolute difference between two bearings, in [0, 180]."""
    d = abs(x - y) % 360.0
    return 360.0 - d if d > 180.0 else d


def destination(a: LatLng, bearing_deg: float, distance_m: float) -> LatLng:
    """Point reached by travelling ``distance_m`` from ``a`` on the given initial bearing."""
    delta = distance_m / EARTH_RADIUS_M
    theta = math.radians(bearing_deg)
    phi1, lmb1 = math.radians(a.lat), math.radians(a.lng)
    sin_phi2 = math.sin(phi1) * math.cos(delta) + math.cos(phi1) * math.sin(delta) * math.cos(theta)
    phi2 = math.asin(max(-1.0, min(1.0, sin_phi2)))
    lmb2 = lmb1 + math.atan2(
        math.sin(theta) * math.sin(delta) * math.cos(phi1),
        math.cos(delta) - math.sin(phi1) * sin_phi2,
    )
    lng = (math.degrees(lmb2) + 540.0) % 360.0 - 180.0
    return LatLng(math.degrees(phi2), lng)


def interpolate(a: LatLng, b: LatLng, fraction: float) -> LatLng:
    """Point ``fraction`` of the way along the great circle from ``a`` to ``b``.

    ``fraction`` is clamped to [0, 1] so a simulated rider never overshoots a leg.
    """
    f = min(1.0, max(0.0, fraction))
    delta = haversine_m(a, b) / EARTH_RADIUS_M
    if delta == 0.0:
        return a
    phi1, lmb1 = math.radians(a.lat), math.radians(a.lng)
    phi2, lmb2 = math.radians(b.lat), math.radians(b.lng)
    wa = math.sin((1 - f) * delta) / math.sin(delta)
    wb = math.sin(f * delta) / math.sin(delta)
    x = wa * math.cos(phi1) * math.cos(lmb1) + wb * math.cos(phi2) * math.cos(lmb2)
    y = wa * math.cos(phi1) * math.sin(lmb1) + wb * math.cos(phi2) * math.sin(lmb2)
    z = wa * math.sin(phi1) + wb * math.sin(phi2)
    return LatLng(math.degrees(math.atan2(z, math.hypot(x, y))), math.degrees(math.atan2(y, x)))


def within_radius(a: LatLng, b: LatLng, radius_m: float) -> bool:
    """True when ``b`` is at most ``radius_m`` from ``a`` (boundary inclusive)."""
    return haversine_m(a, b) <= radius_m


def _on_segment(x: float, y: float, x1: float, y1: float, x2: float, y2: float) -> bool:
    length = math.hypot(x2 - x1, y2 - y1)
    if length == 0.0:
        return math.hypot(x - x1, y - y1) <= _EDGE_EPS_DEG
    # Distance from the edge's line, then a bounding-box check to stay within the segment.
    if abs((x2 - x1) * (y - y1) - (y2 - y1) * (x - x1)) / length > _EDGE_EPS_DEG:
        return False
    return (
        min(x1, x2) - _EDGE_EPS_DEG <= x <= max(x1, x2) + _EDGE_EPS_DEG
        and min(y1, y2) - _EDGE_EPS_DEG <= y <= max(y1, y2) + _EDGE_EPS_DEG
    )


def _ring_position(x: float, y: float, ring: Sequence[Sequence[float]]) -> int:
    """1 inside, 0 on the boundary, -1 outside (even-odd ray cast in the lng/lat plane)."""
    inside = False
    n = len(ring)
    for i in range(n):
        x1, y1 = ring[i][0], ring[i][1]
        x2, y2 = ring[(i + 1) % n][0], ring[(i + 1) % n][1]
        if _on_segment(x, y, x1, y1, x2, y2):
            return 0
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return 1 if inside else -1


def _in_polygon(x: float, y: float, rings: Sequence[Sequence[Sequence[float]]]) -> bool:
    if not rings or _ring_position(x, y, rings[0]) < 0:
        return False
    # A point on a hole's edge still belongs to the polygon, so only strict hole interiors cut.
    return all(_ring_position(x, y, hole) < 1 for hole in rings[1:])


def point_in_geojson(point: LatLng, geometry: dict[str, Any]) -> bool:
    """Whether ``point`` lies in a GeoJSON Polygon or MultiPolygon (holes respected).

    Edges count as inside, so an address on a zone boundary is served. The test is planar in
    lng/lat, which is exact enough for delivery zones a few km across (not across the
    antimeridian).
    """
    kind = geometry.get("type")
    coords: Any = geometry.get("coordinates")
    if kind == "Polygon":
        polygons = [coords]
    elif kind == "MultiPolygon":
        polygons = coords
    else:
        raise ValueError(f"unsupported GeoJSON geometry type: {kind!r}")
    return any(_in_polygon(point.lng, point.lat, rings) for rings in polygons or [])


def location_cell(point: LatLng, size_m: float = 150.0) -> str:
    """Stable id of the ~``size_m`` square grid cell containing ``point``.

    Rows are fixed-height latitude bands; each row's column width uses the cosine of the row's
    centre latitude, so every point in a row maps with the same scale and ids never drift. The
    size is part of the id so caches keyed with different sizes cannot collide.
    """
    if size_m <= 0:
        raise ValueError("size_m must be positive")
    row = math.floor(point.lat * _M_PER_DEG_LAT / size_m)
    row_mid_lat = (row + 0.5) * size_m / _M_PER_DEG_LAT
    # The floor keeps polar rows finite; nothing we deliver to is near a pole.
    m_per_deg_lng = _M_PER_DEG_LAT * max(math.cos(math.radians(row_mid_lat)), 1e-6)
    col = math.floor(point.lng * m_per_deg_lng / size_m)
    return f"{size_m:g}m:{row}:{col}"
