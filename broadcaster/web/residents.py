"""Residents' pages, no account needed: subscribe, type in the code, ask for a lost
link, and manage everything through the signed link we send (subscriptions, language,
channels, quiet hours, export, erase).

They call the residents' flows the API calls too (`broadcaster.residents`: same limits,
same checks, same answers whoever asks), and show each refusal next to the field it is
about; a link that does not work is a page of its own (`WebRoute`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import time
from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy import select
from starlette.datastructures import FormData

from broadcaster.errors import InvalidInput
from broadcaster.http.support import ResidentsDep, ip_of
from broadcaster.reference.models import Topic
from broadcaster.reference.services import DISTRICTS
from broadcaster.residents.schemas import (
    AddressIn,
    PreferencesIn,
    SubscribeIn,
    SubscriptionsIn,
    VerifyIn,
)
from broadcaster.residents.services import Residents
from broadcaster.web.core import FormDep, Page, PageDep, WebRoute, finish

router = APIRouter(route_class=WebRoute, include_in_schema=False)

# The fields of the manage page's two forms.
SUBSCRIPTION_FIELDS = ("topics", "districts", "whole_city")
PREFERENCE_FIELDS = ("language", "channels", "quiet_start", "quiet_end")
# The contacts a resident types on the web (a device registers from the app).
CONTACT_FIELDS = (("sms", "phone"), ("email", "email"))


def _choices(page: Page) -> dict[str, Any]:
    with page.api.transaction() as session:
        topics = session.scalars(select(Topic).order_by(Topic.id)).all()
        listed = [(t.slug, t.name_en if page.language == "en" else t.name_pl) for t in topics]
    return {"topics": listed}


def _field_of(location: str, contacts: list[str]) -> str:
    """The form field a refusal is about: contacts[1].address -> the second contact's."""
    head = location.split(".")[0]
    if head.startswith("contacts[") and contacts:
        index = int(head[len("contacts[") : -1])
        return contacts[index] if index < len(contacts) else contacts[0]
    if head == "contacts":
        return contacts[0] if contacts else "phone"
    if head == "quiet_hours":
        return "quiet_start"
    return head.split("[")[0]


def _pydantic_field(error: ValidationError, contacts: list[str]) -> tuple[str, str]:
    first = error.errors()[0]
    location = ".".join(
        f"[{part}]" if isinstance(part, int) else str(part) for part in first["loc"]
    ).replace(".[", "[")
    return _field_of(location, contacts), str(first["msg"])


def _time(value: str) -> time | None:
    return time.fromisoformat(value) if value else None


# -- signing up -----------------------------------------------------------------------


@router.get("/")
def home(page: PageDep) -> Response:
    values = {"language": page.language, "districts": [], "topics": []}
    return page.render("subscribe.html", values=values, errors={}, **_choices(page))


@router.post("/subscribe")
def subscribe(page: PageDep, form: FormDep, residents: ResidentsDep) -> Response:
    values = _values(form)
    contacts = [
        (channel, name) for channel, name in CONTACT_FIELDS if str(form.get(name, "")).strip()
    ]
    names = [name for _, name in contacts]
    try:
        if not contacts:
            raise InvalidInput(
                "phone", page.t("podaj telefon lub e-mail", "give a phone or an e-mail")
            )
        start, end = str(form.get("quiet_start", "")), str(form.get("quiet_end", ""))
        if bool(start) != bool(end):
            raise InvalidInput(
                "quiet_start", page.t("podaj początek i koniec", "give a start and an end")
            )
        body = SubscribeIn.model_validate(
            {
                "contacts": [
                    {"channel": channel, "address": str(form.get(name, "")).strip()}
                    for channel, name in contacts
                ],
                "topics": form.getlist("topics"),
                "districts": ["*"] if form.get("whole_city") == "on" else form.getlist("districts"),
                "language": str(form.get("language", "pl")),
                "quiet_hours": {"start": start, "end": end} if start else None,
            }
        )
        residents.sign_up(request=body, ip=ip_of(page.request, page.settings))
    except (ValidationError, InvalidInput) as error:
        return _again(page, values, _refusal(error, names))
    return page.render(
        "sent.html", contacts=[channel for channel, _ in contacts], values=values, errors={}
    )


