"""An FCM HTTP v1-compatible server: the OAuth token endpoint and `messages:send`.

Served by hypercorn as an ASGI app, on a TLS port that speaks HTTP/2 (as
fcm.googleapis.com does, so firebase-admin's production path - httpx over HTTP/2 - runs
against it) and on a plain HTTP/1.1 port; and by aiohttp on a TLS port that speaks
HTTP/1.1 only, for load: hypercorn spends about 0.4 ms of CPU on a request, aiohttp's
server a fraction of that, so a benchmark of our sender measures the sender.

Answers with FCM's real error bodies: UNREGISTERED (404) for dead tokens,
INVALID_ARGUMENT (400) for malformed ones, QUOTA_EXCEEDED (429 with Retry-After) and
UNAVAILABLE (503) on request, UNAUTHENTICATED (401) without a token it issued.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web

from channels.sandbox.common import GARBAGE, Recorder

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_SEND_PATH = re.compile(r"/v1/projects/(?P<project>[^/]+)/messages:send")
_TOKEN = re.compile(r"[A-Za-z0-9_:\-.]{32,512}")
_FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    503: "UNAVAILABLE",
}


def fcm_error(status: int, message: str, error_code: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": status, "message": message, "status": _STATUS_NAMES[status]}
    if error_code:
        error["details"] = [{"@type": _FCM_ERROR, "errorCode": error_code}]
    return {"error": error}


class FcmSandbox:
    """The ASGI application; `project_id` is the only project it answers for."""

    def __init__(self, *, project_id: str = "wsp-sandbox") -> None:
        self.project_id = project_id
        self.recorder = Recorder()
        self.tokens: set[str] = set()
        self.ids = itertools.count(1)
        self.http_versions: dict[str, int] = {}

    def reset(self) -> None:
        self.recorder.reset()
        self.http_versions.clear()

    def counts(self) -> dict[str, Any]:
        return {**self.recorder.counts(), "http_versions": dict(self.http_versions)}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                event = await receive()
                if event["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif event["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        body = b""
        while True:
            event = await receive()
            body += event.get("body", b"")
            if not event.get("more_body"):
                break
        status, answer, headers = await self._handle(scope, body)
        payload = json.dumps(answer).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json; charset=UTF-8"),
                    (b"content-length", str(len(payload)).encode()),
                    *headers,
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    async def aiohttp_handler(self, request: web.Request) -> web.Response:
        """The same answers through aiohttp's server (see the module's docstring)."""
        scope = {
            "path": request.path,
            "method": request.method,
            "http_version": f"{request.version.major}.{request.version.minor}",
            "headers": [(k.lower().encode(), v.encode()) for k, v in request.headers.items()],
        }
        status, answer, headers = await self._handle(scope, await request.read())
        return web.json_response(
            answer, status=status, headers={k.decode(): v.decode() for k, v in headers}
        )

    async def _handle(
        self, scope: Scope, body: bytes
    ) -> tuple[int, Any, list[tuple[bytes, bytes]]]:
        path = scope["path"]
        if scope["method"] == "POST" and path == "/token":
            return self._token(body)
        match = _SEND_PATH.fullmatch(path)
        if scope["method"] != "POST" or match is None:
            return 404, fcm_error(404, f"no such resource: {path}"), []
        version = str(scope.get("http_version", "1.1"))
        self.http_versions[version] = self.http_versions.get(version, 0) + 1
        headers = dict(scope["headers"])
        bearer = headers.get(b"authorization", b"").decode().removeprefix("Bearer ")
        if bearer not in self.tokens:
            return 401, fcm_error(401, "Request is missing required authentication credential."), []
        if match["project"] != self.project_id:
            return 404, fcm_error(404, "Requested entity was not found."), []
        if self.recorder.faults.latency_ms:
            await asyncio.sleep(self.recorder.faults.latency_ms / 1000)
        fault = self.recorder.request()
        faults = self.recorder.faults
        if fault == "throttle":
            return (
                429,
                fcm_error(429, "Quota exceeded.", "QUOTA_EXCEEDED"),
                [(b"retry-after", str(faults.retry_after).encode())],
            )
        if fault == "error":
            return 503, fcm_error(503, "The service is currently unavailable.", "UNAVAILABLE"), []
        if fault == "garbage":
            return 200, GARBAGE, []
        try:
            message = json.loads(body)["message"]
            token = message.get("token") or message.get("fid")
        except (ValueError, KeyError, TypeError, AttributeError):
            return 400, fcm_error(400, "Invalid JSON payload received.", "INVALID_ARGUMENT"), []
        if not isinstance(token, str) or not _TOKEN.fullmatch(token):
            self.recorder.refuse()
            return (
                400,
                fcm_error(
                    400,
                    "The registration token is not a valid FCM registration token",
                    "INVALID_ARGUMENT",
                ),
                [],
            )
        if token in faults.refused:
            self.recorder.refuse()
            return 404, fcm_error(404, "Requested entity was not found.", "UNREGISTERED"), []
        message_id = f"projects/{self.project_id}/messages/0:{int(time.time())}{next(self.ids)}"
        notification = message.get("notification") or {}
        self.recorder.accept(
            token,
            {
                "id": message_id,
                "title": notification.get("title"),
                "body": notification.get("body"),
                "data": message.get("data"),
                "android": message.get("android"),
                "apns": message.get("apns"),
            },
            identity=str((message.get("data") or {}).get("alert_id") or notification.get("body")),
        )
        return 200, {"name": message_id}, []

    def _token(self, body: bytes) -> tuple[int, dict[str, Any], list[tuple[bytes, bytes]]]:
        form = parse_qs(body.decode())
        if form.get("grant_type") != [
            "urn:ietf:params:oauth:grant-type:jwt-bearer"
        ] or not form.get("assertion"):
            return (
                400,
                {"error": "invalid_grant", "error_description": "expected a JWT bearer grant"},
                [],
            )
        token = f"ya29.sandbox-{secrets.token_urlsafe(24)}"
        self.tokens.add(token)
        return 200, {"access_token": token, "expires_in": 3600, "token_type": "Bearer"}, []
