"""Delivery reports from providers, applied in bulk.

SMSAPI calls back with MsgId, status and idx (our delivery id), several reports joined by
commas; channels/sms.py reads them (`parse_smsapi`) and says what each status means
(`Report.receipt`). A delivered report ends a delivery as delivered; an undelivered one
ends it as failed with the status as its code; a pending one changes nothing. A report
whose idx is not one of ours is ignored and counted, and so is one for a delivery that
already ended, and one whose MsgId is not the id SMSAPI gave that delivery's send. (A
report for a delivery whose send is not recorded yet, when the report overtakes the
worker, is taken on its idx alone, and its MsgId kept.)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from broadcaster.dispatch import progress
from broadcaster.dispatch.models import Delivery, DeliveryStatus
from broadcaster.dispatch.states import DeliveryChange, DeliveryStateMachine
from channels.interfaces import Receipt
from channels.sms import Report

MOVABLE = frozenset({DeliveryStatus.SENDING, DeliveryStatus.SENT})


def _delivery_id(idx: str) -> bool:
    """An idx that can be one of our delivery ids (ASCII digits, within BIGINT)."""
    return idx.isascii() and idx.isdigit() and 0 < int(idx) < 2**63


def apply_smsapi_reports(*, session: Session, reports: Sequence[Report]) -> Counter[str]:
    """Apply reports in bulk; returns how many were applied, unknown, mismatched, stale or
    pending."""
    tally: Counter[str] = Counter()
    final = [r for r in reports if r.receipt is not Receipt.PENDING]
    tally["pending"] += len(reports) - len(final)
    by_id = {int(r.idx): r for r in final if _delivery_id(r.idx)}
    tally["unknown"] += len(final) - len(by_id)
    rows = (
        session.execute(
            select(Delivery.id, Delivery.status, Delivery.provider_id).where(
                Delivery.id.in_(list(by_id)), Delivery.channel == "sms"
            )
        ).all()
        if by_id
        else []
    )
    tally["unknown"] += len(by_id) - len(rows)
    matching = [
        (i, s)
        for i, s, provider_id in rows
        if provider_id is None or provider_id == by_id[i].provider_id
    ]
    tally["mismatched"] += len(rows) - len(matching)
    movable = [i for i, s in matching if s in MOVABLE]
    tally["stale"] += len(matching) - len(movable)
    delivered = [
        DeliveryChange(i, provider_id=by_id[i].provider_id)
        for i in movable
        if by_id[i].receipt is Receipt.DELIVERED
    ]
    undelivered = [
        DeliveryChange(i, provider_id=by_id[i].provider_id, error_code=by_id[i].status)
        for i in movable
        if by_id[i].receipt is Receipt.UNDELIVERED
    ]
    # The state machine moves the alerts' counters with the rows it moves.
    moved = DeliveryStateMachine(session).record_receipts(
        delivered=delivered, undelivered=undelivered
    )
    tally["applied"] += moved
    tally["stale"] += len(movable) - moved
    progress.tally_receipts(session, "smsapi", tally)
    return tally
