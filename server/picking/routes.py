"""The picker terminal's API: queue, claim, pick list, scans, shorts, substitutes, pack."""

from __future__ import annotations

import contextlib
import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, WebSocket, WebSocketDisconnect

from server.identity.models import User
from server.kit import sockets
from server.kit.db import transaction
from server.kit.deps import (
    ClockDep,
    CustomerUser,
    PickerUser,
    RedisDep,
    SessionDep,
    SettingsDep,
)
from server.kit.errors import Forbidden, NotFound
from server.kit.keys import picking_channel
from server.kit.openapi import problem_responses
from server.kit.resources import resources_of
from server.orders import service as orders
from server.orders import views
from server.picking import consent, service, shorts
from shared.enums import Role
from shared.schemas.orders import OrderPublic, SubstitutionAnswer
from shared.schemas.picking import (
    PackRequest,
    PackResult,
    PickList,
    PickTaskSummary,
    ScanRequest,
    ScanResult,
    ShortPickRequest,
    ShortPickResult,
    SubstituteRequest,
)

router = APIRouter(prefix="/v1/picking", tags=["picking", "staff"])
ws_router = APIRouter(tags=["picking"])
# the customer's side of substitution (store policy "ask")
customer_router = APIRouter(prefix="/v1", tags=["orders"])
StoreId = Annotated[str, Path(min_length=1, max_length=20, pattern=r"^[A-Z0-9-]+$")]


def _summaries(rows: list[tuple], *, store_id: str, now: datetime) -> list[PickTaskSummary]:
    return [
        PickTaskSummary(
            order_id=r[0],
            store_id=store_id,
            status=r[1],
            sla_deadline=r[2],
            seconds_left=int((r[2] - now).total_seconds()) if r[2] else None,
            lines=r[3],
            units=r[4],
        )
        for r in rows
    ]


@router.get(
    "/stores/{store_id}/queue",
    summary="Orders waiting to be picked, by SLA deadline",
    responses=problem_responses(401, 403, 404, 422),
)
async def queue(
    store_id: StoreId, session: SessionDep, clock: ClockDep, picker: PickerUser
) -> list[PickTaskSummary]:
    rows = await service.queue(session, store_id=store_id, picker=picker)
    return _summaries(rows, store_id=store_id, now=clock.now())


@router.post(
    "/claim",
    summary="Claim the next order (the most urgent one)",
    responses=problem_responses(401, 403, 404, 422),
)
async def claim(
    session: SessionDep, clock: ClockDep, settings: SettingsDep, picker: PickerUser
) -> PickList:
    task = await service.claim_next(session, picker=picker, now=clock.now())
    return await service.pick_list(session, task=task, walk_order=settings.pick_walk_order)


@router.get(
    "/tasks/{order_id}",
    summary="The pick list, sorted along the walking path",
    responses=problem_responses(401, 403, 404),
)
async def pick_list(
    order_id: uuid.UUID, session: SessionDep, settings: SettingsDep, picker: PickerUser
) -> PickList:
    task = await service.get_task(session, order_id=order_id, picker=picker)
    return await service.pick_list(session, task=task, walk_order=settings.pick_walk_order)


