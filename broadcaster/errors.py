"""Errors that the faces (CLI, API) turn into answers for people."""

from __future__ import annotations

from collections.abc import Mapping


class BroadcasterError(Exception):
    """Base of every error we raise on purpose."""


class InvalidInput(BroadcasterError):
    """Input refused before anything was written; `field` names what was wrong.

    The CLI answers exit code 2 and the API 422, both naming the field. `message` is in
    English; `translations` (language -> text, from broadcaster.wording) is there when
    the words come from the catalogue, so a face can answer in its reader's language.
    """

    def __init__(
        self, field: str, message: str, *, translations: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.translations = dict(translations or {})

    def message_in(self, language: str) -> str:
        """The message in `language` where the catalogue has it, else in English."""
        return self.translations.get(language, self.message)


class NotFound(BroadcasterError):
    def __init__(self, kind: str, key: object) -> None:
        super().__init__(f"{kind} {key!s} not found")
        self.kind = kind
        self.key = key


class Unauthenticated(BroadcasterError):
    """No valid credential: unknown, expired or revoked token, or a deactivated account.
    One message for all, so that a guesser learns nothing (the API answers 401)."""

    def __init__(self) -> None:
        super().__init__("a valid, unexpired token of an active account is required")


class Forbidden(BroadcasterError):
    """The actor may not do this (wrong role, or the four-eyes rule)."""


class RateLimited(BroadcasterError):
    """Too many tries in a window (codes sent to one contact point, ...); try again later."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Conflict(BroadcasterError):
    """The object is not in a state that allows this (an alert already cancelled, ...)."""


class LinkRefused(BroadcasterError):
    """A resident's signed link (manage, e-mail confirmation, one-click unsubscribe) that
    we do not act on. `key` names its words in the catalogue (broadcaster/wording.py)."""

    key = "link.forged"


class ForgedLink(LinkRefused):
    """Not one of our links (forged or mistyped), or its resident is gone: the API
    answers 404, a page says so in the reader's language."""

    def __init__(self) -> None:
        super().__init__("this link is not valid")


class ExpiredLink(LinkRefused):
    """One of our links, past its time (or replaced by a newer one): the API answers 410."""

    key = "link.expired"

    def __init__(self) -> None:
        super().__init__("this link has expired; ask for a new one (POST /residents/links)")
