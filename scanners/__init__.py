"""qc: scanners package."""
