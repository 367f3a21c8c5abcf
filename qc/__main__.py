"""``python -m qc``: the same as the ``qc`` command."""

from qc.cli import app

app()
