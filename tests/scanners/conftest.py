"""Barcode images are generated on the fly with zxing-cpp's writer: nothing on disk, no network."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest
import zxingcpp

from scanners.decode import available_decoders

Image = npt.NDArray[np.uint8]


def _render(content: str, fmt: zxingcpp.BarcodeFormat, *, gs1: bool = False) -> Image:
    """A clean grayscale symbol with quiet zones, scaled up like a close camera shot."""
    return np.asarray(zxingcpp.create_barcode(content, fmt, gs1=gs1).to_image(scale=4))


def _on_canvas(symbol: Image | None = None) -> Image:
    """A white 640x480 BGR frame, as a camera delivers it, with ``symbol`` pasted in."""
    frame = np.full((480, 640, 3), 255, np.uint8)
    if symbol is not None:
        h, w = symbol.shape
        frame[40 : 40 + h, 40 : 40 + w] = symbol[:, :, None]
    return frame


@pytest.fixture
def render() -> Callable[..., Image]:
    return _render


@pytest.fixture
def on_canvas() -> Callable[..., Image]:
    return _on_canvas


@pytest.fixture(params=["pyzbar", "zxing"])
def decoder(request: pytest.FixtureRequest) -> str:
    if request.param not in available_decoders():
        pytest.skip("pyzbar needs the libzbar0 system package")
    return str(request.param)
