"""Reusable widgets for the city manager's control tower.

They take the plain dataclasses in :mod:`control_tower.widgets.models` and update in
place (cells, options, reactives), never by remounting, so live updates do not flicker.
"""

from control_tower.widgets.alerts import AlertsPanel
from control_tower.widgets.braille import BrailleCanvas
from control_tower.widgets.city_map import CityMap, render_map
from control_tower.widgets.kpi import KpiBar, KpiTile
from control_tower.widgets.models import (
    Alert,
    DropDot,
    KpiValue,
    PipelineOrder,
    RiderDot,
    Severity,
    StoreRow,
)
from control_tower.widgets.pipeline import PipelineBoard
from control_tower.widgets.projection import Projection, convex_hull
from control_tower.widgets.stores_table import StoresTable
from control_tower.widgets.trends import TrendSeries, TrendsPanel

__all__ = [
    "Alert",
    "AlertsPanel",
    "BrailleCanvas",
    "CityMap",
    "DropDot",
    "KpiBar",
    "KpiTile",
    "KpiValue",
    "PipelineBoard",
    "PipelineOrder",
    "Projection",
    "RiderDot",
    "Severity",
    "StoreRow",
    "StoresTable",
    "TrendSeries",
    "TrendsPanel",
    "convex_hull",
    "render_map",
]
