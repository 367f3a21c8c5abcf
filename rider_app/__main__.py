"""``python -m rider_app [--server URL] [--rider LOGIN] [--gps SPEC] [--buffer-dir DIR]``"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from qc_tui.api import DEFAULT_SERVER
from rider_app.gps import GpsSource, open_source
from rider_app.tracking import DEFAULT_BUFFER_DIR

GPS_HELP = (
    "where fixes come from: gpsd://[host][:port] · nmea:///dev/ttyUSB0[?baud=9600] · "
    "nmea+file:///log.nmea[?speed=K] · gpx:///track.gpx[?speed=K] · "
    "sim://?from=LAT,LNG&to=LAT,LNG[&via=LAT,LNG][&speed=M/S]. "
    "Without it the handheld rides its own trips (to the store, then each drop)"
)


def gps_source(spec: str) -> GpsSource:
    try:
        return open_source(spec)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m rider_app",
        description="qc rider handheld: shift, offers, pickup scan, drops with the OTP.",
    )
    parser.add_argument("--server", default=DEFAULT_SERVER, help="API base URL (%(default)s)")
    parser.add_argument("--rider", help="prefill the rider login, e.g. rider.001")
    parser.add_argument("--gps", type=gps_source, metavar="SPEC", help=GPS_HELP)
    parser.add_argument(
        "--buffer-dir",
        type=Path,
        default=DEFAULT_BUFFER_DIR,
        metavar="DIR",
        help="where fixes taken while offline are kept until sent (%(default)s)",
    )
    parser.add_argument(
        "--push-every",
        type=float,
        default=5.0,
        metavar="S",
        help="seconds between position pushes (%(default)s)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.push_every <= 0:
        print("--push-every must be positive", file=sys.stderr)
        return 2
    from textual.logging import TextualHandler

    from rider_app.app import RiderApp  # after parsing: --help stays fast

    # GPS, socket and buffer warnings go to the Textual log (textual console), not over
    # the screen
    logging.basicConfig(level=logging.INFO, handlers=[TextualHandler()])
    app = RiderApp(
        server_url=args.server,
        login=args.rider,
        gps=args.gps,
        buffer_dir=args.buffer_dir,
        push_interval_s=args.push_every,
        ride_along=args.gps is None,
    )
    app.run()
    return app.return_code or 0


if __name__ == "__main__":
    sys.exit(main())
