"""Alert progress: counters per (alert, channel, status), moved in the same transaction as
the deliveries they count, so progress is a read of a few rows at any size.

Two writers only, so that the counters always equal a count of the rows: the delivery
state machine (`states.DeliveryStateMachine`) moves them with every transition it makes
(`move`), and planning sets the first count of the rows it writes (`count_planned`), which
are born in their status without a transition. The receipt tallies (`tally_receipts`)
count providers' reports, not deliveries, and are written by `receipts` alone.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Table, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from broadcaster.dispatch.models import AlertProgress, DeliveryStatus, ReceiptTally

_progress = cast(Table, AlertProgress.__table__)
_tallies = cast(Table, ReceiptTally.__table__)

Key = tuple[str, str]  # (channel, status)


def _upsert(session: Session, table: Table, keys: list[str], rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(table)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=keys, set_={"count": table.c.count + statement.excluded.count}
        ),
        rows,
    )


def move(session: Session, alert_id: int, deltas: Counter[Key]) -> None:
    """Apply `deltas` ((channel, status) -> change) to the alert's counters: for the state
    machine, as its transitions move rows from one status to another."""
    _add(session, alert_id, deltas)


def count_planned(session: Session, alert_id: int, counts: Counter[Key]) -> None:
    """Count the deliveries planning has just written ((channel, status) -> how many)."""
    _add(session, alert_id, counts)


def _add(session: Session, alert_id: int, deltas: Counter[Key]) -> None:
    rows = [
        {"alert_id": alert_id, "channel": channel, "status": status, "count": change}
        for (channel, status), change in sorted(deltas.items())
        if change
    ]
    _upsert(session, _progress, ["alert_id", "channel", "status"], rows)


def tally_receipts(session: Session, provider: str, outcomes: Counter[str]) -> None:
    """Count a provider's reports by what became of them (applied, unknown, stale...)."""
    rows = [
        {"provider": provider, "outcome": o, "count": n} for o, n in sorted(outcomes.items()) if n
    ]
    _upsert(session, _tallies, ["provider", "outcome"], rows)


def read(session: Session, alert_id: int) -> dict[str, dict[str, int]]:
    """channel -> status -> count (statuses with nothing in them left out)."""
    rows = session.execute(
        select(AlertProgress.channel, AlertProgress.status, AlertProgress.count).where(
            AlertProgress.alert_id == alert_id
        )
    ).all()
    progress: dict[str, dict[str, int]] = {}
    for channel, status, count in rows:
        if count:
            progress.setdefault(channel, {})[status] = int(count)
    return progress


def failed(session: Session, alert_ids: Sequence[int]) -> dict[int, int]:
    """alert id -> how many of its messages ended failed, over every channel, in one
    query for a whole list; an alert with none is absent."""
    if not alert_ids:
        return {}
    rows = session.execute(
        select(AlertProgress.alert_id, func.sum(AlertProgress.count))
        .where(
            AlertProgress.alert_id.in_(alert_ids),
            AlertProgress.status == DeliveryStatus.FAILED,
        )
        .group_by(AlertProgress.alert_id)
    )
    return {int(alert_id): int(count) for alert_id, count in rows if count}


def totals(by_channel: dict[str, dict[str, int]]) -> dict[str, int]:
    """status -> count over every channel, from what `read` gives."""
    summed: Counter[str] = Counter()
    for statuses in by_channel.values():
        summed.update(statuses)
    return dict(summed)


def receipts(session: Session) -> dict[str, dict[str, int]]:
    rows = session.execute(
        select(ReceiptTally.provider, ReceiptTally.outcome, ReceiptTally.count)
    ).all()
    tallies: dict[str, dict[str, int]] = {}
    for provider, outcome, count in rows:
        tallies.setdefault(provider, {})[outcome] = int(count)
    return tallies
