import pytest

from templates.sms_encoding import Encoding, shape, transliterate

G, U = Encoding.GSM7, Encoding.UCS2


@pytest.mark.parametrize(
    ("text", "encoding", "units", "parts"),
    [
        ("", G, 0, 1),
        ("Burza w Warszawie o 18:00", G, 25, 1),
        ("a" * 160, G, 160, 1),
        ("a" * 161, G, 161, 2),
        ("a" * 306, G, 306, 2),
        ("a" * 307, G, 307, 3),
        ("Ostrzeżenie", U, 11, 1),  # one ż forces UCS-2
        ("Zażółć gęślą jaźń", U, 17, 1),
        ("ą" * 70, U, 70, 1),
        ("ą" * 71, U, 71, 2),
        ("ą" * 134, U, 134, 2),
        ("ą" * 135, U, 135, 3),
        ("Сильні грози", U, 12, 1),
        ("Uwaga 😀", U, 8, 1),  # an emoji outside the BMP is a surrogate pair
        ("😀" * 35, U, 70, 1),
        ("😀" * 36, U, 72, 2),
        ("Cena 5€", G, 8, 1),  # € is in the extension table: two septets
        ("€" * 80, G, 160, 1),
        ("€" * 81, G, 162, 2),
        ("[Test] {a} ~ ^ | \\", G, 26, 1),
        ("a" * 152 + "€", G, 154, 1),
        # 153 septets per part, and a two-septet character never straddles two parts.
        ("a" * 152 + "€" + "a" * 10, G, 164, 2),
        ("a" * 152 + "€" * 77, G, 306, 3),
        ("Kraków, Łódź: ó is not GSM-7 but ò is", U, 37, 1),
        ("Café É ÄÖÜ ñ ß", G, 14, 1),
        ("È is not in the GSM-7 alphabet", U, 30, 1),
    ],
)
def test_encoding_units_and_parts(text: str, encoding: Encoding, units: int, parts: int) -> None:
    result = shape(text)
    assert (result.encoding, result.units, result.parts) == (encoding, units, parts)
    assert result.characters == len(text)


def test_per_part_limits() -> None:
    assert shape("a").per_part == 160
    assert shape("a" * 200).per_part == 153
    assert shape("ą").per_part == 70
    assert shape("ą" * 80).per_part == 67


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Zażółć gęślą jaźń", "Zazolc gesla jazn"),
        ("ŁÓDŹ, ŚRÓDMIEŚCIE", "LODZ, SRODMIESCIE"),
        ("„Burza” – 18:00…", '"Burza" - 18:00...'),
        ("Сильні грози з градом", "Sylni hrozy z hradom"),
        ("Київ, Щастя, Ярослав", "Kyiv, Shchastia, Yaroslav"),
    ],
)
def test_transliteration_reaches_gsm7(text: str, expected: str) -> None:
    result = transliterate(text)
    assert result == expected
    assert shape(result).encoding is G


def test_transliteration_leaves_what_has_no_gsm7_form() -> None:
    assert shape(transliterate("Burza 😀")).encoding is U


def test_transliteration_saves_parts() -> None:
    polish = (
        "Uwaga! Silne burze z gradem w dzielnicach Mokotów, Ursynów i Wilanów od godziny 17:00."
    )
    assert shape(polish).parts == 2
    assert shape(transliterate(polish)).parts == 1
