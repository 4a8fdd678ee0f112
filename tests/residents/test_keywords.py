"""The STOP / START grammar of SMS sent to our number, and what each keyword does."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from broadcaster.residents.keywords import Keyword, read_keyword, sender_number
from broadcaster.residents.services import Residents
from broadcaster.settings import Settings
from subscribers.models import ContactPoint
from tests.conftest import add_resident


@pytest.mark.parametrize(
    ("text", "word"),
    [
        ("STOP", Keyword.STOP),
        ("  stop!  ", Keyword.STOP),
        ("Nie.", Keyword.STOP),
        ("wypisz się", Keyword.STOP),
        ("WYPISZ   MNIE", Keyword.STOP),
        ("Rezygnuję", Keyword.STOP),
        ("unsubscribe", Keyword.STOP),
        ("СТОП", Keyword.STOP),
        ("start", Keyword.START),
        ("Tak!", Keyword.START),
        ("zapisz mnie", Keyword.START),
        ("старт", Keyword.START),
        ("stop please", None),
        ("stopp", None),
        ("", None),
        ("wypisz mnie teraz", None),
    ],
)
def test_the_keyword_grammar(text: str, word: Keyword | None) -> None:
    assert read_keyword(text) is word


def test_smsapis_sender_gets_its_plus() -> None:
    assert sender_number(" 48601000700 ") == "+48601000700"
    assert sender_number("601000700") == "601000700"


def test_stop_and_start_change_only_a_phone_we_hold(
    residents: Residents, db: sessionmaker[Session], settings: Settings
) -> None:
    with db.begin() as session:
        point_id = (
            add_resident(
                session,
                settings,
                contacts=[("sms", "+48601000700")],
                topics=["weather-warning"],
                districts=["*"],
            )
            .contact_points[0]
            .id
        )

    def unsubscribed() -> bool:
        with db() as session:
            return session.get_one(ContactPoint, point_id).unsubscribed_at is not None

    residents.apply_sms_keyword(word=Keyword.STOP, sender="48601000700")
    assert unsubscribed()
    residents.apply_sms_keyword(word=Keyword.START, sender="48601000700")
    assert not unsubscribed()
    # Another number, or no number at all: nothing happens, and nothing is said.
    residents.apply_sms_keyword(word=Keyword.STOP, sender="48601000799")
    residents.apply_sms_keyword(word=Keyword.STOP, sender="not-a-number")
    assert not unsubscribed()
