"""GS1 element strings (GS1-128, GS1 DataMatrix, GS1 QR) and the GS1 mod-10 check digit.

Accepted forms of the same data:
* raw:            ``0109506000134352`` ``10ABC123`` GS ``17251231`` (FNC1 sent as ASCII 29)
* human readable: ``(01)09506000134352(10)ABC123(17)251231``
* either, optionally prefixed by a GS1 symbology identifier (``]C1``, ``]d2``, ``]Q3``, ...)
  and/or a leading FNC1.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

GS = "\x1d"
GS1_SYMBOLOGY_IDS = frozenset({"]C1", "]d2", "]Q3", "]e0", "]J1"})


class GS1Error(ValueError):
    """The input is not a well-formed GS1 element string."""


def is_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def check_digit(body: str) -> str:
    """GS1 mod-10 check digit for ``body`` (any GTIN/SSCC/GLN without its last digit)."""
    if not is_digits(body):
        raise ValueError(f"check digit body must be ASCII digits, got {body!r}")
    # Weights alternate 3,1,3,... starting from the rightmost body digit.
    total = sum(int(c) * (1 if i % 2 else 3) for i, c in enumerate(reversed(body)))
    return str(-total % 10)


def has_valid_check_digit(code: str) -> bool:
    return len(code) >= 2 and is_digits(code) and check_digit(code[:-1]) == code[-1]


@dataclass(frozen=True, slots=True)
class _AI:
    length: int  # exact length when fixed, maximum length otherwise
    fixed: bool = True
    numeric: bool = True
    check: bool = False
    date: bool = False


def _var(max_len: int, *, numeric: bool = False) -> _AI:
    return _AI(max_len, fixed=False, numeric=numeric)


_DATE = _AI(6, date=True)
_MEASURE = _AI(6)  # 31nn/32nn/33nn: six digits, last AI digit = decimal places

# AIs must be known to be parsed at all: the raw form has no delimiter after fixed-length
# fields, so the table is what tells where one element ends.
_AIS: dict[str, _AI] = {
    "00": _AI(18, check=True),  # SSCC
    "01": _AI(14, check=True),  # GTIN
    "02": _AI(14, check=True),  # GTIN of contained trade items
    "10": _var(20),  # batch/lot
    "11": _DATE,  # production date
    "12": _DATE,  # due date
    "13": _DATE,  # packaging date
    "15": _DATE,  # best before
    "16": _DATE,  # sell by
    "17": _DATE,  # expiry
    "20": _AI(2),  # variant
    "21": _var(20),  # serial
    "22": _var(20),  # consumer product variant
    "30": _var(8, numeric=True),  # variable count
    "37": _var(8, numeric=True),  # count of trade items
    "240": _var(30),
    "241": _var(30),
    "400": _var(30),  # customer order number
    "401": _var(30),
    "402": _AI(17, check=True),
    "403": _var(30),
    **{f"41{d}": _AI(13, check=True) for d in "01234567"},  # GLNs
    "420": _var(20),
    "422": _AI(3),
    **{
        f"{m}{d}": _MEASURE
        for m in ("310", "311", "312", "313", "314", "315", "316", "320", "330")
        for d in "012345"
    },
    **{f"392{d}": _var(15, numeric=True) for d in "0123456789"},  # price
    "7003": _AI(10),  # expiry date and time
    "8005": _AI(6),  # price per unit of measure
    "90": _var(30),
    **{str(ai): _var(90) for ai in range(91, 100)},  # company internal
}

# GS1 "character set 82", the only characters allowed in alphanumeric AIs.
_CSET82 = re.compile(r"""[!"%-?A-Z_a-z]*""")
_HRI_AI = re.compile(r"\((\d{2,4})\)")


@dataclass(frozen=True)
class GS1Data:
    """Parsed element string. ``elements`` maps every AI to its raw value in input order;
    the typed fields cover the AIs a dark store acts on."""

    elements: Mapping[str, str]
    gtin: str | None = None
    batch: str | None = None
    serial: str | None = None
    production_date: date | None = None
    packaging_date: date | None = None
    best_before: date | None = None
    expiry: date | None = None
    net_weight_kg: Decimal | None = None


