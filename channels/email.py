"""E-mail through SMTP with `aiosmtplib` (the only module that imports it).

A small pool of connections is kept open across batches: a connection carries one
message at a time, so parallelism is the number of connections. Each resident gets a
message of their own (plain text and HTML), with a Message-ID stable per delivery (a
retried message is recognisably the same one) and the RFC 8058 one-click unsubscribe
headers. A connection the server dropped while idle is opened again and the message
tried once more on it. 4xx answers and network errors are temporary, 5xx permanent;
refusals are per recipient.

Building and flattening a MIME message with the standard `email` package costs about a
millisecond of CPU, more than the SMTP exchange itself: so each variant (subject, text,
HTML) is built once, as bytes with stand-ins for the recipient, the Message-ID and the
unsubscribe link, and each recipient's message is that template with the stand-ins
replaced. Bodies go 8bit (RFC 6152) so that no transfer encoding hides a stand-in; a
server without 8BITMIME, or a non-ASCII address, gets a message built the usual way.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email import policy
from email.errors import MessageError
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from html import escape
from typing import ClassVar

import aiosmtplib

from channels.interfaces import (
    AddressFault,
    Channel,
    ChannelConfigError,
    DeliveryResult,
    Failure,
    Message,
    Outcome,
)

SECURITY = ("none", "starttls", "tls")
# Stand-ins in a variant's template, replaced per recipient (ASCII, never in a real text).
_TO = "recipient@stand-in.invalid"
_LINK = "https://stand-in.invalid/unsubscribe-link"
_LINK_IN_HTML = "https://stand-in.invalid/unsubscribe-link-escaped"
_STAND_IN_ID = -1
TEMPLATES_KEPT = 64


INVALID_MESSAGE = Failure(temporary=False, code="invalid-message")
# Line breaks a header cannot carry (RFC 5322 unfolds CRLF; the others are line breaks to
# Unicode and to mail clients): a one-line field folds them into a space.
_LINE_BREAKS = re.compile("\r\n|[\r\n\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")


def one_line(text: str) -> str:
    """`text` for a one-line header: every line break folded into one space."""
    return _LINE_BREAKS.sub(" ", text).strip()


def classify_code(code: int, text: str = "") -> Failure:
    """An SMTP reply code: 4xx temporary, 5xx permanent (RFC 5321 section 4.2.1)."""
    return Failure(temporary=400 <= code < 500, code=f"smtp-{code}")


def address_fault(result: DeliveryResult) -> AddressFault | None:
    """What a failed e-mail says of its address: a permanent refusal with an SMTP 5xx
    reply (`classify_code`'s "smtp-5..") is a hard bounce, counted against the address
    (a few of them disable it); a 4xx is temporary and says nothing of the address."""
    if result.disable_address:
        return AddressFault.DEAD
    if result.outcome is Outcome.PERMANENT and (result.error_code or "").startswith("smtp-5"):
        return AddressFault.BOUNCED
    return None


def classify(error: BaseException) -> Failure:
    """Every aiosmtplib error as a temporary or permanent failure, keeping the SMTP code."""
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        first = error.recipients[0] if error.recipients else None
        return classify_code(first.code if first else 550)
    if isinstance(error, aiosmtplib.SMTPAuthenticationError):
        # Our credentials, not the message: fixable, so worth retrying.
        return Failure(temporary=True, code=f"smtp-auth-{error.code}")
    if isinstance(error, aiosmtplib.SMTPResponseException):
        return classify_code(error.code, error.message)
    if isinstance(error, aiosmtplib.SMTPServerDisconnected):
        return Failure(temporary=True, code="disconnected")
    if isinstance(error, aiosmtplib.SMTPTimeoutError | TimeoutError):
        return Failure(temporary=True, code="timeout")
    if isinstance(error, aiosmtplib.SMTPException | OSError):
        return Failure(temporary=True, code="network")
    raise error


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str
    port: int
    sender: str
    security: str = "none"
    username: str = ""
    password: str = ""
    pool_size: int = 8
    timeout: float = 30.0
    # Extra CA bundle to trust (the sandbox's certificate).
    ca_file: str | None = None


class SmtpEmailChannel:
    """E-mail: one message per recipient over a pool of reused SMTP connections."""

    name: ClassVar[Channel] = Channel.EMAIL
    max_batch: ClassVar[int] = 200

    def __init__(self, config: SmtpConfig) -> None:
        if config.security not in SECURITY:
            raise ChannelConfigError("smtp_security", f"must be one of {', '.join(SECURITY)}")
        try:
            socket.getaddrinfo(config.host, config.port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as error:
            raise ChannelConfigError(
                "smtp_host", f"{config.host!r} cannot be resolved: {error}"
            ) from None
        address = parseaddr(config.sender)[1]
        if "@" not in address:
            raise ChannelConfigError("smtp_from", "must hold an e-mail address")
        if not 1 <= config.pool_size <= 64:
            raise ChannelConfigError("smtp_pool_size", "must be between 1 and 64")
        self.config = config
        # One message at a time per connection; a few rounds of the pool make a wave.
        self.wave = config.pool_size * 4
        self.domain = address.rsplit("@", 1)[1]
        self.idle: asyncio.Queue[aiosmtplib.SMTP] | None = None
        self.opened: list[aiosmtplib.SMTP] = []
        # The latest transport of each connection, so that closing leaves none half-closed
        # (a TLS transport the server dropped can linger "closing" otherwise).
        self.transports: dict[int, asyncio.BaseTransport] = {}
        self.sender_address = address
        self.templates: dict[tuple[str, str, str, bool, datetime], bytes] = {}

    def message_id(self, delivery_id: int) -> str:
        return f"<delivery-{delivery_id}@{self.domain}>"

    def compose(self, message: Message, now: datetime, cte: str | None = None) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = self.config.sender
        mail["To"] = message.address
        mail["Subject"] = one_line(message.title)
        mail["Date"] = format_datetime(now)
        mail["Message-ID"] = self.message_id(message.delivery_id)
        mail["Auto-Submitted"] = "auto-generated"
        if message.unsubscribe_url:
            # RFC 8058: an HTTPS link that unsubscribes on a POST with this body, and the
            # header that tells mail clients they may send it without asking.
            mail["List-Unsubscribe"] = f"<{message.unsubscribe_url}>"
            mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        mail.set_content(message.text, cte=cte)
        if message.html:
            mail.add_alternative(message.html, subtype="html", cte=cte)
        return mail

    def from_template(self, message: Message, now: datetime) -> bytes | None:
        """The message as bytes, from its variant's template (built on first use); None
        for a non-ASCII address, which needs a message built for it (SMTPUTF8)."""
        if not message.address.isascii():
            return None
        link = message.unsubscribe_url or ""
        text, html = message.text, message.html
        escaped = escape(link, quote=True)
        if link:
            text = text.replace(link, _LINK)
            html = html.replace(escaped, _LINK_IN_HTML).replace(link, _LINK)
        key = (message.title, text, html, bool(link), now)
        template = self.templates.get(key)
        if template is None:
            if len(self.templates) >= TEMPLATES_KEPT:
                self.templates.clear()
            stand_in = replace(
                message,
                delivery_id=_STAND_IN_ID,
                address=_TO,
                text=text,
                html=html,
                unsubscribe_url=_LINK if link else None,
            )
            template = self.compose(stand_in, now, cte="8bit").as_bytes(policy=policy.SMTP)
            self.templates[key] = template
        raw = template.replace(_TO.encode(), message.address.encode()).replace(
            self.message_id(_STAND_IN_ID).encode(),
            self.message_id(message.delivery_id).encode(),
        )
        if not link:
            return raw
        # The escaped stand-in first: the plain one is a prefix of it.
        raw = raw.replace(_LINK_IN_HTML.encode(), escaped.encode())
        return raw.replace(_LINK.encode(), link.encode())

    def _client(self) -> aiosmtplib.SMTP:
        tls_context = None
        if self.config.security != "none":
            tls_context = ssl.create_default_context()
            if self.config.ca_file:
                tls_context.load_verify_locations(self.config.ca_file)
        return aiosmtplib.SMTP(
            hostname=self.config.host,
            port=self.config.port,
            use_tls=self.config.security == "tls",
            start_tls=self.config.security == "starttls",
            tls_context=tls_context,
            timeout=self.config.timeout,
        )

    async def _connect(self, client: aiosmtplib.SMTP) -> None:
        previous = self.transports.pop(id(client), None)
        if previous is not None:
            abort(previous)  # what is left of the connection this one replaces
        await client.connect()
        if client.transport is not None:
            self.transports[id(client)] = client.transport
        if self.config.username:
            await client.login(self.config.username, self.config.password)

    def _pool(self) -> asyncio.Queue[aiosmtplib.SMTP]:
        if self.idle is None:
            self.idle = asyncio.Queue()
            for _ in range(self.config.pool_size):
                client = self._client()
                self.opened.append(client)
                self.idle.put_nowait(client)
        return self.idle

    async def send_batch(self, messages: Sequence[Message]) -> list[DeliveryResult]:
        now = datetime.now(UTC)
        pool = self._pool()

        async def one(message: Message) -> DeliveryResult:
            client = await pool.get()
            try:
                return await self._send(client, message, now)
            finally:
                pool.put_nowait(client)

        return list(await asyncio.gather(*(one(m) for m in messages)))

    async def _send(
        self, client: aiosmtplib.SMTP, message: Message, now: datetime
    ) -> DeliveryResult:
        for attempt in (1, 2):
            try:
                if not client.is_connected:
                    _drop(client)  # whatever is left of a connection the server closed
                    await self._connect(client)
                raw = (
                    self.from_template(message, now)
                    if client.supports_extension("8bitmime")
                    else None
                )
                if raw is None:
                    refused, _ = await client.send_message(self.compose(message, now))
                else:
                    refused, _ = await client.sendmail(
                        self.sender_address,
                        [message.address],
                        raw,
                        mail_options=["BODY=8BITMIME"],
                    )
            except (ValueError, TypeError, UnicodeError, MessageError):
                # This message cannot be built (a header the e-mail package refuses): it
                # fails for good, alone; the connection is untouched and serves the next.
                return INVALID_MESSAGE.result(message.delivery_id)
            except aiosmtplib.SMTPServerDisconnected as error:
                # Dropped while idle: open it again and try this message once more.
                _drop(client)
                if attempt == 2:
                    return classify(error).result(message.delivery_id)
                continue
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
                failure = classify(error)
                # After a refusal aiosmtplib has reset the envelope and the connection
                # serves the next message; after a network error, or a 421 (the server
                # is closing the channel, RFC 5321 section 3.8), it starts afresh.
                refusal = isinstance(
                    error, aiosmtplib.SMTPResponseException | aiosmtplib.SMTPRecipientsRefused
                )
                if not refusal or failure.code == "smtp-421":
                    _drop(client)
                return failure.result(message.delivery_id)
            if message.address in refused:
                code, text = refused[message.address]
                return classify_code(code, text).result(message.delivery_id)
            return DeliveryResult(
                message.delivery_id, Outcome.SENT, provider_id=self.message_id(message.delivery_id)
            )
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        for client in self.opened:
            if not client.is_connected:
                _drop(client)
                continue
            transport = client.transport
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await client.quit()
            if transport is not None:
                # After QUIT nothing more is owed: do not wait on a TLS goodbye.
                abort(transport)
        for transport in self.transports.values():
            abort(transport)
        self.transports.clear()
        self.opened.clear()
        self.idle = None
        for _ in range(3):
            await asyncio.sleep(0)  # let the aborted transports finish in this loop


def _drop(client: aiosmtplib.SMTP) -> None:
    """Forget a broken connection at once: abort, not close, since a TLS close would wait
    for a goodbye from a peer that is already gone."""
    if client.transport is not None:
        abort(client.transport)
    client.close()


def abort(transport: asyncio.BaseTransport) -> None:
    if isinstance(transport, asyncio.WriteTransport):
        transport.abort()
    else:
        transport.close()
