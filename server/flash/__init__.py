"""Flash sales: inventory tokens, the virtual queue, checkout slots, rate limits, bulkheads.

``sales`` (create, stop, end; the reads), ``offers`` (live prices for the catalogue),
``entries`` (join, where am I, leave), ``admission`` (slots and token claims), ``checkout``
(a slot's unit through ``orders.flows``), ``tick`` (the leased loop), ``queue`` (the
line's Redis scripts), ``hub`` (socket fan-out), ``ratelimit``, ``errors``.
"""
