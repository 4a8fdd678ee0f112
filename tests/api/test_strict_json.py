"""What JSON does not allow, sent to every JSON route the application describes: NaN,
Infinity, a number too large for a float, a lone surrogate in a string or a key. Each is
refused with a 422 naming the value's place, never a 500; and no query string or path
segment (a lone surrogate, NUL, percent-encoded) gets a 500 either."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from broadcaster.alerts import services as alerts
from broadcaster.alerts.drafts import AlertDraft
from broadcaster.http.app import create_app
from broadcaster.settings import Settings, load_settings
from tests.api.conftest import Headers
from tests.conftest import TEST_SECRET, Staff

# Raw JSON text of each value, as a client would write it.
POISONS = {
    "nan": "NaN",
    "infinity": "Infinity",
    "minus-infinity": "-Infinity",
    "overflow": "1e999999",
    "huge-integer": "9" * 5000,
    "lone-surrogate": '"\\ud800"',
    "low-surrogate-in-text": '"Burza \\udfff nad Wolą"',
}
PATH_VALUES = {
    "alert_id": "1",
    "token_id": "1",
    "token": "1.1900000000.bm90LWEtbGluaw",
    "secret": "not-our-callback-secret",
}
# Percent-encoded: a lone surrogate written as UTF-8 would write it, and NUL.
QUERY_POISONS = ["%ED%A0%80", "%00", "a%00b"]


def _description() -> dict[str, Any]:
    settings = load_settings({"WSP_ENV": "test", "WSP_SECRET_KEY": TEST_SECRET})
    return create_app(settings).openapi()


DESCRIPTION = _description()


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = DESCRIPTION["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _first_field(operation: dict[str, Any]) -> str:
    """The body's first required field (else its first field): the poison goes where the
    route really reads something."""
    schema = _resolve(operation["requestBody"]["content"]["application/json"]["schema"])
    required = schema.get("required", [])
    return str(required[0] if required else next(iter(schema["properties"])))


def _url(path: str, values: dict[str, str] | None = None) -> str:
    for name, value in (values or PATH_VALUES).items():
        path = path.replace("{" + name + "}", value)
    assert "{" not in path, f"no value for a path parameter of {path}"
    return path


JSON_ROUTES = [
    (method.upper(), path, _first_field(operation))
    for path, operations in sorted(DESCRIPTION["paths"].items())
    for method, operation in sorted(operations.items())
    if "application/json" in operation.get("requestBody", {}).get("content", {})
]
ALL_ROUTES = [
    (method.upper(), path, operation)
    for path, operations in sorted(DESCRIPTION["paths"].items())
    for method, operation in sorted(operations.items())
]


def test_the_description_has_json_routes_of_staff_and_of_residents() -> None:
    paths = {path for _, path, _ in JSON_ROUTES}
    assert {"/alerts", "/operators", "/residents/subscribe", "/manage/{token}/preferences"} <= paths


@pytest.fixture
def draft(db: sessionmaker[Session], settings: Settings, staff: Staff) -> int:
    with db.begin() as session:
        alert = alerts.create_alert(
            session=session,
            settings=settings,
            author=staff.author,
            draft=AlertDraft(
                topic="weather-warning",
                severity="Severe",
                urgency="Immediate",
                channels=["sms"],
                districts=["wola"],
                contents={"pl": ("Burza", "Silne burze od 18:00.")},
            ),
        )
        return alert.id


def _send(client: TestClient, method: str, url: str, text: str, auth: Headers) -> Any:
    headers = {**auth.admin, "Content-Type": "application/json", "Idempotency-Key": "k-1"}
    return client.request(method, url, content=text.encode(), headers=headers)


@pytest.mark.parametrize(("method", "path", "field"), JSON_ROUTES)
def test_every_json_route_refuses_what_json_does_not_allow_naming_the_field(
    client: TestClient, auth: Headers, draft: int, method: str, path: str, field: str
) -> None:
    url = _url(path, {**PATH_VALUES, "alert_id": str(draft)})
    for name, poison in POISONS.items():
        places = {
            f'{{"{field}": {poison}}}': ["body", field],
            f'{{"{field}": [{{"x": {poison}}}]}}': ["body", field, 0, "x"],
            poison: ["body"],
        }
        for text, place in places.items():
            answer = _send(client, method, url, text, auth)
            assert answer.status_code == 422, (name, text[:60], answer.text[:300])
            assert [error["loc"] for error in answer.json()["detail"]] == [place], name


@pytest.mark.parametrize(("method", "path", "field"), JSON_ROUTES)
def test_a_key_with_a_lone_surrogate_is_named_as_it_was_written(
    client: TestClient, auth: Headers, method: str, path: str, field: str
) -> None:
    answer = _send(client, method, _url(path), '{"ok": 1, "bad\\ud800key": 2}', auth)
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body", "bad\\ud800key"]


def test_a_resident_signing_up_hears_which_address_was_refused(client: TestClient) -> None:
    text = (
        '{"contacts": [{"channel": "email", "address": "jan@example.com"}, '
        '{"channel": "sms", "address": "601\\ud800"}], '
        '"topics": ["weather-warning"], "districts": ["wola"]}'
    )
    answer = client.post(
        "/residents/subscribe", content=text, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 422
    [error] = answer.json()["detail"]
    assert error["loc"] == ["body", "contacts", 1, "address"]
    assert "surrogate" in error["msg"]


@pytest.mark.parametrize(
    ("method", "path", "operation"),
    ALL_ROUTES,
    ids=[f"{method} {path}" for method, path, _ in ALL_ROUTES],
)
def test_no_query_or_path_with_a_surrogate_or_nul_gets_a_500(
    client: TestClient, auth: Headers, draft: int, method: str, path: str, operation: Any
) -> None:
    names = [p["name"] for p in operation.get("parameters", []) if p["in"] == "query"]
    for poison in QUERY_POISONS:
        base = _url(path, {**PATH_VALUES, "alert_id": str(draft)})
        urls = [f"{base}?{name}={poison}" for name in names]
        urls.append(_url(path, dict.fromkeys(PATH_VALUES, poison)))
        for url in urls:
            answer = client.request(method, url, headers=auth.admin)
            assert answer.status_code < 500, (url, answer.text[:300])
