"""Push through Firebase Cloud Messaging with `firebase-admin` (the only module importing it).

firebase-admin builds and validates every message (`messaging.Message`, its encoder) and
turns every FCM error answer into its exception (UnregisteredError, QuotaExceededError,
...). What moves the requests is a choice, `transport`:

- "aiohttp" (the default): one aiohttp session with a pool of keep-alive connections
  posts the encoded messages; each non-2xx answer is handed to firebase-admin's own error
  handler, so the mapping is exactly the library's. Measured here (benchmarks/), this
  moves several times more messages a second than the library's transports.
- "library": `messaging.send_each_async`, httpx over HTTP/2 as firebase-admin ships it.

The aiohttp path leans on private names of firebase-admin 7.7.0 - the messaging service
(`_get_messaging_service`), its URL (`_fcm_url`), its headers (`_fcm_headers`), its error
handler (`_handle_fcm_httpx_error`) and its async client (`_async_client`, to close it).
The version is pinned, and tests/unit/test_push_conformance.py fails loudly when an
upgrade changes any of them.

Tokens that answer UNREGISTERED, INVALID_ARGUMENT or SENDER_ID_MISMATCH are permanent
failures and disable the token (Firebase's own token-management advice); QUOTA_EXCEEDED,
UNAVAILABLE, INTERNAL and network errors are temporary, with the answer's Retry-After.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import ssl
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import aiohttp
import firebase_admin
import google.auth.transport.requests
import httpx
from firebase_admin import credentials, exceptions, messaging

from channels.interfaces import (
    Channel,
    ChannelConfigError,
    DeliveryResult,
    Failure,
    Message,
    Outcome,
)

MULTICAST_LIMIT = 500  # firebase-admin refuses more messages per send_each call
DISABLING_CODES = frozenset({"UNREGISTERED", "INVALID_ARGUMENT", "SENDER_ID_MISMATCH"})
TEMPORARY_CODES = frozenset(
    {
        "QUOTA_EXCEEDED",
        "RESOURCE_EXHAUSTED",
        "UNAVAILABLE",
        "INTERNAL",
        "DEADLINE_EXCEEDED",
        "UNKNOWN",
        "UNAUTHENTICATED",
        "THIRD_PARTY_AUTH_ERROR",
    }
)
FCM_CODES: dict[type[exceptions.FirebaseError], str] = {
    messaging.UnregisteredError: "UNREGISTERED",
    messaging.QuotaExceededError: "QUOTA_EXCEEDED",
    messaging.SenderIdMismatchError: "SENDER_ID_MISMATCH",
    messaging.ThirdPartyAuthError: "THIRD_PARTY_AUTH_ERROR",
}
_apps = itertools.count(1)


def _retry_after(error: exceptions.FirebaseError) -> float | None:
    response = error.http_response
    value = response.headers.get("Retry-After") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def classify(error: exceptions.FirebaseError) -> Failure:
    """A firebase-admin error as a temporary or permanent failure, with FCM's own code."""
    code = FCM_CODES.get(type(error)) or str(error.code)
    return Failure(
        temporary=code in TEMPORARY_CODES,
        code=code,
        retry_after=_retry_after(error),
        disable_address=code in DISABLING_CODES,
    )


@dataclass(frozen=True, slots=True)
class FcmConfig:
    project_id: str
    credentials_file: str | None = None
    # A service-account dict (the sandbox's generated key); used when no file is given.
    credentials_info: Mapping[str, Any] | None = None
    # Base URL of the FCM API (the sandbox); None is Google's own.
    endpoint: str | None = None
    transport: str = "aiohttp"
    # Extra CA bundle to trust (the sandbox's), for the aiohttp transport.
    ca_file: str | None = None
    connections: int = 100
    timeout: float = 10.0


