"""The one small interface every channel implements, and the plain data it speaks.

A channel takes a batch of messages and returns one result per message: sent (with the
provider's id), a temporary failure (retry later, perhaps after `retry_after`), or a
permanent one (final), always with the provider's own error code. Channels import
nothing of ours: they get plain data and give plain data back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import ClassVar, Protocol


class Channel(StrEnum):
    SMS = "sms"
    PUSH = "push"
    EMAIL = "email"


class Outcome(StrEnum):
    SENT = "sent"
    TEMPORARY = "temporary"
    PERMANENT = "permanent"


class AddressFault(StrEnum):
    """What a failed delivery says of the address it went to: the one question the domain
    asks of a failure about the contact point, answered by each channel in its own terms."""

    # It will never work (a dead push token, an invalid number): disabled at once.
    DEAD = "dead"
    # It refused this message for good (a hard bounce): counted, and a few disable it.
    BOUNCED = "bounced"


class Receipt(StrEnum):
    """What a provider's delivery report says became of a message it accepted."""

    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    # Still on its way (an intermediate status): the report changes nothing.
    PENDING = "pending"


@dataclass(frozen=True, slots=True)
class Message:
    """One message to one address, as rendered for its (alert, language, channel) variant.

    `text` is the SMS text, the push body or the e-mail's plain-text part; `title` the push
    title or the e-mail subject; `html` the e-mail's HTML part.
    """

    delivery_id: int
    address: str
    text: str
    title: str = ""
    html: str = ""
    unsubscribe_url: str | None = None
    urgent: bool = False
    expires_at: datetime | None = None
    data: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    delivery_id: int
    outcome: Outcome
    provider_id: str | None = None
    error_code: str | None = None
    # Seconds the provider asked us to wait before trying again (429 / Retry-After).
    retry_after: float | None = None
    # The address will never work (dead token, invalid number): stop using it.
    disable_address: bool = False


@dataclass(frozen=True, slots=True)
class Failure:
    """A classified provider error: temporary or not, with the provider's own code."""

    temporary: bool
    code: str
    retry_after: float | None = None
    disable_address: bool = False

    def result(self, delivery_id: int) -> DeliveryResult:
        outcome = Outcome.TEMPORARY if self.temporary else Outcome.PERMANENT
        return DeliveryResult(
            delivery_id,
            outcome,
            error_code=self.code,
            retry_after=self.retry_after,
            disable_address=self.disable_address,
        )


def address_fault(result: DeliveryResult) -> AddressFault | None:
    """The verdict of a channel whose classifier marks a dead address itself
    (`disable_address`, as SMS and push do): dead, or nothing said of the address."""
    return AddressFault.DEAD if result.disable_address else None


class ChannelConfigError(Exception):
    """A channel cannot start with the configuration it was given; names the setting."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"{setting}: {problem}")
        self.setting = setting
        self.problem = problem


class ChannelSender(Protocol):
    """Send a batch of messages; return exactly one result per message, in any order."""

    name: ClassVar[Channel]
    # Most messages one provider call (or one send_batch) should carry.
    max_batch: ClassVar[int]
    # How many messages leave at once (one provider request, or one per open connection):
    # a batch is handed over in waves of this size, and a cancel takes effect between them.
    wave: int

    async def send_batch(self, messages: Sequence[Message]) -> list[DeliveryResult]: ...

    async def aclose(self) -> None: ...
