from __future__ import annotations

from collections.abc import Callable

import pytest

from scanners.gs1 import GS
from scanners.symbology import (
    classify,
    ean8_check_digit,
    ean13_check_digit,
    ean13_of,
    gtin_of,
    is_valid_ean8,
    is_valid_ean13,
    is_valid_upca,
    split_symbology_id,
    upca_check_digit,
)
from scanners.types import Symbology

# Real published codes (retail items, GS1 examples, an ISBN-13).
EAN13 = ["4006381333931", "5901234123457", "9780306406157"]
EAN8 = ["96385074", "73513537"]
UPCA = ["036000291452", "012345678905", "042100005264"]


@pytest.mark.parametrize("code", EAN13)
def test_ean13_check_digit(code: str) -> None:
    assert ean13_check_digit(code[:12]) == code[12]
    assert is_valid_ean13(code)


@pytest.mark.parametrize("code", EAN8)
def test_ean8_check_digit(code: str) -> None:
    assert ean8_check_digit(code[:7]) == code[7]
    assert is_valid_ean8(code)


@pytest.mark.parametrize("code", UPCA)
def test_upca_check_digit(code: str) -> None:
    assert upca_check_digit(code[:11]) == code[11]
    assert is_valid_upca(code)


@pytest.mark.parametrize("code", EAN13 + EAN8 + UPCA)
def test_every_single_digit_error_is_caught(code: str) -> None:
    valid = {13: is_valid_ean13, 8: is_valid_ean8, 12: is_valid_upca}[len(code)]
    for i, digit in enumerate(code):
        for wrong in set("0123456789") - {digit}:
            assert not valid(code[:i] + wrong + code[i + 1 :]), (i, wrong)


def test_validity_needs_exact_length_and_digits() -> None:
    assert not is_valid_ean13("036000291452")  # a UPC-A is not an EAN-13 string
    assert not is_valid_upca("4006381333931")
    assert not is_valid_ean8("9638507x")
    full_width = "".join(chr(ord(c) + 0xFEE0) for c in "4006381333931")  # str.isdigit() is True
    assert not is_valid_ean13(full_width)


@pytest.mark.parametrize(
    ("fn", "body"),
    [
        (ean13_check_digit, "40063813339"),
        (ean8_check_digit, "96385074"),
        (upca_check_digit, "0360002914a"),
    ],
)
def test_check_digit_rejects_bad_body(fn: Callable[[str], str], body: str) -> None:
    with pytest.raises(ValueError, match="digits"):
        fn(body)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("4006381333931", Symbology.EAN13),
        ("0036000291452", Symbology.EAN13),
        ("036000291452", Symbology.UPCA),
        ("96385074", Symbology.EAN8),
        ("4006381333932", Symbology.UNKNOWN),  # bad check digit
        ("TOTE-0042", Symbology.UNKNOWN),
        ("10ABC", Symbology.UNKNOWN),  # parses as AI 10 but has no GS1 structure
        ("0109506000134352", Symbology.GS1_128),
        (f"0109506000134352{GS}", Symbology.GS1_128),
        ("(01)09506000134352(10)A1", Symbology.GS1_128),
        ("]E04006381333931", Symbology.EAN13),
        ("]E496385074", Symbology.EAN8),
        ("]C0TOTE-0042", Symbology.CODE128),
        ("]C10109506000134352", Symbology.GS1_128),
        ("]d2010950600013435210A1", Symbology.DATAMATRIX),
        ("]Q1https://example.com", Symbology.QR),
        ("]I012345678", Symbology.UNKNOWN),  # ITF
    ],
)
def test_classify(code: str, expected: Symbology) -> None:
    assert classify(code) is expected


def test_split_symbology_id() -> None:
    assert split_symbology_id("]C1abc") == ("]C1", "abc")
    assert split_symbology_id("abc") == (None, "abc")
    assert split_symbology_id("]") == (None, "]")


@pytest.mark.parametrize(
    ("code", "gtin", "ean13"),
    [
        ("4006381333931", "04006381333931", "4006381333931"),
        ("036000291452", "00036000291452", "0036000291452"),  # UPC-A -> '0' + UPC-A
        ("96385074", "00000096385074", "0000096385074"),  # EAN-8 zero-padded
        ("04006381333931", "04006381333931", "4006381333931"),  # GTIN-14 of a consumer unit
        ("14006381333938", "14006381333938", None),  # GTIN-14 of a case: no EAN-13
        ("]E04006381333931", "04006381333931", "4006381333931"),
        (f"]C10104006381333931{GS}10LOT7", "04006381333931", "4006381333931"),
        (f"0104006381333931{GS}10LOT7", "04006381333931", "4006381333931"),
        ("(01)00036000291452(17)251231", "00036000291452", "0036000291452"),
        ("]d21714063010LOT", None, None),  # GS1 without a GTIN
        ("]C10104006381333932", None, None),  # GS1 with a bad GTIN check digit
        ("4006381333932", None, None),
        ("TOTE-0042", None, None),
    ],
)
def test_gtin_and_ean13_of(code: str, gtin: str | None, ean13: str | None) -> None:
    assert gtin_of(code) == gtin
    assert ean13_of(code) == ean13
    if ean13 is not None:
        assert is_valid_ean13(ean13)
