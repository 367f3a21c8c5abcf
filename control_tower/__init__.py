"""qc: control_tower package."""
