"""``python -m control_tower [--server URL] [--city BLR] [--login manager.blr]
[--password-env VAR | --token-env VAR] [--tz ZONE]``"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from qc_tui.api import DEFAULT_SERVER


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m control_tower",
        description="qc control tower: a city manager's live view of stores, orders, riders "
        "and alerts, with the manager's actions.",
    )
    parser.add_argument("--server", default=DEFAULT_SERVER, help="API base URL (%(default)s)")
    parser.add_argument("--city", help="city to watch, e.g. BLR (default: the manager's own)")
    parser.add_argument("--login", help="prefill the manager login, e.g. manager.blr")
    secret = parser.add_mutually_exclusive_group()
    secret.add_argument(
        "--password-env",
        metavar="VAR",
        help="log in at once with the password in this environment variable (needs --login)",
    )
    secret.add_argument(
        "--token-env",
        metavar="VAR",
        help="use the bearer token in this environment variable (e.g. from `qc token`)",
    )
    parser.add_argument(
        "--tz",
        default="city",
        metavar="ZONE",
        help="zone the times are shown in: 'city' (the city's, e.g. Asia/Kolkata for BLR), "
        "'local' (this machine's) or a zone name such as UTC (default: %(default)s)",
    )
    return parser.parse_args(argv)


def display_zone(flag: str) -> tzinfo | None:
    """The ``--tz`` choice as a zone; None means the city's. Raises ValueError for a zone
    this machine does not know."""
    if flag.lower() == "city":
        return None
    if flag.lower() == "local":
        return datetime.now().astimezone().tzinfo
    try:
        return ZoneInfo(flag)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown time zone {flag!r} (try UTC, Asia/Kolkata, city or local)"
        ) from exc


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        tz = display_zone(args.tz)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    password = token = None
    if args.password_env:
        if not args.login:
            print("--password-env needs --login", file=sys.stderr)
            return 2
        password = os.environ.get(args.password_env)
        if not password:
            print(f"environment variable {args.password_env} is not set", file=sys.stderr)
            return 2
    if args.token_env:
        token = os.environ.get(args.token_env)
        if not token:
            print(f"environment variable {args.token_env} is not set", file=sys.stderr)
            return 2
    from control_tower.app import ControlTowerApp  # after parsing: --help stays fast

    app = ControlTowerApp(
        server_url=args.server,
        city=args.city,
        login=args.login,
        password=password,
        token=token,
        tz=tz,
    )
    app.run()
    return app.return_code or 0


if __name__ == "__main__":
    sys.exit(main())
