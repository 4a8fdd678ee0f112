"""JSON bodies read strictly: only what RFC 8259 allows, and only text we can store.

Python's `json` reads `NaN`, `Infinity` and `-Infinity` (not JSON at all), turns
`1e999999` into an infinite float, and keeps a lone UTF-16 surrogate (`"\\ud800"`) in a
string although no UTF-8 text can hold it. None of them is anything a client means, and
each broke something further on (an error answer that could not be written as JSON, a
database refusing the text), so every JSON route refuses them first, with a 422 naming
the value's place in the body, in the shape of FastAPI's own validation errors.
"""

from __future__ import annotations

import email.message
import json
import re
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

_SURROGATE = re.compile("[\ud800-\udfff]")
NOT_JSON_NUMBER = "must be a number JSON allows (NaN and Infinity are not)"
TOO_LARGE = "is a number too large to be read"
LONE_SURROGATE = "must be text without a lone surrogate (\\ud800-\\udfff)"


class _Refused:
    """Stands in the parsed body for a value JSON does not allow."""

    def __init__(self, problem: str) -> None:
        self.problem = problem


def _constant(_name: str) -> _Refused:
    return _Refused(NOT_JSON_NUMBER)


def _float(text: str) -> float | _Refused:
    value = float(text)
    return _Refused(TOO_LARGE) if value in (float("inf"), float("-inf")) else value


def _int(text: str) -> int | _Refused:
    try:
        return int(text)
    except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits)
        return _Refused(TOO_LARGE)


def _readable(key: str) -> str:
    # The place is written back in the answer, which must itself be valid UTF-8.
    return key.encode("utf-8", "backslashreplace").decode("utf-8")


def first_refused(value: Any) -> tuple[list[str | int], str] | None:
    """The place (as a validation error's `loc`, after "body") and the problem of the
    first value in document order that JSON does not allow; None if there is none.
    Iterative: a body nested as deep as the parser allows must not exhaust the stack."""
    pending: list[tuple[list[str | int], Any]] = [([], value)]
    while pending:
        place, item = pending.pop()
        if isinstance(item, _Refused):
            return place, item.problem
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return place, LONE_SURROGATE
        elif isinstance(item, list):
            pending.extend(
                ([*place, index], child) for index, child in reversed(list(enumerate(item)))
            )
        elif isinstance(item, dict):
            for key, child in reversed(list(item.items())):
                if _SURROGATE.search(key):
                    pending.append(([*place, _readable(key)], _Refused(LONE_SURROGATE)))
                else:
                    pending.append(([*place, key], child))
    return None


def refuse_what_json_does_not_allow(raw: bytes) -> None:
    """Raise a RequestValidationError for the first value of `raw` that JSON does not
    allow. A body that is no JSON at all is left to FastAPI, which answers it as it
    always has (a 422 with the position of the syntax error)."""
    try:
        value = json.loads(raw, parse_constant=_constant, parse_float=_float, parse_int=_int)
    except (ValueError, RecursionError):
        return
    found = first_refused(value)
    if found is not None:
        place, problem = found
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body", *place), "msg": problem}]
        )


def is_json(content_type: str | None) -> bool:
    """Whether FastAPI reads a body of this content type as JSON (as it decides)."""
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


class StrictJsonRoute(APIRoute):
    """A route whose JSON body, if it takes one, is checked strictly before FastAPI reads
    it (`refuse_what_json_does_not_allow`)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler

        async def handle(request: Request) -> Response:
            if is_json(request.headers.get("content-type")):
                refuse_what_json_does_not_allow(await request.body())
            return await handler(request)

        return handle
