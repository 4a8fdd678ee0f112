"""The private parts of firebase-admin that channels/push.py relies on.

If an upgrade of firebase-admin changes any of them, these fail loudly, before a single
push is lost: re-read channels/push.py against the new release, then move the pin.
"""

from __future__ import annotations

import json
import warnings

import firebase_admin
import httpx
import pytest
from firebase_admin import messaging
from google.auth.credentials import AnonymousCredentials


def test_the_pinned_release() -> None:
    assert firebase_admin.__version__ == "7.7.0"


@pytest.fixture
def service() -> object:
    app = firebase_admin.initialize_app(
        AnonymousCredentials(),
        {"projectId": "conformance"},  # type: ignore[arg-type]
        name="conformance",
    )
    try:
        yield messaging._get_messaging_service(app)
    finally:
        firebase_admin.delete_app(app)


def test_the_service_and_its_url(service: object) -> None:
    assert (
        messaging._MessagingService.FCM_URL
        == "https://fcm.googleapis.com/v1/projects/{0}/messages:send"
    )
    assert service._fcm_url == "https://fcm.googleapis.com/v1/projects/conformance/messages:send"  # type: ignore[attr-defined]
    headers = service._fcm_headers  # type: ignore[attr-defined]
    assert headers["X-GOOG-API-FORMAT-VERSION"] == "2"
    assert headers["X-FIREBASE-CLIENT"] == "fire-admin-python/7.7.0"
    assert callable(service._async_client.aclose)  # type: ignore[attr-defined]


def test_encode_message_gives_the_v1_body(service: object) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Message.token is deprecated", DeprecationWarning)
        message = messaging.Message(
            token="t" * 40,
            notification=messaging.Notification(title="a", body="b"),
            android=messaging.AndroidConfig(priority="high"),
        )
    encoded = service.encode_message(message)  # type: ignore[attr-defined]
    assert encoded == {
        "token": "t" * 40,
        "notification": {"title": "a", "body": "b"},
        "android": {"priority": "high"},
    }


@pytest.mark.parametrize(
    ("status", "error_code", "expected"),
    [
        (404, "UNREGISTERED", messaging.UnregisteredError),
        (429, "QUOTA_EXCEEDED", messaging.QuotaExceededError),
        (403, "SENDER_ID_MISMATCH", messaging.SenderIdMismatchError),
        (400, None, firebase_admin.exceptions.InvalidArgumentError),
        (503, None, firebase_admin.exceptions.UnavailableError),
    ],
)
def test_the_error_handler_maps_answers_like_the_library(
    service: object, status: int, error_code: str | None, expected: type[Exception]
) -> None:
    names = {
        400: "INVALID_ARGUMENT",
        403: "PERMISSION_DENIED",
        404: "NOT_FOUND",
        429: "RESOURCE_EXHAUSTED",
        503: "UNAVAILABLE",
    }
    error: dict[str, object] = {"code": status, "message": "x", "status": names[status]}
    if error_code:
        error["details"] = [
            {
                "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                "errorCode": error_code,
            }
        ]
    request = httpx.Request("POST", "https://fcm.example/send")
    response = httpx.Response(
        status,
        headers=[("Retry-After", "5")],
        content=json.dumps({"error": error}).encode(),
        request=request,
    )
    mapped = service._handle_fcm_httpx_error(  # type: ignore[attr-defined]
        httpx.HTTPStatusError("x", request=request, response=response)
    )
    assert type(mapped) is expected
    assert mapped.http_response.headers["Retry-After"] == "5"


def test_transport_errors_map_too(service: object) -> None:
    request = httpx.Request("POST", "https://fcm.example/send")
    mapped = service._handle_fcm_httpx_error(httpx.ConnectError("refused", request=request))  # type: ignore[attr-defined]
    assert type(mapped) is firebase_admin.exceptions.UnavailableError
