"""SMS through SMSAPI.pl with `smsapi-client` (the only module that imports it).

An alert's text is the same for everyone who reads one language, so one request carries a
whole group of numbers (`to` comma-joined) with one `idx` per delivery and `check_idx=1`:
SMSAPI refuses an idx it has sent in the last 24 hours (error 53), so a batch retried
after a crash or a timeout reaches nobody twice.

What SMSAPI documents of error 53 is a refusal of the request. When the refusal lists the
numbers whose idx was used (`invalid_numbers`), those are recorded as sent (they left in
the earlier attempt; their reports still arrive, matched by idx) and the rest go again in
one call. When it does not, the group is split in halves and each half is sent again:
halves without a used idx go through in one call, and a lone number answering 53 is one
that left before. Should SMSAPI instead accept the new numbers and list only the used
ones, that is read the same way. Either way the cost is a few calls for the one batch in
flight at a crash.

Quirks of the library handled here: it reaches a custom base URL only through the base
`Client(domain)` with a trailing slash; it drops unknown parameters silently and sends
every value through `str()` (`True` becomes "True", `None` "None"), so only set values are
passed; each call is a plain `requests.request` with no session, run here in a worker
thread so the event loop stays free; and on a partial success its parser drops the
answer's `invalid_numbers`, so the raw answer is kept through a requests response hook
registered by our auth object, the one seam the library hands to requests.

SMSAPI's delivery reports (its callback to `notify_url`) are read here too: MsgId, status
and idx, several reports comma-joined, each status a final one (delivered, or one of the
undelivered) or an intermediate one that changes nothing.
"""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import requests
from requests.auth import AuthBase
from smsapi.client import Client
from smsapi.exception import EndpointException, SendException, SmsApiException

from channels.interfaces import (
    Channel,
    ChannelConfigError,
    DeliveryResult,
    Failure,
    Message,
    Outcome,
    Receipt,
)

# SMSAPI error codes (smsapi.pl/docs, "Kody błędów") that may succeed later: request
# errors, sending-time limits, credit, system errors and throttling.
TEMPORARY_CODES = frozenset({"8", "52", "74", "103", "200", "201", "202", "203", "999"})
INVALID_NUMBER = "13"
IDX_ALREADY_USED = "53"
# The number will never receive (invalid, blacklisted, opted out at SMSAPI).
DEAD_NUMBER_CODES = frozenset({INVALID_NUMBER, "57", "59"})
# Authentication, permission and throttling answers are ours to fix or wait out.
TEMPORARY_HTTP = frozenset({401, 403, 408, 429})
# The final statuses of SMSAPI's delivery reports (smsapi.pl/docs, "Statusy wiadomości");
# any other status (queued, sent to the network, accepted...) is intermediate.
REPORT_DELIVERED = {"404": "DELIVERED"}
REPORT_UNDELIVERED = {
    "401": "NOT_FOUND",
    "402": "EXPIRED",
    "405": "UNDELIVERED",
    "406": "FAILED",
    "407": "REJECTED",
}


def classify(error: BaseException) -> Failure:
    """Every error the SMSAPI client can raise, as a temporary or permanent failure."""
    if isinstance(error, SendException):
        code = str(error.code)
        return Failure(
            temporary=code in TEMPORARY_CODES, code=code, disable_address=code in DEAD_NUMBER_CODES
        )
    if isinstance(error, EndpointException):
        status = int(error.code or 0)
        return Failure(temporary=status >= 500 or status in TEMPORARY_HTTP, code=f"http-{status}")
    if isinstance(error, SmsApiException):
        return Failure(temporary=False, code=str(error.code))
    if isinstance(error, requests.Timeout):
        return Failure(temporary=True, code="timeout")
    if isinstance(error, requests.RequestException):
        return Failure(temporary=True, code="network")
    raise error


