"""Rendering alert messages per channel and language.

Each (alert, language, channel) variant is rendered once per alert; only the e-mail's
unsubscribe link differs per recipient, and it is put in by `EmailVariant.for_recipient`
(a plain replacement, escaped for HTML). HTML is autoescaped: an alert body can never
inject markup. Languages are pl, en and uk; anything else falls back to pl.

An Update or Cancel of an alert is marked as one in every channel (SMS, push title,
e-mail subject and text), after the exercise marker when both apply; a Cancel also says
that the earlier alert no longer applies. The SMS markers are short words: every
character counts against 70 per part once Polish or Cyrillic letters make it UCS-2.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from templates.sms_encoding import SmsShape, shape, transliterate

LANGUAGES = ("pl", "en", "uk")
FALLBACK = "pl"
# Stands in for the link while a variant is rendered once for everybody; swapped for each
# recipient's own link afterwards. Plain ASCII, so escaping leaves it intact.
LINK_MARKER = "__WSP_UNSUBSCRIBE_URL_7F3A__"
SEVERITY_COLOURS = {
    "Extreme": "#b00020",
    "Severe": "#e65100",
    "Moderate": "#f9a825",
    "Minor": "#1565c0",
}
HTML_LABELS = {
    "pl": {
        "exercise": "TO SĄ ĆWICZENIA - nie podejmuj żadnych działań.",
        "update": "AKTUALIZACJA wcześniejszego alertu w tej sprawie.",
        "cancel": "ODWOŁANIE: wcześniejszy alert w tej sprawie jest nieaktualny i został odwołany.",
        "topic": "Temat",
        "area": "Obszar",
        "expires": "Ważne do",
        "footer": "Warszawski System Powiadomień, Urząd m.st. Warszawy. Informacje: 19115.",
        "unsubscribe": "Wypisz się z powiadomień",
    },
    "en": {
        "exercise": "THIS IS AN EXERCISE - no action is needed.",
        "update": "UPDATE of an earlier alert on this matter.",
        "cancel": "CANCELLED: the earlier alert on this matter is withdrawn and no longer applies.",
        "topic": "Topic",
        "area": "Area",
        "expires": "Valid until",
        "footer": "Warsaw Notification Service, City of Warsaw. Information: 19115.",
        "unsubscribe": "Unsubscribe",
    },
    "uk": {
        "exercise": "ЦЕ НАВЧАННЯ - жодних дій не потрібно.",
        "update": "ОНОВЛЕННЯ попереднього сповіщення з цього питання.",
        "cancel": "СКАСОВАНО: попереднє сповіщення з цього питання відкликано, воно більше не діє.",
        "topic": "Тема",
        "area": "Район",
        "expires": "Діє до",
        "footer": "Варшавська система сповіщень, Міська рада Варшави. Інформація: 19115.",
        "unsubscribe": "Відписатися",
    },
}

_environment = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "messages"),
    autoescape=select_autoescape(enabled_extensions=("html", "html.j2"), default_for_string=False),
    undefined=StrictUndefined,
    keep_trailing_newline=False,
    trim_blocks=True,
)


@dataclass(frozen=True, slots=True)
class AlertText:
    """What a message is made of, in one language: plain data, no database objects."""

    language: str
    title: str
    body: str
    severity: str
    topic: str
    area: str
    # As residents read it: Warsaw's wall clock (broadcaster.clock.local), printed as is.
    expires_at: datetime
    exercise: bool = False
    transliterate_sms: bool = False
    # CAP msgType: "alert", or "update" / "cancel" of an alert the resident received,
    # which every channel marks as such.
    msg_type: str = "alert"


@dataclass(frozen=True, slots=True)
class SmsVariant:
    text: str
    shape: SmsShape


@dataclass(frozen=True, slots=True)
class PushVariant:
    title: str
    body: str


@dataclass(frozen=True, slots=True)
class EmailVariant:
    subject: str
    text: str
    html: str

    def for_recipient(self, unsubscribe_url: str) -> tuple[str, str]:
        """(text, html) with this recipient's own unsubscribe link."""
        return (
            self.text.replace(LINK_MARKER, unsubscribe_url),
            self.html.replace(LINK_MARKER, html.escape(unsubscribe_url, quote=True)),
        )


def language_of(language: str) -> str:
    return language if language in LANGUAGES else FALLBACK


def _render(name: str, **context: object) -> str:
    return _environment.get_template(name).render(**context).strip()


def _context(text: AlertText) -> dict[str, object]:
    return {
        "title": text.title,
        "body": text.body,
        "severity": text.severity,
        "topic": text.topic,
        "area": text.area,
        "exercise": text.exercise,
        "msg_type": text.msg_type,
        "expires": text.expires_at.strftime("%d.%m.%Y %H:%M"),
        "language": language_of(text.language),
    }


def render_sms(text: AlertText) -> SmsVariant:
    rendered = _render(f"sms.{language_of(text.language)}.txt.j2", **_context(text))
    if text.transliterate_sms:
        rendered = transliterate(rendered)
    return SmsVariant(text=rendered, shape=shape(rendered))


def render_push(text: AlertText) -> PushVariant:
    language, context = language_of(text.language), _context(text)
    return PushVariant(
        title=_render(f"push_title.{language}.txt.j2", **context),
        body=_render(f"push_body.{language}.txt.j2", **context),
    )


def render_email(text: AlertText) -> EmailVariant:
    language, context = language_of(text.language), _context(text)
    context["unsubscribe_url"] = LINK_MARKER
    paragraphs = [p.strip() for p in text.body.split("\n\n") if p.strip()]
    return EmailVariant(
        subject=_render(f"email_subject.{language}.txt.j2", **context).replace("\n", " "),
        text=_render(f"email.{language}.txt.j2", **context) + "\n",
        html=_render(
            "email_layout.html.j2",
            **context,
            paragraphs=paragraphs,
            labels=HTML_LABELS[language],
            colour=SEVERITY_COLOURS.get(text.severity, "#1565c0"),
        )
        + "\n",
    )
