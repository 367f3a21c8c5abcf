"""Which product a scanned code names: plain EAN/UPC, or the GTIN inside a GS1 element
string, reduced to the EAN-13 the catalogue stores. The picker terminal and the server both
decide it here, so a scan the terminal counts is one the server accepts."""

from __future__ import annotations

from scanners.gs1 import GS1Error
from scanners.gs1 import parse as parse_gs1
from scanners.symbology import ean13_of


def item_barcode(code: str) -> str | None:
    """The catalogue's EAN-13 for a scan, or None if the scan names no consumer unit."""
    direct = ean13_of(code)
    if direct:
        return direct
    try:
        gtin = parse_gs1(code).gtin
    except GS1Error:
        return None
    return ean13_of(gtin) if gtin else None
