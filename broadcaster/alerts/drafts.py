"""An alert's texts as a form or a command line gives them: flat fields, `title_pl`,
`body_pl`, `title_en`, ... The one reading of them, for the console's compose and
follow-up forms and the CLI alike (the API takes `contents` as an object instead).

It only gathers; the alert service judges (the text rule, lengths, Polish required),
so what a face is told about a missing or bad text is the same on every face and names
its field as the service does: `contents.<language>.title` or `.body`. The texts go to
it as typed, so a refused character is found where it was typed, whatever the face.
"""

from __future__ import annotations

from collections.abc import Mapping

from broadcaster.errors import InvalidInput
from broadcaster.reference.models import FALLBACK_LANGUAGE, Language
from broadcaster.texts import body_text


def texts_from_fields(fields: Mapping[str, object]) -> dict[str, tuple[str, str]]:
    """Language -> (title, body) from the flat fields `title_<language>` and
    `body_<language>` (a missing field or None reads as empty).

    A language whose title and body are both blank is left out, as no translation,
    except Polish, which every alert needs: kept, so the service names what is missing.
    A language given half is kept too, and the service names the missing half.
    """
    contents: dict[str, tuple[str, str]] = {}
    for language in Language:
        title, body = (_text(fields.get(f"{part}_{language.value}")) for part in ("title", "body"))
        if language is FALLBACK_LANGUAGE or not (_blank(title) and _blank(body)):
            contents[language.value] = (title, body)
    return contents


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _blank(text: str) -> bool:
    """Nothing left once the text rule has folded and trimmed it (spaces, line breaks);
    a character the rule refuses is no blank: the service refuses it, naming it."""
    try:
        return not body_text(text, "")
    except InvalidInput:
        return False
