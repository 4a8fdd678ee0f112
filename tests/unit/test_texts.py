"""The one text rule for alert titles and bodies (broadcaster/texts.py), table-driven."""

from __future__ import annotations

import pytest

from broadcaster.errors import InvalidInput
from broadcaster.texts import body_text, refuse_hidden, title_text

FIELD = "contents.pl.title"


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("Burza nad Wolą", "Burza nad Wolą"),
        ("Burza\r\nnad Wolą", "Burza nad Wolą"),
        ("Burza\rnad Wolą", "Burza nad Wolą"),
        ("Burza\nnad Wolą", "Burza nad Wolą"),
        ("Burza \u2028 nad\u2029Wolą", "Burza nad Wolą"),
        ("Burza\u0085nad Wolą", "Burza nad Wolą"),
        ("Burza\tnad\r\n\r\n Wolą\n", "Burza nad Wolą"),
        ("  Burza  nad Wolą  ", "Burza  nad Wolą"),
    ],
)
def test_a_title_is_one_line(typed: str, stored: str) -> None:
    assert title_text(typed, FIELD) == stored


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("a\r\nb", "a\nb"),
        ("a\rb", "a\nb"),
        ("a\u2028b\u2029c\u0085d", "a\nb\nc\nd"),
        ("a\r\n\r\nb", "a\n\nb"),
        ("kolumna\tdruga", "kolumna\tdruga"),
        ("\n tekst \n", "tekst"),
    ],
)
def test_a_body_keeps_its_lines_as_lf(typed: str, stored: str) -> None:
    assert body_text(typed, "contents.pl.body") == stored


@pytest.mark.parametrize(
    ("text", "code", "position"),
    [
        ("a\x00b", "U+0000", 2),
        ("\x1b[31mczerwony", "U+001B", 1),
        ("dzwonek\x07", "U+0007", 8),
        ("strona\x0c", "U+000C", 7),
        ("pionowy\x0btab", "U+000B", 8),
        ("usuń\x7f", "U+007F", 5),
        ("csi\x9b", "U+009B", 4),
        ("zły\ud800", "U+D800", 4),
        ("nie\ufffe", "U+FFFE", 4),
        ("nie\ufdd0", "U+FDD0", 4),
        ("nie\U0010ffff", "U+10FFFF", 4),
    ],
)
def test_hidden_characters_are_refused_naming_the_field_and_the_character(
    text: str, code: str, position: int
) -> None:
    for check, field in ((title_text, "contents.en.title"), (body_text, "contents.uk.body")):
        with pytest.raises(InvalidInput) as refused:
            check(text, field)
        assert refused.value.field == field
        assert code in refused.value.message
        assert f"character {position}" in refused.value.message
        # Worded from the catalogue, Polish first.
        assert list(refused.value.translations) == ["pl", "en", "uk"]
        assert code in refused.value.message_in("pl")


def test_names_keep_their_breaks_and_tabs_but_no_other_control() -> None:
    assert refuse_hidden("Anna\tNowak\r\n", "display_name", keep="\t\n\r") == "Anna\tNowak\r\n"
    with pytest.raises(InvalidInput, match=r"U\+0000"):
        refuse_hidden("anna\x00", "username", keep="\t\n\r")
    assert refuse_hidden("Zażółć gęślą jaźń — Україна ✓ 🌩", "title") == (
        "Zażółć gęślą jaźń — Україна ✓ 🌩"
    )
