"""Each channel's one classifier: every provider error is temporary or permanent, and keeps
the provider's own code."""

from __future__ import annotations

import aiosmtplib
import httpx
import pytest
import requests
from firebase_admin import exceptions, messaging
from smsapi.exception import ClientException, EndpointException, SendException

from channels import email, push, sms


@pytest.mark.parametrize(
    ("error", "temporary", "code", "disable"),
    [
        (SendException("No correct phone numbers", 13), False, "13", True),
        (SendException("Message too long", 11), False, "11", False),
        (SendException("Too many parts", 12), False, "12", False),
        (SendException("Not unique idx", 53), False, "53", False),
        (SendException("Blacklisted", 57), False, "57", True),
        (SendException("Too many requests", 203), True, "203", False),
        (SendException("System error", 999), True, "999", False),
        (SendException("No credit", 103), True, "103", False),
        (EndpointException("boom", 500), True, "http-500", False),
        (EndpointException("slow down", 429), True, "http-429", False),
        (EndpointException("who are you", 401), True, "http-401", False),
        (EndpointException("bad request", 400), False, "http-400", False),
        (ClientException("Credentials are required."), False, "None", False),
        (requests.ConnectTimeout("slow"), True, "timeout", False),
        (requests.ConnectionError("refused"), True, "network", False),
    ],
)
def test_sms(error: BaseException, temporary: bool, code: str, disable: bool) -> None:
    failure = sms.classify(error)
    assert (failure.temporary, failure.code, failure.disable_address) == (temporary, code, disable)


def _fcm(
    kind: type[exceptions.FirebaseError], status: int, retry_after: str | None = None
) -> exceptions.FirebaseError:
    request = httpx.Request("POST", "https://fcm.example")
    headers = {"Retry-After": retry_after} if retry_after else {}
    response = httpx.Response(status, headers=headers, request=request)
    return kind("x", cause=None, http_response=response)


@pytest.mark.parametrize(
    ("kind", "status", "retry_after", "temporary", "code", "disable", "wait"),
    [
        (messaging.UnregisteredError, 404, None, False, "UNREGISTERED", True, None),
        (exceptions.InvalidArgumentError, 400, None, False, "INVALID_ARGUMENT", True, None),
        (messaging.SenderIdMismatchError, 403, None, False, "SENDER_ID_MISMATCH", True, None),
        (messaging.QuotaExceededError, 429, "30", True, "QUOTA_EXCEEDED", False, 30.0),
        (exceptions.UnavailableError, 503, "5", True, "UNAVAILABLE", False, 5.0),
        (exceptions.InternalError, 500, None, True, "INTERNAL", False, None),
        (exceptions.DeadlineExceededError, 504, None, True, "DEADLINE_EXCEEDED", False, None),
        (messaging.ThirdPartyAuthError, 401, None, True, "THIRD_PARTY_AUTH_ERROR", False, None),
        (exceptions.PermissionDeniedError, 403, None, False, "PERMISSION_DENIED", False, None),
    ],
)
def test_push(
    kind: type[exceptions.FirebaseError],
    status: int,
    retry_after: str | None,
    temporary: bool,
    code: str,
    disable: bool,
    wait: float | None,
) -> None:
    failure = push.classify(_fcm(kind, status, retry_after))
    assert (failure.temporary, failure.code, failure.disable_address, failure.retry_after) == (
        temporary,
        code,
        disable,
        wait,
    )


@pytest.mark.parametrize(
    ("error", "temporary", "code"),
    [
        (
            aiosmtplib.SMTPRecipientsRefused(
                [aiosmtplib.SMTPRecipientRefused(550, "no such user", "a@b.pl")]
            ),
            False,
            "smtp-550",
        ),
        (
            aiosmtplib.SMTPRecipientsRefused(
                [aiosmtplib.SMTPRecipientRefused(452, "mailbox full", "a@b.pl")]
            ),
            True,
            "smtp-452",
        ),
        (aiosmtplib.SMTPDataError(554, "rejected as spam"), False, "smtp-554"),
        (aiosmtplib.SMTPDataError(451, "try later"), True, "smtp-451"),
        (
            aiosmtplib.SMTPSenderRefused(553, "sender refused", "x@um.warszawa.pl"),
            False,
            "smtp-553",
        ),
        (aiosmtplib.SMTPResponseException(421, "closing"), True, "smtp-421"),
        (aiosmtplib.SMTPAuthenticationError(535, "bad credentials"), True, "smtp-auth-535"),
        (aiosmtplib.SMTPServerDisconnected("gone"), True, "disconnected"),
        (aiosmtplib.SMTPConnectError("refused"), True, "network"),
        (aiosmtplib.SMTPReadTimeoutError("slow"), True, "timeout"),
        (ConnectionResetError("reset"), True, "network"),
    ],
)
def test_email(error: BaseException, temporary: bool, code: str) -> None:
    failure = email.classify(error)
    assert (failure.temporary, failure.code) == (temporary, code)


def test_an_unexpected_error_is_not_swallowed() -> None:
    with pytest.raises(KeyError):
        sms.classify(KeyError("bug"))
    with pytest.raises(KeyError):
        email.classify(KeyError("bug"))
