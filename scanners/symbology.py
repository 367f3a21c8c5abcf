"""Retail check digits, symbology classification and GTIN / EAN-13 normalisation.

Keys: ``gtin_of`` returns the 14-digit GTIN, GS1's canonical form for every trade item.
``ean13_of`` returns the 13-digit EAN-13 the product table stores, which exists for every
consumer unit (GTIN-14 starting with 0) but not for cases (GTIN-14 indicator digit 1-9).
"""

from __future__ import annotations

from scanners.gs1 import (
    GS,
    GS1_SYMBOLOGY_IDS,
    GS1Error,
    check_digit,
    has_valid_check_digit,
    is_digits,
    parse,
)
from scanners.types import Symbology


def _body(body: str, length: int, name: str) -> str:
    if len(body) != length or not is_digits(body):
        raise ValueError(f"{name} body must be {length} digits, got {body!r}")
    return check_digit(body)


def ean13_check_digit(body: str) -> str:
    """Check digit for the first 12 digits of an EAN-13."""
    return _body(body, 12, "EAN-13")


def ean8_check_digit(body: str) -> str:
    """Check digit for the first 7 digits of an EAN-8."""
    return _body(body, 7, "EAN-8")


def upca_check_digit(body: str) -> str:
    """Check digit for the first 11 digits of a UPC-A."""
    return _body(body, 11, "UPC-A")


def is_valid_ean13(code: str) -> bool:
    return len(code) == 13 and has_valid_check_digit(code)


def is_valid_ean8(code: str) -> bool:
    return len(code) == 8 and has_valid_check_digit(code)


def is_valid_upca(code: str) -> bool:
    return len(code) == 12 and has_valid_check_digit(code)


def split_symbology_id(code: str) -> tuple[str | None, str]:
    """Split an AIM symbology identifier (``]E0``, ``]C1``, ...) off a scanner's output."""
    if len(code) >= 3 and code[0] == "]" and code[1].isalpha() and code[2].isalnum():
        return code[:3], code[3:]
    return None, code


def classify(code: str) -> Symbology:
    """Best guess of the symbology behind ``code``.

    With an AIM identifier this is exact. Without one only what the data proves is used:
    valid EAN-13 / UPC-A / EAN-8 digits, or a GS1 element string (reported as GS1-128, since
    the carrier cannot be told from the data). Anything else is UNKNOWN.
    """
    ident, data = split_symbology_id(code)
    if ident is None:
        return _classify_digits(data) or (
            Symbology.GS1_128 if _is_unmarked_gs1(data) else Symbology.UNKNOWN
        )
    match ident[1]:
        case "E":
            return _classify_digits(data) or Symbology.UNKNOWN
        case "C":
            return Symbology.GS1_128 if ident == "]C1" else Symbology.CODE128
        case "d":
            return Symbology.DATAMATRIX
        case "Q":
            return Symbology.QR
        case _:
            return Symbology.UNKNOWN


def gtin_of(code: str) -> str | None:
    """The 14-digit GTIN a scan identifies (EAN-13, EAN-8, UPC-A, GTIN-14 or GS1 AI 01)."""
    ident, data = split_symbology_id(code)
    if ident in GS1_SYMBOLOGY_IDS or (ident is None and _is_unmarked_gs1(data)):
        try:
            return parse(data).gtin
        except GS1Error:
            return None
    if len(data) in (8, 12, 13, 14) and has_valid_check_digit(data):
        return data.zfill(14)
    return None


def ean13_of(code: str) -> str | None:
    """The EAN-13 product key a scan refers to: UPC-A gains a leading 0, EAN-8 is zero-padded
    as GS1 prescribes, GTIN-14 loses its leading 0. None if there is no such key."""
    gtin = gtin_of(code)
    return gtin[1:] if gtin is not None and gtin[0] == "0" else None


def _classify_digits(data: str) -> Symbology | None:
    if is_valid_ean13(data):
        return Symbology.EAN13
    if is_valid_upca(data):
        return Symbology.UPCA
    if is_valid_ean8(data):
        return Symbology.EAN8
    return None


def _is_unmarked_gs1(data: str) -> bool:
    """GS1 data without a symbology identifier. Only accepted when it shows GS1 structure
    (FNC1, parentheses) or opens with an identification key, because plain alphanumerics
    like "10ABC" would otherwise parse as AI 10."""
    if not (GS in data or data.startswith(("(", "00", "01", "02"))):
        return False
    try:
        parse(data)
    except GS1Error:
        return False
    return True
