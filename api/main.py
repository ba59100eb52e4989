"""The leadml scoring API: `create_app(settings)`.

Run it with `leadml serve`, or `uvicorn api.main:create_app --factory`. Nothing happens at import:
the app, its model and its connections are made by the factory and its lifespan.

At start the lifespan checks the access settings (API keys, or anonymous access said out loud),
opens the app database (MQL policies), loads and checks the model (`models:/<name>@champion` or a
model folder, see `Settings.serving_uri`) and starts polling the alias; a model that cannot be
loaded stops the start with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse

from api.keys import ApiKeys, KeyConfigError
from api.limits import BodySizeLimit
from api.metrics import ApiMetrics, MetricsMiddleware
from api.model_holder import ModelHolder, Refusal, Reloader
from api.pages import install_pages
from api.policies import PolicyCache, ServingPolicyBook
from api.routes import admin, health, leads, model, mql_policy
from api.serving import ServingModel, load_serving_model
from leadml.errors import DataError, LeadmlError
from leadml.registry import source_fingerprint
from leadml.settings import Settings
from leadml.store import Store, StoreError

log = logging.getLogger("leadml.api")

TITLE = "leadml scoring API"
DESCRIPTION = """Calibrated conversion probabilities, grades and MQL decisions for leads.

Send an API key in the `X-API-Key` header (roles: `scorer` scores, `admin` also reloads the model
and sets the MQL policy). A lead's fields come from the trained model: `GET /v1/model` lists them.
"""


class StartupError(LeadmlError):
    """The server cannot start as configured; the message says what to change."""


def access_keys(settings: Settings) -> ApiKeys:
    """The configured API keys; refuses a server that would be open without saying so."""
    try:
        keys = ApiKeys.parse(settings.api_keys)
    except KeyConfigError as error:
        raise StartupError(f"LEADML_API_KEYS: {error}") from None
    if not keys and not settings.allow_anonymous:
        raise StartupError(
            "no API keys are configured: set LEADML_API_KEYS to 'scorer:<sha256>,admin:<sha256>'"
            " (make them with `python -m api.keys new --role scorer`), or set"
            " LEADML_ALLOW_ANONYMOUS=true to serve without keys (local demos only)"
        )
    return keys


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API for `settings` (default: from the environment, LEADML_*)."""
    settings = settings or Settings()
    keys = access_keys(settings)
    _configure_logging()
    metrics = ApiMetrics()
    app = FastAPI(
        title=TITLE,
        description=DESCRIPTION,
        version="1",
        lifespan=_lifespan,
        responses={500: {"description": "A bug: please report it."}},
    )
    app.state.settings = settings
    app.state.api_keys = keys
    app.state.metrics = metrics
    app.state.holder = ModelHolder()
    # The scoring routes first: a request is matched against the routes in this order.
    for router in (leads.router, health.router, model.router, admin.router, mql_policy.router):
        app.include_router(router)
    # -- web pages (api/pages.py): HTML shells at /, /lead, /policy and their /static files --
    install_pages(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    # A user-fixable error reaching here: bad data is the caller's (422); a model, policy or
    # store problem is the server's state (503). Anything else is a bug (500).
    app.add_exception_handler(DataError, _data_error)
    app.add_exception_handler(LeadmlError, _unavailable)
    app.openapi = _openapi_with_lead_schema(app)  # type: ignore[method-assign]
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    _announce_access(settings, app.state.api_keys)
    store = Store.from_url(settings.database_url)
    await anyio.to_thread.run_sync(_migrate, store)
    book = ServingPolicyBook(
        store,
        on_change=lambda: policies.invalidate(),  # a policy set here counts from the next score
        cache_seconds=settings.policy_refresh_seconds,
    )
    policies = PolicyCache(book, settings.policy_refresh_seconds)
    holder: ModelHolder = app.state.holder
    reloader = Reloader(
        holder,
        source=settings.serving_uri,
        fingerprint=lambda: source_fingerprint(settings.serving_uri, settings.tracking_uri),
        load=lambda: load_serving_model(settings, book, policies),
        on_swap=_on_swap(app, policies),
        on_refuse=_on_refuse(app),
    )
    app.state.policy_book = book
    app.state.policies = policies
    app.state.reloader = reloader
    try:
        first = await anyio.to_thread.run_sync(load_serving_model, settings, book, policies)
    except Exception as error:
        log.error(
            "cannot start: the model at %s cannot be served: %s. Train and promote one first"
            " (leadml train ..., leadml promote), or point LEADML_MODEL_URI at a model folder",
            settings.serving_uri,
            error,
        )
        store.close()
        raise
    holder.swap(first)
    _on_swap(app, policies)(first, None)
    log.info(
        "serving %s version %s from %s (fast path: %s)",
        first.name,
        first.version,
        settings.serving_uri,
        first.predictor.kind,
    )
    poller = None
    if settings.reload_interval_seconds > 0:
        poller = asyncio.create_task(reloader.poll_forever(settings.reload_interval_seconds))
    try:
        yield
    finally:
        if poller is not None:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
        store.close()


def _migrate(store: Store) -> None:
    try:
        store.migrate()
    except StoreError as error:  # scoring still works while the policy store is broken
        log.error("cannot prepare the app database: %s", error)


def _announce_access(settings: Settings, keys: ApiKeys) -> None:
    if not settings.allow_anonymous:
        log.info("API keys required (%d configured)", len(keys.entries))
        return
    line = "!" * 78
    detail = (
        "API keys are configured but NOT required"
        if keys
        else "no API keys: anyone who can reach this server can score leads and reload the model"
    )
    log.warning(
        "\n%s\n  ANONYMOUS ACCESS IS ON (LEADML_ALLOW_ANONYMOUS=true): %s.\n"
        "  Use this for local demos only.\n%s",
        line,
        detail,
        line,
    )


def _on_swap(
    app: FastAPI, policies: PolicyCache
) -> Callable[[ServingModel, ServingModel | None], None]:
    def swapped(new: ServingModel, old: ServingModel | None) -> None:
        metrics: ApiMetrics = app.state.metrics
        metrics.serving(new.name, new.version, new.alias, new.scorer.info.kind, new.predictor.kind)
        metrics.reloads.labels("reloaded").inc()
        app.openapi_schema = None  # the lead schema may have changed
        if old is not None and old.fingerprint != new.fingerprint:
            policies.forget(old.scorer)

    return swapped


def _on_refuse(app: FastAPI) -> Callable[[Refusal], None]:
    def refused(error: Refusal) -> None:
        metrics: ApiMetrics = app.state.metrics
        metrics.reloads.labels("refused").inc()

    return refused


async def _data_error(request: Request, error: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(error)}, status_code=422)


