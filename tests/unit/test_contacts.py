import phonenumbers
import pytest

from broadcaster.dev.population import PHONE_BASE
from broadcaster.errors import InvalidInput
from channels import Channel
from subscribers.contacts import mask_address, normalise_address, parse_channel


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("601 234 567", "+48601234567"),
        ("+48 601-234-567", "+48601234567"),
        ("0048601234567", "+48601234567"),
        ("+380 67 123 4567", "+380671234567"),
    ],
)
def test_phones_become_e164(raw: str, expected: str) -> None:
    assert normalise_address(Channel.SMS, raw, field="phone") == expected


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("hello", "not a phone number"),
        ("601 234", "not a valid phone number"),
        ("22 123 45 67", "not a mobile number"),
        ("+48 800 123 456", "not a mobile number"),
        ("", "is required"),
    ],
)
def test_bad_phones_name_the_field(raw: str, fragment: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        normalise_address(Channel.SMS, raw, field="contacts[0].address")
    assert caught.value.field == "contacts[0].address"
    assert fragment in caught.value.message


def test_emails_are_validated_and_lowered() -> None:
    assert (
        normalise_address(Channel.EMAIL, " Jan.Kowalski@Example.COM ") == "jan.kowalski@example.com"
    )
    for bad in ["jan.kowalski", "jan@", "jan@localhost", "a b@example.com"]:
        with pytest.raises(InvalidInput) as caught:
            normalise_address(Channel.EMAIL, bad, field="email")
        assert caught.value.field == "email"


def test_push_tokens_are_checked() -> None:
    token = "fcm-Token_0123456789:APA91bH" + "x" * 100
    assert normalise_address(Channel.PUSH, f" {token} ") == token
    for bad in ["short", "has space " + "x" * 40, "<script>" + "x" * 40]:
        with pytest.raises(InvalidInput):
            normalise_address(Channel.PUSH, bad)


def test_unknown_channel_names_the_field() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_channel("fax", field="contacts[2].channel")
    assert caught.value.field == "contacts[2].channel"
    assert "sms, push, email" in caught.value.message


def test_masks_hide_addresses() -> None:
    assert mask_address("sms", "+48601234567") == "+48******567"
    assert mask_address("email", "jan.kowalski@example.com") == "j***@example.com"
    assert mask_address("push", "abcdefghijklmnop") == "abcdef…"
    assert mask_address("sms", None) == "(erased)"


def test_synthetic_phone_block_is_polish_mobile() -> None:
    for offset in (1, 999_999, 5_000_000, 9_999_999):
        number = phonenumbers.parse(f"+48{PHONE_BASE + offset}")
        assert phonenumbers.is_valid_number(number)
        assert phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.MOBILE
