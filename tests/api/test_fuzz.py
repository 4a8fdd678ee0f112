"""A property-based fuzz of the whole OpenAPI description (schemathesis over the ASGI app).

For every operation, generated requests (valid and invalid, with an admin's token, so
that staff routes are exercised past authentication) must never get a 5xx, must get a
status code, content type, headers and body that the description declares, and invalid
input must be refused with a 4xx. A few objects exist, so small ids hit real rows.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.generation.meta import ParameterLocation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy.orm import Session, sessionmaker

from broadcaster.alerts import lifecycle
from broadcaster.alerts import services as alerts
from broadcaster.alerts.drafts import AlertDraft
from broadcaster.http.app import create_app
from broadcaster.settings import Settings, load_settings
from tests.api.conftest import Headers
from tests.conftest import TEST_SECRET, Staff, add_resident

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


def _takes_checked_input(operation: dict[str, Any]) -> bool:
    """Whether some input of the operation can be invalid (a path segment that may be any
    string cannot: there is no wrong value to send)."""
    if "requestBody" in operation:
        return True
    for parameter in operation.get("parameters", []):
        schema = {k: v for k, v in parameter["schema"].items() if k not in ("title",)}
        if parameter["in"] != "path" and parameter.get("required"):
            return True
        if schema != {"type": "string"} and parameter["in"] != "header":
            return True
    return False


def _operations() -> list[tuple[str, str, GenerationMode]]:
    """Every operation the application describes (read without a database), with valid
    input, and with invalid input where it takes any."""
    settings = load_settings({"WSP_ENV": "test", "WSP_SECRET_KEY": TEST_SECRET})
    paths = create_app(settings).openapi()["paths"]
    cases = []
    for path, operations in sorted(paths.items()):
        for method, operation in sorted(operations.items()):
            cases.append((method.upper(), path, GenerationMode.POSITIVE))
            if _takes_checked_input(operation):
                cases.append((method.upper(), path, GenerationMode.NEGATIVE))
    return cases


OPERATIONS = _operations()


@pytest.fixture
def seeded(db: sessionmaker[Session], settings: Settings, staff: Staff) -> None:
    with db.begin() as session:
        add_resident(
            session,
            settings,
            contacts=[("sms", "601000900"), ("email", "fuzz@example.com")],
            topics=["weather-warning"],
            districts=["wola"],
        )
        for state in ("draft", "awaiting"):
            alert = alerts.create_alert(
                session=session,
                settings=settings,
                author=staff.author,
                draft=AlertDraft(
                    topic="weather-warning",
                    severity="Severe",
                    urgency="Immediate",
                    channels=["sms", "email"],
                    districts=["wola"],
                    contents={"pl": ("Burza", "Silne burze od 18:00.")},
                ),
            )
            if state == "awaiting":
                lifecycle.submit_alert(
                    session=session, settings=settings, actor=staff.author, alert_id=alert.id
                )


@pytest.mark.parametrize(
    ("method", "path", "mode"),
    OPERATIONS,
    ids=[f"{method} {path} {mode.value}" for method, path, mode in OPERATIONS],
)
def test_no_request_gets_a_5xx_or_an_answer_outside_the_description(
    client: TestClient, auth: Headers, seeded: None, method: str, path: str, mode: GenerationMode
) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    operation = schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @hypothesis_settings(
        max_examples=25,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def fuzz(case: Any) -> None:
        # A case made invalid in its headers (the token left out, say) goes as generated:
        # our token added over it would make it valid again, and its acceptance would
        # then be reported as a schema-violating request let through.
        components = case.meta.components if case.meta is not None else {}
        header = components.get(ParameterLocation.HEADER)
        mutated = header is not None and header.mode is GenerationMode.NEGATIVE
        case.call_and_validate(headers={} if mutated else auth.admin, checks=CHECKS)

    fuzz()
