"""Flash sales: inventory tokens, the virtual queue, checkout slots, rate limits, bulkheads."""
