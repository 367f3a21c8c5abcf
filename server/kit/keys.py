"""Every Redis key name qc uses, built in one place.

Keys of one dark store carry the hash tag ``{store_id}`` so a Lua script over a store's
stock touches a single Redis Cluster slot. Layout:

====================================  ======  ==============================================
key                                   type    holds
====================================  ======  ==============================================
``inv:{S}:<sku>``                     hash    available, reserved, damaged, in_transit
``res:{S}:<holder>``                  hash    one field per SKU (held qty) + ``_state``
                                              (SOFT/HARD, or COMMITTED/RELEASED/EXPIRED
                                              tombstone) and ``_exp`` (expiry, unix s)
``resexp:{S}``                        zset    holder -> expiry (unix s): the sweeper's index
``invready:{S}``                      string  set by the reconciler once the store's stock
                                              is loaded; scripts refuse to work without it
``inflight:{S}``                      string  count of stock changes applied in Redis whose
                                              PostgreSQL write has not finished yet
``lock:{S}:rebuild``                  string  the rebuild lock of a store (SET NX PX)
``invlog:{S}``                        stream  soft-hold movements journaled by the Lua
                                              scripts, applied to PostgreSQL in batches
``invapplied:{S}``                    string  the last journal id PostgreSQL holds (a hint;
                                              the truth is ``inventory_journal_offsets``)
``invrepair``                         set     stores a request found drifted (a dead
                                              checkout's moved hold): the reconciler looks
                                              at them within a second, not at its next pass
``lease:{<name>}``                    hash    a background lease: owner, fencing token
                                              (``<name>`` is the loop, or loop:store)
``lease:{<name>}:fence``              string  its fence counter (INCR at each takeover)
``loop:{<name>}:replicas``            zset    replicas sharing a sharded loop -> expiry
``storesel:<version>:<cell>``         string  store selection for a ~150 m location cell
                                              (JSON, 30 s cache); bumping
                                              ``storesel:version`` invalidates every cell
``catalog:version``                   string  bumped after a catalogue change (prices, products,
                                              flash offers): replicas drop their in-process
                                              catalogue (``server.catalog.snapshot``)
``events:order:<order_id>``           pubsub  an order's state changes and rider fixes
``riders:geo:{C}``                    geo     live rider positions of city C (GEOADD/GEOSEARCH)
``rider:{C}:<rider_id>:fix``          hash    the rider's last fix: ``lat``, ``lng``, ``at``
                                              (RFC 3339), ``us`` (unix microseconds),
                                              ``speed``, ``battery``, ``acc``; ``rec``: the
                                              last fix sampled into the history
``rider:{C}:<rider_id>:track``        hash    what a fix needs of the rider (``duty``: on, off,
                                              offline) and their trip (``rows``: JSON, the
                                              trip, store and open stops); filled by a fix
                                              from PostgreSQL, dropped after each change
                                              (``server.delivery.tracking``), 2 min TTL
``rider:{C}:<rider_id>:trackseq``     string  bumped by each drop: a fill read before it is
                                              not written
``riderlog:{C}``                      stream  fixes sampled for the history, appended by
                                              ``delivery/fix.lua``, written to
                                              ``rider_locations`` in batches
``events:rider:<rider_id>``           pubsub  offers and trip changes for one rider
``events:picking:<store_id>``         pubsub  new pick tasks and claims, for the store's pickers
``auth:user:<user_id>``               string  the user's auth state (JSON: role, store, city,
                                              active, tokens_valid_after), 5 min; or a
                                              revocation mark ``revoked:<unix us>`` written
                                              with the logout (``identity.service``)
``dispatch:avoid:<order_id>``         set     riders who handed the order back (30 min)
``daily:<job>``                       string  the IST day a daily job last completed
``ops:asks:<day>``                    hash    serviceability asks of an IST day per store
                                              (``<S>:asked``, ``<S>:refused``), 2 days
``breaker:{name}``                    hash    a circuit breaker's state, generation, open_until
``breaker:{name}:window``             zset    its recent outcomes (``<seq>:ok|fail`` by time)
``breaker:{name}:trial``              string  the half-open trial permit (SET NX in Lua)
``flash:{F}:<S>:state``               hash    one sale's queue at one store: ``status``
                                              (open/closed), ``reason``, ``units``,
                                              ``avg_slot_s`` (how long a slot lasts, EWMA),
                                              ``started`` (0: joins go to the waiting
                                              room), ``budget``/``budget_at`` (admission
                                              rate); its absence means "load from
                                              PostgreSQL"
``flash:{F}:<S>:wait``                zset    customer -> join ticket: the waiting line
``flash:{F}:<S>:early``               zset    the waiting room: customers who joined before
                                              the start (score 0); ``start`` shuffles it
                                              into the line once
``flash:{F}:<S>:slots``               zset    customer -> slot expiry (unix s): who holds a
                                              checkout slot (and, in PostgreSQL, a token)
``flash:{F}:<S>:free``                string  tokens no slot holds yet (the admission gate)
``flash:{F}:entries``                 hash    customer -> store: one entry per customer
``flash:{F}:tickets``                 string  join counter of the sale (FIFO order)
``flash:{F}:admits``                  hash    customer -> admission number (while admitted)
``flash:{F}:admitted``                string  admission counter of the sale
``flash:{F}:bought``                  hash    customer -> units bought (SOLD tokens): the
                                              join's limit check; PostgreSQL decides at
                                              checkout
``events:flash:<F>:<S>``              pubsub  "the line moved" / "closed" for the sockets
``LIMITS:LIMITER/<scope>/<who>/...``  list    rate-limit windows, written by ``limits``
                                              (moving window); ``<scope>`` from
                                              ``rate_limit_scope``
====================================  ======  ==============================================

``<holder>`` is a cart id until checkout, then the order id; a flash-sale token's unit is
held by ``flash:<token_id>``. ``{F}`` is a flash sale id: every key of one sale shares
that hash tag, so each queue script touches one cluster slot.
"""

