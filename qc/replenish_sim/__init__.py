"""A closed-loop month of replenishment, judged by outcome (``qc replenish simulate``)."""
