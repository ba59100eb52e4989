"""The OpenAPI document, Swagger UI and ReDoc, behind the scorer key when keys are configured.

Their scripts and style sheets are served by this app (`DOCS_ASSETS`, the files that the
`fastapi-offline` package ships), never fetched from a CDN: the docs work without internet access
and the page's Content-Security-Policy names no other origin.

The document describes the served model's lead (every field, its known categories): that is the
model's shape, so it is shown to callers who may score. `LEADML_PUBLIC_DOCS=true` makes both
public (a trusted network, or an API whose schema is no secret). In a browser, Swagger UI fetches
/openapi.json without a key: with keys configured, read the document with a key
(`curl -H "X-API-Key: ..." /openapi.json`) or make the docs public.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from api.deps import ApiKey, authorize
from api.keys import Role

router = APIRouter(include_in_schema=False)

#: Swagger UI and ReDoc's files, as the fastapi-offline package ships them.
DOCS_ASSETS = Path(str(files("fastapi_offline") / "static"))
DOCS_ASSETS_MOUNT = "/static/docs"


def _check(request: Request, key: str | None) -> None:
    if not request.app.state.settings.public_docs:
        authorize(request, key, Role.SCORER)


@router.get("/openapi.json")
async def openapi_document(request: Request, key: ApiKey) -> JSONResponse:
    _check(request, key)
    document: dict[str, Any] = request.app.openapi()
    return JSONResponse(document)


@router.get("/docs")
async def swagger_ui(request: Request, key: ApiKey) -> HTMLResponse:
    _check(request, key)
    root = request.scope.get("root_path", "")
    assets = f"{root}{DOCS_ASSETS_MOUNT}"
    return get_swagger_ui_html(
        openapi_url=f"{root}/openapi.json",
        title=request.app.title,
        swagger_js_url=f"{assets}/swagger-ui-bundle.js",
        swagger_css_url=f"{assets}/swagger-ui.css",
        swagger_favicon_url=f"{assets}/favicon.png",
    )


@router.get("/redoc")
async def redoc(request: Request, key: ApiKey) -> HTMLResponse:
    _check(request, key)
    root = request.scope.get("root_path", "")
    assets = f"{root}{DOCS_ASSETS_MOUNT}"
    return get_redoc_html(
        openapi_url=f"{root}/openapi.json",
        title=request.app.title,
        redoc_js_url=f"{assets}/redoc.standalone.js",
        redoc_favicon_url=f"{assets}/favicon.png",
        with_google_fonts=False,
    )


def install_docs(app: FastAPI) -> None:
    """Add the docs routes and the files their pages load to `app`."""
    app.include_router(router)
    app.mount(DOCS_ASSETS_MOUNT, StaticFiles(directory=DOCS_ASSETS), name="docs-assets")
