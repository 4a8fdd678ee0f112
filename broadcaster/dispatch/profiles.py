"""What the domain needs to know of each channel, in one profile per channel.

A profile says how an alert's text becomes the channel's variant (`render`), how a
variant becomes one recipient's message (`message`), what an approver is shown of it
(`preview`), whether each recipient's message carries a link of its own to unsubscribe,
which setting holds the channel's rate, and what a failure says of the address it went
to. Planning, sending, the preview and the worker's rate limits look a channel up here
instead of asking which channel it is.

What is the provider's stays in channels/: its limits (`max_batch`, the SMS body), its
error codes and what they mean (`address_fault` of channels/email.py reads SMTP replies).
Building a sender from the settings stays in senders.py, the one module that imports
every provider library: the preview (in the API and the CLI) reads these profiles and
need not load firebase-admin.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from broadcaster.alerts.models import Alert
from broadcaster.settings import Settings
from channels import email
from channels.interfaces import AddressFault, Channel, DeliveryResult, Message, address_fault
from templates.renderer import (
    AlertText,
    EmailVariant,
    PushVariant,
    SmsVariant,
    render_email,
    render_push,
    render_sms,
)

V = TypeVar("V")
# Where a preview shows the link each recipient's e-mail carries of their own.
UNSUBSCRIBE_PLACEHOLDER = "https://…/u/…"


@dataclass(frozen=True, slots=True)
class ChannelProfile(Generic[V]):
    """One channel as the domain sees it; V is the type of its rendered variant."""

    channel: Channel
    render: Callable[[AlertText], V]
    # (variant, delivery id, address, alert, urgent, unsubscribe link) -> the message.
    message: Callable[[V, int, str, Alert, bool, str], Message]
    preview: Callable[[V], dict[str, Any]]
    # Each recipient's message carries their own unsubscribe link (RFC 8058): an HMAC
    # each, not worth paying for the channels that do not use it.
    unsubscribe_link: bool
    # The Settings field with the channel's shared rate, in messages a second.
    rate_setting: str
    # What a failed result says of its address: dead, a bounce, or nothing.
    address_fault: Callable[[DeliveryResult], AddressFault | None]

    def rate(self, settings: Settings) -> float:
        return float(getattr(settings, self.rate_setting))


def _data(alert: Alert) -> dict[str, str]:
    return {"alert_id": str(alert.id), "severity": alert.severity.value}


def _sms_message(
    variant: SmsVariant,
    delivery_id: int,
    address: str,
    alert: Alert,
    urgent: bool,
    unsubscribe: str,
) -> Message:
    return Message(delivery_id, address, text=variant.text)


def _push_message(
    variant: PushVariant,
    delivery_id: int,
    address: str,
    alert: Alert,
    urgent: bool,
    unsubscribe: str,
) -> Message:
    return Message(
        delivery_id,
        address,
        text=variant.body,
        title=variant.title,
        urgent=urgent,
        expires_at=alert.expires_at,
        data=_data(alert),
    )


def _email_message(
    variant: EmailVariant,
    delivery_id: int,
    address: str,
    alert: Alert,
    urgent: bool,
    unsubscribe: str,
) -> Message:
    text, html = variant.for_recipient(unsubscribe)
    return Message(
        delivery_id,
        address,
        text=text,
        title=variant.subject,
        html=html,
        unsubscribe_url=unsubscribe,
        urgent=urgent,
        data=_data(alert),
    )


def _sms_preview(variant: SmsVariant) -> dict[str, Any]:
    return {"text": variant.text, **variant.shape.as_dict()}


def _push_preview(variant: PushVariant) -> dict[str, Any]:
    return {"title": variant.title, "body": variant.body}


def _email_preview(variant: EmailVariant) -> dict[str, Any]:
    text, _ = variant.for_recipient(UNSUBSCRIBE_PLACEHOLDER)
    return {"subject": variant.subject, "text": text}


SMS: ChannelProfile[SmsVariant] = ChannelProfile(
    channel=Channel.SMS,
    render=render_sms,
    message=_sms_message,
    preview=_sms_preview,
    unsubscribe_link=False,
    rate_setting="sms_rate",
    address_fault=address_fault,
)
PUSH: ChannelProfile[PushVariant] = ChannelProfile(
    channel=Channel.PUSH,
    render=render_push,
    message=_push_message,
    preview=_push_preview,
    unsubscribe_link=False,
    rate_setting="push_rate",
    address_fault=address_fault,
)
EMAIL: ChannelProfile[EmailVariant] = ChannelProfile(
    channel=Channel.EMAIL,
    render=render_email,
    message=_email_message,
    preview=_email_preview,
    unsubscribe_link=True,
    rate_setting="email_rate",
    address_fault=email.address_fault,
)

# The registry, in the order of `Channel` (the order a preview lists them in).
PROFILES: dict[Channel, ChannelProfile[Any]] = {p.channel: p for p in (SMS, PUSH, EMAIL)}

# The order planning streams an alert's channels in, the most urgent first: an SMS reaches
# any phone, switched on, with no app and no data; a push needs the app and a connection;
# an e-mail is read last, and its provider is the slowest to take messages.
PLANNING_ORDER: tuple[Channel, ...] = (Channel.SMS, Channel.PUSH, Channel.EMAIL)
