"""Widgets of the rider app."""
