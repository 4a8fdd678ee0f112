"""Routes for residents, who have no account: they act through one-time codes and signed
links. The flows are `broadcaster.residents`', which the pages call too.

- `POST /residents/subscribe`: contact points, topics x districts, channels, language,
  quiet hours. Each new contact point gets what proves it is held: a code by SMS or push
  (the app posts back the code it received), a confirmation link by e-mail (its page,
  `/residents/confirm/{token}`, is the web face's). An address that is already proven is
  not revealed: the answer is the same 202, and its owner is sent a manage link instead.
- `POST /residents/verify`: a code for an SMS or push contact point; the resident then
  receives a manage link.
- `POST /residents/codes` (a new code) and `POST /residents/links` (a lost manage link)
  answer 202 whether or not the address is registered; only a registered address (a
  proven one, for a manage link) is sent anything.
- `/manage/{token}`: read, change subscriptions and preferences, export, erase. A forged
  link answers 404, an expired one 410.

What is sent is limited per contact point, per client IP and for the whole service
(429 with Retry-After), counted before anything is written
(`broadcaster.residents.limits`).
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel

from broadcaster.api.strict_json import StrictJsonRoute
from broadcaster.http.support import ResidentsDep, ip_of
from broadcaster.residents.schemas import (
    AddressIn,
    ManageView,
    PreferencesIn,
    SubscribeIn,
    SubscriptionsIn,
    VerifyIn,
)

router = APIRouter(tags=["residents"], route_class=StrictJsonRoute)

LINK_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "The link is not one of ours (forged or mistyped)."},
    410: {"description": "The link was ours but has expired."},
}


class Accepted(BaseModel):
    status: Literal["accepted"] = "accepted"
    detail: str


class Verified(BaseModel):
    status: Literal["verified"] = "verified"
    detail: str = "confirmed; a link to manage your alerts is on its way"


class Erased(BaseModel):
    status: Literal["erased"] = "erased"


@router.post(
    "/residents/subscribe",
    status_code=202,
    response_model=Accepted,
    responses={429: {"description": "Too many codes or links requested; see Retry-After."}},
)
def subscribe(body: SubscribeIn, request: Request, residents: ResidentsDep) -> Accepted:
    """Sign up; every new contact point is sent its code (e-mail: a confirmation link).

    The answer is the same, and takes as long, whether or not an address is registered.
    """
    residents.sign_up(request=body, ip=ip_of(request, residents.settings))
    return Accepted(
        detail="we have sent a code (or, by e-mail, a link) to each address; "
        "confirm them to start receiving alerts"
    )


@router.post("/residents/verify", response_model=Verified)
def verify(body: VerifyIn, residents: ResidentsDep) -> Verified:
    """Prove an SMS or push contact point with the code sent to it.

    A wrong try is counted and committed before the 422 is answered; an unknown address
    answers exactly like a wrong code.
    """
    residents.verify(request=body)
    return Verified()


@router.post("/residents/codes", status_code=202, response_model=Accepted)
def resend_code(body: AddressIn, request: Request, residents: ResidentsDep) -> Accepted:
    """Ask for a new code (or confirmation link) for an address signed up but unproven."""
    residents.remind(request=body, ip=ip_of(request, residents.settings), codes=True)
    return Accepted(detail="if this address is signed up, a message is on its way to it")


@router.post("/residents/links", status_code=202, response_model=Accepted)
def request_manage_link(body: AddressIn, request: Request, residents: ResidentsDep) -> Accepted:
    """Ask for a new manage link; it goes only to a proven address, never to the asker."""
    residents.remind(request=body, ip=ip_of(request, residents.settings), codes=False)
    return Accepted(detail="if this address is signed up, a link is on its way to it")


# -- managing through a signed link ---------------------------------------------------


@router.get("/manage/{token}", response_model=ManageView, responses=LINK_ERRORS)
def manage(token: str, residents: ResidentsDep) -> ManageView:
    return residents.manage_view(token=token)


@router.put("/manage/{token}/subscriptions", response_model=ManageView, responses=LINK_ERRORS)
def replace_subscriptions(token: str, body: SubscriptionsIn, residents: ResidentsDep) -> ManageView:
    """Replace topics x districts (["*"] for the whole city)."""
    return residents.set_subscriptions(token=token, request=body)


@router.patch("/manage/{token}/preferences", response_model=ManageView, responses=LINK_ERRORS)
def change_preferences(token: str, body: PreferencesIn, residents: ResidentsDep) -> ManageView:
    """Change language, channels wanted or quiet hours; fields left out stay as they are."""
    return residents.change_preferences(token=token, request=body)


@router.get("/manage/{token}/export", response_model=dict[str, Any], responses=LINK_ERRORS)
def export(token: str, residents: ResidentsDep) -> dict[str, Any]:
    """Everything we hold about the resident, as JSON (GDPR art. 15 and 20)."""
    return residents.export(token=token)


@router.delete("/manage/{token}", response_model=Erased, responses=LINK_ERRORS)
def erase(token: str, residents: ResidentsDep) -> Erased:
    """Erase the resident's personal data (GDPR art. 17); the link stops working."""
    residents.erase(token=token)
    return Erased()
