"""SMS keywords a resident sends to our number: STOP / NIE / WYPISZ (any case, with or
without Polish letters, punctuation or spaces around) unsubscribe that phone; START /
TAK / ZAPISZ resubscribe a phone proven before. Anything else is no keyword, and is
ignored."""

from __future__ import annotations

import contextlib
import enum
import re
import unicodedata

from sqlalchemy.orm import Session

from broadcaster.errors import InvalidInput
from subscribers import services


class Keyword(enum.Enum):
    STOP = "stop"
    START = "start"


# Single-word (or two-word) messages, compared without case, accents or punctuation.
STOP_WORDS = frozenset(
    {"stop", "nie", "wypisz", "wypisz sie", "wypisz mnie", "rezygnuje", "unsubscribe", "стоп"}
)
START_WORDS = frozenset({"start", "tak", "zapisz", "zapisz mnie", "subscribe", "старт"})
KEYWORDS: dict[str, Keyword] = {
    **dict.fromkeys(STOP_WORDS, Keyword.STOP),
    **dict.fromkeys(START_WORDS, Keyword.START),
}
# Letters with no decomposition into a base letter and an accent.
_PLAIN_LETTERS = str.maketrans({"ł": "l", "Ł": "l"})


def keyword(text: str) -> str:
    """The message as a keyword: lower case, Polish letters plain, words only."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_PLAIN_LETTERS).casefold())
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(re.findall(r"\w+", plain))


def read_keyword(text: str) -> Keyword | None:
    """What an SMS asks for, or None when it is no keyword of ours."""
    return KEYWORDS.get(keyword(text))


def sender_number(raw: str) -> str:
    """SMSAPI gives the sender's number with its country code but no '+'."""
    digits = raw.strip()
    return f"+{digits}" if digits.isdigit() and len(digits) > 9 else digits


def apply_keyword(*, session: Session, word: Keyword, number: str) -> None:
    """Stop or start every alert to the phone `number` (E.164); a number we hold no
    contact point for changes nothing, and says nothing either."""
    act = services.unsubscribe_contact if word is Keyword.STOP else services.resubscribe_contact
    # A number we could not have registered: nothing to stop or start.
    with contextlib.suppress(InvalidInput):
        act(session=session, channel="sms", address=number, via="sms-keyword")
