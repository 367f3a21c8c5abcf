"""``python -m picker_app [--server URL] [--store ID] [--camera N|PATH] [--outbox FILE]``"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from qc_tui.api import DEFAULT_SERVER


def camera_source(value: str) -> int | str:
    """A device index (``0``) or a video file / stream URL."""
    return int(value) if value.isdigit() else value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m picker_app",
        description="qc picker terminal: queue, pick list with scanning, exceptions, pack.",
    )
    parser.add_argument("--server", default=DEFAULT_SERVER, help="API base URL (%(default)s)")
    parser.add_argument("--store", help="dark store id, e.g. BLR-KOR (default: the picker's)")
    parser.add_argument("--picker", help="prefill the picker login, e.g. picker.kor.1")
    parser.add_argument(
        "--camera",
        type=camera_source,
        metavar="N|PATH",
        help="also scan with a camera: a device index, a video file or a stream URL",
    )
    parser.add_argument(
        "--outbox",
        type=Path,
        metavar="FILE",
        help="keep unsent scans in this journal too, so they survive a restart",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from picker_app.app import PickerApp  # after parsing: --help stays fast

    app = PickerApp(
        server_url=args.server,
        store=args.store.upper() if args.store else None,
        login=args.picker,
        camera=args.camera,
        outbox_path=args.outbox,
    )
    app.run()
    return app.return_code or 0


if __name__ == "__main__":
    sys.exit(main())