class FirebasePushChannel:
    """Push: firebase-admin messages, moved in batches of at most 500."""

    name: ClassVar[Channel] = Channel.PUSH
    max_batch: ClassVar[int] = MULTICAST_LIMIT

    def __init__(self, config: FcmConfig) -> None:
        if config.transport not in {"aiohttp", "library"}:
            raise ChannelConfigError("fcm_transport", "must be aiohttp or library")
        if not config.project_id:
            raise ChannelConfigError("fcm_project_id", "is required to send push messages")
        try:
            if config.credentials_file:
                credential: credentials.Base = credentials.Certificate(config.credentials_file)
            elif config.credentials_info is not None:
                credential = credentials.Certificate(dict(config.credentials_info))
            else:
                raise ChannelConfigError(
                    "fcm_credentials_file", "is required to send push messages"
                )
        except (ValueError, OSError) as error:
            raise ChannelConfigError(
                "fcm_credentials_file", f"is not a usable service-account file: {error}"
            ) from None
        self.config = config
        # One request per message, as many at once as there are connections.
        self.wave = min(config.connections, MULTICAST_LIMIT)
        self.app = firebase_admin.initialize_app(
            credential,
            {"projectId": config.project_id, "httpTimeout": config.timeout},
            name=f"wsp-push-{next(_apps)}",
        )
        self.service = messaging._get_messaging_service(self.app)
        if config.endpoint:
            self.service._fcm_url = (
                f"{config.endpoint.rstrip('/')}/v1/projects/{config.project_id}/messages:send"
            )
        self.url: str = self.service._fcm_url
        self.credential = self.app.credential.get_credential()
        self.session: aiohttp.ClientSession | None = None
        self.refresh_lock: asyncio.Lock | None = None

    # -- building ------------------------------------------------------------------------

    def build(self, message: Message, now: datetime) -> messaging.Message:
        """The firebase-admin message for one of ours (validated by the library)."""
        ttl = None
        expiry = None
        if message.expires_at is not None:
            ttl = max(message.expires_at - now, timedelta(0))
            expiry = str(int(message.expires_at.timestamp()))
        urgent = message.urgent
        return messaging.Message(
            token=message.address,
            notification=messaging.Notification(title=message.title, body=message.text),
            data={str(k): str(v) for k, v in message.data.items()},
            android=messaging.AndroidConfig(priority="high" if urgent else "normal", ttl=ttl),
            apns=messaging.APNSConfig(
                headers={
                    "apns-priority": "10" if urgent else "5",
                    **({"apns-expiration": expiry} if expiry else {}),
                }
            ),
        )

    def _build_all(self, messages: Sequence[Message]) -> list[messaging.Message | Failure]:
        now = datetime.now(UTC)
        built: list[messaging.Message | Failure] = []
        with warnings.catch_warnings():
            # FCM registration tokens still go in `token`; 7.x suggests `fid`, which is a
            # Firebase installation id, not a registration token.
            warnings.filterwarnings("ignore", "Message.token is deprecated", DeprecationWarning)
            for message in messages:
                try:
                    built.append(self.build(message, now))
                except (ValueError, TypeError) as error:
                    built.append(
                        Failure(
                            temporary=False,
                            code=f"invalid-message: {error}"[:64],
                            disable_address=False,
                        )
                    )
        return built

    # -- sending -------------------------------------------------------------------------

    async def send_batch(self, messages: Sequence[Message]) -> list[DeliveryResult]:
        results: list[DeliveryResult] = []
        for start in range(0, len(messages), MULTICAST_LIMIT):
            chunk = messages[start : start + MULTICAST_LIMIT]
            built = self._build_all(chunk)
            ready = [
                (m, b)
                for m, b in zip(chunk, built, strict=True)
                if isinstance(b, messaging.Message)
            ]
            results.extend(
                b.result(m.delivery_id)
                for m, b in zip(chunk, built, strict=True)
                if isinstance(b, Failure)
            )
            if not ready:
                continue
            if self.config.transport == "library":
                results.extend(await self._send_library(ready))
            else:
                results.extend(await asyncio.gather(*(self._post(m, b) for m, b in ready)))
        return results

    async def _send_library(
        self, ready: list[tuple[Message, messaging.Message]]
    ) -> list[DeliveryResult]:
        try:
            batch = await messaging.send_each_async([b for _, b in ready], app=self.app)
        except exceptions.FirebaseError as error:
            # The whole call failed (the token endpoint, for one): nothing was sent.
            failure = classify(error)
            return [failure.result(m.delivery_id) for m, _ in ready]
        results = []
        for (message, _), response in zip(ready, batch.responses, strict=True):
            if response.success:
                results.append(
                    DeliveryResult(
                        message.delivery_id, Outcome.SENT, provider_id=response.message_id
                    )
                )
            else:
                results.append(classify(response.exception).result(message.delivery_id))
        return results

    def _session(self) -> aiohttp.ClientSession:
        if self.session is None:
            context = ssl.create_default_context()
            if self.config.ca_file:
                context.load_verify_locations(self.config.ca_file)
            self.session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.config.connections, ssl=context),
                timeout=aiohttp.ClientTimeout(total=self.config.timeout),
            )
            self.refresh_lock = asyncio.Lock()
        return self.session

    async def _headers(self) -> dict[str, str]:
        self._session()  # creates the refresh lock in this loop
        assert self.refresh_lock is not None
        if not self.credential.valid:
            async with self.refresh_lock:
                if not self.credential.valid:
                    # google-auth refreshes with blocking requests: keep it off the loop.
                    await asyncio.to_thread(
                        self.credential.refresh, google.auth.transport.requests.Request()
                    )
        return {
            **self.service._fcm_headers,
            "Authorization": f"Bearer {self.credential.token}",
            "Content-Type": "application/json; charset=UTF-8",
        }

    async def _post(self, message: Message, built: messaging.Message) -> DeliveryResult:
        body = json.dumps({"message": self.service.encode_message(built)}, separators=(",", ":"))
        try:
            headers = await self._headers()
            async with self._session().post(
                self.url, data=body.encode(), headers=headers
            ) as answer:
                status, content = answer.status, await answer.read()
                kept = [
                    (k, v)
                    for k, v in answer.headers.items()
                    if k.lower() not in {"content-encoding", "content-length", "transfer-encoding"}
                ]
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            return classify(self._transport_error(error)).result(message.delivery_id)
        if 200 <= status < 300:
            return DeliveryResult(
                message.delivery_id, Outcome.SENT, provider_id=json.loads(content).get("name")
            )
        if status == 401:
            self.credential.token = None  # refresh before the next request
        request = httpx.Request("POST", self.url)
        response = httpx.Response(status, headers=kept, content=content, request=request)
        failed = httpx.HTTPStatusError(f"HTTP {status}", request=request, response=response)
        return classify(self.service._handle_fcm_httpx_error(failed)).result(message.delivery_id)

    def _transport_error(self, error: BaseException) -> exceptions.FirebaseError:
        """A network failure as firebase-admin reports it on its own transport."""
        request = httpx.Request("POST", self.url)
        if isinstance(error, TimeoutError | aiohttp.ServerTimeoutError):
            mapped: httpx.HTTPError = httpx.ReadTimeout(str(error) or "timed out", request=request)
        elif isinstance(error, aiohttp.ClientConnectorError | ConnectionError):
            mapped = httpx.ConnectError(str(error), request=request)
        else:
            mapped = httpx.TransportError(repr(error), request=request)
        result: exceptions.FirebaseError = self.service._handle_fcm_httpx_error(mapped)
        return result

    async def aclose(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None
        await self.service._async_client.aclose()
        # delete_app closes the service with asyncio.run: give it a loop of its own.
        await asyncio.to_thread(firebase_admin.delete_app, self.app)
