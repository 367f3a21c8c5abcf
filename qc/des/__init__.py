"""``qc simulate``: a deterministic, discrete-event day of the seeded city.

Simulated time jumps from event to event on a manual clock; every event calls the
server's own code (store selection, carts and checkout, the pick queue, dispatch and
trips, the sweeps) in-process against real PostgreSQL and Redis, one event at a time,
so one seed gives the same figures on an idle or a loaded machine.

``qc.des.runner.simulate`` runs a day on given services; ``qc.des.stack`` provides them.
"""

from qc.des.config import DesConfig, Physics, Policies, Staffing
from qc.des.report import DesReport

__all__ = ["DesConfig", "DesReport", "Physics", "Policies", "Staffing"]
