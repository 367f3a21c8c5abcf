"""The simulation's knobs: how many people, how often things go wrong."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_TIMEZONE = "Asia/Kolkata"  # the seeded city's (Bengaluru)


@dataclass(frozen=True)
class SimConfig:
    """Rates are per simulated minute/hour; probabilities are per event.

    The order rate is city-wide: ``orders_per_minute`` is the base, shaped by the time of
    day (morning and evening peaks, see ``demand.hourly_profile``).
    """

    orders_per_minute: float = 1.5
    customers: int = 50  # customer.001 ... customer.NNN (fewer if the seed has fewer)
    pickers_per_store: int = 2
    riders_per_store: int = 3
    # leave picker.<store>.1 and the first rider of every store to humans with the apps
    leave_for_humans: bool = True
    timezone: str = DEFAULT_TIMEZONE
    seed: int = 1

    # customers
    abandon_rate: float = 0.06  # cart filled, then left to expire
    customer_cancel_rate: float = 0.02  # cancels right after paying (before picking)
    # a short line the store asks about (policy ask): the push, the app opened, the choice
    # read. Most take the proposed product (nearest in size and price, at no more than the
    # original's price); the rest are split between a refusal and no answer at all
    substitution_refuse_rate: float = 0.15  # wanted that product or none: refunded
    substitution_silent_rate: float = 0.15  # the phone in a pocket: the store's fallback decides
    # think time, lognormal: median 40 s, p90 ~75 s, so ~1.5 % answer after the server's
    # 2 minutes (QC_SUBSTITUTION_ANSWER_S) and are told offer_closed
    substitution_think_s: float = 40.0
    substitution_think_sigma: float = 0.5
    max_concurrent_journeys: int = 200

    # pickers
    wrong_scan_rate: float = 0.03  # per line: the neighbouring product scanned first
    short_pick_rate: float = 0.03  # per line: fewer units on the shelf than the books say
    substitute_rate: float = 0.7  # a short line filled with an offered substitute
    queue_poll_s: float = 30.0  # an idle picker glances at the queue this often

    # riders
    speed_kmh: tuple[float, float] = (20.0, 25.0)
    fix_interval_s: float = 5.0  # while moving
    # standing still (at the store, at a door), the handheld's distance filter holds fixes
    # back to one this often: the dispatcher still hears from every rider well within the
    # 2 minutes after which it takes a trip back
    still_fix_interval_s: float = 30.0
    reject_offer_rate: float = 0.04
    wrong_otp_rate: float = 0.03  # mistyped once, then right
    failed_drop_rate: float = 0.01  # nobody home
    signal_loss_per_hour: float = 0.3  # per rider: a dead zone for a minute or two
    break_per_hour: float = 0.15  # per idle rider: off shift for a while
    offer_check_s: float = 45.0  # an idle rider glances at the trip screen this often
