"""The web pages for sales and marketing: ranked leads, one lead, and the MQL line.

The pages are static shells: they hold no lead, model or policy data, so they are served without
an API key. Their scripts (api/static/) read everything from the /v1 API in the browser and send
the API key the user enters, when the server asks for one.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

HERE = Path(__file__).parent
TEMPLATES_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"
STATIC_MOUNT = "/static"

#: (route name, path, link text) of the pages, in navigation order.
PAGES: tuple[tuple[str, str, str], ...] = (
    ("ranked_leads_page", "/", "Ranked leads"),
    ("score_lead_page", "/lead", "Score one lead"),
    ("mql_policy_page", "/policy", "The MQL line"),
)

templates = Jinja2Templates(directory=TEMPLATES_DIR)
router = APIRouter(tags=["pages"], include_in_schema=False)


def _render(request: Request, template: str, title: str) -> HTMLResponse:
    return templates.TemplateResponse(
        request,
        template,
        {
            "title": title,
            "pages": PAGES,
            "current": request.scope["route"].name,
            "api_root": request.scope.get("root_path", ""),
        },
        # The shells are tiny and change with each release; never serve a stale one.
        headers={"Cache-Control": "no-cache"},
    )


@router.get("/", response_class=HTMLResponse, name="ranked_leads_page")
async def ranked_leads_page(request: Request) -> HTMLResponse:
    return _render(request, "ranked.html", "Ranked leads")


@router.get("/lead", response_class=HTMLResponse, name="score_lead_page")
async def score_lead_page(request: Request) -> HTMLResponse:
    return _render(request, "lead.html", "Score one lead")


@router.get("/policy", response_class=HTMLResponse, name="mql_policy_page")
async def mql_policy_page(request: Request) -> HTMLResponse:
    return _render(request, "policy.html", "The MQL line")


def install_pages(app: FastAPI) -> None:
    """Add the pages and their static files (CSS, JS) to `app`."""
    app.include_router(router)
    app.mount(STATIC_MOUNT, StaticFiles(directory=STATIC_DIR), name="static")
