"""The one reading of an alert's texts from flat fields (console forms, the CLI)."""

from __future__ import annotations

import pytest

from broadcaster.alerts.drafts import texts_from_fields


@pytest.mark.parametrize(
    ("fields", "contents"),
    [
        ({"title_pl": "Burza", "body_pl": "Od 18:00."}, {"pl": ("Burza", "Od 18:00.")}),
        # As typed: the service folds, trims and judges them, as for every face.
        ({"title_pl": " Burza\r\n", "body_pl": "Od 18:00. "}, {"pl": (" Burza\r\n", "Od 18:00. ")}),
        # Polish is kept even when missing, so the service names what is missing.
        ({}, {"pl": ("", "")}),
        ({"title_pl": "Burza", "body_pl": None}, {"pl": ("Burza", "")}),
        # No translation: left out, whether absent, empty, blank or None (an unused option).
        (
            {"title_pl": "B", "body_pl": "b", "title_en": "", "body_en": " \r\n\t\u2028"},
            {"pl": ("B", "b")},
        ),
        (
            {"title_pl": "B", "body_pl": "b", "title_uk": None, "body_uk": "\u3000"},
            {"pl": ("B", "b")},
        ),
        # A character the text rule refuses is no blank: the service names it.
        (
            {"title_pl": "B", "body_pl": "b", "title_en": "\x1f"},
            {"pl": ("B", "b"), "en": ("\x1f", "")},
        ),
        # Half a translation is kept: the service names the missing half.
        (
            {"title_pl": "B", "body_pl": "b", "title_en": "Storm"},
            {"pl": ("B", "b"), "en": ("Storm", "")},
        ),
        (
            {"title_pl": "B", "body_pl": "b", "body_uk": "Гроза"},
            {"pl": ("B", "b"), "uk": ("", "Гроза")},
        ),
        # Fields that are not texts are no business of this reading.
        ({"title_pl": "B", "body_pl": "b", "topic": "x", "title_de": "Sturm"}, {"pl": ("B", "b")}),
    ],
)
def test_texts_from_flat_fields(
    fields: dict[str, str | None], contents: dict[str, tuple[str, str]]
) -> None:
    assert texts_from_fields(fields) == contents
