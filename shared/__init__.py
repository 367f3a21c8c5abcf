"""qc: shared package."""
