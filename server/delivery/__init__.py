"""Rider assignment, batching and ETA planning."""
