"""An SMSAPI.pl-compatible server: `POST /sms.do` as `smsapi-client` sends it.

Answers in SMSAPI's JSON shapes (HTTP 200 with `{"count", "list": [...]}`, or with
`{"error", "message", "invalid_numbers"}`), checks the token, `idx`/`check_idx`, `max_parts`
and numbers, and calls back delivery reports (`MsgId`, `status`, `idx`, `donedate`,
`username`, several reports comma-joined in one GET) to the request's `notify_url` or to
the configured receipt URL.

A used idx under `check_idx=1` (sent before, or twice in one request) refuses the whole
request with error 53 and lists those numbers in `invalid_numbers`: the documented error
shape, our reading of what the documentation leaves open.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from typing import Any

import aiohttp
from aiohttp import web

from channels.sandbox.common import GARBAGE, Recorder
from templates.sms_encoding import shape

STATUS_DELIVERED, STATUS_UNDELIVERED = "404", "405"
REPORT_BATCH = 100
REPORTER = web.AppKey("smsapi_reporter", asyncio.Task)


class SmsApiSandbox:
    def __init__(
        self,
        *,
        token: str = "sandbox-token",  # noqa: S107 - the sandbox's own, not a secret
        receipt_url: str | None = None,
        report_delay: float = 0.05,
    ) -> None:
        self.token = token
        self.receipt_url = receipt_url
        self.report_delay = report_delay
        self.recorder = Recorder()
        self.used_idx: set[str] = set()
        self.ids = itertools.count(7_074_294_081_650_000_000)
        self.reports: asyncio.Queue[tuple[str, dict[str, str]]] | None = None
        self.reports_sent = 0
        self.report_failures = 0

    def reset(self) -> None:
        self.recorder.reset()
        self.used_idx.clear()
        self.reports_sent = self.report_failures = 0

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/sms.do", self.send)
        app.on_startup.append(self._start_reports)
        app.on_cleanup.append(self._stop_reports)

    async def _start_reports(self, app: web.Application) -> None:
        self.reports = asyncio.Queue()
        app[REPORTER] = asyncio.create_task(self._report_loop())

    async def _stop_reports(self, app: web.Application) -> None:
        reporter = app[REPORTER]
        reporter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reporter

    async def send(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"error": 101, "message": "Authorization failed"}, status=401)
        if self.recorder.faults.latency_ms:
            await asyncio.sleep(self.recorder.faults.latency_ms / 1000)
        fault = self.recorder.request()
        if fault == "throttle":
            return web.json_response(
                {"error": 203, "message": "Too many requests"},
                status=429,
                headers={"Retry-After": str(self.recorder.faults.retry_after)},
            )
        if fault == "error":
            return web.json_response({"error": 999, "message": "System internal error"}, status=500)
        if fault == "garbage":
            return web.json_response(GARBAGE)
        form = await request.post()
        return web.json_response(self._answer({k: str(v) for k, v in form.items()}))

    def _answer(self, form: dict[str, str]) -> dict[str, Any]:
        message = form.get("message", "")
        if not message:
            return {"error": 11, "message": "Message empty"}
        submitted = [n.strip() for n in form.get("to", "").split(",") if n.strip()]
        if not submitted:
            return {"error": 13, "message": "No correct phone numbers"}
        indexes = form["idx"].split("|") if "idx" in form else [""] * len(submitted)
        if len(indexes) != len(submitted):
            return {"error": 20, "message": "Invalid number of IDX parameters"}
        if any(len(idx) > 255 for idx in indexes):
            return {"error": 27, "message": "Too long IDX parameter. Maximum 255 chars."}
        parts = shape(message).parts
        max_parts = int(form.get("max_parts", "6"))
        if parts > max_parts:
            return {"error": 12, "message": f"Message has {parts} parts, more than max_parts"}
        if form.get("check_idx") in {"1", "true", "True"}:
            seen: set[str] = set()
            used = []
            for number, idx in zip(submitted, indexes, strict=True):
                if idx in self.used_idx or idx in seen:
                    used.append(
                        {
                            "number": number,
                            "submitted_number": number,
                            "message": "Not unique idx",
                            "error_code": 53,
                        }
                    )
                seen.add(idx)
            if used:
                self.recorder.refuse(len(used))
                return {
                    "error": 53,
                    "message": "Not unique idx parameter, message with the same "
                    "idx has been already sent and &check_idx=1.",
                    "invalid_numbers": used,
                }
        invalid = [
            n
            for n in submitted
            if not (n.isdigit() and 9 <= len(n) <= 15) or n in self.recorder.faults.refused
        ]
        invalid_entries = [
            {"number": n, "submitted_number": n, "message": "Invalid phone number"} for n in invalid
        ]
        if len(invalid) == len(submitted):
            self.recorder.refuse(len(invalid))
            return {
                "error": 13,
                "message": "No correct phone numbers",
                "invalid_numbers": invalid_entries,
            }
        sent_at = int(time.time())
        encoding = shape(message).encoding.value
        fields = {
            k: form[k]
            for k in ("check_idx", "max_parts", "encoding", "format", "notify_url")
            if k in form
        }
        items = []
        callback = form.get("notify_url") or self.receipt_url
        for number, idx in zip(submitted, indexes, strict=True):
            if number in invalid:
                continue
            message_id = str(next(self.ids))
            if idx:
                self.used_idx.add(idx)
            self.recorder.accept(
                number,
                {
                    "id": message_id,
                    "idx": idx,
                    "text": message,
                    "sender": form.get("from", ""),
                    "parts": parts,
                    "encoding": encoding,
                    "fields": fields,
                },
                identity=idx or message,
            )
            items.append(
                {
                    "id": message_id,
                    "points": round(0.16 * parts, 2),
                    "number": number,
                    "date_sent": sent_at,
                    "submitted_number": number,
                    "status": "QUEUE",
                    "error": None,
                    "idx": idx or None,
                    "parts": parts,
                }
            )
            if callback and self.reports is not None:
                status = (
                    STATUS_UNDELIVERED
                    if number in self.recorder.faults.undelivered
                    else STATUS_DELIVERED
                )
                self.reports.put_nowait(
                    (callback, {"MsgId": message_id, "status": status, "idx": idx})
                )
        if invalid_entries:
            self.recorder.refuse(len(invalid_entries))
        answer: dict[str, Any] = {"count": len(items), "list": items}
        if invalid_entries:
            answer["invalid_numbers"] = invalid_entries
        return answer

    async def _report_loop(self) -> None:
        """Deliver reports like SMSAPI: GET, many reports comma-joined, expect `OK`."""
        assert self.reports is not None
        async with aiohttp.ClientSession() as session:
            while True:
                first = await self.reports.get()
                await asyncio.sleep(self.report_delay)
                batch = [first]
                while not self.reports.empty() and len(batch) < REPORT_BATCH:
                    batch.append(self.reports.get_nowait())
                by_url: dict[str, list[dict[str, str]]] = {}
                for url, report in batch:
                    by_url.setdefault(url, []).append(report)
                for url, reports in by_url.items():
                    await self._post_reports(session, url, reports)

    async def _post_reports(
        self, session: aiohttp.ClientSession, url: str, reports: list[dict[str, str]]
    ) -> None:
        now = str(int(time.time()))
        params = {
            "MsgId": ",".join(r["MsgId"] for r in reports),
            "status": ",".join(r["status"] for r in reports),
            "idx": ",".join(r["idx"] for r in reports),
            "donedate": ",".join(now for _ in reports),
            "username": "sandbox",
        }
        try:
            async with session.get(
                url, params=params, timeout=aiohttp.ClientTimeout(total=10)
            ) as response:
                body = await response.text()
                if response.status == 200 and body.strip() == "OK":
                    self.reports_sent += len(reports)
                    return
        except (aiohttp.ClientError, TimeoutError):
            pass
        self.report_failures += len(reports)

    def counts(self) -> dict[str, Any]:
        return {
            **self.recorder.counts(),
            "reports_sent": self.reports_sent,
            "report_failures": self.report_failures,
        }
