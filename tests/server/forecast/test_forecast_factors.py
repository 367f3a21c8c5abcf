"""External-factor dataclasses, CSV loaders and the dense calendar."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from server.forecast.entities import Sku, Store
from server.forecast.factors import (
    CsvError,
    Event,
    ExternalFactors,
    FlashSale,
    WeatherDay,
    build_calendar,
    load_events_csv,
    load_flash_schedule_csv,
    load_weather_csv,
)


def test_weather_csv_from_text_with_mm_and_flag() -> None:
    rows = load_weather_csv(
        "city,date,rain_mm,rainy\n"
        "Bengaluru,2024-08-01,12.5,\n"
        "Bengaluru,2024-08-02,,yes\n"
        "Bengaluru,2024-08-03,1.0,\n"
        "Mysuru,2024-08-01,0,0\n"
    )
    assert [(w.city, w.day.day, w.rainy) for w in rows] == [
        ("Bengaluru", 1, True),
        ("Bengaluru", 2, True),
        ("Bengaluru", 3, False),  # 1 mm is below IMD's 2.5 mm rainy-day threshold
        ("Mysuru", 1, False),
    ]
    assert rows[0].intensity_mm == 12.5
    assert rows[1].intensity_mm == 10.0  # a bare flag becomes a typical rainy day
    assert rows[2].intensity_mm == 0.0


def test_weather_csv_from_path(tmp_path: Path) -> None:
    f = tmp_path / "weather.csv"
    f.write_text("\ufeffCity,Date,Rain_mm\nBengaluru,2024-08-01,3\n", encoding="utf-8")
    assert load_weather_csv(f) == [WeatherDay("Bengaluru", date(2024, 8, 1), 3.0)]
    assert load_weather_csv(str(f))[0].rainy


@pytest.mark.parametrize(
    ("text", "line", "field", "words"),
    [
        (
            "city,date,rain_mm\nBengaluru,2024-08-01,1\nBengaluru,2024-13-01,2\n",
            3,
            "date",
            "invalid date",
        ),
        ("city,date,rain_mm\nBengaluru,2024-08-01,lots\n", 2, "rain_mm", "not a number"),
        ("city,date,rain_mm\nBengaluru,2024-08-01,-4\n", 2, "rain_mm", "plausible"),
        ("city,date,rainy\nBengaluru,2024-08-01,maybe\n", 2, "rainy", "yes/no"),
        ("city,date,rain_mm\n,2024-08-01,1\n", 2, "city", "empty"),
        ("city,date,rain_mm\nBengaluru,2024-08-01,\n", 2, "rain_mm", "need rain_mm or rainy"),
        (
            "city,date,rain_mm\nBLR,2024-08-01,1\nBLR,2024-08-01,2\n",
            3,
            "date",
            "duplicate of line 2",
        ),
        ("city,date,rain_mm\nBengaluru,2024-08-01\n", 2, None, "expected 3 fields"),
        ("city,rain_mm\nBengaluru,1\n", 1, None, "missing column(s) ['date']"),
    ],
)
def test_weather_csv_errors_name_line_and_field(
    text: str, line: int, field: str | None, words: str
) -> None:
    with pytest.raises(CsvError) as exc:
        load_weather_csv(text)
    err = exc.value
    assert (err.line, err.field) == (line, field)
    assert words in str(err)
    assert f"line {line}" in str(err)
    if field:
        assert repr(field) in str(err)


def test_missing_file_and_empty_text(tmp_path: Path) -> None:
    with pytest.raises(CsvError, match="file not found"):
        load_weather_csv(tmp_path / "nope.csv")
    with pytest.raises(CsvError, match="empty file"):
        load_weather_csv("\n\n")


def test_events_csv_defaults_and_errors() -> None:
    events = load_events_csv(
        "date,start_hour,kind,name,city,duration_hours\n"
        "2024-08-10,19,,IND v AUS,,\n"
        "2024-08-11,15,Cricket,RCB v CSK,Bengaluru,4\n"
        "2024-08-12,20,concert,Coldplay,Mumbai,3\n"
    )
    assert events[0] == Event(date(2024, 8, 10), 19, "cricket", "IND v AUS", None, 5)
    assert events[0].local_hours() == range(19, 24)
    assert events[1].kind == "cricket" and events[1].city == "Bengaluru"
    assert events[1].local_hours() == range(15, 19)
    assert events[2].kind == "concert"
    with pytest.raises(CsvError) as exc:
        load_events_csv("date,start_hour\n2024-08-10,19\n2024-08-11,25\n")
    assert (exc.value.line, exc.value.field) == (3, "start_hour")
    assert "outside 0..23" in str(exc.value)
    with pytest.raises(CsvError, match="not an integer"):
        load_events_csv("date,start_hour\n2024-08-10,7pm\n")


def test_flash_schedule_csv() -> None:
    sales = load_flash_schedule_csv(
        "date,sku_id,store_ids\n"
        "2024-08-15,SKU00001,*\n"
        "2024-08-15,SKU00002,BLR-KOR;BLR-HSR\n"
        "2024-08-16,SKU00003,\n"
    )
    assert sales[0].store_ids is None and sales[0].applies_to("anything")
    assert sales[1].store_ids == frozenset({"BLR-KOR", "BLR-HSR"})
    assert not sales[1].applies_to("BLR-IND")
    assert sales[2].store_ids is None
    with pytest.raises(CsvError) as exc:
        load_flash_schedule_csv("date,sku_id,store_ids\n2024-08-15,SKU1,BLR-KOR;;BLR-HSR\n")
    assert (exc.value.line, exc.value.field) == (2, "store_ids")
    with pytest.raises(CsvError) as exc:
        load_flash_schedule_csv("date,sku_id\n2024-08-15,\n")
    assert exc.value.field == "sku_id"


def test_dataclass_validation() -> None:
    with pytest.raises(ValueError):
        WeatherDay("Bengaluru", date(2024, 8, 1))
    with pytest.raises(ValueError):
        Event(date(2024, 8, 1), 24)
    with pytest.raises(ValueError):
        FlashSale(date(2024, 8, 1), "SKU1", frozenset())


def test_calendar_holidays_rain_matches_and_flash() -> None:
    stores = [Store("BLR-KOR", "Bengaluru"), Store("MUM-AND", "Mumbai")]
    skus = [Sku("SKU1", "snacks-munchies"), Sku("SKU2", "tea-coffee")]
    start = date(2024, 8, 12)
    factors = ExternalFactors(
        weather=(WeatherDay("Bengaluru", date(2024, 8, 13), 20.0),),
        events=(
            Event(date(2024, 8, 14), 19),
            Event(date(2024, 8, 15), 15, city="Mumbai", duration_hours=4),
            Event(date(2024, 8, 16), 19, kind="concert"),
        ),
        flash_sales=(FlashSale(date(2024, 8, 14), "SKU2", frozenset({"MUM-AND"})),),
    )
    cal = build_calendar(factors, stores=stores, skus=skus, start=start, days=30)
    blr, mum = cal.city_index("Bengaluru"), cal.city_index("Mumbai")
    assert cal.holiday[blr, 3] and cal.holiday[mum, 3]  # Independence Day, 15 Aug
    assert cal.holiday[blr, 26]  # Ganesh Chaturthi (7 Sep) is a Karnataka holiday
    assert cal.rain_mm[blr, 1] == 20.0 and cal.rain_mm[mum, 1] == 0.0
    assert list(cal.match_offset[blr, 2, 18:24]) == [-1, 0, 1, 2, 3, 4]  # televised everywhere
    assert list(cal.match_offset[mum, 2, 19:24]) == [0, 1, 2, 3, 4]
    assert cal.match_offset[blr, 3].max() == -1  # the Mumbai-only game
    assert list(cal.match_offset[mum, 3, 14:20]) == [-1, 0, 1, 2, 3, -1]
    assert cal.match_offset[:, 4].max() == -1  # concerts do not count as matches
    assert cal.flash_days == {("MUM-AND", "SKU2"): frozenset({2})}


def test_holiday_override() -> None:
    f = ExternalFactors(holiday_dates=frozenset({date(2024, 8, 20)}))
    assert f.holidays_for("Bengaluru", date(2024, 8, 1), date(2024, 8, 31)) == {date(2024, 8, 20)}