def _values(form: FormData) -> dict[str, Any]:
    values: dict[str, Any] = {key: str(value) for key, value in form.items()}
    values["topics"] = [str(t) for t in form.getlist("topics")]
    values["districts"] = [str(d) for d in form.getlist("districts")]
    values["channels"] = [str(c) for c in form.getlist("channels")]
    values["whole_city"] = form.get("whole_city") == "on"
    return values


def _again(page: Page, values: dict[str, Any], errors: dict[str, str]) -> Response:
    return page.render("subscribe.html", code=422, values=values, errors=errors, **_choices(page))


# -- proving with a code, and lost links ----------------------------------------------


@router.get("/confirm")
def confirm_page(page: PageDep) -> Response:
    return page.render("confirm.html", values={"channel": "sms"}, errors={}, done=False)


@router.post("/confirm")
def confirm(page: PageDep, form: FormDep, residents: ResidentsDep) -> Response:
    values = {key: str(value) for key, value in form.items()}
    try:
        body = VerifyIn.model_validate(
            {
                "channel": values.get("channel", "sms"),
                "address": values.get("address", "").strip(),
                "code": values.get("code", "").strip(),
            }
        )
        residents.verify(request=body)
    except ValidationError as error:
        field, message = _pydantic_field(error, [])
        return page.render(
            "confirm.html", code=422, values=values, errors={field: message}, done=False
        )
    except InvalidInput as error:
        message = (
            page.t(
                "Kod jest błędny, wygasł albo wykorzystano już wszystkie próby. Poproś o nowy kod.",
                "The code is wrong, has expired or was tried too many times. Ask for a new one.",
            )
            if error.field == "code"
            else error.message
        )
        return page.render(
            "confirm.html", code=422, values=values, errors={error.field: message}, done=False
        )
    return page.render("confirm.html", values={}, errors={}, done=True)


@router.get("/link")
def lost_link_page(page: PageDep) -> Response:
    return page.render("lost_link.html", values={"channel": "email"}, errors={}, done=False)


@router.post("/link")
def lost_link(page: PageDep, form: FormDep, residents: ResidentsDep) -> Response:
    values = {key: str(value) for key, value in form.items()}
    want_code = values.get("want") == "code"
    try:
        body = AddressIn.model_validate(
            {
                "channel": values.get("channel", "email"),
                "address": values.get("address", "").strip(),
            }
        )
        residents.remind(request=body, ip=ip_of(page.request, page.settings), codes=want_code)
    except (ValidationError, InvalidInput) as error:
        errors = _refusal(error, [])
        return page.render("lost_link.html", code=422, values=values, errors=errors, done=False)
    return page.render("lost_link.html", values=values, errors={}, done=True)


# -- managing through the signed link -------------------------------------------------


def _manage(
    page: Page,
    residents: Residents,
    token: str,
    errors: dict[str, str],
    notice: str | None = None,
    code: int = 200,
    typed: tuple[FormData, tuple[str, ...]] | None = None,
) -> Response:
    """The manage page as stored, or, after a refusal, with the fields of the form that
    was refused as they were typed (`typed`: the form and its fields)."""
    view = residents.manage_view(token=token)
    chosen_topics = sorted({s.topic for s in view.subscriptions})
    chosen_districts = sorted({s.district for s in view.subscriptions})
    return page.render(
        "manage.html",
        code=code,
        token=token,
        view=view,
        values={
            "topics": chosen_topics,
            "districts": [d for d in chosen_districts if d != "*"],
            "whole_city": "*" in chosen_districts or len(chosen_districts) == len(DISTRICTS),
            "language": view.language.value,
            "quiet_start": view.quiet_hours.start.strftime("%H:%M") if view.quiet_hours else "",
            "quiet_end": view.quiet_hours.end.strftime("%H:%M") if view.quiet_hours else "",
            "channels": sorted({p.channel.value for p in view.contact_points if p.wanted}),
            **({k: v for k, v in _values(typed[0]).items() if k in typed[1]} if typed else {}),
        },
        errors=errors,
        notice=notice,
        **_choices(page),
    )


