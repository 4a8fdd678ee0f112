"""The residents' flows, as the API and the pages both call them.

Each call runs in its own transaction and commits before it returns, so that a face
never shows a success for something that was not written; what a worker must do next (a
sign-up to register, a code or link to send) is held in that transaction and handed to
the worker after the commit, by its id only: no address, code or link travels through
the broker.

A sign-up, a new code and a lost link get one answer whether or not the address is
registered, in as much time: the request checks the input, charges the limits and holds
the rest for a worker alike in every case (`benchmarks/enumeration.py` times it). A link
we do not act on raises `ForgedLink` or `ExpiredLink` (broadcaster.errors).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from broadcaster.errors import ExpiredLink, ForgedLink, InvalidInput
from broadcaster.reference.models import District, Language, Topic
from broadcaster.residents import keywords
from broadcaster.residents.limits import Limits
from broadcaster.residents.personal_data import erase_resident, export_resident
from broadcaster.residents.schemas import (
    AddressIn,
    ContactView,
    ManageView,
    PreferencesIn,
    QuietHoursIn,
    SubscribeIn,
    SubscriptionsIn,
    SubscriptionView,
    VerifyIn,
)
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

# One answer for every failure: telling a locked or expired code from a wrong one would
# tell a stranger that this address has a sign-up waiting.
CODE_PROBLEM = "is not valid: wrong, expired or tried too many times; ask for a new code"
CODE_PROBLEMS = dict.fromkeys(
    (CodeCheck.WRONG, CodeCheck.NO_CODE, CodeCheck.EXPIRED, CodeCheck.LOCKED), CODE_PROBLEM
)

HandOff = Callable[[Iterable[Queued]], None]


def _refuse(state: LinkState) -> None:
    if state is LinkState.FORGED:
        raise ForgedLink()
    if state is LinkState.EXPIRED:
        raise ExpiredLink()


def _wanted_channels(body: SubscribeIn, contacts: list[tuple[Channel, str]]) -> set[Channel]:
    given = {channel for channel, _ in contacts}
    if body.channels is None:
        return given
    wanted = set(body.channels)
    missing = wanted - given
    if missing:
        raise InvalidInput("channels", f"no contact point given for {sorted(missing)[0]}")
    return wanted


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


class Residents:
    """The residents' side of the service; `hand_off` passes what was held for a worker
    on to it (after the commit), `limits` counts what residents make us send."""

    def __init__(
        self,
        *,
        settings: Settings,
        sessions: sessionmaker[Session],
        limits: Limits,
        hand_off: HandOff,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.limits = limits
        self.hand_off = hand_off

    @contextmanager
    def _transaction(self) -> Iterator[Session]:
        with self.sessions() as session, session.begin():
            yield session

    # -- signing up and proving -------------------------------------------------------

    def sign_up(self, *, request: SubscribeIn, ip: str) -> None:
        """Sign up; every new contact point is sent its code (e-mail: a confirmation link),
        and an address already proven is sent a manage link instead, which the answer
        does not tell. Everything is checked here; the registering is a worker's
        (`SignUp`, held in the same transaction), so that the answer takes as long for an
        address already registered as for a new one."""
        settings = self.settings
        contacts = services.normalise_contacts(
            [(c.channel.value, c.address) for c in request.contacts],
            sms_regions=settings.sms_regions,
        )
        hours = request.quiet_hours
        if hours is not None:
            services.parse_quiet_hours(hours.start, hours.end)
        wanted = _wanted_channels(request, contacts)
        held = SignUp(
            contacts=tuple(contacts),
            topics=tuple(request.topics),
            districts=tuple(request.districts),
            language=request.language.value,
            wanted=tuple(sorted(wanted)),
            quiet_hours=(
                (hours.start.isoformat(), hours.end.isoformat()) if hours is not None else None
            ),
        )
        with self._transaction() as session:
            services.check_subscriptions(
                session=session, topics=request.topics, districts=request.districts
            )
            # Charged last, before the only write: a refusal leaves nothing behind.
            self.limits.charge(ip=ip, contacts=contacts)
            queued = hold_sign_up(session=session, request=held)
        self.hand_off([queued])

    def _queue_manage(self, session: Session, point: ContactPoint) -> list[Queued]:
        if point.address is None or point.disabled_at is not None:
            return []
        language = point.subscriber.language
        return [
            queue_manage(
                session=session,
                settings=self.settings,
                point=point,
                language=language,
                now=time.time(),
            )
        ]

    def verify(self, *, request: VerifyIn) -> None:
        """Prove an SMS or push contact point with the code sent to it; its resident is
        then sent a manage link. A wrong try is counted and committed before the refusal
        (InvalidInput on `code`); an unknown address is refused exactly like a wrong code.
        """
        notices: list[Queued] = []
        with self._transaction() as session:
            point = services.find_contact(
                session=session, channel=request.channel, address=request.address
            )
            outcome = CodeCheck.NO_CODE
            if point is not None and point.address is not None:
                outcome = check_code(
                    session=session, settings=self.settings, contact_point=point, code=request.code
                )
                if outcome is CodeCheck.VERIFIED:
                    notices = self._queue_manage(session, point)
        if outcome is not CodeCheck.VERIFIED:
            raise InvalidInput("code", CODE_PROBLEMS[outcome])
        self.hand_off(notices)

    def remind(self, *, request: AddressIn, ip: str, codes: bool) -> None:
        """A new code (`codes`) or confirmation link for an address signed up but
        unproven, or a lost manage link, which goes only to a proven address. One
        reminder held for a worker, whatever the address: this neither looks the address
        up nor waits on what is sent, so it tells nothing of who is registered; the
        limits are charged, and the reminder written, in every case alike."""
        address = normalise_address(request.channel, request.address, field="address")
        self.limits.charge(ip=ip, contacts=[(request.channel, address)])
        with self._transaction() as session:
            held = hold_reminder(
                session=session, reminder=Reminder(request.channel, address, codes)
            )
        self.hand_off([held])

    # -- the e-mail confirmation link -------------------------------------------------

    def check_confirm_link(self, *, token: str) -> None:
        """Whether an e-mail confirmation link is one to act on (it confirms nothing:
        mail scanners open links)."""
        state, _, _ = read_confirm_token(self.settings.secret_key, token, time.time())
        _refuse(state)

    def confirm_email(self, *, token: str) -> None:
        """Confirm the e-mail address its link was made for; confirming twice is harmless
        and sends no second manage link. A link a newer one replaced (or out of time or
        tries) is refused as expired."""
        settings = self.settings
        state, point_id, code = read_confirm_token(settings.secret_key, token, time.time())
        _refuse(state)
        notices: list[Queued] = []
        with self._transaction() as session:
            point = session.get(ContactPoint, point_id)
            if point is None or point.address is None:
                raise ForgedLink()
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
                notices = self._queue_manage(session, point)
        self.hand_off(notices)
        if outcome is not CodeCheck.VERIFIED:
            raise ExpiredLink()

    # -- one-click unsubscribe (RFC 8058) ---------------------------------------------

    def check_unsubscribe_link(self, *, token: str) -> int:
        """The contact point a one-click unsubscribe link was made for; ForgedLink if none."""
        point_id = read_unsubscribe_token(self.settings.secret_key, token)
        if point_id is None:
            raise ForgedLink()
        return point_id

    def unsubscribe_by_link(self, *, token: str, one_click: str | None) -> None:
        """RFC 8058: `List-Unsubscribe=One-Click` unsubscribes the contact point the link
        was made for, with no sign-in; doing it twice changes nothing."""
        point_id = self.check_unsubscribe_link(token=token)
        if one_click != "One-Click":
            raise InvalidInput("List-Unsubscribe", "must be One-Click")
        with self._transaction() as session:
            point = session.get(ContactPoint, point_id)
            if point is not None and point.address is not None:
                services.unsubscribe_contact(
                    session=session, channel=point.channel, address=point.address, via="one-click"
                )

    # -- managing through the signed link ---------------------------------------------

    def _subscriber_of(self, session: Session, token: str) -> Subscriber:
        state, subscriber_id = read_manage_token(self.settings.secret_key, token, time.time())
        _refuse(state)
        subscriber = session.get(Subscriber, subscriber_id)
        if subscriber is None or subscriber.erased_at is not None:
            raise ForgedLink()
        return subscriber

    def manage_view(self, *, token: str) -> ManageView:
        """What the manage link shows: preferences, contact points (masked), topics x
        districts."""
        with self._transaction() as session:
            return _view(session, self._subscriber_of(session, token))

    def set_subscriptions(self, *, token: str, request: SubscriptionsIn) -> ManageView:
        """Replace topics x districts (["*"] for the whole city)."""
        with self._transaction() as session:
            subscriber = self._subscriber_of(session, token)
            services.set_subscriptions(
                session=session,
                subscriber=subscriber,
                topics=request.topics,
                districts=request.districts,
            )
            return _view(session, subscriber)

    def change_preferences(self, *, token: str, request: PreferencesIn) -> ManageView:
        """Change language, channels wanted or quiet hours; fields left out stay as they
        are, and `quiet_hours` given as None removes them."""
        quiet: services.QuietHours | bool | None = False
        if "quiet_hours" in request.model_fields_set:
            hours = request.quiet_hours
            quiet = services.parse_quiet_hours(hours.start, hours.end) if hours else None
        with self._transaction() as session:
            subscriber = self._subscriber_of(session, token)
            services.set_preferences(
                session=session,
                subscriber=subscriber,
                language=request.language.value if request.language else None,
                channels=[c.value for c in request.channels] if request.channels else None,
                quiet_hours=quiet,
            )
            return _view(session, subscriber)

    def unsubscribe_contact(self, *, token: str, point_id: int) -> None:
        """Stop every alert to one of the resident's addresses (the others go on); an id
        that is not one of theirs is refused as the link would be (ForgedLink)."""
        with self._transaction() as session:
            subscriber = self._subscriber_of(session, token)
            point = next((p for p in subscriber.contact_points if p.id == point_id), None)
            if point is None or point.address is None:
                raise ForgedLink()
            services.unsubscribe_contact(
                session=session, channel=point.channel, address=point.address, via="manage-page"
            )

    def export(self, *, token: str) -> dict[str, Any]:
        """Everything we hold about the resident (GDPR art. 15 and 20)."""
        with self._transaction() as session:
            subscriber = self._subscriber_of(session, token)
            return export_resident(session=session, subscriber_id=subscriber.id)

    def erase(self, *, token: str) -> None:
        """Erase the resident's personal data (GDPR art. 17); the link stops working."""
        with self._transaction() as session:
            subscriber = self._subscriber_of(session, token)
            erase_resident(
                session=session, subscriber_id=subscriber.id, actor=f"subscriber:{subscriber.id}"
            )

    # -- SMS keywords -----------------------------------------------------------------

    def apply_sms_keyword(self, *, word: keywords.Keyword, sender: str) -> None:
        """STOP or START sent from the number `sender` (as SMSAPI gives it)."""
        with self._transaction() as session:
            keywords.apply_keyword(
                session=session, word=word, number=keywords.sender_number(sender)
            )
