"""What every channel shares: the names of the channels a message can travel on.

A contact point belongs to exactly one channel (a phone number to SMS, a device token to
push, an address to e-mail), so the channel is also the kind of the contact point.
"""

from __future__ import annotations

from enum import StrEnum


class Channel(StrEnum):
    SMS = "sms"
    PUSH = "push"
    EMAIL = "email"
