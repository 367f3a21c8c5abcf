"""Pick-path ordering and pick-time estimation."""
