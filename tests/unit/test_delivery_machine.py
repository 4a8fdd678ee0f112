import pytest

from broadcaster.dispatch.models import DeliveryStatus as D
from broadcaster.dispatch.states import DeliveryEvent, DeliveryStateMachine, InvalidTransition

E = DeliveryEvent
ALLOWED = {
    (D.PENDING, E.CLAIM): D.SENDING,
    (D.SENDING, E.SENT): D.SENT,
    (D.SENDING, E.TEMPORARY_FAILURE): D.PENDING,
    (D.SENDING, E.PERMANENT_FAILURE): D.FAILED,
    (D.PENDING, E.SUPPRESS): D.SUPPRESSED,
    (D.SENT, E.DELIVERED): D.DELIVERED,
    (D.SENT, E.UNDELIVERED): D.FAILED,
    # A report may overtake the worker recording the send.
    (D.SENDING, E.DELIVERED): D.DELIVERED,
    (D.SENDING, E.UNDELIVERED): D.FAILED,
    (D.SENDING, E.RELEASE): D.PENDING,
    # Claimed, but its alert ended before the row's wave left.
    (D.SENDING, E.WITHDRAW): D.SUPPRESSED,
}


@pytest.mark.parametrize("status", list(D))
@pytest.mark.parametrize("event", list(E))
def test_every_pair_of_status_and_event(status: D, event: E) -> None:
    expected = ALLOWED.get((status, event))
    if expected is None:
        with pytest.raises(InvalidTransition):
            DeliveryStateMachine.next_status(status, event)
    else:
        assert DeliveryStateMachine.next_status(status, event) is expected


def test_final_states_have_no_way_out() -> None:
    for status in DeliveryStateMachine.FINAL:
        for event in E:
            with pytest.raises(InvalidTransition):
                DeliveryStateMachine.next_status(status, event)
