"""qc: server package."""
