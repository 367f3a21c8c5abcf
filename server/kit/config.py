"""One settings object for the whole backend, read from ``QC_*`` environment variables."""

from __future__ import annotations

import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from server.kit.embedded import private_file, secure_dir


class Settings(BaseSettings):
    """Runtime configuration. Unset database/redis URLs mean "start the embedded servers"."""

    model_config = SettingsConfigDict(env_prefix="QC_", env_file=".env", extra="ignore")

    home: Path = Field(default=Path(".qc"), description="Data folder of the embedded stack")
    database_url: str | None = Field(default=None, description="External PostgreSQL URL")
    redis_url: str | None = Field(
        default=None,
        description="External Redis URL; redis+cluster://[:pw@]host:port[,host:port] names a "
        "Redis/Valkey Cluster",
    )
    redis_cluster: int = Field(
        default=0, ge=0, description="Embedded mode: start a Valkey Cluster of this many masters"
    )
    database_name: str = "qc"
    # No usable default: embedded mode generates one per QC_HOME (see ``secret_key_value``).
    secret_key: SecretStr | None = None
    token_ttl_s: int = 12 * 3600
    # login throttling (server/identity/throttle.py): attempts per account (the account is
    # locked out until the window frees a slot, right PIN included) and failed logins
    # per client address
    login_attempts_per_account: str = "5/15 minutes"
    login_failures_per_address: str = "40/5 minutes"
    # production: no /docs, /redoc or /openapi.json, and /metrics only with its token
    production: bool = False
    metrics_token: SecretStr | None = Field(
        default=None, description="Bearer token /metrics asks for (required in production)"
    )
    # proxies whose X-Forwarded-For names the client (comma-separated addresses; empty:
    # trust none, so a client cannot pick its own address for the per-address limits)
    trusted_proxies: str = ""
    # request bodies over this are refused with 413 before they are read (the largest
    # legitimate one, a batch of rider fixes, is a few kilobytes)
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    # websockets: at most this many open at once per user (per API process), and how often
    # (real seconds) an open socket checks that its token has not expired
    ws_max_per_user: int = Field(default=8, ge=1)
    ws_recheck_s: float = Field(default=15.0, gt=0)

    # One clock (server/clock.py): the demo runs the world ``clock_speed`` times faster.
    clock_speed: float = 1.0
    clock_anchor: float | None = Field(
        default=None, description="Unix time at which the sped-up clock equals real time"
    )

    soft_hold_s: int = 600
    # a cart's holds renew with each change, but end this long after the cart was created
    cart_hold_life_s: int = Field(default=30 * 60, ge=60)
    # what one customer may hold: units of one SKU in a cart, and carts holding stock at
    # once (carts younger than their hold life), so no one takes a product's whole stock
    cart_max_units_per_sku: int = Field(default=10, ge=1)
    cart_max_holding: int = Field(default=3, ge=1)
    payment_window_s: int = 300
    # store policy "ask": the customer's time to answer a substitution offer (server clock),
    # then the store's fallback applies
    substitution_answer_s: int = Field(default=120, ge=10)
    sla_s: int = 15 * 60
    # payments: the simulated provider (a real one plugs in behind the same interface)
    payment_latency_s: float = 0.02
    payment_failure_rate: float = 0.0
    # seeds the simulated provider's draws: the same declines in the same order of charges
    payment_seed: int | None = None
    payment_timeout_s: float = 5.0
    payment_bulkhead: int = 64
    payment_webhook_secret: SecretStr | None = None

    # background loops (real seconds): expiry sweep, Redis/PostgreSQL reconciliation
    background_loops: bool = True
    # false: no API routes, only /healthz and /metrics (a worker running the loops)
    serve_api: bool = True
    sweep_interval_s: float = 1.0
    reconcile_interval_s: float = 30.0
    # soft holds reach PostgreSQL through the journal writer this often (leased loop)
    journal_interval_s: float = 0.05
    relay_interval_s: float = 0.2
    # reservation rows of ended holds are deleted once this old (server clock), at most
    # ``reservation_purge_batch`` a store each run of the per-store retention loop
    reservation_retention_s: int = Field(default=7 * 24 * 3600, ge=24 * 3600)
    reservation_purge_batch: int = Field(default=1000, ge=1)
    reservation_purge_interval_s: float = Field(default=5.0, gt=0)
    dispatch_interval_s: float = 1.0
    # Operations levers (issue 16 point 3), each switchable so the simulation can measure
    # it; all on by default. See docs/architecture.md, "Operations levers".
    work_push: bool = True  # new pick tasks and rider offers pushed over the websockets
    dispatch_preassign: bool = True  # a rider is assigned while the bag is being picked
    dispatch_batching: bool = True  # up to 3 drops in one direction per trip
    dispatch_busy_candidates: bool = True  # DELIVERING riders free within 3 min may be offered
    serviceability_dynamic: bool = True  # a store's reach shrinks while it can't keep the SLA
    serviceability_promise_s: int = 15 * 60  # ... the door within this of placing
    pick_walk_order: bool = True  # pick lists along the S-shaped walk (off: by aisle and bin)
    ops_feed_interval_s: float = 1.0  # control-tower socket: at most one update this often
    ops_alert_interval_s: float = 5.0  # re-evaluate condition alerts
    replenish_hour_ist: int = 2  # the daily replenishment job runs after this IST hour
    forecast_daily: bool = False  # also refit the forecast first (minutes of CPU)
    # flash sales (server/flash): virtual queue, checkout slots, rate limits, bulkheads
    flash_max_concurrent_checkouts: int = Field(default=100, ge=1)  # slots per sale and store
    flash_slot_seconds: int = Field(default=60, ge=5)  # an admitted customer's checkout time
    flash_token_grace_s: int = 600  # token holds outlive the sale end by this (a safety net)
    flash_tick_interval_s: float = 0.5  # leased loop: expire slots, admit, end sales
    # the waiting room opens this long before a sale starts (joins before: 409 not started)
    flash_prequeue_s: int = Field(default=900, ge=0)
    # admissions per second per store line (0: by slots and tokens only), at most
    # flash_admit_burst at once (server clock)
    flash_admit_rate_per_s: float = Field(default=0.0, ge=0)
    flash_admit_burst: int = Field(default=20, ge=1)
    checkout_rate_limit_per_ip: str = "100/minute"  # flash join and checkout, per client IP
    # regular cart checkouts (a customer checks out a few times an hour; a shared address,
    # e.g. an office behind one NAT, many times more)
    cart_checkout_limit_per_customer: str = "20/minute"
    cart_checkout_limit_per_address: str = "600/minute"
    # anonymous reads that cost work, per client address: search (a person types about a
    # query a second) and store selection (once per session); search takes at most
    # ``search_max_terms`` words
    search_limit_per_address: str = "300/minute"
    serviceable_limit_per_address: str = "120/minute"
    search_max_terms: int = Field(default=8, ge=1)
    flash_rate_limit_per_customer: str = "120/minute"  # every flash request of a customer
    flash_bulkhead_queue: int = Field(default=4, ge=1)  # queue requests at once, per process
    flash_bulkhead_checkout: int = Field(default=4, ge=1)  # flash checkouts at once
    flash_bulkhead_wait_s: float = 2.0  # then 503 flash_busy with Retry-After
    flash_payment_bulkhead: int = Field(default=16, ge=1)  # provider slots of flash checkouts
    # the waiting room (qc/serving.py): qc serve runs the queue's routes and socket in a
    # server of their own on this port (0: none, the API serves them alone), so a crowd's
    # joins never wait behind checkouts in the API's event loops; clients are sent there
    # by the sale's ``waiting_room_url`` (this URL; by default http://<host>:<port> of
    # qc serve's own address), and check out at the API
    waiting_room_port: int = Field(default=0, ge=0, le=65535)
    waiting_room_workers: int = Field(default=1, ge=1)
    waiting_room_url: str = ""
    # the room's server ("": qc serve's own, --server). uvicorn: at 8,000 customers
    # arriving at 2,000 a second with 2,000 sockets it answered ~25 % more joins a second
    # than granian (median 245 against 197, p99 269 against 329 ms) and held 110 KiB a
    # socket against 202 (granian's websockets preallocate a 128 KiB read buffer each)
    waiting_room_server: Literal["", "granian", "uvicorn"] = "uvicorn"
    # the room's niceness relative to qc serve's (negative: the OS runs it ahead of the
    # API on a shared machine; lowering it needs CAP_SYS_NICE, else it runs at the API's)
    waiting_room_nice: int = Field(default=-10, ge=-20, le=19)
    log_json: bool = True
    log_level: str = "INFO"
    # Connections per process, all kept once opened: a connection past the pool's size
    # ("overflow") is closed when given back, and a new PostgreSQL backend per burst
    # costs a fork and cold caches (a checkout load churned ~8 backends a second).
    db_pool_size: int = 30
    db_max_overflow: int = 0
    # a request that waits this long for a pooled connection is answered 503 + Retry-After
    db_pool_timeout_s: float = 30.0
    # a pooled connection idle this long is tested before use (one back sooner was just
    # used: the test would cost a round trip per transaction)
    db_ping_idle_s: float = Field(default=1.0, ge=0)

    @property
    def embedded_db(self) -> bool:
        return not self.database_url

    @property
    def embedded_redis(self) -> bool:
        return not self.redis_url

    def secret_key_value(self) -> str:
        """The token signing key: QC_SECRET_KEY, or a random one kept in QC_HOME (0600)."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        secure_dir(self.home, postgres_inside=True)
        return private_file(self.home / "secret_key", lambda: secrets.token_urlsafe(48))


def webhook_secret_value(settings: Settings) -> str:
    """The payment webhook signing secret; by default derived from the token key."""
    if settings.payment_webhook_secret is not None:
        return settings.payment_webhook_secret.get_secret_value()
    import hashlib
    import hmac

    return hmac.new(
        settings.secret_key_value().encode(), b"payment-webhooks", hashlib.sha256
    ).hexdigest()


@lru_cache
def get_settings() -> Settings:
    return Settings()
