"""Residents' pages without scripts: signing up on the district map, the code, the
lost link, and everything the signed link allows; each refusal next to its field."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from subscribers import links
from subscribers.models import ContactPoint, Subscriber
from subscribers.notices import NoticeKind
from tests.api.conftest import Outbox
from tests.conftest import TEST_SECRET
from tests.web.conftest import Browser, field_error

SIGN_UP = {
    "phone": "601 000 700",
    "email": "",
    "topics": ["weather-warning", "road-traffic"],
    "districts": ["mokotow", "ursynow"],
    "language": "pl",
    "quiet_start": "",
    "quiet_end": "",
}


def residents(db: sessionmaker[Session]) -> int:
    with db() as session:
        return int(session.scalar(select(func.count()).select_from(Subscriber)) or 0)


def sign_up(visitor: Browser, **changes: Any) -> Any:
    return visitor.submit("/", "/subscribe", {**SIGN_UP, **changes})


def proven(visitor: Browser, outbox: Outbox) -> str:
    """Sign up by phone, type the code in; the manage page's path."""
    assert sign_up(visitor).status_code == 200
    [code] = [n for n in outbox.notices if n.kind is NoticeKind.CODE]
    confirmed = visitor.submit(
        "/confirm", "/confirm", {"channel": "sms", "address": "601000700", "code": code.code}
    )
    assert confirmed.status_code == 200 and "Potwierdzone" in confirmed.text
    [manage] = [n for n in outbox.notices if n.kind is NoticeKind.MANAGE]
    return urlsplit(manage.url).path


def test_the_start_page_offers_every_district_as_a_labelled_checkbox(visitor: Browser) -> None:
    page = visitor.get("/").text
    assert page.count('type="checkbox" name="districts"') == 18
    assert (
        '<label class="district d-mokotow"><input type="checkbox" name="districts" value="mokotow"'
        in page
    )
    assert 'name="whole_city"' in page and 'autocomplete="tel"' in page


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"phone": "123"}, "phone"),
        ({"phone": "+44 7700 900123"}, "phone"),  # not a Polish mobile: SMS pumping
        ({"phone": "", "email": "not-an-address"}, "email"),
        ({"phone": ""}, "phone"),
        ({"topics": []}, "topics"),
        ({"districts": []}, "districts"),
        ({"quiet_start": "22:00"}, "quiet_start"),
    ],
)
def test_a_refused_sign_up_says_why_next_to_the_field_and_writes_nothing(
    visitor: Browser, db: sessionmaker[Session], changes: dict[str, Any], field: str
) -> None:
    answer = sign_up(visitor, **changes)
    assert answer.status_code == 422
    assert field_error(answer.text, field), answer.text[-3000:]
    assert residents(db) == 0
    if changes.get("topics") != []:
        assert 'value="weather-warning" checked' in answer.text  # what was typed stays


def test_a_sign_up_without_our_form_token_is_refused(
    visitor: Browser, db: sessionmaker[Session]
) -> None:
    answer = visitor.client.post("/subscribe", data=SIGN_UP, follow_redirects=False)
    assert answer.status_code == 403
    assert residents(db) == 0


def test_sign_up_confirm_and_manage(
    visitor: Browser, outbox: Outbox, db: sessionmaker[Session]
) -> None:
    answer = sign_up(visitor, quiet_start="22:00", quiet_end="07:00")
    assert answer.status_code == 200
    assert 'name="code"' in answer.text  # the code can be typed in at once
    wrong = visitor.submit(
        "/confirm", "/confirm", {"channel": "sms", "address": "601000700", "code": "000000x"}
    )
    assert wrong.status_code == 422 and field_error(wrong.text, "code")
    bad_number = visitor.submit(
        "/confirm", "/confirm", {"channel": "sms", "address": "x", "code": "123456"}
    )
    assert bad_number.status_code == 422
    assert "phone" in (field_error(bad_number.text, "address") or "")
    [code] = [n for n in outbox.notices if n.kind is NoticeKind.CODE]
    confirmed = visitor.submit(
        "/confirm", "/confirm", {"channel": "sms", "address": "601000700", "code": code.code}
    )
    assert confirmed.status_code == 200
    [notice] = [n for n in outbox.notices if n.kind is NoticeKind.MANAGE]
    manage = urlsplit(notice.url).path
    assert manage.startswith("/my/")
    page = visitor.get(manage).text
    assert "601000700" not in page and "+48601000700" not in page  # masked
    assert 'value="22:00"' in page and 'value="road-traffic" checked' in page


def test_subscriptions_and_settings_change_through_the_link(
    visitor: Browser, outbox: Outbox, db: sessionmaker[Session]
) -> None:
    manage = proven(visitor, outbox)
    none = visitor.submit(manage, f"{manage}/subscriptions", {"topics": [], "districts": ["wola"]})
    assert none.status_code == 422 and field_error(none.text, "topics")
    changed = visitor.submit(
        manage, f"{manage}/subscriptions", {"topics": ["water-outage"], "whole_city": "on"}
    )
    assert changed.status_code == 200 and 'value="water-outage" checked' in changed.text
    assert 'name="whole_city" checked' in changed.text
    no_channel = visitor.submit(
        manage,
        f"{manage}/preferences",
        {"language": "en", "quiet_start": "21:00", "quiet_end": "06:00"},
    )
    assert no_channel.status_code == 422 and field_error(no_channel.text, "channels")
    # What was typed stays, so that only the mistake needs fixing.
    assert '<option value="en" selected>' in no_channel.text
    assert 'id="quiet_start" name="quiet_start" type="time" value="21:00"' in no_channel.text
    saved = visitor.submit(
        manage,
        f"{manage}/preferences",
        {"language": "uk", "channels": ["sms"], "quiet_start": "23:00", "quiet_end": "06:30"},
    )
    assert saved.status_code == 200
    with db() as session:
        subscriber = session.scalars(select(Subscriber)).one()
        assert subscriber.language == "uk"
        assert subscriber.quiet_from is not None and subscriber.quiet_from.hour == 23


