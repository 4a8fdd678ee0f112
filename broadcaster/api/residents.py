"""Routes for residents, who have no account: they act through one-time codes and signed
links (see `subscribers.links` and `subscribers.notices`).

- `POST /residents/subscribe`: contact points, topics x districts, channels, language,
  quiet hours. Each new contact point gets what proves it is held: a code by SMS or push
  (the app posts back the code it received), a confirmation link by e-mail. An address
  that is already proven is not revealed: the answer is the same 202, and its owner is
  sent a manage link instead of a code.
- `POST /residents/verify`: a code for an SMS or push contact point; the resident then
  receives a manage link. `GET /residents/confirm/{token}` only shows a page with a
  button (mail scanners follow links); its `POST` confirms the e-mail address.
- `POST /residents/codes` (a new code) and `POST /residents/links` (a lost manage link)
  answer 202 whether or not the address is registered; only a registered address (a
  proven one, for a manage link) is sent anything.
- `/manage/{token}`: read, change subscriptions and preferences, export, erase. A forged
  link answers 404, an expired one 410.
- `/u/{token}`: RFC 8058 one-click unsubscribe; `GET` shows a confirmation page, only
  `POST` with `List-Unsubscribe=One-Click` unsubscribes.

What is sent is limited per contact point, per client IP and for the whole service
(429 with Retry-After), counted before anything is written; limits are charged whether
or not an address is registered, so they tell a stranger nothing either.

What a worker does next (a sign-up, a reminder, a code or link to send) is written to the
pending requests in the request's own transaction, and the worker is handed its id only:
no address, code or link travels through the broker.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import ipaddress
import time
from collections.abc import Sequence
from datetime import time as clock
from typing import Annotated, Any, Literal

import redis
from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from broadcaster.api.strict_json import StrictJsonRoute
from broadcaster.errors import InvalidInput, RateLimited
from broadcaster.http.support import PAGE_HEADERS, Api, ApiDep
from broadcaster.ratelimit import KeyedLimiter, LocalKeyedLimiter, RedisKeyedLimiter
from broadcaster.reference.models import District, Language, Topic
from broadcaster.settings import Settings
from channels import Channel
from subscribers import services
from subscribers.contacts import mask_address, normalise_address
from subscribers.links import (
    LinkState,
    read_confirm_token,
    read_manage_token,
    read_unsubscribe_token,
)
from subscribers.models import ContactPoint, Subscriber
from subscribers.notices import Reminder, SignUp, hold_reminder, hold_sign_up, queue_manage
from subscribers.pending import Queued
from subscribers.verification import CodeCheck, check_code

router = APIRouter(tags=["residents"], route_class=StrictJsonRoute)

FORGED_LINK = "this link is not valid"
EXPIRED_LINK = "this link has expired; ask for a new one (POST /residents/links)"
LINK_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "The link is not one of ours (forged or mistyped)."},
    410: {"description": "The link was ours but has expired."},
}
# One answer for every failure: telling a locked or expired code from a wrong one would
# tell a stranger that this address has a sign-up waiting.
_CODE_PROBLEM = "is not valid: wrong, expired or tried too many times; ask for a new code"
CODE_PROBLEMS = dict.fromkeys(
    (CodeCheck.WRONG, CodeCheck.NO_CODE, CodeCheck.EXPIRED, CodeCheck.LOCKED), _CODE_PROBLEM
)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# A topic or district slug ("*" for the whole city); anything else is refused before
# the database sees it.
Slug = Annotated[str, Field(pattern=r"^(\*|[a-z0-9][a-z0-9-]{0,31})$")]


class ContactIn(Strict):
    channel: Channel
    address: str = Field(min_length=1, max_length=512)


class QuietHoursIn(Strict):
    """Local (Europe/Warsaw) times; a window may run over midnight (22:00-07:00)."""

    start: clock
    end: clock


class SubscribeIn(Strict):
    contacts: list[ContactIn] = Field(min_length=1, max_length=3)
    topics: list[Slug] = Field(min_length=1, max_length=50)
    # District slugs, or ["*"] for the whole city.
    districts: list[Slug] = Field(min_length=1, max_length=50)
    # The channels wanted; default: every channel of `contacts`.
    channels: list[Channel] | None = Field(default=None, min_length=1)
    language: Language = Language.PL
    quiet_hours: QuietHoursIn | None = None


class AddressIn(Strict):
    channel: Channel
    address: str = Field(min_length=1, max_length=512)


class VerifyIn(AddressIn):
    code: str = Field(min_length=1, max_length=16)


class Accepted(BaseModel):
    status: Literal["accepted"] = "accepted"
    detail: str


class Verified(BaseModel):
    status: Literal["verified"] = "verified"
    detail: str = "confirmed; a link to manage your alerts is on its way"


class SubscriptionsIn(Strict):
    topics: list[Slug] = Field(min_length=1, max_length=50)
    districts: list[Slug] = Field(min_length=1, max_length=50)


class PreferencesIn(Strict):
    """Only the fields given change; `quiet_hours: null` removes quiet hours."""

    language: Language | None = None
    channels: list[Channel] | None = Field(default=None, min_length=1)
    quiet_hours: QuietHoursIn | None = None


class ContactView(BaseModel):
    id: int
    channel: Channel
    # Masked: a manage link may be forwarded, the address need not travel with it.
    address: str
    wanted: bool
    verified: bool
    unsubscribed: bool
    disabled: bool


class SubscriptionView(BaseModel):
    topic: str
    district: str


class ManageView(BaseModel):
    language: Language
    quiet_hours: QuietHoursIn | None
    contact_points: list[ContactView]
    subscriptions: list[SubscriptionView]


class Erased(BaseModel):
    status: Literal["erased"] = "erased"


# -- rate limits ----------------------------------------------------------------------


class Limits:
    """Limits on what residents can make us send: per contact point, per client IP, and
    for the whole service. Shared through Redis when the deployment runs on Redis (the
    broker is Redis), otherwise kept in this process (the embedded default)."""

    def __init__(self, settings: Settings, limiter: KeyedLimiter) -> None:
        self.settings = settings
        self.limiter = limiter

    @classmethod
    def for_settings(cls, settings: Settings) -> Limits:
        if settings.broker_url.startswith(("redis://", "rediss://")):
            client = redis.Redis.from_url(settings.redis_url)
            return cls(settings, RedisKeyedLimiter(client, settings.ratelimit_key_prefix))
        return cls(settings, LocalKeyedLimiter())

    def _contact_key(self, channel: Channel, address: str) -> str:
        # One mailbox under many names (jan+1@, jan+2@, ...) is one contact to limit.
        if channel is Channel.EMAIL:
            local, _, domain = address.rpartition("@")
            address = f"{local.split('+', 1)[0]}@{domain}"
        # Keyed, so that the keys in Redis do not give the addresses away.
        digest = hmac.new(
            self.settings.secret_key.encode(), f"{channel}:{address}".encode(), hashlib.sha256
        )
        return f"contact:{digest.hexdigest()[:32]}"

    @staticmethod
    def _network_key(ip: str) -> str:
        # An IPv6 client holds a whole /64 (and hops between its addresses): limit that.
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return f"ip:{ip}"
        if isinstance(address, ipaddress.IPv6Address):
            if address.ipv4_mapped is not None:
                return f"ip:{address.ipv4_mapped}"
            return f"ip:{ipaddress.ip_network(f'{address}/64', strict=False)}"
        return f"ip:{address}"

    def charge(self, *, ip: str, contacts: Sequence[tuple[Channel, str]]) -> None:
        """Count one message to each contact; RateLimited names the first limit reached."""
        settings = self.settings
        for index, (channel, address) in enumerate(contacts):
            checks = [
                (
                    self._contact_key(channel, address),
                    settings.verification_codes_per_hour,
                    f"too many messages were sent to contacts[{index}] (or this address); "
                    "try again later",
                ),
                (
                    self._network_key(ip),
                    settings.verification_messages_per_ip_per_hour,
                    "too many requests from your network; try again later",
                ),
                (
                    "global",
                    settings.verification_messages_per_hour,
                    "the service is sending too many codes right now; try again later",
                ),
            ]
            for key, per_hour, message in checks:
                wait = self.limiter.hit(key, per_hour)
                if wait > 0:
                    raise RateLimited(message, wait)


def get_limits(request: Request, api: ApiDep) -> Limits:
    state = request.app.state
    limits: Limits | None = getattr(state, "resident_limits", None)
    if limits is None:
        limits = state.resident_limits = Limits.for_settings(api.settings)
    return limits


LimitsDep = Annotated[Limits, Depends(get_limits)]


def client_ip(request: Request, settings: Settings) -> str:
    """The client's address: the peer's, unless `forwarded_for_hops` proxies we run sit in
    front, each appending what it saw to X-Forwarded-For; anything further left was
    written by the client and is not believed."""
    peer = request.client.host if request.client else "unknown"
    hops = settings.forwarded_for_hops
    if hops == 0:
        return peer
    chain = [
        part.strip()
        for header in request.headers.getlist("x-forwarded-for")
        for part in header.split(",")
        if part.strip()
    ]
    # Fewer entries than proxies: the request did not come through all of them, and
    # whatever it carries is the client's own writing.
    return chain[-hops] if len(chain) >= hops else peer


# -- signing up and proving -----------------------------------------------------------


def _wanted_channels(body: SubscribeIn, contacts: list[tuple[Channel, str]]) -> set[Channel]:
    given = {channel for channel, _ in contacts}
    if body.channels is None:
        return given
    wanted = set(body.channels)
    missing = wanted - given
    if missing:
        raise InvalidInput("channels", f"no contact point given for {sorted(missing)[0]}")
    return wanted


@router.post(
    "/residents/subscribe",
    status_code=202,
    response_model=Accepted,
    responses={429: {"description": "Too many codes or links requested; see Retry-After."}},
)
def subscribe(body: SubscribeIn, request: Request, api: ApiDep, limits: LimitsDep) -> Accepted:
    """Sign up; every new contact point is sent its code (e-mail: a confirmation link).

    Everything is checked here; the registering is a worker's (`SignUp`, held for it in
    the same transaction), so that the answer takes as long for an address already
    registered as for a new one."""
    settings = api.settings
    contacts = services.normalise_contacts(
        [(c.channel.value, c.address) for c in body.contacts], sms_regions=settings.sms_regions
    )
    hours = body.quiet_hours
    if hours is not None:
        services.parse_quiet_hours(hours.start, hours.end)
    wanted = _wanted_channels(body, contacts)
    held = SignUp(
        contacts=tuple(contacts),
        topics=tuple(body.topics),
        districts=tuple(body.districts),
        language=body.language.value,
        wanted=tuple(sorted(wanted)),
        quiet_hours=(hours.start.isoformat(), hours.end.isoformat()) if hours is not None else None,
    )
    with api.transaction() as session:
        services.check_subscriptions(session=session, topics=body.topics, districts=body.districts)
        # Charged last, before the only write: a refusal leaves nothing behind.
        limits.charge(ip=client_ip(request, settings), contacts=contacts)
        queued = hold_sign_up(session=session, request=held)
    api.hand_off([queued])
    return Accepted(
        detail="we have sent a code (or, by e-mail, a link) to each address; "
        "confirm them to start receiving alerts"
    )


def _queue_manage(session: Session, settings: Settings, point: ContactPoint) -> list[Queued]:
    if point.address is None or point.disabled_at is not None:
        return []
    language = point.subscriber.language
    return [
        queue_manage(
            session=session, settings=settings, point=point, language=language, now=time.time()
        )
    ]


def _find(session: Session, body: AddressIn) -> ContactPoint | None:
    point = services.find_contact(session=session, channel=body.channel, address=body.address)
    return point if point is not None and point.address is not None else None


@router.post("/residents/verify", response_model=Verified)
def verify(body: VerifyIn, api: ApiDep) -> Verified:
    """Prove an SMS or push contact point with the code sent to it.

    A wrong try is counted and committed before the 422 is answered; an unknown address
    answers exactly like a wrong code.
    """
    settings = api.settings
    notices: list[Queued] = []
    with api.transaction() as session:
        point = _find(session, body)
        outcome = CodeCheck.NO_CODE
        if point is not None:
            outcome = check_code(
                session=session, settings=settings, contact_point=point, code=body.code
            )
        if point is not None and outcome is CodeCheck.VERIFIED:
            notices = _queue_manage(session, settings, point)
    if outcome is not CodeCheck.VERIFIED:
        raise InvalidInput("code", CODE_PROBLEMS[outcome])
    api.hand_off(notices)
    return Verified()


def _remind(
    api: Api, request: Request, limits: Limits, body: AddressIn, *, codes: bool
) -> list[Queued]:
    """One reminder held for a worker, whatever the address: the answer neither looks
    the address up nor waits on what is sent, so it tells nothing of who is registered.
    The limits are charged, and the reminder written, in every case alike."""
    address = normalise_address(body.channel, body.address, field="address")
    limits.charge(ip=client_ip(request, api.settings), contacts=[(body.channel, address)])
    with api.transaction() as session:
        return [hold_reminder(session=session, reminder=Reminder(body.channel, address, codes))]


@router.post("/residents/codes", status_code=202, response_model=Accepted)
def resend_code(body: AddressIn, request: Request, api: ApiDep, limits: LimitsDep) -> Accepted:
    """Ask for a new code (or confirmation link) for an address signed up but unproven."""
    api.hand_off(_remind(api, request, limits, body, codes=True))
    return Accepted(detail="if this address is signed up, a message is on its way to it")


@router.post("/residents/links", status_code=202, response_model=Accepted)
def request_manage_link(
    body: AddressIn, request: Request, api: ApiDep, limits: LimitsDep
) -> Accepted:
    """Ask for a new manage link; it goes only to a proven address, never to the asker."""
    api.hand_off(_remind(api, request, limits, body, codes=False))
    return Accepted(detail="if this address is signed up, a link is on its way to it")


# -- small HTML pages (links opened from a mailbox) ----------------------------------


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        '<!doctype html><html lang="pl"><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width">'
        '<meta name="robots" content="noindex">'
        f"<title>{html.escape(title)}</title><body><h1>{html.escape(title)}</h1>{body}</body></html>",
        status_code=status,
        headers=PAGE_HEADERS,
    )


def _button_form(action: str, label: str, fields: dict[str, str] | None = None) -> str:
    hidden = "".join(
        f'<input type="hidden" name="{html.escape(name)}" value="{html.escape(value)}">'
        for name, value in (fields or {}).items()
    )
    return (
        f'<form method="post" action="{html.escape(action)}">{hidden}'
        f'<button type="submit">{html.escape(label)}</button></form>'
    )


def _forged_page() -> HTMLResponse:
    return _page("Nieprawidłowy link / Invalid link", f"<p>{FORGED_LINK}</p>", 404)


def _expired_page() -> HTMLResponse:
    return _page("Link wygasł / Link expired", f"<p>{html.escape(EXPIRED_LINK)}</p>", 410)


def _link_page(state: LinkState) -> HTMLResponse | None:
    """The page refusing a link that is not valid; None for a valid one."""
    if state is LinkState.FORGED:
        return _forged_page()
    if state is LinkState.EXPIRED:
        return _expired_page()
    return None


@router.get("/residents/confirm/{token}", response_class=HTMLResponse, responses=LINK_ERRORS)
def confirm_page(token: str, api: ApiDep) -> HTMLResponse:
    """The page an e-mail confirmation link opens; it confirms nothing by itself."""
    state, _, _ = read_confirm_token(api.settings.secret_key, token, time.time())
    return _link_page(state) or _page(
        "Potwierdź adres e-mail / Confirm your e-mail address",
        _button_form(f"/residents/confirm/{token}", "Potwierdzam / Confirm"),
    )


@router.post("/residents/confirm/{token}", response_class=HTMLResponse, responses=LINK_ERRORS)
def confirm(token: str, api: ApiDep) -> HTMLResponse:
    """Confirm an e-mail address with the code its link carries."""
    settings = api.settings
    state, point_id, code = read_confirm_token(settings.secret_key, token, time.time())
    refused = _link_page(state)
    if refused is not None:
        return refused
    notices: list[Queued] = []
    with api.transaction() as session:
        point = session.get(ContactPoint, point_id)
        if point is None or point.address is None:
            return _forged_page()
        already = point.verified_at is not None
        outcome = CodeCheck.VERIFIED
        if not already:
            outcome = check_code(
                session=session,
                settings=settings,
                contact_point=point,
                code=code,
                from_signed_link=True,
            )
        if outcome is CodeCheck.VERIFIED and not already:
            notices = _queue_manage(session, settings, point)
    api.hand_off(notices)
    if outcome is not CodeCheck.VERIFIED:
        # A newer link replaced this one (or it ran out of time or tries).
        return _expired_page()
    return _page(
        "Adres potwierdzony / Address confirmed",
        "<p>Wysłaliśmy link do zarządzania powiadomieniami. "
        "We have sent you a link to manage your alerts.</p>",
    )


# -- one-click unsubscribe (RFC 8058) -------------------------------------------------


def _unsubscribe_point(api: Api, token: str) -> int:
    point_id = read_unsubscribe_token(api.settings.secret_key, token)
    if point_id is None:
        raise HTTPException(404, FORGED_LINK)
    return point_id


@router.get("/u/{token}", response_class=HTMLResponse, responses={404: LINK_ERRORS[404]})
def unsubscribe_page(token: str, api: ApiDep) -> HTMLResponse:
    """What a person (or a link scanner) opening the link sees: a button, no change."""
    _unsubscribe_point(api, token)
    return _page(
        "Wypisać się? / Unsubscribe?",
        "<p>Ten adres przestanie otrzymywać powiadomienia. "
        "This address will stop receiving alerts.</p>"
        + _button_form(
            f"/u/{token}", "Wypisz mnie / Unsubscribe", {"List-Unsubscribe": "One-Click"}
        ),
    )


@router.post(
    "/u/{token}",
    response_class=HTMLResponse,
    responses={404: LINK_ERRORS[404], 422: {"description": "List-Unsubscribe=One-Click missing"}},
)
def unsubscribe(
    token: str,
    api: ApiDep,
    one_click: Annotated[str | None, Form(alias="List-Unsubscribe")] = None,
) -> HTMLResponse:
    """RFC 8058: a POST with `List-Unsubscribe=One-Click` unsubscribes the contact point
    the link was made for, with no sign-in; doing it twice changes nothing."""
    point_id = _unsubscribe_point(api, token)
    if one_click != "One-Click":
        raise InvalidInput("List-Unsubscribe", "must be One-Click")
    with api.transaction() as session:
        point = session.get(ContactPoint, point_id)
        if point is not None and point.address is not None:
            services.unsubscribe_contact(
                session=session, channel=point.channel, address=point.address, via="one-click"
            )
    return _page(
        "Wypisano / Unsubscribed",
        "<p>Ten adres nie będzie już otrzymywać powiadomień. "
        "This address will no longer receive alerts.</p>",
    )


# -- managing through a signed link ---------------------------------------------------


def subscriber_of(session: Session, api: Api, token: str) -> Subscriber:
    state, subscriber_id = read_manage_token(api.settings.secret_key, token, time.time())
    if state is LinkState.FORGED:
        raise HTTPException(404, FORGED_LINK)
    if state is LinkState.EXPIRED:
        raise HTTPException(410, EXPIRED_LINK)
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None or subscriber.erased_at is not None:
        raise HTTPException(404, FORGED_LINK)
    return subscriber


def _view(session: Session, subscriber: Subscriber) -> ManageView:
    topics = dict(session.execute(select(Topic.id, Topic.slug)).all())
    districts = dict(session.execute(select(District.id, District.slug)).all())
    quiet = (
        QuietHoursIn(start=subscriber.quiet_from, end=subscriber.quiet_until)
        if subscriber.quiet_from is not None and subscriber.quiet_until is not None
        else None
    )
    return ManageView(
        language=Language(subscriber.language),
        quiet_hours=quiet,
        contact_points=[
            ContactView(
                id=point.id,
                channel=Channel(point.channel),
                address=mask_address(point.channel, point.address),
                wanted=point.wanted,
                verified=point.verified_at is not None,
                unsubscribed=point.unsubscribed_at is not None,
                disabled=point.disabled_at is not None,
            )
            for point in subscriber.contact_points
        ],
        subscriptions=[
            SubscriptionView(topic=topics[s.topic_id], district=districts[s.district_id])
            for s in subscriber.subscriptions
        ],
    )


@router.get("/manage/{token}", response_model=ManageView, responses=LINK_ERRORS)
def manage(token: str, api: ApiDep) -> ManageView:
    with api.transaction() as session:
        return _view(session, subscriber_of(session, api, token))


@router.put("/manage/{token}/subscriptions", response_model=ManageView, responses=LINK_ERRORS)
def replace_subscriptions(token: str, body: SubscriptionsIn, api: ApiDep) -> ManageView:
    """Replace topics x districts (["*"] for the whole city)."""
    with api.transaction() as session:
        subscriber = subscriber_of(session, api, token)
        services.set_subscriptions(
            session=session, subscriber=subscriber, topics=body.topics, districts=body.districts
        )
        return _view(session, subscriber)


@router.patch("/manage/{token}/preferences", response_model=ManageView, responses=LINK_ERRORS)
def change_preferences(token: str, body: PreferencesIn, api: ApiDep) -> ManageView:
    """Change language, channels wanted or quiet hours; fields left out stay as they are."""
    given = body.model_fields_set
    quiet: services.QuietHours | bool | None = False
    if "quiet_hours" in given:
        hours = body.quiet_hours
        quiet = services.parse_quiet_hours(hours.start, hours.end) if hours else None
    with api.transaction() as session:
        subscriber = subscriber_of(session, api, token)
        services.set_preferences(
            session=session,
            subscriber=subscriber,
            language=body.language.value if body.language else None,
            channels=[c.value for c in body.channels] if body.channels else None,
            quiet_hours=quiet,
        )
        return _view(session, subscriber)


@router.get("/manage/{token}/export", response_model=dict[str, Any], responses=LINK_ERRORS)
def export(token: str, api: ApiDep) -> dict[str, Any]:
    """Everything we hold about the resident, as JSON (GDPR art. 15 and 20)."""
    with api.transaction() as session:
        subscriber = subscriber_of(session, api, token)
        return services.export_subscriber(session=session, subscriber_id=subscriber.id)


@router.delete("/manage/{token}", response_model=Erased, responses=LINK_ERRORS)
def erase(token: str, api: ApiDep) -> Erased:
    """Erase the resident's personal data (GDPR art. 17); the link stops working."""
    with api.transaction() as session:
        subscriber = subscriber_of(session, api, token)
        services.erase_subscriber(
            session=session, subscriber_id=subscriber.id, actor=f"subscriber:{subscriber.id}"
        )
    return Erased()
