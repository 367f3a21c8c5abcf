"""The control tower's tests: a real-socket fake of the ops feed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.control_tower.ct_app_fakes import FakeFeedServer


@pytest.fixture
def feed() -> Iterator[FakeFeedServer]:
    with FakeFeedServer() as server:
        yield server
