from __future__ import annotations

import pytest

from scanners.gs1 import GS
from scanners.resolve import item_barcode


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("4006381333931", "4006381333931"),  # EAN-13 as stored
        ("036000291452", "0036000291452"),  # UPC-A gains a leading 0
        ("]E04006381333931", "4006381333931"),  # with the scanner's AIM identifier
        (f"010950600013435210ABC123{GS}21SN-0001", "9506000134352"),  # raw GS1
        ("(01)09506000134352(17)251231", "9506000134352"),  # GS1 as printed
        ("]C1010950600013435210ABC", "9506000134352"),  # GS1-128 with its identifier
    ],
)
def test_resolves_to_the_catalogue_ean13(code: str, expected: str) -> None:
    assert item_barcode(code) == expected


@pytest.mark.parametrize(
    "code",
    [
        "4006381333932",  # bad check digit
        "hello",
        "(01)19506000134359",  # a case (indicator digit 1) has no EAN-13
        "(10)ABC123",  # GS1 without a GTIN
    ],
)
def test_no_product_for_codes_naming_none(code: str) -> None:
    assert item_barcode(code) is None
