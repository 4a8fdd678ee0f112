"""An SMTP sink (aiosmtpd) that records what it accepts and misbehaves on request.

Speaks STARTTLS (with the sandbox's certificate) and AUTH PLAIN/LOGIN when given
credentials; refuses recipients in `faults.refused` with 550 (a hard bounce), answers 451
("try again later") to a share of messages (`error_rate`), 421 to a share of recipients
(`throttle_rate`), and drops idle connections after `idle_timeout` seconds.
"""

from __future__ import annotations

import asyncio
import ssl
import weakref
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from channels.sandbox.common import Recorder


class SmtpSink:
    """The aiosmtpd handler, and a factory of SMTP protocols for `loop.create_server`."""

    def __init__(
        self,
        *,
        username: str = "",
        password: str = "",
        tls_context: ssl.SSLContext | None = None,
        idle_timeout: float = 300,
    ) -> None:
        self.username = username
        self.password = password
        self.tls_context = tls_context
        self.idle_timeout = idle_timeout
        self.recorder = Recorder()
        self.connections: weakref.WeakSet[SMTP] = weakref.WeakSet()

    def reset(self) -> None:
        self.recorder.reset()

    def counts(self) -> dict[str, Any]:
        return self.recorder.counts()

    def protocol(self) -> SMTP:
        connection = SMTP(
            self,
            hostname="sandbox.smtp.local",
            tls_context=self.tls_context,
            timeout=self.idle_timeout,
            auth_required=bool(self.username),
            # Credentials only ever cross an encrypted connection when TLS is on offer.
            auth_require_tls=self.tls_context is not None,
            authenticator=self._authenticate if self.username else None,
            enable_SMTPUTF8=True,
        )
        self.connections.add(connection)
        return connection

    def abort_connections(self) -> None:
        """On shutdown: end every connection now rather than wait for TLS goodbyes."""
        for connection in list(self.connections):
            transport = connection.transport
            if isinstance(transport, asyncio.WriteTransport):
                transport.abort()

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if isinstance(data, LoginPassword) and (
            data.login.decode() == self.username and data.password.decode() == self.password
        ):
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        options: list[str],
    ) -> str:
        faults = self.recorder.faults
        if address.lower() in faults.refused:
            self.recorder.refuse()
            return "550 5.1.1 No such user here"
        if self.recorder.roll(faults.throttle_rate):
            with self.recorder.lock:
                self.recorder.throttled += 1
            return "421 4.7.0 Too many messages, slow down"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        fault = self.recorder.request()
        if fault is not None:
            return "451 4.3.0 Temporary failure, try again later"
        raw = (
            envelope.content
            if isinstance(envelope.content, bytes)
            else str(envelope.content).encode()
        )
        # compat32 parsing: the default policy's header objects cost a millisecond a
        # message, which would make the sink, not the sender, the bottleneck.
        parsed = message_from_bytes(raw, policy=policy.compat32)
        subject = parsed["Subject"]
        record = {
            "message_id": parsed["Message-ID"],
            "subject": str(make_header(decode_header(subject))) if subject else None,
            "from": parsed["From"],
            "list_unsubscribe": parsed["List-Unsubscribe"],
            "list_unsubscribe_post": parsed["List-Unsubscribe-Post"],
            "parts": [part.get_content_type() for part in parsed.walk() if not part.is_multipart()],
        }
        for recipient in envelope.rcpt_tos:
            self.recorder.accept(
                recipient.lower(),
                {**record, "raw": raw.decode(errors="replace")},
                identity=str(record["message_id"] or record["subject"]),
            )
        return "250 Message accepted for delivery"
