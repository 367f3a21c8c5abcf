"""Screens of the picker app: login, queue, pick list, exception flow, pack."""
