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
``lease:<name>``                      string  a background loop's leader lease
``storesel:<version>:<cell>``         string  store selection for a ~150 m location cell
                                              (JSON, 30 s cache); bumping
                                              ``storesel:version`` invalidates every cell
``events:order:<order_id>``           pubsub  an order's state changes and rider fixes
``riders:geo:<city>``                 geo     live rider positions of a city (GEOADD/GEOSEARCH)
``rider:<rider_id>:fix``              hash    the rider's last fix (lat, lng, at, speed)
``events:rider:<rider_id>``           pubsub  offers and trip changes for one rider
``dispatch:avoid:<order_id>``         set     riders who handed the order back (30 min)
``breaker:{name}``                    hash    a circuit breaker's state, generation, open_until
``breaker:{name}:window``             zset    its recent outcomes (``<seq>:ok|fail`` by time)
``breaker:{name}:trial``              string  the half-open trial permit (SET NX in Lua)
====================================  ======  ==============================================

``<holder>`` is a cart id until checkout, then the order id.
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


def lease(name: str) -> str:
    return f"lease:{name}"


def store_selection(version: int, cell: str) -> str:
    return f"storesel:{version}:{cell}"


STORE_SELECTION_VERSION = "storesel:version"


def order_channel(order_id: str) -> str:
    return f"events:order:{order_id}"


# A breaker's three keys share the hash tag {name}: its script touches one cluster slot.
def breaker_state(name: str) -> str:
    return f"breaker:{{{name}}}"


def breaker_window(name: str) -> str:
    return f"breaker:{{{name}}}:window"


def breaker_trial(name: str) -> str:
    return f"breaker:{{{name}}}:trial"


def rider_geo(city_id: str) -> str:
    return f"riders:geo:{city_id}"


def rider_fix(rider_id: str) -> str:
    return f"rider:{rider_id}:fix"


def rider_channel(rider_id: str) -> str:
    return f"events:rider:{rider_id}"


def dispatch_avoid(order_id: str) -> str:
    return f"dispatch:avoid:{order_id}"
