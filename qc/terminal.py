"""What every `qc` command shares: the error console, a failure that exits 2 with one
line naming the problem, and the database brought to the newest migration."""

from __future__ import annotations

import typer
from rich.console import Console

from server.kit.config import Settings
from server.kit.embedded import ServiceConfigError

console = Console(stderr=True)


def fail(message: str) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code=2)


def database(settings: Settings) -> str:
    """The database URL (embedded or configured), migrated; a bad one exits with its reason."""
    from server.kit.db import resolve_database_url
    from server.kit.migrate import upgrade_to_head

    try:
        url = resolve_database_url(settings)
    except ServiceConfigError as exc:
        raise fail(str(exc)) from None
    upgrade_to_head(url)
    return url
