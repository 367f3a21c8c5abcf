"""The living city behind ``qc demo``: customers, pickers and riders as asyncio tasks,
acting only through the public API and websockets, on the server's clock.

* ``run_demo`` (``qc demo``): the API server plus the simulation, then the report;
* ``run_simulation`` / ``Simulation``: the simulation against a running server;
* ``Report``: the figures, from PostgreSQL.
"""

from qc.sim.config import SimConfig
from qc.sim.demo import DemoSession, run_demo
from qc.sim.report import Report
from qc.sim.runner import Simulation, run_simulation

__all__ = ["DemoSession", "Report", "SimConfig", "Simulation", "run_demo", "run_simulation"]
