"""qc: rider_app package."""
