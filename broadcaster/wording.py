"""The words a person reads, in Polish first, then English and Ukrainian: one catalogue.

Each entry is a template per language with named fields (`{language}`, `{parts}`...);
`words(key, **fields)` fills them in for every language at once, so an error can carry
its text in each language and each face picks the reader's (the console the page's
language, the API all three, the CLI English, as its other messages are).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from broadcaster.errors import InvalidInput

# Polish first: the language every resident and operator without a choice reads.
LANGUAGES = ("pl", "en", "uk")

CATALOGUE: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        "text.control": {
            "pl": "zawiera niedozwolony znak sterujący {code} (znak nr {position}): usuń go",
            "en": "contains a control character {code} (character {position}): remove it",
            "uk": (
                "містить недозволений керівний символ {code} (символ № {position}): видаліть його"
            ),
        },
        "text.surrogate": {
            "pl": "zawiera niepoprawny znak {code} (znak nr {position}): to nie jest tekst Unicode",
            "en": "contains an invalid character {code} (character {position}): not Unicode text",
            "uk": "містить неприпустимий символ {code} (символ № {position}): це не текст Unicode",
        },
        "text.noncharacter": {
            "pl": (
                "zawiera znak {code} (znak nr {position}), który nie służy do pisania tekstu: "
                "usuń go"
            ),
            "en": "contains {code} (character {position}), which is not for text: remove it",
            "uk": (
                "містить символ {code} (символ № {position}), не призначений для тексту: "
                "видаліть його"
            ),
        },
        "sms.too_many_parts": {
            "pl": (
                "SMS ({language}) wymaga {parts} części, limit to {limit}: skróć tekst "
                "lub włącz transliterację do GSM-7"
            ),
            "en": (
                "SMS ({language}) needs {parts} parts, the limit is {limit}: shorten the "
                "text or transliterate it to GSM-7"
            ),
            "uk": (
                "SMS ({language}) потребує {parts} частин, ліміт {limit}: скоротіть текст "
                "або увімкніть транслітерацію в GSM-7"
            ),
        },
        "sms.over_limit": {
            "pl": "ponad limit {limit} części: nie zostanie zatwierdzony",
            "en": "over the limit of {limit} parts: it cannot be approved",
            "uk": "понад ліміт {limit} частин: його не буде затверджено",
        },
        "sms.shorten": {
            "pl": (
                "Skróć tekst albo zaznacz „SMS bez polskich znaków” (transliterate_sms): "
                "w GSM-7 część mieści 160 znaków zamiast 70."
            ),
            "en": (
                "Shorten the text, or tick “SMS without Polish letters” (transliterate_sms): "
                "a GSM-7 part holds 160 characters, not 70."
            ),
            "uk": (
                "Скоротіть текст або позначте «SMS без польських літер» (transliterate_sms): "
                "частина GSM-7 вміщує 160 символів замість 70."
            ),
        },
        "sms.shorten_only": {
            "pl": "Tekst jest już transliterowany: skróć go.",
            "en": "The text is already transliterated: shorten it.",
            "uk": "Текст уже транслітеровано: скоротіть його.",
        },
        "status.done_with_failures": {
            "pl": "wysłany z błędami ({failed} nieudanych)",
            "en": "sent with failures ({failed} failed)",
            "uk": "надіслано з помилками ({failed} невдалих)",
        },
    }
)


def words(key: str, **fields: object) -> dict[str, str]:
    """The entry `key` in every language, its fields filled in (Polish first)."""
    entry = CATALOGUE[key]
    return {language: entry[language].format(**fields) for language in LANGUAGES}


def refusal(field: str, key: str, **fields: object) -> InvalidInput:
    """Bad input named by `field`, worded from the catalogue entry `key`."""
    said = words(key, **fields)
    return InvalidInput(field, said["en"], translations=said)