async def _unavailable(request: Request, error: Exception) -> JSONResponse:
    log.error("%s %s: %s", request.method, request.url.path, error)
    return JSONResponse({"detail": str(error)}, status_code=503)


def _configure_logging() -> None:
    """Make the API's log lines visible when nobody configured logging (plain `leadml serve`)."""
    logger = logging.getLogger("leadml")
    if logger.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


# --------------------------------------------------------------------------- OpenAPI


def _openapi_with_lead_schema(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """The OpenAPI document with the request body of the model serving now."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        holder: ModelHolder = app.state.holder
        settings: Settings = app.state.settings
        add_lead_bodies(document, holder.current, settings.max_batch_leads)
        app.openapi_schema = document
        return document

    return openapi


def add_lead_bodies(
    document: dict[str, Any], serving: ServingModel | None, max_batch_leads: int
) -> None:
    """Describe the raw-body lead routes: a Lead (generated from the model), a batch of them."""
    components = document.setdefault("components", {}).setdefault("schemas", {})
    if serving is not None:
        lead_schema = serving.lead_model.json_schema()
        components.update(lead_schema.pop("$defs", {}))
        components["Lead"] = lead_schema
        example: dict[str, Any] = serving.lead_model.example
    else:
        components["Lead"] = {"type": "object", "title": "Lead"}
        example = {}
    lead_ref = {"$ref": "#/components/schemas/Lead"}
    paths = document.get("paths", {})
    single = paths.get("/v1/leads/score", {}).get("post")
    if single is not None:
        single["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": lead_ref, "example": example}},
        }
    batch = paths.get("/v1/leads/score-batch", {}).get("post")
    if batch is not None:
        batch["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"type": "array", "items": lead_ref, "maxItems": max_batch_leads},
                    "example": [example],
                },
                "text/csv": {
                    "schema": {"type": "string"},
                    "example": _csv_example(example),
                },
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {leads.UPLOAD_FIELD: {"type": "string", "format": "binary"}},
                        "required": [leads.UPLOAD_FIELD],
                    }
                },
            },
        }


def _csv_example(example: dict[str, Any]) -> str:
    if not example:
        return ""
    header = ",".join(example)
    row = ",".join("" if v is None else str(v) for v in example.values())
    return f"{header}\n{row}\n"
