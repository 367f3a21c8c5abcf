"""Decode barcodes in an image with pyzbar (needs the libzbar0 system library) or zxing-cpp.

pyzbar is preferred when libzbar is installed; zxing-cpp (a pure wheel) is the fallback.
Force one with the ``decoder`` argument or ``QC_BARCODE_DECODER=pyzbar|zxing``.
Both return GS1 data in raw form, FNC1 as ASCII 29. zbar does not decode DataMatrix and
does not report GS1 mode, so with pyzbar GS1-128 is recognised from the data alone.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt
import zxingcpp

from scanners.symbology import classify
from scanners.types import Symbology


def _load_pyzbar() -> ModuleType | None:
    try:
        return importlib.import_module("pyzbar.pyzbar")
    except ImportError:  # raised at import when the zbar shared library is missing
        return None


_pyzbar = _load_pyzbar()

DecoderName = Literal["pyzbar", "zxing"]
DECODER_ENV = "QC_BARCODE_DECODER"


class DecoderUnavailableError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Decoded:
    text: str
    symbology: Symbology


_ZBAR_TYPES = {
    "EAN13": Symbology.EAN13,
    "ISBN13": Symbology.EAN13,
    "EAN8": Symbology.EAN8,
    "UPCA": Symbology.UPCA,
    "CODE128": Symbology.CODE128,
    "QRCODE": Symbology.QR,
}
_F = zxingcpp.BarcodeFormat
_ZXING_FORMATS = {
    _F.EAN13: Symbology.EAN13,
    _F.ISBN: Symbology.EAN13,
    _F.EAN8: Symbology.EAN8,
    _F.UPCA: Symbology.UPCA,
    _F.Code128: Symbology.CODE128,
    _F.DataMatrix: Symbology.DATAMATRIX,
    _F.QRCode: Symbology.QR,
    _F.MicroQRCode: Symbology.QR,
}


def available_decoders() -> tuple[DecoderName, ...]:
    return ("zxing",) if _pyzbar is None else ("pyzbar", "zxing")


def active_decoder(decoder: str | None = None) -> DecoderName:
    """The decoder that ``decode_image(image, decoder)`` will use."""
    choice = (decoder or os.environ.get(DECODER_ENV) or "").strip().lower()
    if not choice:
        return available_decoders()[0]
    if choice == "zxing":
        return "zxing"
    if choice == "pyzbar":
        if _pyzbar is None:
            raise DecoderUnavailableError("pyzbar needs the zbar library (apt install libzbar0)")
        return "pyzbar"
    raise ValueError(f"unknown barcode decoder {choice!r}; use 'pyzbar' or 'zxing'")


def decode_image(image: npt.NDArray[Any], decoder: str | None = None) -> list[Decoded]:
    """All barcodes in a grayscale, BGR or BGRA uint8 image."""
    gray = _to_gray(image)
    if active_decoder(decoder) == "pyzbar":
        return _decode_pyzbar(gray)
    return _decode_zxing(gray)


def _to_gray(image: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    if image.ndim == 2:
        return np.ascontiguousarray(image)
    if image.ndim == 3 and image.shape[2] in (3, 4):
        code = cv2.COLOR_BGR2GRAY if image.shape[2] == 3 else cv2.COLOR_BGRA2GRAY
        return np.asarray(cv2.cvtColor(image, code), np.uint8)
    raise ValueError(f"expected a grayscale, BGR or BGRA image, got shape {image.shape}")


def _decode_pyzbar(gray: npt.NDArray[np.uint8]) -> list[Decoded]:
    assert _pyzbar is not None  # active_decoder() checked
    found = []
    for symbol in _pyzbar.decode(gray):
        text = symbol.data.decode("utf-8", errors="replace")
        symbology = _ZBAR_TYPES.get(symbol.type, Symbology.UNKNOWN)
        if symbology is Symbology.CODE128 and classify(text) is Symbology.GS1_128:
            symbology = Symbology.GS1_128
        found.append(Decoded(text, symbology))
    return found


def _decode_zxing(gray: npt.NDArray[np.uint8]) -> list[Decoded]:
    found = []
    # Plain text mode keeps FNC1 as GS instead of rendering GS1 as "(01)...".
    for barcode in zxingcpp.read_barcodes(gray, text_mode=zxingcpp.TextMode.Plain):
        symbology = _ZXING_FORMATS.get(barcode.format, Symbology.UNKNOWN)
        if barcode.symbology_identifier == "]C1":
            symbology = Symbology.GS1_128
        found.append(Decoded(barcode.text, symbology))
    return found