def test_export_downloads_json_and_erase_needs_the_box_ticked(
    visitor: Browser, outbox: Outbox, db: sessionmaker[Session]
) -> None:
    manage = proven(visitor, outbox)
    export = visitor.get(f"{manage}/export.json")
    assert export.headers["content-type"] == "application/json"
    assert "attachment" in export.headers["content-disposition"]
    assert "+48601000700" in json.dumps(export.json())  # the resident's own data, whole
    unticked = visitor.submit(manage, f"{manage}/erase", {})
    assert unticked.status_code == 422 and field_error(unticked.text, "sure")
    erased = visitor.submit(manage, f"{manage}/erase", {"sure": "yes"})
    assert erased.status_code == 200
    with db() as session:
        assert session.scalars(select(ContactPoint.address)).all() == [None]
    assert visitor.get(manage).status_code == 404


def test_a_forged_or_expired_link_is_a_page_that_offers_a_new_one(visitor: Browser) -> None:
    forged = visitor.get("/my/1.9999999999.forged")
    assert forged.status_code == 404 and 'href="/link"' in forged.text
    expired = links.manage_token(TEST_SECRET, 1, int(time.time()) - 10)
    answer = visitor.get(f"/my/{expired}")
    assert answer.status_code == 410 and "wygasł" in answer.text


def test_a_lost_link_gets_the_same_answer_for_any_address(visitor: Browser, outbox: Outbox) -> None:
    proven(visitor, outbox)
    answers = [
        visitor.submit("/link", "/link", {"channel": channel, "address": address, "want": "link"})
        for channel, address in (("sms", "601000700"), ("sms", "609999999"))
    ]
    assert [a.status_code for a in answers] == [200, 200]
    # The same page but for the address typed in, which it shows back.
    assert answers[0].text.replace("601000700", "609999999") == answers[1].text
    bad = visitor.submit("/link", "/link", {"channel": "sms", "address": "", "want": "link"})
    assert bad.status_code == 422 and field_error(bad.text, "address")


def test_one_address_is_unsubscribed_from_the_manage_page(
    visitor: Browser, outbox: Outbox, db: sessionmaker[Session]
) -> None:
    manage = proven(visitor, outbox)
    with db() as session:
        point_id = session.scalars(select(ContactPoint.id)).one()
    others = visitor.submit(manage, f"{manage}/contacts/{point_id + 1}/unsubscribe", {})
    assert others.status_code == 404  # not one of this resident's addresses
    answer = visitor.submit(manage, f"{manage}/contacts/{point_id}/unsubscribe", {})
    assert answer.status_code == 200 and "Wypisano ten adres" in answer.text
    assert "wypisany" in answer.text
    with db() as session:
        assert session.get_one(ContactPoint, point_id).unsubscribed_at is not None


def in_the_layout(page: Any, language: str = "pl") -> bool:
    """The site's page: its language, header, menu, styles and footer."""
    text = page.text
    return (
        page.headers["content-type"].startswith("text/html")
        and f'<html lang="{language}">' in text
        and '<header class="top">' in text
        and "<nav " in text
        and "/static/console.css" in text
        and "<footer>" in text
    )


def test_the_mailed_confirmation_link_opens_a_page_in_the_layout(
    visitor: Browser, outbox: Outbox, db: sessionmaker[Session]
) -> None:
    assert sign_up(visitor, phone="", email="jan@example.com").status_code == 200
    [mail] = [n for n in outbox.notices if n.kind is NoticeKind.CONFIRM]
    path = urlsplit(mail.url).path
    opened = visitor.get(path)
    assert opened.status_code == 200 and in_the_layout(opened)
    assert "Potwierdź adres e-mail" in opened.text and f'action="{path}"' in opened.text
    done = visitor.client.post(path)
    assert done.status_code == 200 and in_the_layout(done) and "Adres potwierdzony" in done.text
    token = path.rsplit("/", 1)[1]
    with db() as session:
        point_id = session.scalars(select(ContactPoint.id)).one()
    expired = links.confirm_token(TEST_SECRET, point_id, "123456", int(time.time()) - 1)
    for method in (visitor.client.get, visitor.client.post):
        refused = method(f"/residents/confirm/{expired}")
        assert refused.status_code == 410 and in_the_layout(refused) and "wygasł" in refused.text
        forged = method(f"/residents/confirm/{token[:-2]}xx")
        assert forged.status_code == 404 and in_the_layout(forged)
        assert 'href="/link"' in forged.text
    assert in_the_layout(visitor.get(f"{path}?lang=en"), "en")


def test_the_one_click_link_opens_a_page_in_the_layout(
    visitor: Browser, outbox: Outbox, db: sessionmaker[Session]
) -> None:
    proven(visitor, outbox)
    with db() as session:
        point_id = session.scalars(select(ContactPoint.id)).one()
    path = f"/u/{links.unsubscribe_token(TEST_SECRET, point_id)}"
    opened = visitor.get(path)
    assert opened.status_code == 200 and in_the_layout(opened)
    assert 'name="List-Unsubscribe" value="One-Click"' in opened.text
    done = visitor.client.post(path, data={"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200 and in_the_layout(done) and "Wypisano" in done.text
    forged = [
        visitor.client.get(f"/u/{point_id}"),
        visitor.client.post(f"/u/{point_id}", data={"List-Unsubscribe": "One-Click"}),
    ]
    assert all(page.status_code == 404 and in_the_layout(page) for page in forged)
