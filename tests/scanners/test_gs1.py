from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from scanners.gs1 import GS, GS1Error, check_digit, parse

TODAY = date(2025, 6, 1)
RAW = f"010950600013435210ABC123{GS}17251231310300045021SN-0001"
HRI = "(01)09506000134352(10)ABC123(17)251231(3103)000450(21)SN-0001"


@pytest.mark.parametrize(
    "data", [RAW, HRI, f"]C1{RAW}", f"]d2{RAW}", f"]Q3{RAW}", f"{GS}{RAW}", f"]C1{HRI}"]
)
def test_parse_all_forms(data: str) -> None:
    result = parse(data, today=TODAY)
    assert result.gtin == "09506000134352"
    assert result.batch == "ABC123"
    assert result.expiry == date(2025, 12, 31)
    assert result.net_weight_kg == Decimal("0.450")
    assert result.serial == "SN-0001"
    assert list(result.elements) == ["01", "10", "17", "3103", "21"]


def test_variable_field_at_end_needs_no_separator_and_fixed_field_tolerates_one() -> None:
    result = parse(f"17251231{GS}10LOT{GS}21X", today=TODAY)
    assert result.elements == {"17": "251231", "10": "LOT", "21": "X"}


@pytest.mark.parametrize(
    ("data", "field", "expected"),
    [
        ("11250115", "production_date", date(2025, 1, 15)),
        ("13250116", "packaging_date", date(2025, 1, 16)),
        ("15250117", "best_before", date(2025, 1, 17)),
        ("17240200", "expiry", date(2024, 2, 29)),  # DD=00: last day, leap year
        ("17250200", "expiry", date(2025, 2, 28)),
        ("17251100", "expiry", date(2025, 11, 30)),
        ("17751231", "expiry", date(2075, 12, 31)),  # within +50 years of today
        ("17760101", "expiry", date(1976, 1, 1)),  # more than 50 ahead: last century
    ],
)
def test_dates(data: str, field: str, expected: date) -> None:
    assert getattr(parse(data, today=TODAY), field) == expected


@pytest.mark.parametrize(
    ("data", "kg"),
    [
        ("3100000005", Decimal(5)),
        ("3102001234", Decimal("12.34")),
        ("3105123456", Decimal("1.23456")),
    ],
)
def test_net_weight_decimals(data: str, kg: Decimal) -> None:
    weight = parse(data, today=TODAY).net_weight_kg
    assert weight == kg
    assert weight is not None and weight.as_tuple().exponent == -int(data[3])


def test_sscc_and_other_keys_are_check_digit_validated() -> None:
    sscc = "10614141123456789" + check_digit("10614141123456789")
    assert parse(f"00{sscc}").elements == {"00": sscc}
    with pytest.raises(GS1Error, match="check digit"):
        parse(f"00{sscc[:-1]}{(int(sscc[-1]) + 1) % 10}")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("", "empty"),
        (GS, "empty"),
        ("]C0PICK-42", "does not carry GS1"),
        ("]E04006381333931", "does not carry GS1"),
        ("0109506000134353", "check digit"),
        ("01095060001343", "truncated"),
        ("(01)0950600013435", "must be 14"),
        ("7712345", "unknown application identifier"),
        ("3106000450", "unknown application identifier"),  # at most 5 decimals
        ("(01)09506000134352(77)1", r"unknown application identifier \(77\)"),
        ("(1)(01)09506000134352", "before first AI"),
        ("x(01)09506000134352", "unknown application identifier"),
        ("(01)09506000134352(10)", "empty value"),
        ("17251301", "invalid month"),
        ("17250230", "invalid day"),
        ("1712AB01", "numeric"),
        ("30ABC", "numeric"),
        ("10" + "L" * 21, "at most 20"),
        ("10AB\x07CD", "set 82"),
        ("10AB CD", "set 82"),
        ("(10)A(10)B", "repeated"),
    ],
)
def test_malformed_input_raises(data: str, message: str) -> None:
    with pytest.raises(GS1Error, match=message):
        parse(data, today=TODAY)


def test_gs1_error_is_a_value_error() -> None:
    assert issubclass(GS1Error, ValueError)


def test_repeated_identical_element_is_accepted() -> None:
    assert parse("(10)A(10)A").elements == {"10": "A"}


def test_check_digit_rejects_non_digits() -> None:
    with pytest.raises(ValueError, match="digits"):
        check_digit("12a")
