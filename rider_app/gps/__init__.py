"""GPS for the rider app: fixes from gpsd, an NMEA receiver or log, a GPX track or a
simulated route (``open_source``), pushed every few seconds by ``FixPusher`` with an on-disk
``OfflineBuffer`` for the time the rider is out of coverage."""

from rider_app.gps.base import GpsSource, GpsUnavailableError, TrackPlayback
from rider_app.gps.buffer import OfflineBuffer
from rider_app.gps.fix import Fix
from rider_app.gps.gpsd import GpsdSource
from rider_app.gps.gpx import GpxSource, parse_gpx
from rider_app.gps.nmea import NmeaDecoder, NmeaFileSource, NmeaSerialSource, parse_nmea
from rider_app.gps.pusher import FixPusher
from rider_app.gps.sim import SimSource, walk_route
from rider_app.gps.spec import open_source

__all__ = [
    "Fix",
    "FixPusher",
    "GpsSource",
    "GpsUnavailableError",
    "GpsdSource",
    "GpxSource",
    "NmeaDecoder",
    "NmeaFileSource",
    "NmeaSerialSource",
    "OfflineBuffer",
    "SimSource",
    "TrackPlayback",
    "open_source",
    "parse_gpx",
    "parse_nmea",
    "walk_route",
]
