"""Widgets of the picker app."""
