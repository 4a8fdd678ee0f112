"""The state machine's table, as the counters rely on it."""

from __future__ import annotations

import pytest

from broadcaster.dispatch.models import DeliveryStatus as D
from broadcaster.dispatch.states import DeliveryEvent, DeliveryStateMachine


@pytest.mark.parametrize("event", list(DeliveryEvent))
def test_no_event_ends_where_it_may_start(event: DeliveryEvent) -> None:
    """One guarded UPDATE per source, run one after another, moves a row at most once."""
    sources, target = DeliveryStateMachine.TRANSITIONS[event]
    assert target not in sources


def test_receipts_meet_a_row_sending_before_one_sent() -> None:
    """A send recorded between the two UPDATEs of a receipt is met by the second."""
    assert DeliveryStateMachine.sources(DeliveryEvent.DELIVERED) == [D.SENDING, D.SENT]
    assert DeliveryStateMachine.sources(DeliveryEvent.UNDELIVERED) == [D.SENDING, D.SENT]