from __future__ import annotations


def inventory(store_id: str, sku_id: str) -> str:
    return f"inv:{{{store_id}}}:{sku_id}"


def hold(store_id: str, holder: str) -> str:
    return f"res:{{{store_id}}}:{holder}"


def hold_expiry(store_id: str) -> str:
    return f"resexp:{{{store_id}}}"


def store_ready(store_id: str) -> str:
    return f"invready:{{{store_id}}}"


def inflight(store_id: str) -> str:
    return f"inflight:{{{store_id}}}"


def rebuild_lock(store_id: str) -> str:
    return f"lock:{{{store_id}}}:rebuild"


def inventory_journal(store_id: str) -> str:
    return f"invlog:{{{store_id}}}"


def journal_applied(store_id: str) -> str:
    return f"invapplied:{{{store_id}}}"


def inventory_repairs() -> str:
    return "invrepair"


# A lease and its fence counter share the hash tag {name}: lease.lua touches one slot.
def lease(name: str) -> str:
    return f"lease:{{{name}}}"


def lease_fence(name: str) -> str:
    return f"lease:{{{name}}}:fence"


def loop_replicas(name: str) -> str:
    return f"loop:{{{name}}}:replicas"


def store_selection(version: int, cell: str) -> str:
    return f"storesel:{version}:{cell}"


STORE_SELECTION_VERSION = "storesel:version"

CATALOG_VERSION = "catalog:version"


def order_channel(order_id: str) -> str:
    return f"events:order:{order_id}"


# A breaker's three keys share the hash tag {name}: its script touches one cluster slot.
def breaker_state(name: str) -> str:
    return f"breaker:{{{name}}}"


def breaker_window(name: str) -> str:
    return f"breaker:{{{name}}}:window"


def breaker_trial(name: str) -> str:
    return f"breaker:{{{name}}}:trial"


# A city's rider keys share the hash tag {city}: the fix script touches one cluster slot.
def rider_geo(city_id: str) -> str:
    return f"riders:geo:{{{city_id}}}"


def rider_fix(city_id: str, rider_id: str) -> str:
    return f"rider:{{{city_id}}}:{rider_id}:fix"


def rider_track(city_id: str, rider_id: str) -> str:
    return f"rider:{{{city_id}}}:{rider_id}:track"


def rider_track_seq(city_id: str, rider_id: str) -> str:
    return f"rider:{{{city_id}}}:{rider_id}:trackseq"


def rider_locations(city_id: str) -> str:
    return f"riderlog:{{{city_id}}}"


def rider_channel(rider_id: str) -> str:
    return f"events:rider:{rider_id}"


def sessions_ended() -> str:
    """A user's id here ends every open socket of theirs (logout, disable): one channel for
    all users, which each process listens to once (``kit.sockets.SessionEnds``)."""
    return "events:sessions-ended"


def auth_user(user_id: str) -> str:
    return f"auth:user:{user_id}"


def picking_channel(store_id: str) -> str:
    return f"events:picking:{store_id}"


def dispatch_avoid(order_id: str) -> str:
    return f"dispatch:avoid:{order_id}"


def serviceability_asks(day: str) -> str:
    """Serviceability asks of one IST day per store (``{store}:asked``, ``{store}:refused``)."""
    return f"ops:asks:{day}"


def daily_job(name: str) -> str:
    return f"daily:{name}"


def sales_rollup_watermark() -> str:
    """The start of the first local hour the sales roll-up has not written yet (ISO)."""
    return "forecast:rollup:through"


# Flash sales: every key of one sale carries the hash tag {sale_id}.
def flash_state(sale_id: str, store_id: str) -> str:
    return f"flash:{{{sale_id}}}:{store_id}:state"


def flash_wait(sale_id: str, store_id: str) -> str:
    return f"flash:{{{sale_id}}}:{store_id}:wait"


def flash_early(sale_id: str, store_id: str) -> str:
    return f"flash:{{{sale_id}}}:{store_id}:early"


def flash_slots(sale_id: str, store_id: str) -> str:
    return f"flash:{{{sale_id}}}:{store_id}:slots"


def flash_free(sale_id: str, store_id: str) -> str:
    return f"flash:{{{sale_id}}}:{store_id}:free"


def flash_entries(sale_id: str) -> str:
    return f"flash:{{{sale_id}}}:entries"


def flash_tickets(sale_id: str) -> str:
    return f"flash:{{{sale_id}}}:tickets"


def flash_admits(sale_id: str) -> str:
    return f"flash:{{{sale_id}}}:admits"


def flash_admitted(sale_id: str) -> str:
    return f"flash:{{{sale_id}}}:admitted"


def flash_bought(sale_id: str) -> str:
    return f"flash:{{{sale_id}}}:bought"


def flash_channel(sale_id: str, store_id: str) -> str:
    return f"events:flash:{sale_id}:{store_id}"


def rate_limit_scope(name: str) -> str:
    """The namespace ``limits`` files a rate limit under (``LIMITS:LIMITER/<scope>/...``)."""
    return f"qc-{name}"