def parse(data: str, *, today: date | None = None) -> GS1Data:
    """Parse a GS1 element string; ``today`` anchors the GS1 century rule for YYMMDD dates.

    Raises GS1Error on anything malformed: unknown AI, wrong length, bad check digit, bad date.
    """
    if data.startswith("]"):
        ident, data = data[:3], data[3:]
        if ident not in GS1_SYMBOLOGY_IDS:
            raise GS1Error(f"symbology identifier {ident!r} does not carry GS1 data")
    data = data.removeprefix(GS)
    if not data:
        raise GS1Error("empty GS1 element string")
    pairs = _split_hri(data) if data.startswith("(") else _split_raw(data)
    elements: dict[str, str] = {}
    today = today or datetime.now(UTC).date()
    for ai, value in pairs:
        _validate(ai, value, today)
        if elements.setdefault(ai, value) != value:
            raise GS1Error(f"AI ({ai}) repeated with different values")
    return _typed(elements, today)


def _lookup(data: str, pos: int) -> str:
    for n in (2, 3, 4):
        if data[pos : pos + n] in _AIS:
            return data[pos : pos + n]
    raise GS1Error(f"unknown application identifier at position {pos}: {data[pos : pos + 4]!r}")


def _split_raw(data: str) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    pos = 0
    while pos < len(data):
        ai = _lookup(data, pos)
        spec = _AIS[ai]
        pos += len(ai)
        if spec.fixed:
            end = pos + spec.length
            if end > len(data):
                raise GS1Error(f"AI ({ai}) needs {spec.length} characters, data is truncated")
        else:
            gs_at = data.find(GS, pos)
            end = len(data) if gs_at == -1 else gs_at
        pairs.append((ai, data[pos:end]))
        # A GS after a fixed-length field is redundant but some encoders emit it.
        pos = end + 1 if data[end : end + 1] == GS else end
    return pairs


def _split_hri(data: str) -> list[tuple[str, str]]:
    parts = _HRI_AI.split(data)
    if parts[0]:
        raise GS1Error(f"unexpected text before first AI: {parts[0]!r}")
    pairs = list(zip(parts[1::2], parts[2::2], strict=True))
    for ai, _ in pairs:
        if ai not in _AIS:
            raise GS1Error(f"unknown application identifier ({ai})")
    return pairs


def _validate(ai: str, value: str, today: date) -> None:
    spec = _AIS[ai]
    if not value:
        raise GS1Error(f"AI ({ai}) has an empty value")
    if spec.fixed and len(value) != spec.length:
        raise GS1Error(f"AI ({ai}) must be {spec.length} characters, got {value!r}")
    if len(value) > spec.length:
        raise GS1Error(f"AI ({ai}) allows at most {spec.length} characters, got {len(value)}")
    if spec.numeric and not is_digits(value):
        raise GS1Error(f"AI ({ai}) must be numeric, got {value!r}")
    if not _CSET82.fullmatch(value):
        raise GS1Error(f"AI ({ai}) contains characters outside GS1 set 82: {value!r}")
    if spec.check and not has_valid_check_digit(value):
        raise GS1Error(f"AI ({ai}) {value} has a wrong check digit")
    if spec.date:
        _date(ai, value, today)


def _date(ai: str, value: str, today: date) -> date:
    yy, mm, dd = int(value[:2]), int(value[2:4]), int(value[4:])
    year = _century(yy, today)
    if not 1 <= mm <= 12:
        raise GS1Error(f"AI ({ai}) has invalid month in {value}")
    last_day = calendar.monthrange(year, mm)[1]
    if dd > last_day:
        raise GS1Error(f"AI ({ai}) has invalid day in {value}")
    # DD=00 means "end of that month" in GS1 dates.
    return date(year, mm, dd or last_day)


def _century(yy: int, today: date) -> int:
    """GS1 General Specifications 7.12: dates lie within -49/+50 years of today."""
    base = today.year - today.year % 100
    diff = yy - today.year % 100
    if diff >= 51:
        base -= 100
    elif diff <= -50:
        base += 100
    return base + yy


def _typed(elements: dict[str, str], today: date) -> GS1Data:
    def day(ai: str) -> date | None:
        return _date(ai, elements[ai], today) if ai in elements else None

    weight = next(((ai, v) for ai, v in elements.items() if ai.startswith("310")), None)
    return GS1Data(
        elements=elements,
        gtin=elements.get("01"),
        batch=elements.get("10"),
        serial=elements.get("21"),
        production_date=day("11"),
        packaging_date=day("13"),
        best_before=day("15"),
        expiry=day("17"),
        net_weight_kg=Decimal(weight[1]).scaleb(-int(weight[0][3])) if weight else None,
    )
