"""The OpenAPI document and Swagger UI, behind the scorer key when keys are configured.

The document describes the served model's lead (every field, its known categories): that is the
model's shape, so it is shown to callers who may score. `LEADML_PUBLIC_DOCS=true` makes both
public (a trusted network, or an API whose schema is no secret). In a browser, Swagger UI fetches
/openapi.json without a key: with keys configured, read the document with a key
(`curl -H "X-API-Key: ..." /openapi.json`) or make the docs public.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from api.deps import ApiKey, authorize
from api.keys import Role

router = APIRouter(include_in_schema=False)


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
    return get_swagger_ui_html(openapi_url=f"{root}/openapi.json", title=request.app.title)
