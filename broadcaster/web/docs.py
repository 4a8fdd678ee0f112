"""The API's documentation pages, /docs (Swagger UI) and /redoc (Redoc), served whole
from our own origin under the same Content-Security-Policy as every page.

FastAPI's own pages load their scripts from a CDN, unpinned, onto the console's origin,
and start Swagger UI with an inline script: they would run whatever the CDN serves that
day, could not run under our policy, and are blank without the network. The scripts
here come from the `fastapi-offline` package (the Swagger UI and Redoc builds it ships,
installed as a dependency), and Swagger UI is started by a file of ours.
"""

from __future__ import annotations

import importlib.resources
import secrets
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.types import Scope

from broadcaster.http.support import PAGE_HEADERS
from broadcaster.web.core import templates

DOCS_ASSETS = "/static/docs"
router = APIRouter(include_in_schema=False)

# A file may be kept and revalidated (its ETag); every other header is the pages'.
ASSET_HEADERS = {**PAGE_HEADERS, "Cache-Control": "no-cache"}


class Assets(StaticFiles):
    """Static files sent with our security headers, as the pages that load them."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(ASSET_HEADERS)
        return response


def _vendored() -> Path:
    return Path(str(importlib.resources.files("fastapi_offline") / "static"))


def mount_assets(app: FastAPI) -> None:
    # The more specific mount first: Starlette takes the first that matches.
    app.mount(DOCS_ASSETS, Assets(directory=_vendored()), name="docs-assets")
    app.mount("/static", Assets(directory=Path(__file__).parent / "static"), name="static")


_STRICT_STYLES = "style-src 'self'"


def redoc_headers(nonce: str) -> dict[str, str]:
    """The pages' headers, with what Redoc needs besides: <style> elements that carry
    `nonce`, and a worker it builds from its own code (its search index) as a blob.
    Scripts are still only our origin's files, so only they can make such a worker."""
    policy = PAGE_HEADERS["Content-Security-Policy"]
    assert _STRICT_STYLES in policy
    widened = policy.replace(_STRICT_STYLES, f"{_STRICT_STYLES} 'nonce-{nonce}'")
    return {**PAGE_HEADERS, "Content-Security-Policy": f"{widened}; worker-src blob:"}


def _page(request: Request, template: str, *, style_nonce: str | None = None) -> HTMLResponse:
    page = templates.get_template(template).render(
        title=request.app.title,
        openapi_url=request.app.openapi_url,
        assets=DOCS_ASSETS,
        style_nonce=style_nonce,
    )
    headers = PAGE_HEADERS if style_nonce is None else redoc_headers(style_nonce)
    return HTMLResponse(page, headers=headers)


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI: try the API from the browser, with a staff token."""
    return _page(request, "docs.html")


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    """Redoc: the same description, to read. It styles itself through <style> elements,
    let in by a nonce new with every page."""
    return _page(request, "redoc.html", style_nonce=secrets.token_urlsafe(18))
