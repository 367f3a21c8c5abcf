"""qc: picker_app package."""
