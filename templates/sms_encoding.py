"""SMS encoding: GSM-7 or UCS-2, segments, and transliteration to GSM-7.

A text fits GSM-7 only if every character is in the GSM 03.38 default alphabet or its
extension table; extension characters (€ [ ] { } \\ ~ ^ | and form feed) take two septets.
One message carries 160 septets, or 153 per part once split (the rest is the concatenation
header). Anything else - Polish diacritics such as ą ć ę ł ń ś ź ż, Cyrillic, emoji - forces
UCS-2: 70 UTF-16 units, 67 per part; an emoji outside the Basic Multilingual Plane takes two
units. A two-septet character or a surrogate pair is never split across parts, so parts
are filled greedily rather than by plain division.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

SINGLE_LIMIT = {"GSM-7": 160, "UCS-2": 70}
PART_LIMIT = {"GSM-7": 153, "UCS-2": 67}
MAX_PARTS = 10

# Polish letters have GSM-7 neighbours without the diacritic; Ukrainian follows the
# official national romanisation (Cabinet of Ministers resolution 55 of 2010), simplified
# to its in-word forms.
TRANSLITERATION = str.maketrans(
    {
        **dict(zip("ąćęłńóśźżĄĆĘŁŃÓŚŹŻ", "acelnoszzACELNOSZZ", strict=True)),
        "а": "a",
        "б": "b",
        "в": "v",
        "г": "h",
        "ґ": "g",
        "д": "d",
        "е": "e",
        "є": "ie",
        "ж": "zh",
        "з": "z",
        "и": "y",
        "і": "i",
        "ї": "i",
        "й": "i",
        "к": "k",
        "л": "l",
        "м": "m",
        "н": "n",
        "о": "o",
        "п": "p",
        "р": "r",
        "с": "s",
        "т": "t",
        "у": "u",
        "ф": "f",
        "х": "kh",
        "ц": "ts",
        "ч": "ch",
        "ш": "sh",
        "щ": "shch",
        "ь": "",
        "ю": "iu",
        "я": "ia",
        "ʼ": "",
        "’": "",
        "А": "A",
        "Б": "B",
        "В": "V",
        "Г": "H",
        "Ґ": "G",
        "Д": "D",
        "Е": "E",
        "Є": "Ye",
        "Ж": "Zh",
        "З": "Z",
        "И": "Y",
        "І": "I",
        "Ї": "Yi",
        "Й": "Y",
        "К": "K",
        "Л": "L",
        "М": "M",
        "Н": "N",
        "О": "O",
        "П": "P",
        "Р": "R",
        "С": "S",
        "Т": "T",
        "У": "U",
        "Ф": "F",
        "Х": "Kh",
        "Ц": "Ts",
        "Ч": "Ch",
        "Ш": "Sh",
        "Щ": "Shch",
        "Ь": "",
        "Ю": "Yu",
        "Я": "Ya",
        # Typography that would force UCS-2 for one character.
        "„": '"',
        "”": '"',
        "“": '"',
        "‘": "'",
        "–": "-",
        "—": "-",
        "…": "...",
        "\u00a0": " ",
    }
)


class Encoding(StrEnum):
    GSM7 = "GSM-7"
    UCS2 = "UCS-2"


@dataclass(frozen=True, slots=True)
class SmsShape:
    """What one SMS text costs: its encoding, size in units and the number of parts."""

    text: str
    encoding: Encoding
    characters: int
    units: int
    parts: int

    @property
    def per_part(self) -> int:
        return SINGLE_LIMIT[self.encoding] if self.parts == 1 else PART_LIMIT[self.encoding]

    def as_dict(self) -> dict[str, object]:
        return {
            "encoding": self.encoding.value,
            "characters": self.characters,
            "units": self.units,
            "parts": self.parts,
        }


def is_gsm7(text: str) -> bool:
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text)


def _unit_sizes(text: str, encoding: Encoding) -> list[int]:
    if encoding is Encoding.GSM7:
        return [2 if ch in GSM7_EXTENSION else 1 for ch in text]
    return [2 if ord(ch) > 0xFFFF else 1 for ch in text]


def _count_parts(sizes: list[int], encoding: Encoding) -> int:
    total = sum(sizes)
    if total <= SINGLE_LIMIT[encoding]:
        return 1
    limit, parts, filled = PART_LIMIT[encoding], 1, 0
    for size in sizes:
        if filled + size > limit:
            parts, filled = parts + 1, 0
        filled += size
    return parts


def shape(text: str) -> SmsShape:
    """Encoding, units and parts of `text` as a phone network will carry it."""
    encoding = Encoding.GSM7 if is_gsm7(text) else Encoding.UCS2
    sizes = _unit_sizes(text, encoding)
    return SmsShape(
        text=text,
        encoding=encoding,
        characters=len(text),
        units=sum(sizes),
        parts=_count_parts(sizes, encoding),
    )


def transliterate(text: str) -> str:
    """`text` with Polish and Ukrainian letters and curly typography mapped to GSM-7.

    What has no GSM-7 form (an emoji, say) is left alone, so the result may still need
    UCS-2: `shape()` of the result tells.
    """
    return text.translate(TRANSLITERATION)
