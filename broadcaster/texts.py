"""One rule for the text people type into alerts (and names): what is kept, what is
folded, what is refused. Every face reaches it through the core (`alerts.check_draft`
for titles and bodies; the API's `PlainText` for names and reasons), so the API, the
console and the command line accept and refuse exactly the same text.

- A title is one line: it becomes an SMS prefix, a push title and an e-mail Subject,
  a header that cannot hold a line break (RFC 5322). Line breaks - CR LF, CR, LF, NEL
  (U+0085), LINE SEPARATOR (U+2028), PARAGRAPH SEPARATOR (U+2029) - and tabs fold to one
  space, with the spaces around them, so a title pasted with a break reads as typed.
- A body keeps its lines: every kind of line break above becomes LF, tabs stay.
- Everywhere else, refused with the field named: the other C0 controls (NUL, ESC, ...),
  DEL and the C1 controls (U+0080-U+009F), which no phone or mail client shows and
  PostgreSQL refuses in part (NUL); lone surrogates (U+D800-U+DFFF, which a command line
  makes of bytes that are not UTF-8 and no encoder can send); and Unicode's
  noncharacters (U+FDD0-U+FDEF and the last two code points of every plane).
"""

from __future__ import annotations

import re

from broadcaster.errors import InvalidInput
from broadcaster.wording import refusal

# Every line break Unicode knows of in running text (UAX #14 mandatory breaks minus the
# form feed and vertical tab, which are refused as controls): CR LF counts as one.
_BREAK = r"\r\n|[\r\n\u0085\u2028\u2029]"
_BREAKS = re.compile(_BREAK)
_TITLE_BREAKS = re.compile(rf"[ \t]*(?:{_BREAK}|\t)(?:[ \t]|{_BREAK})*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_NONCHARACTER = re.compile(
    "[\ufdd0-\ufdef"
    + "".join(f"{chr(p * 0x10000 + 0xFFFE)}{chr(p * 0x10000 + 0xFFFF)}" for p in range(17))
    + "]"
)


def refuse_hidden(value: str, field: str, *, keep: str = "") -> str:
    """`value` unchanged, unless it holds a control character (other than those in
    `keep`), a lone surrogate or a noncharacter: then InvalidInput naming `field`."""
    for pattern, key in (
        (_SURROGATE, "text.surrogate"),
        (_CONTROL, "text.control"),
        (_NONCHARACTER, "text.noncharacter"),
    ):
        for found in pattern.finditer(value):
            if found.group() in keep:
                continue
            raise refusal(
                field, key, code=f"U+{ord(found.group()):04X}", position=found.start() + 1
            )
    return value


def title_text(value: str, field: str) -> str:
    """A title as stored: one line, trimmed, its breaks folded, nothing hidden in it."""
    return refuse_hidden(_TITLE_BREAKS.sub(" ", value), field).strip()


def body_text(value: str, field: str) -> str:
    """A body as stored: trimmed, each line break one LF, tabs kept, nothing hidden."""
    return refuse_hidden(_BREAKS.sub("\n", value), field, keep="\n\t").strip()


def reason_text(value: str, field: str, *, limit: int = 1000) -> str:
    """A reason (for a rejection, a cancellation) as stored: a body's rule, and at most
    `limit` characters once its line breaks are one each."""
    reason = body_text(value, field)
    if len(reason) > limit:
        raise InvalidInput(field, f"is longer than {limit} characters")
    return reason


def name_text(value: str, field: str, *, limit: int = 200) -> str:
    """A person's name as stored: a title's rule (one line), at most `limit` characters."""
    name = title_text(value, field)
    if len(name) > limit:
        raise InvalidInput(field, f"is longer than {limit} characters")
    return name