class _BearerKeepingAnswer(AuthBase):
    """Bearer auth that also keeps the raw JSON answer of the call in this thread."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.local = threading.local()

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token}"
        self.local.answer = None
        request.register_hook("response", self._keep)
        return request

    def _keep(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self.local.retry_after = response.headers.get("Retry-After")
        try:
            self.local.answer = response.json()
        except ValueError:
            self.local.answer = None

    def last_retry_after(self) -> float | None:
        value = getattr(self.local, "retry_after", None)
        try:
            return float(value) if value is not None else None
        except ValueError:
            return None

    def last_answer(self) -> dict[str, Any]:
        answer = getattr(self.local, "answer", None)
        return answer if isinstance(answer, dict) else {}


@dataclass(frozen=True, slots=True)
class SmsApiConfig:
    token: str
    base_url: str = "https://api.smsapi.pl/"
    sender: str = "Warszawa"
    max_parts: int = 3
    notify_url: str | None = None
    timeout: float = 30.0
    # Most numbers in one request.
    batch_size: int = 500


class SmsApiChannel:
    """SMS: one SMSAPI request per group of numbers sharing a text."""

    name: ClassVar[Channel] = Channel.SMS
    max_batch: ClassVar[int] = 500

    def __init__(self, config: SmsApiConfig) -> None:
        if not config.token:
            raise ChannelConfigError("smsapi_token", "is required to send SMS")
        if not config.base_url.startswith(("http://", "https://")) or not config.base_url.endswith(
            "/"
        ):
            raise ChannelConfigError("smsapi_url", "must be an http(s) URL ending with '/'")
        if not 1 <= config.max_parts <= 10:
            raise ChannelConfigError("sms_max_parts", "must be between 1 and 10")
        self.config = config
        # One request carries a whole group of numbers.
        self.wave = config.batch_size
        self.auth = _BearerKeepingAnswer(config.token)
        self.client = Client(config.base_url, access_token=config.token)
        self.client.auth = self.auth

    async def send_batch(self, messages: Sequence[Message]) -> list[DeliveryResult]:
        by_text: dict[str, list[Message]] = defaultdict(list)
        for message in messages:
            by_text[message.text].append(message)
        results: list[DeliveryResult] = []
        size = self.config.batch_size
        pause: float | None = None
        for text, group in by_text.items():
            for start in range(0, len(group), size):
                chunk = group[start : start + size]
                if pause is not None:
                    # The provider asked us to wait: the rest of the batch waits too.
                    waiting = Failure(temporary=True, code="http-429", retry_after=pause)
                    results.extend(waiting.result(m.delivery_id) for m in chunk)
                    continue
                answered = await asyncio.to_thread(self._send_group, text, chunk)
                results.extend(answered)
                pause = max((r.retry_after for r in answered if r.retry_after), default=None)
        return results

    async def aclose(self) -> None:
        """Nothing to close: each call of the library opens and closes its own connection."""

    def _parameters(self, text: str, group: Sequence[Message]) -> dict[str, Any]:
        parameters: dict[str, Any] = {
            "to": [_number(m.address) for m in group],
            "message": text,
            "idx": [str(m.delivery_id) for m in group],
            "check_idx": 1,
            "max_parts": self.config.max_parts,
            "from_": self.config.sender,
            "encoding": "utf-8",
            "timeout": self.config.timeout,
        }
        if self.config.notify_url:
            parameters["notify_url"] = self.config.notify_url
        return parameters

    def _send_group(self, text: str, group: Sequence[Message]) -> list[DeliveryResult]:
        try:
            answer = self.client.sms.send(**self._parameters(text, group))
        except SendException as error:
            if str(error.code) == IDX_ALREADY_USED:
                used = {n.number for n in error.invalid_numbers} | {
                    n.submitted_number for n in error.invalid_numbers
                }
                return self._after_used_idx(text, group, used)
            return [classify(error).result(m.delivery_id) for m in group]
        except (SmsApiException, requests.RequestException) as error:
            failure = classify(error)
            if failure.code == "http-429":
                failure = Failure(
                    temporary=True,
                    code=failure.code,
                    retry_after=self.auth.last_retry_after() or 1.0,
                )
            return [failure.result(m.delivery_id) for m in group]
        return self._map_answer(answer, group, self.auth.last_answer())

    def _after_used_idx(
        self, text: str, group: Sequence[Message], used: set[str]
    ) -> list[DeliveryResult]:
        already = [m for m in group if _number(m.address) in used]
        rest = [m for m in group if _number(m.address) not in used]
        if not already:
            if len(group) == 1:
                already, rest = list(group), []
            else:
                middle = len(group) // 2
                return self._send_group(text, group[:middle]) + self._send_group(
                    text, group[middle:]
                )
        results = [
            DeliveryResult(m.delivery_id, Outcome.SENT, error_code=IDX_ALREADY_USED)
            for m in already
        ]
        return results + (self._send_group(text, rest) if rest else [])

    def _map_answer(
        self, answer: Any, group: Sequence[Message], raw: dict[str, Any]
    ) -> list[DeliveryResult]:
        accepted = {str(item.idx): str(item.id) for item in answer}
        refused = {
            str(entry.get(key)): str(entry.get("error_code") or INVALID_NUMBER)
            for entry in raw.get("invalid_numbers") or []
            if isinstance(entry, dict)
            for key in ("number", "submitted_number")
        }
        results = []
        for message in group:
            provider_id = accepted.get(str(message.delivery_id))
            if provider_id is not None:
                results.append(
                    DeliveryResult(message.delivery_id, Outcome.SENT, provider_id=provider_id)
                )
                continue
            code = refused.get(_number(message.address), INVALID_NUMBER)
            if code == IDX_ALREADY_USED:
                results.append(DeliveryResult(message.delivery_id, Outcome.SENT, error_code=code))
            else:
                failure = Failure(
                    temporary=False, code=code, disable_address=code in DEAD_NUMBER_CODES
                )
                results.append(failure.result(message.delivery_id))
        return results


def _number(address: str) -> str:
    """SMSAPI's form of an E.164 number: digits only, country code first."""
    return address.lstrip("+")


@dataclass(frozen=True, slots=True)
class Report:
    """One SMSAPI delivery report, as its callback gives it: the id SMSAPI gave the send
    (MsgId), its status code, and the idx we sent (our delivery id, unchecked text)."""

    provider_id: str
    status: str
    idx: str

    @property
    def receipt(self) -> Receipt:
        """Delivered, undelivered (the status is kept as the failure's code) or pending."""
        if self.status in REPORT_DELIVERED:
            return Receipt.DELIVERED
        if self.status in REPORT_UNDELIVERED:
            return Receipt.UNDELIVERED
        return Receipt.PENDING


def parse_smsapi(message_ids: str, statuses: str, indexes: str) -> list[Report]:
    """SMSAPI's comma-joined callback fields as reports (lengths must agree)."""
    ids, codes, idx = message_ids.split(","), statuses.split(","), indexes.split(",")
    if not (len(ids) == len(codes) == len(idx)):
        raise ValueError("MsgId, status and idx do not have the same number of values")
    return [
        Report(a.strip(), b.strip(), c.strip()) for a, b, c in zip(ids, codes, idx, strict=True)
    ]
