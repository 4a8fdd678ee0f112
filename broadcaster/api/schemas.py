"""What crosses the API: the types every route's body, path and query are read with."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import Path
from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict

from broadcaster.errors import InvalidInput
from broadcaster.texts import refuse_hidden

MAX_ID = 2**31 - 1  # the database's INTEGER: a larger id is simply not there


def _plain(value: str) -> str:
    # The core's text rule (broadcaster/texts.py), for names, slugs and reasons: no
    # control characters beyond line breaks and tabs. Alert titles and bodies are
    # checked, folded and normalised by the alert service itself, as for every face.
    try:
        return refuse_hidden(value, "value", keep="\t\n\r")
    except InvalidInput as error:
        raise ValueError(error.message) from None


PlainText = Annotated[str, AfterValidator(_plain)]


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]")


def _iso_text(value: Any) -> Any:
    # Pydantic would also read a number (1767225600, 5.9e-08) as seconds since 1970; a
    # person means a date, and writes it first.
    if not isinstance(value, str | datetime) or (
        isinstance(value, str) and not _ISO_DATE.match(value)
    ):
        raise ValueError("must be a date and time like 2026-12-01T18:00:00+01:00")
    return value


# An ISO 8601 date and time with its UTC offset.
IsoDateTime = Annotated[AwareDatetime, BeforeValidator(_iso_text)]
ObjectId = Annotated[int, Path(ge=1, le=MAX_ID)]


class Body(BaseModel):
    """A request body: unknown fields are refused, naming them."""

    model_config = ConfigDict(extra="forbid")
