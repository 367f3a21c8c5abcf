"""Session fixtures: one generated world, and one model fitted on all of it."""

from __future__ import annotations

import pytest

from server.forecast.estimator import DemandModel
from tests.server.forecast.forecast_world import TEST_CONFIG, World, make_world


@pytest.fixture(scope="session")
def world() -> World:
    return make_world()


@pytest.fixture(scope="session")
def model(world: World) -> DemandModel:
    return DemandModel(TEST_CONFIG).fit(world.history, world.factors)
