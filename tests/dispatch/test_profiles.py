"""One profile per channel, and the provider's rules in channels/: what a failure says of
the address (a 5xx SMTP refusal is a bounce, a dead token or number is dead) and what an
SMSAPI delivery report means."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import aiosmtplib
import httpx
import pytest
from firebase_admin import messaging
from smsapi.exception import SendException

from broadcaster.alerts.models import Alert, Severity
from broadcaster.dispatch.profiles import PROFILES
from broadcaster.settings import Settings, load_settings
from channels import email, push, sms
from channels.interfaces import AddressFault, Channel, DeliveryResult, Outcome, Receipt
from channels.sms import Report, parse_smsapi
from templates.renderer import AlertText

EXPIRES = datetime(2027, 3, 28, 12, 0, tzinfo=UTC) + timedelta(hours=6)


@pytest.mark.parametrize("channel", list(Channel))
def test_every_channel_has_its_profile(channel: Channel) -> None:
    assert PROFILES[channel].channel is channel


def test_profiles_follow_the_order_of_the_channels() -> None:
    assert list(PROFILES) == list(Channel)


@pytest.mark.parametrize("channel", list(Channel))
def test_a_profiles_rate_is_its_channels_setting(channel: Channel) -> None:
    profile = PROFILES[channel]
    assert profile.rate_setting in Settings.model_fields
    settings = load_settings({f"WSP_{profile.rate_setting.upper()}": "123.5"})
    assert profile.rate(settings) == 123.5
    others = {p.rate_setting for p in PROFILES.values() if p is not profile}
    assert profile.rate_setting not in others


def _text(language: str = "pl") -> AlertText:
    return AlertText(
        language=language,
        title="Silny wiatr",
        body="Zabezpiecz balkon.",
        severity="Severe",
        topic="Ostrzeżenia pogodowe",
        area="Wola",
        expires_at=EXPIRES,
    )


@pytest.mark.parametrize(
    ("channel", "linked"), [(Channel.SMS, False), (Channel.PUSH, False), (Channel.EMAIL, True)]
)
def test_only_email_carries_each_recipients_unsubscribe_link(
    channel: Channel, linked: bool
) -> None:
    profile = PROFILES[channel]
    alert = Alert(id=7, severity=Severity.SEVERE, expires_at=EXPIRES)
    link = "https://example.test/u/token"
    message = profile.message(profile.render(_text()), 41, "address", alert, True, link)
    assert profile.unsubscribe_link is linked
    assert (message.delivery_id, message.address) == (41, "address")
    assert (message.unsubscribe_url == link) is linked
    assert (link in message.text) is linked
    assert "Zabezpiecz balkon." in message.text


@pytest.mark.parametrize(
    ("error", "fault"),
    [
        (
            aiosmtplib.SMTPRecipientsRefused(
                [aiosmtplib.SMTPRecipientRefused(550, "no such user", "a@b.pl")]
            ),
            AddressFault.BOUNCED,
        ),
        (aiosmtplib.SMTPDataError(554, "rejected"), AddressFault.BOUNCED),
        (
            aiosmtplib.SMTPRecipientsRefused(
                [aiosmtplib.SMTPRecipientRefused(452, "mailbox full", "a@b.pl")]
            ),
            None,
        ),
        (aiosmtplib.SMTPDataError(451, "try later"), None),
        (aiosmtplib.SMTPAuthenticationError(535, "bad credentials"), None),
        (aiosmtplib.SMTPServerDisconnected("gone"), None),
    ],
)
def test_a_5xx_smtp_refusal_is_a_bounce_and_a_4xx_is_not(
    error: BaseException, fault: AddressFault | None
) -> None:
    result = email.classify(error).result(1)
    assert email.address_fault(result) is fault
    assert PROFILES[Channel.EMAIL].address_fault(result) is fault


def test_an_smtp_code_says_nothing_of_the_address_unless_the_failure_is_final() -> None:
    waiting = DeliveryResult(1, Outcome.TEMPORARY, error_code="smtp-550")
    assert email.address_fault(waiting) is None
    assert email.address_fault(DeliveryResult(1, Outcome.SENT)) is None


def _unregistered() -> messaging.UnregisteredError:
    request = httpx.Request("POST", "https://fcm.example")
    response = httpx.Response(404, request=request)
    return messaging.UnregisteredError("x", cause=None, http_response=response)


@pytest.mark.parametrize(
    ("channel", "result", "fault"),
    [
        (Channel.PUSH, push.classify(_unregistered()).result(1), AddressFault.DEAD),
        (
            Channel.SMS,
            sms.classify(SendException("No correct phone numbers", 13)).result(1),
            AddressFault.DEAD,
        ),
        (Channel.SMS, sms.classify(SendException("Message too long", 11)).result(1), None),
        # An SMTP-looking code on another channel is not an e-mail bounce.
        (Channel.SMS, DeliveryResult(1, Outcome.PERMANENT, error_code="smtp-550"), None),
    ],
)
def test_dead_tokens_and_numbers_disable_at_once(
    channel: Channel, result: DeliveryResult, fault: AddressFault | None
) -> None:
    assert PROFILES[channel].address_fault(result) is fault


@pytest.mark.parametrize(
    ("status", "receipt"),
    [
        ("404", Receipt.DELIVERED),
        ("401", Receipt.UNDELIVERED),
        ("402", Receipt.UNDELIVERED),
        ("405", Receipt.UNDELIVERED),
        ("406", Receipt.UNDELIVERED),
        ("407", Receipt.UNDELIVERED),
        ("403", Receipt.PENDING),
        ("409", Receipt.PENDING),
        ("", Receipt.PENDING),
    ],
)
def test_what_an_smsapi_report_status_means(status: str, receipt: Receipt) -> None:
    assert Report("id", status, "1").receipt is receipt


def test_smsapi_reports_are_read_from_its_comma_joined_fields() -> None:
    reports = parse_smsapi("m1, m2,m3", "404,405 ,403", "11,12, 13")
    assert reports == [
        Report("m1", "404", "11"),
        Report("m2", "405", "12"),
        Report("m3", "403", "13"),
    ]
    assert [r.receipt for r in reports] == [
        Receipt.DELIVERED,
        Receipt.UNDELIVERED,
        Receipt.PENDING,
    ]


def test_smsapi_fields_of_different_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="same number of values"):
        parse_smsapi("m1,m2", "404", "11,12")
