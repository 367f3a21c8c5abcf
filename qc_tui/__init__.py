"""What the staff terminals (picker_app, rider_app, control_tower) share: the server's clock,
the connection state and its banner, the login screen, keyboard-wedge input and the small
dialogs. Imports neither the server, the umbrella ``qc`` nor any app."""
