"""What every page of the web console shares: templates, language, the staff session,
protection against cross-site requests, and the security headers.

Pages are rendered on the server and work without JavaScript; a small script only makes
the preview and progress refresh by themselves. Polish is the default, English is a
click away (`?lang=en`, remembered in a cookie).

Staff sign in with their personal access token (`broadcaster token issue`), which opens
a console session (broadcaster/staff/sessions.py): the browser keeps only the session's
random secret, in an HttpOnly, SameSite=Lax cookie for /console, and every request checks
the session, so signing out, idling, its age, and the token's revocation or expiry end
it at once, and a cookie copied before any of these lets nobody in.

Every form carries a token tied to a random cookie of the browser (signed double
submit); a POST without it, or from another origin, is refused with 403 and changes
nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from broadcaster import clock
from broadcaster.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    LinkRefused,
    NotFound,
    RateLimited,
    Unauthenticated,
)
from broadcaster.http.support import PAGE_HEADERS, Api, get_api, status_of
from broadcaster.reference.services import DISTRICTS
from broadcaster.settings import Settings
from broadcaster.staff import permissions
from broadcaster.staff import sessions as console_sessions
from broadcaster.staff.models import Operator
from broadcaster.staff.permissions import Action
from broadcaster.wording import words

LANGUAGES = ("pl", "en")
LANG_COOKIE = "wsp_lang"
CSRF_COOKIE = "wsp_csrf"
STAFF_COOKIE = "wsp_staff"
CSRF_FIELD = "csrf"

templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "pages"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
DISTRICT_NAMES = {district.slug: district.name for district in DISTRICTS}


def local_time(value: datetime | str | None) -> str:
    """A moment as Warsaw's clock shows it (stored and sent in UTC)."""
    if not value:
        return ""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return clock.local(moment).strftime("%Y-%m-%d %H:%M")


templates.filters["local"] = local_time
# The menu shows what the reader may open, by the one table of who may do what.
templates.globals.update(can=permissions.can, Action=Action)


def warsaw_time(value: str, field_name: str) -> datetime | None:
    """A datetime-local field (no offset), read as Warsaw's clock; empty: None."""
    return clock.parse_local(value, field_name) if value.strip() else None


def language_of(request: Request) -> str:
    asked = request.query_params.get("lang")
    if asked in LANGUAGES:
        return asked
    kept = request.cookies.get(LANG_COOKIE)
    return kept if kept in LANGUAGES else "pl"


def _csrf_secret(request: Request) -> str:
    """The browser's random CSRF cookie, made on its first page (kept on the request so
    that the page and the response agree)."""
    value = request.cookies.get(CSRF_COOKIE) or getattr(request.state, "new_csrf", None)
    if not value:
        value = request.state.new_csrf = secrets.token_urlsafe(24)
    return str(value)


def csrf_token(request: Request, settings: Settings) -> str:
    return hmac.new(
        settings.secret_key.encode(), f"csrf:{_csrf_secret(request)}".encode(), hashlib.sha256
    ).hexdigest()


def _secure(settings: Settings) -> bool:
    return settings.public_base_url.startswith("https://")


def finish(response: Response, request: Request, settings: Settings) -> Response:
    """Security headers and the cookies the page relies on."""
    response.headers.update(PAGE_HEADERS)
    new_csrf = getattr(request.state, "new_csrf", None)
    if new_csrf:
        response.set_cookie(
            CSRF_COOKIE, new_csrf, httponly=True, samesite="strict", secure=_secure(settings)
        )
    asked = request.query_params.get("lang")
    if asked in LANGUAGES and asked != request.cookies.get(LANG_COOKIE):
        response.set_cookie(
            LANG_COOKIE, asked, max_age=365 * 86400, samesite="lax", secure=_secure(settings)
        )
    return response


@dataclass
class Page:
    """One request's view of the console: who, in which language, with which form token."""

    request: Request
    api: Api
    language: str
    me: Operator | None = None

    @property
    def settings(self) -> Settings:
        return self.api.settings

    def t(self, polish: str, english: str) -> str:
        return english if self.language == "en" else polish

    def say(self, key: str, **fields: object) -> str:
        """The catalogue's entry `key` (broadcaster/wording.py) in the reader's language."""
        return words(key, **fields)[self.language]

    def render(self, template: str, code: int = 200, **context: Any) -> Response:
        page = templates.get_template(template).render(
            page=self,
            t=self.t,
            say=self.say,
            lang=self.language,
            me=self.me,
            csrf=csrf_token(self.request, self.settings),
            csrf_field=CSRF_FIELD,
            path=self.request.url.path,
            district_names=DISTRICT_NAMES,
            sandbox=self.request.app.state.sandbox_viewer,
            **context,
        )
        return finish(HTMLResponse(page, status_code=code), self.request, self.settings)

    def redirect(self, url: str) -> Response:
        """After a POST: 303, so that reloading the page does not post again."""
        return finish(RedirectResponse(url, status_code=303), self.request, self.settings)

    def error(self, status: int, message: str) -> Response:
        return self.render("error.html", code=status, message=message)


def page(request: Request, api: Annotated[Api, Depends(get_api)]) -> Page:
    return Page(request=request, api=api, language=language_of(request))


PageDep = Annotated[Page, Depends(page)]


