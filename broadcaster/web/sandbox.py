"""The sandbox viewer (development only): what the loopback providers received, shown as
a phone shows an SMS and a push notification and as a mail client shows an e-mail.

It reads the sandbox's control API, which listens beside its SMSAPI endpoint; it is
never served in production, nor when SMSAPI is anything but a server on this machine.
"""

from __future__ import annotations

import json
import urllib.request
from email import message_from_bytes, policy
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter
from fastapi.responses import Response

from broadcaster.errors import NotFound
from broadcaster.settings import Environment, Settings
from broadcaster.staff.permissions import Action
from broadcaster.web.core import PageDep, WebRoute, require

router = APIRouter(prefix="/console", route_class=WebRoute, include_in_schema=False)

SHOWN = 30
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def available(settings: Settings) -> bool:
    return (
        settings.env is not Environment.PRODUCTION
        and urlsplit(settings.smsapi_url).hostname in LOOPBACK
    )


def _received(settings: Settings, provider: str) -> list[dict[str, Any]]:
    url = f"{settings.smsapi_url}_sandbox/{provider}/messages?limit={SHOWN}"
    with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 - loopback only
        return list(reversed(json.loads(answer.read())))


def _mail(record: dict[str, Any]) -> dict[str, Any]:
    # As bytes: parsed from a str, an 8-bit UTF-8 body comes back as \u escapes.
    parsed = message_from_bytes(record.get("raw", "").encode(), policy=policy.default)
    body = parsed.get_body(preferencelist=("plain",))
    return {
        "to": record["address"],
        "from": str(parsed["From"] or ""),
        "subject": str(parsed["Subject"] or ""),
        "date": str(parsed["Date"] or ""),
        "unsubscribe": str(parsed["List-Unsubscribe"] or ""),
        "text": body.get_content() if body is not None else "",
        "parts": record.get("parts", []),
    }


@router.get("/sandbox")
def sandbox_viewer(page: PageDep) -> Response:
    require(page, Action.VIEW_SANDBOX)
    if not available(page.settings):
        raise NotFound("page", "sandbox")
    try:
        sms, push, mail = [_received(page.settings, p) for p in ("smsapi", "fcm", "smtp")]
    except OSError as error:
        return page.error(503, f"the sandbox providers do not answer: {error}")
    return page.render("sandbox.html", sms=sms, push=push, mail=[_mail(m) for m in mail])
