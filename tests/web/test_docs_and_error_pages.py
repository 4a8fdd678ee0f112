"""The API's documentation pages load nothing from another origin and run under our
policy; a path of the pages that no route takes is answered with a page of ours, while
the API's paths keep their JSON."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

import pytest
from fastapi.testclient import TestClient

from broadcaster.http.support import PAGE_HEADERS
from tests.web.conftest import BASE, People

POLICY = PAGE_HEADERS["Content-Security-Policy"]


def _policy(header: str) -> dict[str, list[str]]:
    directives = (part.split() for part in header.split(";") if part.strip())
    return {name: sources for name, *sources in directives}


def _references(page: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]+)"', page)


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_a_documentation_page_loads_only_files_served_here(web: TestClient, path: str) -> None:
    page = web.get(path)
    assert page.status_code == 200
    policy = _policy(page.headers["Content-Security-Policy"])
    assert policy["script-src"] == ["'self'"]
    assert policy["default-src"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"]
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert "<script>" not in page.text and "style=" not in page.text  # nothing inline
    references = _references(page.text)
    assert any(reference.endswith(".js") for reference in references)
    for reference in references:
        url = urljoin(f"{BASE}{path}", reference)
        assert urlsplit(url).netloc == urlsplit(BASE).netloc, reference
        asset = web.get(url)
        assert asset.status_code == 200, reference
        assert asset.headers["Content-Security-Policy"] == POLICY
        assert asset.headers["X-Content-Type-Options"] == "nosniff"


def test_swagger_ui_runs_under_the_pages_own_policy(web: TestClient) -> None:
    page = web.get("/docs")
    assert page.headers["Content-Security-Policy"] == POLICY
    assert 'data-openapi-url="/openapi.json"' in page.text


def test_redoc_may_add_only_styles_carrying_this_pages_nonce(web: TestClient) -> None:
    first, second = web.get("/redoc"), web.get("/redoc")
    policy = _policy(first.headers["Content-Security-Policy"])
    [nonce] = [s for s in policy["style-src"] if s.startswith("'nonce-")]
    assert policy["style-src"] == ["'self'", nonce]
    assert policy["worker-src"] == ["blob:"]
    # Handed to Redoc on the script that starts it, and new with every page.
    assert f'nonce="{nonce[7:-1]}"' in first.text
    assert nonce not in second.headers["Content-Security-Policy"]
    assert {k: v for k, v in policy.items() if k not in ("style-src", "worker-src")} == {
        k: v for k, v in _policy(POLICY).items() if k != "style-src"
    }


def test_the_framework_pages_that_load_from_a_cdn_are_gone(web: TestClient) -> None:
    for path in ("/docs", "/redoc"):
        assert "cdn." not in web.get(path).text
    assert web.get("/docs/oauth2-redirect").status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/u/not-a-link/more", 404),
        ("GET", "/my/not-a-link/no/such/page", 404),
        ("GET", "/console/no-such-page", 404),
        ("GET", "/residents/confirm/a/b", 404),
        ("PUT", "/u/some-link", 405),
        ("GET", "/subscribe", 405),
        ("DELETE", "/console/sign-in", 405),
        ("GET", "/docs/missing", 404),
    ],
)
def test_a_page_path_no_route_takes_gets_our_page_in_polish_first(
    web: TestClient, method: str, path: str, status: int
) -> None:
    answer = web.request(method, path)
    assert answer.status_code == status
    assert answer.headers["content-type"].startswith("text/html")
    assert answer.headers["Content-Security-Policy"] == POLICY
    assert answer.headers["X-Frame-Options"] == "DENY"
    assert '<html lang="pl">' in answer.text and "/static/console.css" in answer.text
    expected = "Nie ma takiej strony." if status == 404 else "nie można otworzyć w ten sposób"
    assert expected in answer.text
    if status == 405:
        assert answer.headers["Allow"]
    english = web.request(method, f"{path}?lang=en")
    assert english.status_code == status and '<html lang="en">' in english.text
    assert ("There is no such page." if status == 404 else "cannot be opened") in english.text


def test_a_signed_in_reader_keeps_their_menu_on_the_page(people: People) -> None:
    answer = people.operator.get("/console/alerts/1/no-such-tab")
    assert answer.status_code == 404
    assert 'action="/console/sign-out"' in answer.text


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/alerts/1/no-such-thing", 404),
        ("GET", "/no-such-route", 404),
        ("GET", "/static/no-such-file.css", 404),
        ("DELETE", "/residents/subscribe", 405),
        ("PUT", "/healthz", 405),
    ],
)
def test_an_api_path_no_route_takes_keeps_its_json(
    web: TestClient, method: str, path: str, status: int
) -> None:
    answer = web.request(method, path)
    assert answer.status_code == status
    assert answer.headers["content-type"] == "application/json"
    assert "detail" in answer.json()