def signed_in(page: Page) -> Operator:
    """The staff member of the browser's live console session; Unauthenticated otherwise."""
    presented = page.request.cookies.get(STAFF_COOKIE)
    if not presented:
        raise Unauthenticated()
    with page.api.transaction() as session:
        operator = console_sessions.resume(
            session=session, secret=presented, settings=page.settings
        )
        if operator is not None:
            session.expunge(operator)
    # Outside the transaction: a session found lapsed is ended for good, and that is kept.
    if operator is None:
        raise Unauthenticated()
    page.me = operator
    return operator


def keep_session(response: Response, secret: str, settings: Settings) -> None:
    """The browser's console session cookie: its secret only, never the token."""
    response.set_cookie(
        STAFF_COOKIE,
        secret,
        httponly=True,
        # Lax: a link to the console from a mail or a chat opens signed in; a POST from
        # another site still carries no cookie (and no form token).
        samesite="lax",
        secure=_secure(settings),
        path="/console",
    )


def forget_session(response: Response, settings: Settings) -> None:
    response.delete_cookie(
        STAFF_COOKIE, path="/console", httponly=True, samesite="lax", secure=_secure(settings)
    )


def require(page: Page, action: Action) -> Operator:
    """The signed-in staff member, whose role may take `action` (a page for others: 403)."""
    operator = signed_in(page)
    if not permissions.can(operator, action):
        roles = permissions.roles_for(action)
        raise Forbidden(f"this page is for {', '.join(role.value for role in roles)}")
    return operator


def _same_origin(request: Request, settings: Settings) -> bool:
    """A browser names the page a POST came from (Origin, else Referer): it must be ours,
    as the browser reached us (the Host header) or as we are published."""
    claimed = request.headers.get("origin") or request.headers.get("referer")
    if not claimed or claimed == "null":
        return claimed is None
    parts = urlsplit(claimed)
    origin = f"{parts.scheme}://{parts.netloc}"
    ours = {f"{request.url.scheme}://{request.url.netloc}", settings.public_base_url}
    return origin in {urlsplit(o)._replace(path="").geturl() for o in ours}


async def checked_form(page: PageDep) -> FormData:
    """The POSTed form, once it has proven it comes from one of our pages. A dependency:
    it reads the body on the event loop, and the page's own work (the database) then
    runs in a thread, as for every sync route."""
    form = await page.request.form()
    sent = str(form.get(CSRF_FIELD, ""))
    expected = (
        csrf_token(page.request, page.settings) if page.request.cookies.get(CSRF_COOKIE) else ""
    )
    if not expected or not hmac.compare_digest(sent, expected):
        raise Forbidden("this form did not come from our page (or it is too old): reload it")
    if not _same_origin(page.request, page.settings):
        raise Forbidden("this form was sent from another site")
    return form


FormDep = Annotated[FormData, Depends(checked_form)]


def _error_page(request: Request, status: int, message: str) -> Response:
    """An error as a page, with the reader's menu when they are signed in."""
    view = page(request, request.app.state.api)
    with contextlib.suppress(Unauthenticated):
        signed_in(view)
    return view.error(status, message)


# Where the pages live; elsewhere a path no route takes is the API's, answered in JSON.
PAGE_AREAS = ("/console", "/my", "/u", "/residents/confirm", "/docs", "/redoc")
PAGE_PATHS = frozenset({"/", "/subscribe", "/confirm", "/link"})


def is_page_path(path: str) -> bool:
    return path in PAGE_PATHS or any(
        path == area or path.startswith(f"{area}/") for area in PAGE_AREAS
    )


async def no_route_page(request: Request, status: int) -> Response | None:
    """The page for a path of the pages that no route takes (404), or not by this method
    (405): in the reader's language and with our headers, as every other page."""
    if not is_page_path(request.url.path):
        return None
    view = page(request, request.app.state.api)
    message = (
        view.t("Nie ma takiej strony.", "There is no such page.")
        if status == 404
        else view.t(
            "Tej strony nie można otworzyć w ten sposób.", "This page cannot be opened this way."
        )
    )
    # Signing the reader in (for their menu) asks the database: not on the event loop.
    return await run_in_threadpool(_error_page, request, status, message)


class WebRoute(APIRoute):
    """Errors of a page are pages: sign-in for a missing session, and a short page in the
    reader's language for everything else (the API answers JSON instead)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except Unauthenticated:
                here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                view = page(request, request.app.state.api)
                response = view.redirect(f"/console/sign-in?{urlencode({'next': here})}")
                if request.cookies.get(STAFF_COOKIE):  # an ended session: forget it
                    forget_session(response, view.settings)
                return response
            except RequestValidationError as error:
                # A path that is no id of ours names nothing; anything else is bad input.
                in_path = any(e.get("loc", ("",))[0] == "path" for e in error.errors())
                status = 404 if in_path else 422
                return _error_page(request, status, "no such page" if in_path else str(error))
            except LinkRefused as error:
                # A resident's link that does not work: say so, and offer a new one.
                view = page(request, request.app.state.api)
                return view.render(
                    "link_refused.html", code=status_of(error), message=view.say(error.key)
                )
            except (Forbidden, NotFound, Conflict, InvalidInput) as error:
                return _error_page(request, status_of(error), str(error))
            except RateLimited as error:
                response = _error_page(request, status_of(error), str(error))
                response.headers["Retry-After"] = str(max(1, round(error.retry_after)))
                return response

        return handle
