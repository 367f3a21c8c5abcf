"""QC_PICK_WALK_ORDER: the pick list follows the S-shaped walk; switched off (to measure
what the walk saves) it is by bin code, aisle after aisle, each walked the same way."""

from __future__ import annotations

import psycopg
import pytest

from server.seed.generate import DEMO_SECRETS
from shared.enums import Role
from tests.conftest import settings_for
from tests.helpers import login
from tests.server.picking.test_picking_api import place_confirmed_order


@pytest.fixture
def settings(services, request: pytest.FixtureRequest):
    return settings_for(services, pick_walk_order=getattr(request, "param", True))


def _walk_against_bins(url: str) -> None:
    """A walk that visits the store's bins in the reverse of their codes, so the two
    orders of a list always differ."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "UPDATE store_bins b SET walk_seq = 100000 + r.n FROM (SELECT bin_code, "
            "row_number() OVER (ORDER BY bin_code DESC) AS n FROM store_bins "
            "WHERE store_id = 'BLR-KOR') r WHERE b.store_id = 'BLR-KOR' AND b.bin_code = r.bin_code"
        )


@pytest.mark.parametrize("settings", [True, False], indirect=True, ids=["walk", "aisle"])
async def test_the_pick_list_order_follows_the_lever(city, client, settings) -> None:
    _walk_against_bins(city.database_url)
    order = await place_confirmed_order(client, city.database_url, lines=4)
    picker = await login(client, "picker.kor.1", DEMO_SECRETS[Role.PICKER])
    task = (await client.post("/v1/picking/claim", headers=picker)).json()
    assert task["order_id"] == order["order_id"] and len(task["lines"]) == 4
    again = (await client.get(f"/v1/picking/tasks/{order['order_id']}", headers=picker)).json()
    for listed in (task["lines"], again["lines"]):
        walk = [ln["walk_seq"] for ln in listed]
        bins = [ln["bin_code"] for ln in listed]
        if settings.pick_walk_order:
            assert walk == sorted(walk) and bins != sorted(bins)
        else:
            assert bins == sorted(bins) and walk != sorted(walk)
