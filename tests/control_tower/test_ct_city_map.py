"""CityMap: stores, riders, drops and the stores' outline on a braille canvas."""

from __future__ import annotations

from dataclasses import replace

from rich.cells import cell_len
from rich.text import Text
from textual.app import App, ComposeResult

from control_tower.widgets.city_map import (
    DROP_COLOUR,
    HULL_COLOUR,
    MAX_ZOOM,
    RIDER_COLOURS,
    CityMap,
    render_map,
)
from control_tower.widgets.models import RiderDot
from control_tower.widgets.style import LEVEL_COLOUR, Level
from shared.enums import RiderStatus
from tests.control_tower.ct_data import drops, riders, stores


def styled_cells(text: Text) -> list[list[tuple[str, str]]]:
    """Each line of the map as (character, style) per cell."""
    grid = []
    for line in text.split("\n", allow_blank=True):
        styles = [""] * len(line.plain)
        for span in line.spans:
            for i in range(span.start, span.end):
                styles[i] = str(span.style)
        grid.append(list(zip(line.plain, styles, strict=True)))
    return grid


def colours_used(text: Text) -> set[str]:
    return {style for row in styled_cells(text) for _, style in row if style}


def test_map_fills_the_requested_size() -> None:
    text = render_map(60, 18, stores(), riders(), drops())
    lines = text.plain.split("\n")
    assert len(lines) == 18
    assert {cell_len(line) for line in lines} == {60}


def test_stores_are_labelled_glyphs_coloured_by_risk() -> None:
    text = render_map(60, 18, stores(), riders(), drops())
    assert "◆ Koramangala" in text.plain
    assert "Whitefield ◇" in text.plain  # paused; labelled on the left near the edge
    grid = styled_cells(text)
    glyph_styles = {style for row in grid for char, style in row if char == "◆"}
    assert f"bold {LEVEL_COLOUR[Level.CRIT]}" in glyph_styles  # Koramangala, risk 0.82
    assert f"bold {LEVEL_COLOUR[Level.OK]}" in glyph_styles  # Indiranagar, risk 0.21


def test_store_names_are_never_cut() -> None:
    seeded = [
        replace(s, name=f"qc {name}")
        for s, name in zip(
            stores(),
            ["Malleshwaram", "Indiranagar", "Electronic City", "Whitefield", "JP Nagar"],
            strict=True,
        )
    ]
    wide = render_map(100, 24, seeded).plain
    assert "◆ qc Malleshwaram" in wide  # the whole name where it fits
    assert "qc Malleshwara " not in wide
    # where the whole name cannot fit, the name without the brand all stores share
    narrow = render_map(30, 10, seeded).plain
    assert "Malleshwaram" in narrow and "Malleshwara " not in narrow


def test_riders_drops_and_outline_have_their_colours() -> None:
    used = colours_used(render_map(60, 18, stores(), riders(), drops()))
    for status in ("DELIVERING", "IDLE", "ASSIGNED", "RETURNING", "AT_STORE"):
        assert RIDER_COLOURS[status] in used, status
    assert DROP_COLOUR in used
    assert HULL_COLOUR in used


def test_every_cell_is_braille_a_glyph_a_label_or_blank() -> None:
    text = render_map(60, 18, stores(), riders(), drops())
    labels = "".join(s.name for s in stores())
    for char in text.plain.replace("\n", ""):
        assert char in " ◆◇" or char in labels or 0x2800 <= ord(char) <= 0x28FF


def test_offline_riders_are_not_drawn() -> None:
    offline = [RiderDot("r9", 12.95, 77.62, RiderStatus.OFFLINE)]
    assert render_map(60, 18, stores(), offline) == render_map(60, 18, stores())


def test_riders_outside_the_city_view_are_dropped() -> None:
    far = [RiderDot("r9", 13.9, 78.9, RiderStatus.IDLE)]
    assert render_map(60, 18, stores(), far) == render_map(60, 18, stores())


def test_without_stores_the_map_fits_the_riders() -> None:
    text = render_map(30, 8, [], riders()[:2])
    assert RIDER_COLOURS["DELIVERING"] in colours_used(text)


def test_empty_map_says_it_is_waiting() -> None:
    assert render_map(30, 8, []).plain == "waiting for data…"
    assert render_map(0, 8, stores()).plain == ""


class MapApp(App[None]):
    def compose(self) -> ComposeResult:
        yield CityMap()


async def test_set_data_redraws_only_the_given_layers() -> None:
    app = MapApp()
    async with app.run_test(size=(80, 24)) as pilot:
        city_map = app.query_one(CityMap)
        assert "waiting for data" in city_map.render().plain
        city_map.set_data(stores=stores(), riders=riders())
        city_map.set_data(drops=drops())
        await pilot.pause()
        assert city_map.stores and city_map.riders and city_map.drops
        assert "◆ Koramangala" in city_map.render().plain


async def test_keyboard_zoom_and_pan() -> None:
    app = MapApp()
    async with app.run_test(size=(80, 24)) as pilot:
        city_map = app.query_one(CityMap)
        city_map.set_data(stores=stores())
        city_map.focus()
        before = city_map.render()
        await pilot.press("plus")
        assert city_map.zoom == 2
        assert city_map.render() != before
        await pilot.press("right", "up")
        assert city_map.view_centre == (0.125, 0.125)  # a quarter of the zoomed view each
        await pilot.press("minus", "minus", "minus")
        assert city_map.zoom == 1  # never smaller than the fitted city
        for _ in range(10):
            await pilot.press("left")
        assert city_map.view_centre[0] == -0.5  # the centre stays within the city box
        await pilot.press(*["equals_sign"] * 10)
        assert city_map.zoom == MAX_ZOOM
        await pilot.press("0")
        assert (city_map.zoom, city_map.view_centre) == (1, (0.0, 0.0))
        assert city_map.render() == before
