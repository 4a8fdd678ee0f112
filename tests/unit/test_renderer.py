from datetime import UTC, datetime

import pytest

from broadcaster.clock import local
from templates.renderer import LINK_MARKER, AlertText, render_email, render_push, render_sms
from templates.sms_encoding import Encoding

# Texts come with Warsaw's wall clock (broadcaster.alerts.messages.alert_text): 18:30 CEST.
EXPIRES = local(datetime(2026, 7, 1, 16, 30, tzinfo=UTC))


def text(**changes: object) -> AlertText:
    fields: dict[str, object] = {
        "language": "pl",
        "title": "Ostrzeżenie przed burzami",
        "body": "Silne burze z gradem.",
        "severity": "Severe",
        "topic": "Ostrzeżenia meteorologiczne",
        "area": "Mokotów, Wola",
        "expires_at": EXPIRES,
    }
    fields.update(changes)
    return AlertText(**fields)  # type: ignore[arg-type]


def test_sms_carries_title_and_body_and_its_shape() -> None:
    sms = render_sms(text())
    assert sms.text == "Ostrzeżenie przed burzami: Silne burze z gradem."
    assert sms.shape.encoding is Encoding.UCS2


def test_sms_transliteration_is_chosen_per_alert() -> None:
    sms = render_sms(text(transliterate_sms=True))
    assert sms.text == "Ostrzezenie przed burzami: Silne burze z gradem."
    assert sms.shape.encoding is Encoding.GSM7


@pytest.mark.parametrize(
    ("language", "sms_prefix", "push_prefix", "subject"),
    [
        ("pl", "ĆWICZENIA. ", "[ĆWICZENIA] ", "[ĆWICZENIA] Ostrzeżenie: "),
        ("en", "EXERCISE. ", "[EXERCISE] ", "[EXERCISE] Warning: "),
        ("uk", "НАВЧАННЯ. ", "[НАВЧАННЯ] ", "[НАВЧАННЯ] Попередження: "),
    ],
)
def test_exercises_are_marked_in_every_channel(
    language: str, sms_prefix: str, push_prefix: str, subject: str
) -> None:
    alert = text(language=language, exercise=True)
    assert render_sms(alert).text.startswith(sms_prefix)
    assert render_push(alert).title.startswith(push_prefix)
    email = render_email(alert)
    assert email.subject.startswith(subject)
    assert "EXERCISE" in email.text or "ĆWICZENIA" in email.text or "НАВЧАННЯ" in email.text


def test_unknown_language_falls_back_to_polish() -> None:
    assert render_email(text(language="de")).subject == "Ostrzeżenie: Ostrzeżenie przed burzami"
    assert render_push(text(language="de")).title == "Ostrzeżenie przed burzami"


def test_email_has_both_parts_local_time_and_a_per_recipient_link() -> None:
    email = render_email(text())
    assert "Ważne do: 01.07.2026 18:30" in email.text
    plain, markup = email.for_recipient("https://powiadomienia.example/u/abc?t=1&s=2")
    assert plain.endswith("Wypisz się: https://powiadomienia.example/u/abc?t=1&s=2\n")
    assert 'href="https://powiadomienia.example/u/abc?t=1&amp;s=2"' in markup
    assert LINK_MARKER not in plain + markup
    other, _ = email.for_recipient("https://powiadomienia.example/u/xyz")
    assert "u/xyz" in other and "u/abc" not in other


def test_html_cannot_be_injected_through_an_alert() -> None:
    email = render_email(
        text(title='<img src=x onerror="alert(1)">', body="<script>x()</script> & more")
    )
    _, markup = email.for_recipient("https://powiadomienia.example/u/1")
    assert "<script>" not in markup and "<img" not in markup
    assert "&lt;script&gt;x()&lt;/script&gt; &amp; more" in markup
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in markup
    # The plain-text part keeps the words as written.
    assert "<script>x()</script> & more" in email.text


