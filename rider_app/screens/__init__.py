"""Screens of the rider app: login, shift, trip (the assignment), pickup, drop, dialogs."""
