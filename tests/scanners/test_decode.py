from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import zxingcpp

from scanners import decode
from scanners.decode import (
    DECODER_ENV,
    Decoded,
    DecoderUnavailableError,
    active_decoder,
    available_decoders,
    decode_image,
)
from scanners.gs1 import GS, parse
from scanners.symbology import ean13_of
from scanners.types import Symbology

F = zxingcpp.BarcodeFormat
Render = Callable[..., np.ndarray]

CASES = [
    ("4006381333931", F.EAN13, Symbology.EAN13),
    ("96385074", F.EAN8, Symbology.EAN8),
    ("TOTE-0042/B", F.Code128, Symbology.CODE128),
    ("https://qc.example/pick/7781?bin=A-03", F.QRCode, Symbology.QR),
]


@pytest.mark.parametrize(("text", "fmt", "symbology"), CASES)
def test_decodes_generated_symbols(
    decoder: str, render: Render, text: str, fmt: F, symbology: Symbology
) -> None:
    assert decode_image(render(text, fmt), decoder) == [Decoded(text, symbology)]


def test_decodes_bgr_camera_frame(decoder: str, render: Render, on_canvas: Render) -> None:
    frame = on_canvas(render("4006381333931", F.EAN13))
    assert frame.shape == (480, 640, 3)
    assert decode_image(frame, decoder) == [Decoded("4006381333931", Symbology.EAN13)]


def test_upca_symbol_reads_as_its_ean13_key(decoder: str, render: Render) -> None:
    [found] = decode_image(render("036000291452", F.UPCA), decoder)
    assert ean13_of(found.text) == "0036000291452"


def test_gs1_128_keeps_fnc1_as_gs(decoder: str, render: Render) -> None:
    image = render("(01)09506000134352(10)LOT7(3103)000450", F.Code128, gs1=True)
    [found] = decode_image(image, decoder)
    assert found == Decoded(f"010950600013435210LOT7{GS}3103000450", Symbology.GS1_128)
    assert parse(found.text).batch == "LOT7"


def test_zxing_reads_gs1_datamatrix(render: Render) -> None:
    image = render("(01)09506000134352(17)261231(21)SN9", F.DataMatrix, gs1=True)
    [found] = decode_image(image, "zxing")
    assert found.symbology is Symbology.DATAMATRIX
    assert parse(found.text).serial == "SN9"


def test_blank_image_has_no_codes(decoder: str, on_canvas: Render) -> None:
    assert decode_image(on_canvas(), decoder) == []


@pytest.mark.parametrize("shape", [(10, 10, 2), (10,)])
def test_rejects_unsupported_images(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="image"):
        decode_image(np.zeros(shape, np.uint8), "zxing")


def test_rejects_non_uint8_image() -> None:
    with pytest.raises(ValueError, match="uint8"):
        decode_image(np.zeros((10, 10), np.float32), "zxing")


def test_default_prefers_pyzbar_when_libzbar_is_present(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DECODER_ENV, raising=False)
    assert active_decoder() == ("pyzbar" if "pyzbar" in available_decoders() else "zxing")
    monkeypatch.setattr(decode, "_pyzbar", None)
    assert active_decoder() == "zxing"


def test_env_var_and_argument_select_the_decoder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DECODER_ENV, " ZXING ")
    assert active_decoder() == "zxing"
    if "pyzbar" in available_decoders():
        assert active_decoder("pyzbar") == "pyzbar"  # the argument wins over the environment
    monkeypatch.setenv(DECODER_ENV, "zbarcam")
    with pytest.raises(ValueError, match="unknown barcode decoder"):
        active_decoder()


def test_forcing_pyzbar_without_libzbar_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(decode, "_pyzbar", None)
    assert available_decoders() == ("zxing",)
    with pytest.raises(DecoderUnavailableError, match="libzbar0"):
        decode_image(np.zeros((10, 10), np.uint8), "pyzbar")
