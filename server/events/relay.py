"""The outbox relay: publishes committed events to Redis, at least once, in order.

Order events go to the order's pub/sub channel (tracking sockets of any replica), a
rider's (``delivery.*``, ``rider.*``) to the rider's, and every event to the
``events:stream`` stream (the control-tower feed reads it).
"""

from __future__ import annotations

import json

import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from server.kit import keys

STREAM = "events:stream"
STREAM_MAXLEN = 50_000


async def relay_once(db: AsyncEngine, redis: aioredis.Redis, *, batch: int = 500) -> int:
    async with db.begin() as conn:
        rows = list(
            await conn.execute(
                text(
                    "SELECT event_id, topic, store_id, aggregate_id, payload, created_at FROM outbox "
                    "WHERE published_at IS NULL ORDER BY event_id LIMIT :n FOR UPDATE SKIP LOCKED"
                ),
                {"n": batch},
            )
        )
        if not rows:
            return 0
        pipe = redis.pipeline(transaction=False)
        for event_id, topic, store_id, aggregate_id, payload, created_at in rows:
            message = json.dumps(
                {
                    "event_id": event_id,
                    "topic": topic,
                    "store_id": store_id,
                    "payload": payload,
                    "at": created_at.isoformat(),
                }
            )
            if topic.startswith("order.") and aggregate_id:
                pipe.spublish(keys.order_channel(aggregate_id), message)
            # a rider's trips and their own changes (``rider.move``) reach their handheld
            if topic.startswith(("delivery.", "rider.")) and payload.get("rider_id"):
                pipe.spublish(keys.rider_channel(payload["rider_id"]), message)
            if topic.startswith("picking.") and store_id:
                pipe.spublish(keys.picking_channel(store_id), message)
            pipe.xadd(STREAM, {"event": message}, maxlen=STREAM_MAXLEN, approximate=True)
        await pipe.execute()
        await conn.execute(
            text("UPDATE outbox SET published_at = now() WHERE event_id = ANY(:ids)"),
            {"ids": [r[0] for r in rows]},
        )
    return len(rows)
