"""Validation and normal form of contact points: E.164 phones, e-mail addresses, tokens.

One normal form per address, so that the same phone typed two ways is one contact point.
"""

from __future__ import annotations

import re
from collections.abc import Collection

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from broadcaster.errors import InvalidInput
from channels import Channel

# SMS reaches mobiles only; FIXED_LINE_OR_MOBILE is what numbering plans that cannot tell
# the two apart report.
_MOBILE_TYPES = frozenset(
    {phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE}
)
# FCM registration tokens are URL-safe base64 with ':' separators, ~150-200 characters.
_PUSH_TOKEN = re.compile(r"[A-Za-z0-9_:\-.]{32,512}")


def normalise_phone(raw: str, *, field: str = "phone") -> str:
    """A mobile number in E.164 (`+48601234567`); national numbers are read as Polish."""
    try:
        number = phonenumbers.parse(raw, "PL")
    except phonenumbers.NumberParseException:
        raise InvalidInput(field, "is not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidInput(field, "is not a valid phone number")
    if phonenumbers.number_type(number) not in _MOBILE_TYPES:
        raise InvalidInput(field, "is not a mobile number, so it cannot receive SMS")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def require_region(address: str, regions: Collection[str], *, field: str = "phone") -> None:
    """Refuse an E.164 number from outside `regions` (ISO 3166 codes; settings: PL only).

    SMS pumping fraud asks for codes to be sent to premium or foreign numbers, billed to
    us; the city serves residents, so other countries are refused unless configured.
    """
    region = phonenumbers.region_code_for_number(phonenumbers.parse(address))
    if region not in regions:
        allowed = ", ".join(sorted(regions))
        raise InvalidInput(field, f"must be a mobile number from {allowed}")


def normalise_email(raw: str, *, field: str = "email") -> str:
    """The address in the form we store and compare: validated, lower case."""
    try:
        address = validate_email(raw.strip(), check_deliverability=False).normalized
    except EmailNotValidError as error:
        raise InvalidInput(field, f"is not a valid e-mail address: {error}") from None
    return address.lower()


def normalise_push_token(raw: str, *, field: str = "token") -> str:
    token = raw.strip()
    if not _PUSH_TOKEN.fullmatch(token):
        raise InvalidInput(field, "is not a device token (32-512 URL-safe characters)")
    return token


def _mask_email(address: str) -> str:
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}"


def _mask_phone(address: str) -> str:
    return f"{address[:3]}******{address[-3:]}"


def _mask_token(address: str) -> str:
    return f"{address[:6]}…"


_NORMALISERS = {
    Channel.SMS: normalise_phone,
    Channel.EMAIL: normalise_email,
    Channel.PUSH: normalise_push_token,
}
_MASKS = {Channel.SMS: _mask_phone, Channel.EMAIL: _mask_email, Channel.PUSH: _mask_token}


def parse_channel(value: object, *, field: str = "channel") -> Channel:
    try:
        return Channel(str(value))
    except ValueError:
        choices = ", ".join(c.value for c in Channel)
        raise InvalidInput(field, f"must be one of {choices}") from None


def normalise_address(channel: Channel, raw: object, *, field: str = "address") -> str:
    """The normal form of `raw` as an address on `channel`."""
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidInput(field, "is required")
    return _NORMALISERS[channel](raw, field=field)


def mask_address(channel: str, address: str | None) -> str:
    """What an auditor may see of an address: enough to tell two apart, not to use one."""
    if address is None:
        return "(erased)"
    return _MASKS[Channel(channel)](address)
