"""What an operator writes and what the service makes of it: an `AlertDraft` checked
(`check_draft`: topic, districts, channels, times and each text by the text rule) into a
`CheckedDraft` the service writes (`apply_draft`).

An alert's texts as a form or a command line gives them: flat fields, `title_pl`,
`body_pl`, `title_en`, ... The one reading of them, for the console's compose and
follow-up forms and the CLI alike (the API takes `contents` as an object instead).

It only gathers; the alert service judges (the text rule, lengths, Polish required),
so what a face is told about a missing or bad text is the same on every face and names
its field as the service does: `contents.<language>.title` or `.body`. The texts go to
it as typed, so a refused character is found where it was typed, whatever the face.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from broadcaster.alerts.models import (
    Alert,
    AlertContent,
    CapStatus,
    Severity,
    Urgency,
)
from broadcaster.errors import InvalidInput
from broadcaster.reference.models import FALLBACK_LANGUAGE, District, Language, Topic
from broadcaster.reference.services import resolve_slugs
from broadcaster.settings import Settings
from broadcaster.texts import body_text, title_text
from channels import Channel

E = TypeVar("E", bound=StrEnum)

TITLE_MAX = 200
BODY_MAX = 2000


@dataclass(frozen=True, slots=True)
class AlertDraft:
    """What an operator writes. `contents` maps a language to (title, body); Polish is
    required, as the text every resident without a translation receives."""

    topic: str
    severity: str
    urgency: str
    channels: Sequence[str]
    contents: Mapping[str, tuple[str, str]]
    districts: Sequence[str] = ()
    whole_city: bool = False
    cap_status: str = CapStatus.ACTUAL
    transliterate_sms: bool = False
    send_at: datetime | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class CheckedDraft:
    topic_id: int
    district_ids: list[int]
    whole_city: bool
    severity: Severity
    urgency: Urgency
    cap_status: CapStatus
    channels: list[str]
    transliterate_sms: bool
    contents: dict[str, tuple[str, str]]
    send_at: datetime | None
    expires_at: datetime
    summary: dict[str, Any] = field(default_factory=dict)


def _enum(kind: type[E], value: object, field_name: str) -> E:
    try:
        return kind(str(value))
    except ValueError:
        choices = ", ".join(member.value for member in kind)
        raise InvalidInput(field_name, f"must be one of {choices}") from None


def aware_moment(value: object, field_name: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise InvalidInput(field_name, "must be a date and time")
    if value.tzinfo is None:
        raise InvalidInput(field_name, "needs a time zone")
    return value


def _names(value: object, field_name: str) -> list[str]:
    """A list of names; a lone string is refused rather than read letter by letter."""
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise InvalidInput(field_name, "must be a list")
    if not all(isinstance(item, str) for item in value):
        raise InvalidInput(field_name, "must be a list of names")
    return list(value)


def _texts(value: object, language: str) -> tuple[str, str]:
    if (
        not isinstance(value, list | tuple)
        or len(value) != 2
        or not all(isinstance(part, str) for part in value)
    ):
        raise InvalidInput(f"contents.{language}", "give a title and a body, both text")
    # The one text rule of every face: broadcaster/texts.py.
    return (
        title_text(value[0], f"contents.{language}.title"),
        body_text(value[1], f"contents.{language}.body"),
    )


def check_draft(
    *, session: Session, settings: Settings, draft: AlertDraft, now: datetime
) -> CheckedDraft:
    """Validate everything before anything is written; the first problem names its field."""
    if not isinstance(draft.topic, str):
        raise InvalidInput("topic", "must be a topic name")
    topic_id = resolve_slugs(session=session, model=Topic, slugs=[draft.topic], field="topic")[0]
    districts = _names(draft.districts, "districts")
    if draft.whole_city:
        if districts:
            raise InvalidInput("districts", "must be empty for a whole-city alert")
        district_ids: list[int] = []
    else:
        if not districts:
            raise InvalidInput("districts", "name at least one district, or target the whole city")
        district_ids = resolve_slugs(
            session=session, model=District, slugs=districts, field="districts"
        )
    severity = _enum(Severity, draft.severity, "severity")
    urgency = _enum(Urgency, draft.urgency, "urgency")
    cap_status = _enum(CapStatus, draft.cap_status, "cap_status")
    requested = _names(draft.channels, "channels")
    if not requested:
        raise InvalidInput("channels", "name at least one channel")
    channels = list(dict.fromkeys(_enum(Channel, c, "channels").value for c in requested))

    if not isinstance(draft.contents, Mapping):
        raise InvalidInput("contents", "must map a language to a title and a body")
    contents: dict[str, tuple[str, str]] = {}
    for language, texts in draft.contents.items():
        lang = _enum(Language, language, "contents")
        title, body = _texts(texts, lang.value)
        if not title:
            raise InvalidInput(f"contents.{lang}.title", "is required")
        if len(title) > TITLE_MAX:
            raise InvalidInput(f"contents.{lang}.title", f"is longer than {TITLE_MAX} characters")
        if not body:
            raise InvalidInput(f"contents.{lang}.body", "is required")
        if len(body) > BODY_MAX:
            raise InvalidInput(f"contents.{lang}.body", f"is longer than {BODY_MAX} characters")
        contents[lang.value] = (title, body)
    if FALLBACK_LANGUAGE not in contents:
        raise InvalidInput(f"contents.{FALLBACK_LANGUAGE}", "a Polish text is required")

    send_at = aware_moment(draft.send_at, "send_at")
    expires_at = aware_moment(draft.expires_at, "expires_at")
    if send_at is not None and send_at <= now:
        raise InvalidInput("send_at", "is in the past")
    start = send_at or now
    if expires_at is None:
        expires_at = start + timedelta(hours=settings.default_alert_lifetime_hours)
    elif expires_at <= start:
        raise InvalidInput(
            "expires_at", "must be later than send_at" if send_at else "is in the past"
        )
    return CheckedDraft(
        topic_id=topic_id,
        district_ids=district_ids,
        whole_city=draft.whole_city,
        severity=severity,
        urgency=urgency,
        cap_status=cap_status,
        channels=channels,
        transliterate_sms=bool(draft.transliterate_sms),
        contents=contents,
        send_at=send_at,
        expires_at=expires_at,
        summary={
            "topic": draft.topic,
            "districts": "*" if draft.whole_city else sorted(set(districts)),
            "severity": severity.value,
            "urgency": urgency.value,
            "cap_status": cap_status.value,
            "channels": channels,
            "transliterate_sms": bool(draft.transliterate_sms),
            "languages": sorted(contents),
            "send_at": send_at.isoformat() if send_at else None,
            "expires_at": expires_at.isoformat(),
        },
    )


def apply_draft(alert: Alert, checked: CheckedDraft, session: Session) -> None:
    alert.topic_id = checked.topic_id
    alert.topic = session.get_one(Topic, checked.topic_id)
    alert.whole_city = checked.whole_city
    alert.severity = checked.severity
    alert.urgency = checked.urgency
    alert.cap_status = checked.cap_status
    alert.channels = checked.channels
    alert.transliterate_sms = checked.transliterate_sms
    alert.send_at = checked.send_at
    alert.expires_at = checked.expires_at
    alert.contents = [
        AlertContent(language=lang, title=title, body=body)
        for lang, (title, body) in sorted(checked.contents.items())
    ]
    alert.districts = [
        session.get_one(District, district_id) for district_id in sorted(checked.district_ids)
    ]


def texts_from_fields(fields: Mapping[str, object]) -> dict[str, tuple[str, str]]:
    """Language -> (title, body) from the flat fields `title_<language>` and
    `body_<language>` (a missing field or None reads as empty).

    A language whose title and body are both blank is left out, as no translation,
    except Polish, which every alert needs: kept, so the service names what is missing.
    A language given half is kept too, and the service names the missing half.
    """
    contents: dict[str, tuple[str, str]] = {}
    for language in Language:
        title, body = (_text(fields.get(f"{part}_{language.value}")) for part in ("title", "body"))
        if language is FALLBACK_LANGUAGE or not (_blank(title) and _blank(body)):
            contents[language.value] = (title, body)
    return contents


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _blank(text: str) -> bool:
    """Nothing left once the text rule has folded and trimmed it (spaces, line breaks);
    a character the rule refuses is no blank: the service refuses it, naming it."""
    try:
        return not body_text(text, "")
    except InvalidInput:
        return False
