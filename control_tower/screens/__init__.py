"""The control tower's screens: login, city overview, store drill-down, map, alerts, and
the small dialogs the manager's actions ask through."""
