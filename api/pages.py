"""The web pages for sales and marketing: ranked leads, one lead, and the MQL line.

The pages are static shells: they hold no lead, model or policy data, so they are served without
an API key. Their scripts (api/static/) read everything from the /v1 API in the browser and send
the API key the user enters, when the server asks for one.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from leadml.threshold import POLICY_TYPES, policy_options

HERE = Path(__file__).parent
TEMPLATES_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"
STATIC_MOUNT = "/static"
#: The charting library: plotly.js exactly as the installed `plotly` package ships it, served
#: from this app (never a CDN), so the pages draw charts offline and under the page CSP.
PLOTLY_JS = Path(str(files("plotly") / "package_data" / "plotly.min.js"))
PLOTLY_PATH = "/vendor/plotly.min.js"

#: (route name, path, link text) of the pages, in navigation order.
PAGES: tuple[tuple[str, str, str], ...] = (
    ("ranked_leads_page", "/", "Ranked leads"),
    ("score_lead_page", "/lead", "Score one lead"),
    ("mql_policy_page", "/policy", "The MQL line"),
    ("model_page", "/model", "The model"),
    ("monitoring_page", "/monitoring", "Monitoring"),
)

#: Options shown as a percentage (0-100) on the page and sent as a share (0-1).
PERCENT_UNITS = ("share", "probability")
#: Labels of the business figures a policy of any kind may be read with, as the page shows them.
FIGURE_LABELS = {"leads_per_week": "New leads a week"}


def policy_kinds() -> list[dict[str, str]]:
    """The policy page's choices: every registered kind, in the registry's order."""
    return [{"kind": kind, "title": policy.title} for kind, policy in POLICY_TYPES.items()]


def policy_fields() -> list[dict[str, Any]]:
    """The policy page's number fields: each kind's options (choices such as max_value's basis
    keep their default on the page), and the leads a week any kind may be read with."""
    shown: dict[str, dict[str, Any]] = {}
    for kind in POLICY_TYPES:
        for option in policy_options(kind):
            if option.metadata["unit"] == "choice":
                continue
            percent = option.metadata["unit"] in PERCENT_UNITS
            entry = shown.setdefault(
                option.name,
                {
                    "name": option.name,
                    "label": option.metadata["label"] + (" (%)" if percent else ""),
                    "percent": percent,
                    # A share must be above 0 %; a probability cut-off may be 0 % (everyone).
                    "zero_ok": option.metadata["unit"] == "probability",
                    "kinds": [],
                    "optional_kinds": [],
                },
            )
            entry["kinds"].append(kind)
    for name, label in FIGURE_LABELS.items():
        entry = shown.setdefault(
            name,
            {"name": name, "label": label, "percent": False, "kinds": [], "optional_kinds": []},
        )
        for kind in POLICY_TYPES:
            if kind not in entry["kinds"]:
                entry["kinds"].append(kind)
                entry["optional_kinds"].append(kind)
    return list(shown.values())


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
            "plotly_path": PLOTLY_PATH,
            "policy_kinds": policy_kinds(),
            "policy_fields": policy_fields(),
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


@router.get("/model", response_class=HTMLResponse, name="model_page")
async def model_page(request: Request) -> HTMLResponse:
    return _render(request, "model.html", "The model")


@router.get("/monitoring", response_class=HTMLResponse, name="monitoring_page")
async def monitoring_page(request: Request) -> HTMLResponse:
    return _render(request, "monitoring.html", "Monitoring")


@router.get(PLOTLY_PATH, include_in_schema=False, name="plotly_js")
async def plotly_js() -> FileResponse:
    # 4.8 MB that only changes with the plotly package: let browsers keep it for a day.
    return FileResponse(
        PLOTLY_JS, media_type="text/javascript", headers={"Cache-Control": "max-age=86400"}
    )


def install_pages(app: FastAPI) -> None:
    """Add the pages and their static files (CSS, JS) to `app`."""
    app.include_router(router)
    app.mount(STATIC_MOUNT, StaticFiles(directory=STATIC_DIR), name="static")
