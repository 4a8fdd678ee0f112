"""What we send a resident outside alerts: a one-time code, an e-mail confirmation link,
a link to manage their subscriptions.

Nothing of it travels through the broker. Whoever decides a notice writes it to the
pending requests (`queue_proof`, `queue_manage`: the contact point, the kind, the
language, the code, the link's expiry) and hands the `send_notice` task its id after the
commit; the worker reads it back as a `Notice` (`render`: the address from the contact
point, the link signed afresh), turns it into one channel message (`message`), sends it
with the channel's own sender and forgets the request. Texts come in pl, en and uk; an
SMS code fits one part: a text that would need two is sent transliterated to GSM-7.

Where the answer must not tell whether an address is registered, the API does not look
it up: it checks the input, charges the limits and holds a `SignUp` (which `sign_up`
turns into a new subscriber and its codes, or into a manage link for an address already
proven) or a `Reminder` (a new code or manage link: `remind`, nothing for an address we
do not know) for a worker. The request does the same work for every address.

A notice's id (its pending request's, random and far above any delivery id) is the
SMSAPI `idx` (sent with `check_idx`, so a task run twice sends one SMS) and the e-mail
Message-ID.

Past 400 lines, kept whole: one flow (queued request, rendered notice, channel message)
for three kinds, three channels and three languages, read top to bottom.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy.orm import Session

from broadcaster.errors import RateLimited
from broadcaster.settings import Settings
from channels.interfaces import Channel, Message
from subscribers import pending, services
from subscribers.links import confirm_token, manage_token
from subscribers.models import ContactPoint, PendingKind
from subscribers.pending import Queued
from subscribers.verification import issue_code
from templates.sms_encoding import shape, transliterate


class NoticeKind(StrEnum):
    CODE = "code"
    CONFIRM = "confirm"
    MANAGE = "manage"


# How a contact point proves it is held: a code typed in (SMS), posted back by the app
# that received it (push), or a link opened from the mailbox (e-mail).
PROOF = {
    Channel.SMS: NoticeKind.CODE,
    Channel.PUSH: NoticeKind.CODE,
    Channel.EMAIL: NoticeKind.CONFIRM,
}


@dataclass(frozen=True, slots=True)
class Wording:
    title: str
    # The SMS text and push body.
    short: str
    # The e-mail's text.
    long: str


WORDING: dict[NoticeKind, dict[str, Wording]] = {
    NoticeKind.CODE: {
        "pl": Wording(
            "Kod potwierdzenia",
            "Warszawa: Twój kod to {code}. Ważny {minutes} min. Nie podawaj go nikomu.",
            "Twój kod potwierdzenia to {code}. Jest ważny {minutes} min.",
        ),
        "en": Wording(
            "Confirmation code",
            "Warsaw alerts: your code is {code}. Valid for {minutes} min. Do not share it.",
            "Your confirmation code is {code}. It is valid for {minutes} min.",
        ),
        "uk": Wording(
            "Код підтвердження",
            "Варшава: ваш код {code}. Дійсний {minutes} хв. Нікому його не повідомляйте.",
            "Ваш код підтвердження: {code}. Він дійсний {minutes} хв.",
        ),
    },
    NoticeKind.CONFIRM: {
        "pl": Wording(
            "Potwierdź adres e-mail",
            "Warszawa: potwierdź adres: {url}",
            "Ten adres zapisano do Warszawskiego Systemu Powiadomień. Aby to potwierdzić, "
            "otwórz link (ważny {minutes} min):\n\n{url}\n\n"
            "Jeśli to nie Ty, zignoruj tę wiadomość: bez potwierdzenia nic nie wyślemy.",
        ),
        "en": Wording(
            "Confirm your e-mail address",
            "Warsaw alerts: confirm your address: {url}",
            "This address was signed up for the Warsaw Notification Service. To confirm, "
            "open the link (valid for {minutes} min):\n\n{url}\n\n"
            "If it was not you, ignore this message: nothing is sent without confirmation.",
        ),
        "uk": Wording(
            "Підтвердіть адресу e-mail",
            "Варшава: підтвердіть адресу: {url}",
            "Цю адресу підписано на Варшавську систему сповіщень. Щоб підтвердити, "
            "відкрийте посилання (дійсне {minutes} хв):\n\n{url}\n\n"
            "Якщо це були не ви, проігноруйте цей лист: без підтвердження ми нічого не надішлемо.",
        ),
    },
    NoticeKind.MANAGE: {
        "pl": Wording(
            "Twoje powiadomienia",
            "Warszawa: zarządzaj powiadomieniami: {url}",
            "Link do zarządzania Twoimi powiadomieniami (tematy, dzielnice, kanały, "
            "usunięcie danych):\n\n{url}\n\n"
            "Nie przekazuj go nikomu. Jeśli o niego nie prosiłeś, zignoruj tę wiadomość.",
        ),
        "en": Wording(
            "Your alerts",
            "Warsaw alerts: manage your alerts: {url}",
            "The link to manage your alerts (topics, districts, channels, erasing your "
            "data):\n\n{url}\n\n"
            "Do not share it. If you did not ask for it, ignore this message.",
        ),
        "uk": Wording(
            "Ваші сповіщення",
            "Варшава: керування сповіщеннями: {url}",
            "Посилання для керування вашими сповіщеннями (теми, райони, канали, "
            "видалення даних):\n\n{url}\n\n"
            "Нікому його не передавайте. Якщо ви його не просили, проігноруйте цей лист.",
        ),
    },
}
FALLBACK_LANGUAGE = "pl"


@dataclass(frozen=True, slots=True)
class Notice:
    """One message to one contact point, as the worker renders it just before sending;
    it never leaves the worker (the broker carries its id)."""

    id: int
    kind: NoticeKind
    channel: Channel
    address: str
    language: str
    contact_point_id: int
    code: str = ""
    url: str = ""
    valid_minutes: int = 0

    def wording(self) -> Wording:
        by_language = WORDING[self.kind]
        chosen = by_language.get(self.language, by_language[FALLBACK_LANGUAGE])
        values = {"code": self.code, "url": self.url, "minutes": self.valid_minutes}
        return Wording(chosen.title, chosen.short.format(**values), chosen.long.format(**values))

    def message(self) -> Message:
        """The channel message that carries this notice."""
        return _FORMS[self.channel](self, self.wording())


def _sms(notice: Notice, wording: Wording) -> Message:
    text = wording.short
    if shape(text).parts > 1 and shape(transliterate(text)).parts < shape(text).parts:
        text = transliterate(text)
    return Message(delivery_id=notice.id, address=notice.address, text=text)


def _push(notice: Notice, wording: Wording) -> Message:
    # The app reads the code (or link) from the data and posts it back by itself.
    data = {"kind": notice.kind.value}
    data.update({"code": notice.code} if notice.code else {})
    data.update({"url": notice.url} if notice.url else {})
    return Message(
        delivery_id=notice.id,
        address=notice.address,
        title=wording.title,
        text=wording.short,
        urgent=True,
        data=data,
    )


def _email(notice: Notice, wording: Wording) -> Message:
    paragraphs = []
    for paragraph in wording.long.split("\n\n"):
        escaped = html.escape(paragraph, quote=True)
        if notice.url and paragraph == notice.url:
            escaped = f'<a href="{escaped}">{escaped}</a>'
        paragraphs.append(f"<p>{escaped}</p>")
    body = "\n".join(paragraphs)
    page = (
        f'<!doctype html><html lang="{html.escape(notice.language)}"><meta charset="utf-8">'
        f"<title>{html.escape(wording.title)}</title><body>{body}</body></html>"
    )
    return Message(
        delivery_id=notice.id,
        address=notice.address,
        title=wording.title,
        text=wording.long + "\n",
        html=page,
    )


# The registry: how each channel carries a notice.
_FORMS: dict[Channel, Callable[[Notice, Wording], Message]] = {
    Channel.SMS: _sms,
    Channel.PUSH: _push,
    Channel.EMAIL: _email,
}


def confirm_url(settings: Settings, token: str) -> str:
    return f"{settings.public_base_url}/residents/confirm/{token}"


def manage_url(settings: Settings, token: str) -> str:
    """The resident's page; the same token works on the API's /manage/{token}."""
    return f"{settings.public_base_url}/my/{token}"


def _queue(
    session: Session,
    point: ContactPoint,
    kind: NoticeKind,
    language: str,
    *,
    expires: int,
    valid_minutes: int,
    code: str = "",
) -> Queued:
    return pending.hold(
        session=session,
        kind=PendingKind.NOTICE,
        contact_point_id=point.id,
        payload={
            "kind": kind.value,
            "language": language,
            "code": code,
            "expires": expires,
            "valid_minutes": valid_minutes,
        },
    )


def queue_proof(
    *,
    session: Session,
    settings: Settings,
    point: ContactPoint,
    code: str,
    language: str,
    now: float,
) -> Queued:
    """Queue what proves `point` is held: its code, or for e-mail a link that carries it."""
    ttl = settings.verification_code_ttl_seconds
    return _queue(
        session,
        point,
        PROOF[Channel(point.channel)],
        language,
        expires=int(now) + ttl,
        valid_minutes=max(1, ttl // 60),
        code=code,
    )


def queue_manage(
    *, session: Session, settings: Settings, point: ContactPoint, language: str, now: float
) -> Queued:
    """Queue a link to manage the subscriber `point` belongs to, sent to `point` only."""
    ttl = settings.manage_link_ttl_seconds
    return _queue(
        session, point, NoticeKind.MANAGE, language, expires=int(now) + ttl, valid_minutes=ttl // 60
    )


def render(*, session: Session, settings: Settings, queued: Queued) -> Notice | None:
    """The notice a pending request describes, addressed and signed now; None when the
    request is gone (sent already, erased) or its contact point can no longer be reached
    (erased, disabled)."""
    row = pending.held(session=session, queued=queued)
    if row is None or row.contact_point_id is None:
        return None
    point = session.get(ContactPoint, row.contact_point_id)
    if point is None or point.address is None or point.disabled_at is not None:
        return None
    kind = NoticeKind(row.payload["kind"])
    code, expires = str(row.payload.get("code", "")), int(row.payload["expires"])
    url = ""
    if kind is NoticeKind.CONFIRM:
        url = confirm_url(settings, confirm_token(settings.secret_key, point.id, code, expires))
    elif kind is NoticeKind.MANAGE:
        url = manage_url(settings, manage_token(settings.secret_key, point.subscriber_id, expires))
    return Notice(
        id=row.id,
        kind=kind,
        channel=Channel(point.channel),
        address=point.address,
        language=str(row.payload["language"]),
        contact_point_id=point.id,
        code=code if kind is NoticeKind.CODE else "",
        url=url,
        valid_minutes=int(row.payload["valid_minutes"]),
    )


def _reachable_and_proven(point: ContactPoint) -> bool:
    """A manage link goes only to an address proven before and still reachable."""
    return point.verified_at is not None and point.address is not None and point.disabled_at is None


@dataclass(frozen=True, slots=True)
class Reminder:
    """Send `address` what it needs now: a manage link if it is proven, a fresh code (or
    e-mail link) if it is not and `codes` is asked for, nothing if we do not know it."""

    channel: Channel
    address: str
    codes: bool

    def as_dict(self) -> dict[str, Any]:
        # Its address under "contacts", as a sign-up's: erasure finds either there.
        return {"contacts": [[self.channel.value, self.address]], "codes": self.codes}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Reminder:
        [[channel, address]] = data["contacts"]
        return cls(Channel(channel), str(address), bool(data["codes"]))


def hold_reminder(*, session: Session, reminder: Reminder) -> Queued:
    """Keep a reminder for the worker that answers it (`remind`)."""
    return pending.hold(session=session, kind=PendingKind.REMINDER, payload=reminder.as_dict())


def remind(*, session: Session, settings: Settings, queued: Queued, now: float) -> Queued | None:
    """Take a held reminder and queue the notice it comes to for the address as it stands
    (issuing a code), if any; None too when it was taken already."""
    payload = pending.take(session=session, queued=queued)
    if payload is None:
        return None
    reminder = Reminder.from_dict(payload)
    point = services.find_contact(
        session=session, channel=reminder.channel, address=reminder.address
    )
    if point is None or point.address is None or point.disabled_at is not None:
        return None
    language = point.subscriber.language
    if _reachable_and_proven(point):
        return queue_manage(
            session=session, settings=settings, point=point, language=language, now=now
        )
    if not reminder.codes:
        return None
    try:
        code = issue_code(session=session, settings=settings, contact_point=point)
    except RateLimited:
        return None  # this address's codes for the hour are spent; the API never tells
    return queue_proof(
        session=session, settings=settings, point=point, code=code, language=language, now=now
    )


@dataclass(frozen=True, slots=True)
class SignUp:
    """A sign-up the API has checked (addresses in normal form, topics and districts
    known, limits charged), for a worker to register."""

    contacts: tuple[tuple[Channel, str], ...]
    topics: tuple[str, ...]
    districts: tuple[str, ...]
    language: str
    wanted: tuple[Channel, ...]
    quiet_hours: tuple[str, str] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "contacts": [[channel.value, address] for channel, address in self.contacts],
            "topics": list(self.topics),
            "districts": list(self.districts),
            "language": self.language,
            "wanted": [channel.value for channel in self.wanted],
            "quiet_hours": list(self.quiet_hours) if self.quiet_hours else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SignUp:
        hours = data.get("quiet_hours")
        return cls(
            contacts=tuple((Channel(c), str(a)) for c, a in data["contacts"]),
            topics=tuple(str(t) for t in data["topics"]),
            districts=tuple(str(d) for d in data["districts"]),
            language=str(data["language"]),
            wanted=tuple(Channel(c) for c in data["wanted"]),
            quiet_hours=(str(hours[0]), str(hours[1])) if hours else None,
        )


def hold_sign_up(*, session: Session, request: SignUp) -> Queued:
    """Keep a checked sign-up for the worker that registers it (`sign_up`)."""
    return pending.hold(session=session, kind=PendingKind.SIGN_UP, payload=request.as_dict())


def sign_up(*, session: Session, settings: Settings, queued: Queued, now: float) -> list[Queued]:
    """Take a held sign-up and register the addresses not yet proven, each with its code
    (or e-mail link) queued; a proven address is queued its manage link instead, and
    nothing of it changes. Nothing when it was taken already."""
    payload = pending.take(session=session, queued=queued)
    if payload is None:
        return []
    request = SignUp.from_dict(payload)
    known = services.find_contacts(session=session, contacts=list(request.contacts))
    notices = [
        queue_manage(
            session=session,
            settings=settings,
            point=point,
            language=point.subscriber.language,
            now=now,
        )
        for pair in request.contacts
        if (point := known.get(pair)) is not None and _reachable_and_proven(point)
    ]
    fresh = [
        (channel.value, address)
        for channel, address in request.contacts
        if (point := known.get((channel, address))) is None or point.verified_at is None
    ]
    if not fresh:
        return notices
    created = services.subscribe(
        session=session,
        settings=settings,
        contacts=fresh,
        topics=list(request.topics),
        districts=list(request.districts),
        language=request.language,
        quiet_hours=services.parse_quiet_hours(*request.quiet_hours)
        if request.quiet_hours
        else None,
    )
    for point in created.subscriber.contact_points:
        point.wanted = Channel(point.channel) in request.wanted
        notices.append(
            queue_proof(
                session=session,
                settings=settings,
                point=point,
                code=created.codes[point.id],
                language=request.language,
                now=now,
            )
        )
    return notices
