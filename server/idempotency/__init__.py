"""Idempotency-Key: a replayed request gets the first answer."""
