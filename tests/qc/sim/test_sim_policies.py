"""The simulated pickers work under every substitution policy the demo's stores have: a
store that asks its customers keeps the short line waiting on the answer (the simulated
customers answer it, most taking the substitute, before the 2 minutes are up; the store's
fallback decides for those who do not), then the picker fetches the substitute put in, or
not (refunded), and packs; a store that never substitutes refunds."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from qc.sim import SimConfig, run_simulation
from qc.sim.start import anchor_for, choose_start
from server.kit.clock import Clock
from server.kit.config import Settings
from tests.conftest import LiveServer, Services, settings_for

SPEED = 30.0
POLICIES = {
    "BLR-KOR": ("ask", "substitute"),
    "BLR-IND": ("ask", "refund"),
    "BLR-HSR": ("never", "substitute"),
}


@pytest.fixture
def clock() -> Clock:
    # the evening peak, whatever the time of day the suite runs at (stores close 02-06)
    start = choose_start(start_at=(18, 30), timezone="Asia/Kolkata", latest=None)
    anchor, _ = anchor_for(start, speed=SPEED)
    return Clock(speed=SPEED, anchor=anchor)


@pytest.fixture
def settings(services: Services) -> Settings:
    return settings_for(
        services,
        clock_speed=SPEED,
        background_loops=True,  # the fallback of unanswered offers is a loop's
        dispatch_interval_s=0.3,
        sweep_interval_s=0.5,
        relay_interval_s=0.1,
        substitution_answer_s=120,  # the default: the customers' think time is drawn for it
    )


@pytest.mark.alone
@pytest.mark.slow
async def test_pickers_wait_on_the_customer_where_the_store_asks_and_never_substitute_elsewhere(
    city: Services, live_server: LiveServer
) -> None:
    with psycopg.connect(city.database_url, autocommit=True) as conn:
        for store_id, (policy, fallback) in POLICIES.items():
            conn.execute(
                "UPDATE dark_stores SET substitution_policy = %s, substitution_fallback = %s "
                "WHERE store_id = %s",
                (policy, fallback, store_id),
            )
    config = SimConfig(
        orders_per_minute=3.0,
        customers=5,
        pickers_per_store=2,
        riders_per_store=2,
        leave_for_humans=False,
        short_pick_rate=0.5,
        substitute_rate=1.0,
        seed=3,
    )
    report = await run_simulation(
        live_server.url,
        clock=live_server.clock,
        database_url=city.database_url,
        config=config,
        duration_s=30,
    )
    # no picker tripped on a policy (customer_decides, awaiting_customer at the pack), and
    # an answer too late (offer_closed) is an outcome the customers count, not an error
    assert not [k for k in report.errors if k.startswith(("picker", "substitution"))], report.errors
    assert report.oversells == 0 and report.ledger_mismatches == 0

    # settled this long before the end: the picker has fetched what came of it and packed
    due = live_server.clock.now() - timedelta(minutes=3)
    with psycopg.connect(city.database_url) as conn:
        offers = conn.execute(
            "SELECT f.store_id, f.status, f.decided_by, f.expires_at, f.resolved_at, t.status "
            "FROM substitution_offers f "
            "JOIN pick_tasks t ON t.store_id = f.store_id AND t.order_id = f.order_id"
        ).fetchall()
        substituted_at = {
            r[0]
            for r in conn.execute(
                "SELECT DISTINCT store_id FROM order_items WHERE substitute_sku IS NOT NULL"
            )
        }
    assert offers, "no short line was offered to a customer"
    assert {store for store, *_ in offers} <= {"BLR-KOR", "BLR-IND"}  # never: no offer
    settled = [o for o in offers if o[3] < due]
    assert settled, offers
    for store, status, decided_by, _, _, task in settled:
        if decided_by == "timeout":  # nobody answered: the store's fallback
            assert status == ("SUBSTITUTED" if POLICIES[store][1] == "substitute" else "REFUNDED")
        # answered or not, the picker then packed the order
        assert decided_by in ("customer", "timeout") and task == "PACKED", offers
    assert "BLR-HSR" not in substituted_at  # never: a short line is refunded

    # the customers answer on the tracking socket, before the 2 minutes are up, and most
    # take the substitute: what each counted is what the database shows them deciding (a
    # reply still on its way at the end of the run is in the database only)
    answered = [o for o in offers if o[2] == "customer"]
    assert answered and all(resolved < expires for *_, expires, resolved, _ in answered)
    took = sum(1 for o in answered if o[1] == "SUBSTITUTED")
    accepted = report.simulation.get("substitution:accepted", 0)
    assert 0 < accepted <= took, (report.simulation, offers)
    refused = report.simulation.get("substitution:refused", 0)
    assert refused <= len(answered) - took, (report.simulation, offers)
