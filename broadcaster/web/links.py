"""The pages the links in our e-mails open, in the site's layout: the e-mail
confirmation (`/residents/confirm/{token}`) and RFC 8058 one-click unsubscribe
(`/u/{token}`).

Opening either link changes nothing (mail scanners follow links): the page shows a
button, and only its POST confirms or unsubscribes. The POSTs carry no form token: the
signed link is their credential, and a mail program's one-click POST (RFC 8058) comes
with no cookie. A link that does not work is a page saying so (404, or 410 for one that
expired), as every resident's link (`WebRoute`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form
from fastapi.responses import Response

from broadcaster.errors import InvalidInput
from broadcaster.http.support import ResidentsDep, error_response
from broadcaster.web.core import PageDep, WebRoute

router = APIRouter(route_class=WebRoute, include_in_schema=False)


@router.get("/residents/confirm/{token}")
def confirm_email_page(page: PageDep, token: str, residents: ResidentsDep) -> Response:
    """The page an e-mail confirmation link opens; it confirms nothing by itself."""
    residents.check_confirm_link(token=token)
    return page.render("confirm_email.html", action=f"/residents/confirm/{token}", done=False)


@router.post("/residents/confirm/{token}")
def confirm_email(page: PageDep, token: str, residents: ResidentsDep) -> Response:
    """Confirm the e-mail address the link was made for (twice is harmless)."""
    residents.confirm_email(token=token)
    return page.render("confirm_email.html", done=True)


@router.get("/u/{token}")
def unsubscribe_page(page: PageDep, token: str, residents: ResidentsDep) -> Response:
    """What a person (or a link scanner) opening the link sees: a button, no change."""
    residents.check_unsubscribe_link(token=token)
    return page.render("unsubscribe.html", action=f"/u/{token}", done=False)


@router.post("/u/{token}")
def unsubscribe(
    page: PageDep,
    token: str,
    residents: ResidentsDep,
    one_click: Annotated[str | None, Form(alias="List-Unsubscribe")] = None,
) -> Response:
    """RFC 8058: a POST with `List-Unsubscribe=One-Click` unsubscribes."""
    try:
        residents.unsubscribe_by_link(token=token, one_click=one_click)
    except InvalidInput as error:
        # Our page's button always sends the field: a POST without it is a mail
        # program's, and is answered as the API answers it.
        return error_response(error)
    return page.render("unsubscribe.html", done=True)