@router.post(
    "/tasks/{order_id}/scans",
    summary="Count one scanned unit (idempotent by scan_id)",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def scan(
    order_id: uuid.UUID, body: ScanRequest, session: SessionDep, clock: ClockDep, picker: PickerUser
) -> ScanResult:
    task = await service.get_task(session, order_id=order_id, picker=picker, for_update=True)
    line, done, replayed = await service.scan(
        session, task=task, picker=picker, scan_id=body.scan_id, code=body.code, now=clock.now()
    )
    return ScanResult(
        sku_id=line.sku_id,
        picked_qty=line.picked_qty,
        quantity=line.quantity,
        line_complete=line.picked_qty >= line.quantity,
        order_complete=done,
        replayed=replayed,
    )


@router.post(
    "/tasks/{order_id}/short",
    summary="Report a short pick (missing or damaged)",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def short(
    order_id: uuid.UUID,
    body: ShortPickRequest,
    session: SessionDep,
    redis: RedisDep,
    clock: ClockDep,
    settings: SettingsDep,
    picker: PickerUser,
) -> ShortPickResult:
    task = await service.get_task(session, order_id=order_id, picker=picker, for_update=True)
    outcome = await shorts.short_pick(
        session,
        redis,
        task=task,
        picker=picker,
        sku_id=body.sku_id,
        found_qty=body.found_qty,
        reason=body.reason,
        now=clock.now(),
        answer_s=settings.substitution_answer_s,
    )
    return ShortPickResult(
        sku_id=body.sku_id,
        short_qty=outcome.short_qty,
        policy=outcome.policy,
        substitutes=outcome.offers,
        awaiting_customer_until=outcome.awaiting_until,
    )


@router.post(
    "/tasks/{order_id}/substitute",
    summary="Put a substitute in place of a short line",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def substitute(
    order_id: uuid.UUID,
    body: SubstituteRequest,
    session: SessionDep,
    redis: RedisDep,
    clock: ClockDep,
    settings: SettingsDep,
    picker: PickerUser,
) -> PickList:
    task = await service.get_task(session, order_id=order_id, picker=picker, for_update=True)
    await shorts.substitute(
        session,
        redis,
        task=task,
        picker=picker,
        sku_id=body.sku_id,
        substitute_sku=body.substitute_sku,
        quantity=body.quantity,
        now=clock.now(),
    )
    return await service.pick_list(session, task=task, walk_order=settings.pick_walk_order)


@customer_router.post(
    "/orders/{order_id}/substitutions/{sku_id}",
    summary="Answer a substitution offer: accept, choose another, or refuse (refunded)",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def answer_substitution(
    order_id: uuid.UUID,
    sku_id: Annotated[str, Path(min_length=1, max_length=50)],
    body: SubstitutionAnswer,
    session: SessionDep,
    redis: RedisDep,
    clock: ClockDep,
    customer: CustomerUser,
) -> OrderPublic:
    order = await orders.get_order(session, order_id=order_id, viewer=customer)
    await consent.answer(
        session, redis, order=order, customer=customer, sku_id=sku_id, body=body, now=clock.now()
    )
    return await views.public(session, order, show_otp=True)


@router.post(
    "/tasks/{order_id}/pack",
    summary="Seal the bags: order PACKED",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def pack(
    order_id: uuid.UUID, body: PackRequest, session: SessionDep, clock: ClockDep, picker: PickerUser
) -> PackResult:
    task = await service.get_task(session, order_id=order_id, picker=picker, for_update=True)
    done = await service.pack(
        session, task=task, picker=picker, bag_count=body.bag_count, now=clock.now()
    )
    return PackResult(
        order_id=done.order_id,
        status="PACKED",
        bag_label=done.bag_label or "",
        bag_count=body.bag_count,
        pick_duration_s=done.duration_s or 0.0,
    )


@ws_router.websocket("/ws/picker")
async def picker_socket(websocket: WebSocket) -> None:
    """The store's pick queue, pushed: first ``{"type": "queue", "tasks": [...]}`` (the
    queue as ``GET .../queue`` gives it), then ``picking.queued`` as each new task joins
    the queue and ``picking.started`` as a picker claims one (with ``QC_WORK_PUSH`` off,
    only the snapshot: the terminal polls)."""
    resources = resources_of(websocket.app)

    async def admit(user: User) -> str:
        if user.store_id is None:
            raise NotFound("this user is not assigned to a store", code="no_store")
        return user.store_id

    admitted = await sockets.accept(
        websocket,
        roles={Role.PICKER},
        wrong_role=lambda: Forbidden("pickers only", code="forbidden"),
        admit=admit,
    )
    if admitted is None:
        return
    user, store_id = admitted
    gate = sockets.AfterSnapshot()  # pushes wait for the snapshot (a task may be in both)
    push = (
        sockets.relaying(websocket, picking_channel(store_id), gate=gate)
        if resources.settings.work_push
        else contextlib.nullcontext()
    )
    async with push:
        async with transaction(resources.sessions) as session:
            rows = await service.queue(session, store_id=store_id, picker=user)
        tasks = _summaries(rows, store_id=store_id, now=resources.clock.now())
        await websocket.send_json(
            {"type": "queue", "tasks": [t.model_dump(mode="json") for t in tasks]}
        )
        gate.snapshot_sent(0)
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                await websocket.receive_text()  # nothing to say; this sees the terminal leave
