from datetime import UTC, datetime

import pytest

from templates.renderer import LINK_MARKER, AlertText, render_email, render_push, render_sms
from templates.sms_encoding import Encoding

EXPIRES = datetime(2026, 7, 1, 16, 30, tzinfo=UTC)  # 18:30 in Warsaw (CEST)


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
