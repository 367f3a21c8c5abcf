"""Deterministic demo data: a realistic Bengaluru of dark stores."""