def test_paragraphs_of_the_body_become_paragraphs() -> None:
    _, markup = render_email(text(body="Pierwszy akapit.\n\nDrugi akapit.")).for_recipient(
        "https://x.example/u"
    )
    assert "<p>Pierwszy akapit.</p>" in markup and "<p>Drugi akapit.</p>" in markup


@pytest.mark.parametrize(
    ("language", "msg_type", "sms_prefix", "push_prefix", "subject", "notice"),
    [
        ("pl", "update", "AKTUALIZACJA. ", "[AKTUALIZACJA] ", "[AKTUALIZACJA] ", "AKTUALIZACJA "),
        ("en", "update", "UPDATE. ", "[UPDATE] ", "[UPDATE] ", "UPDATE of an earlier alert"),
        ("uk", "update", "ОНОВЛЕННЯ. ", "[ОНОВЛЕННЯ] ", "[ОНОВЛЕННЯ] ", "ОНОВЛЕННЯ "),
        ("pl", "cancel", "ODWOŁANIE ALERTU. ", "[ODWOŁANIE] ", "[ODWOŁANIE] ", "został odwołany"),
        ("en", "cancel", "ALERT CANCELLED. ", "[CANCELLED] ", "[CANCELLED] ", "is withdrawn"),
        ("uk", "cancel", "СКАСУВАННЯ СПОВІЩЕННЯ. ", "[СКАСОВАНО] ", "[СКАСОВАНО] ", "відкликано"),
    ],
)
def test_updates_and_cancellations_are_marked_in_every_channel(
    language: str, msg_type: str, sms_prefix: str, push_prefix: str, subject: str, notice: str
) -> None:
    alert = text(language=language, msg_type=msg_type)
    assert render_sms(alert).text == f"{sms_prefix}Ostrzeżenie przed burzami: Silne burze z gradem."
    push = render_push(alert)
    assert push.title == f"{push_prefix}Ostrzeżenie przed burzami"
    # Only a Cancel says in the body that the earlier alert no longer applies.
    assert (notice in push.body) is (msg_type == "cancel")
    assert push.body.endswith("Silne burze z gradem.")
    email = render_email(alert)
    assert email.subject.startswith(subject)
    plain, markup = email.for_recipient("https://x.example/u")
    assert plain.startswith(subject.strip("[] "))  # the notice opens the text
    assert notice in plain and notice in markup


def test_an_update_of_an_exercise_carries_both_markers() -> None:
    alert = text(exercise=True, msg_type="update")
    assert render_sms(alert).text.startswith("ĆWICZENIA. AKTUALIZACJA. ")
    assert render_push(alert).title.startswith("[ĆWICZENIA] [AKTUALIZACJA] ")
    assert render_email(alert).subject.startswith("[ĆWICZENIA] [AKTUALIZACJA] Ostrzeżenie: ")


def test_a_plain_alert_carries_no_follow_up_marker() -> None:
    alert = text()
    assert render_push(alert).body == "Silne burze z gradem."
    email = render_email(alert)
    assert email.subject == "Ostrzeżenie: Ostrzeżenie przed burzami"
    assert email.text.startswith("Ostrzeżenie przed burzami\n\nSilne burze z gradem.")
    for marker in ("AKTUALIZACJA", "ODWOŁANIE", "#e3f2fd"):
        assert marker not in email.text + email.html


def test_the_markers_keep_a_short_sms_to_one_part_once_transliterated() -> None:
    # "ODWOŁANIE ALERTU. " is 18 characters: with the Polish letters spelt in GSM-7, a
    # title and body of 140 characters still fit one part of 160.
    body = "x" * (140 - len("Burza: "))
    sms = render_sms(text(title="Burza", body=body, msg_type="cancel", transliterate_sms=True))
    assert sms.text.startswith("ODWOLANIE ALERTU. Burza: ")
    assert (sms.shape.encoding, sms.shape.parts) == (Encoding.GSM7, 1)