@router.get("/my/{token}")
def manage_page(page: PageDep, token: str, residents: ResidentsDep) -> Response:
    return _manage(page, residents, token, {})


def _refusal(error: ValidationError | InvalidInput, contacts: list[str]) -> dict[str, str]:
    """The field a refusal is about, and what to say next to it."""
    if isinstance(error, ValidationError):
        field, message = _pydantic_field(error, contacts)
        return {field: message}
    return {_field_of(error.field, contacts): error.message}


def _change(
    page: Page,
    residents: Residents,
    token: str,
    typed: tuple[FormData, tuple[str, ...]],
    change: Callable[[], object],
    saved: str,
) -> Response:
    """Make a change from the manage page; a refusal shows the page again with its
    reason next to the field and what was typed in that form kept."""
    try:
        change()
    except (ValidationError, InvalidInput) as error:
        return _manage(page, residents, token, _refusal(error, []), code=422, typed=typed)
    return _manage(page, residents, token, {}, notice=saved)


@router.post("/my/{token}/subscriptions")
def change_subscriptions(
    page: PageDep, form: FormDep, token: str, residents: ResidentsDep
) -> Response:
    def change() -> None:
        whole_city = form.get("whole_city") == "on"
        body = SubscriptionsIn.model_validate(
            {
                "topics": form.getlist("topics"),
                "districts": ["*"] if whole_city else form.getlist("districts"),
            }
        )
        residents.set_subscriptions(token=token, request=body)

    saved = page.t("Zapisano tematy i dzielnice.", "Topics and districts saved.")
    return _change(page, residents, token, (form, SUBSCRIPTION_FIELDS), change, saved)


@router.post("/my/{token}/preferences")
def change_preferences(
    page: PageDep, form: FormDep, token: str, residents: ResidentsDep
) -> Response:
    def change() -> None:
        start, end = str(form.get("quiet_start", "")), str(form.get("quiet_end", ""))
        if bool(start) != bool(end):
            raise InvalidInput(
                "quiet_start", page.t("podaj początek i koniec", "give a start and an end")
            )
        if not form.getlist("channels"):
            raise InvalidInput(
                "channels",
                page.t(
                    "zostaw co najmniej jeden kanał (albo wypisz się)",
                    "keep at least one channel (or unsubscribe)",
                ),
            )
        body = PreferencesIn.model_validate(
            {
                "language": str(form.get("language", "pl")),
                "channels": form.getlist("channels"),
                "quiet_hours": {"start": start, "end": end} if start else None,
            }
        )
        residents.change_preferences(token=token, request=body)

    saved = page.t("Zapisano ustawienia.", "Settings saved.")
    return _change(page, residents, token, (form, PREFERENCE_FIELDS), change, saved)


@router.post("/my/{token}/contacts/{point_id}/unsubscribe")
def unsubscribe_contact(
    page: PageDep,
    _form: FormDep,
    token: str,
    point_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    residents: ResidentsDep,
) -> Response:
    """Stop every alert to one of the resident's addresses (the others go on)."""
    residents.unsubscribe_contact(token=token, point_id=point_id)
    return _manage(
        page,
        residents,
        token,
        {},
        notice=page.t("Wypisano ten adres.", "That address is unsubscribed."),
    )


@router.get("/my/{token}/export.json")
def export(page: PageDep, token: str, residents: ResidentsDep) -> Response:
    data = residents.export(token=token)
    response = Response(
        json.dumps(data, ensure_ascii=False, indent=2, default=str),
        media_type="application/json",
        headers={"Content-Disposition": 'attachment; filename="moje-dane-powiadomienia.json"'},
    )
    return finish(response, page.request, page.settings)


@router.post("/my/{token}/erase")
def erase(page: PageDep, form: FormDep, token: str, residents: ResidentsDep) -> Response:
    if form.get("sure") != "yes":
        return _manage(
            page,
            residents,
            token,
            {
                "sure": page.t(
                    "Zaznacz, że na pewno chcesz usunąć dane.",
                    "Tick the box to confirm you want your data erased.",
                )
            },
            code=422,
        )
    residents.erase(token=token)
    return page.render("erased.html")
