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
import inspect
import ipaddress
import logging
import math
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse

from api.keys import GRANTS, ApiKeys, KeyConfigError, Role
from api.ledger import LedgerWriter
from api.limits import BodySizeLimit
from api.metrics import ApiMetrics, MetricsMiddleware
from api.model_holder import ModelHolder, Refusal, Reloader
from api.pages import install_pages
from api.policies import PolicyCache, ServingPolicyBook
from api.routes import admin, docs, export, health, leads, model, monitoring, mql_policy, outcomes
from api.security import SecurityHeaders
from api.serving import ServingModel, load_serving_model
from api.workers import WorkerHeader, WorkerSync
from leadml.errors import DataError, ExitCode, LeadmlError
from leadml.registry import source_fingerprint
from leadml.settings import Settings, load_settings
from leadml.store import Store, StoreError
from leadml.treeshap import compile_kernels

log = logging.getLogger("leadml.api")

#: Batches scored at once in worker threads; the others wait their turn. Scoring holds the GIL,
#: so more threads add no throughput on this design, only contention, and they starve the
#: ledger's writer thread: measured, it commits 13,000 rows/s alone, 870 beside 4 busy threads
#: and 210 beside 20 (twenty concurrent batches, one thread each, used to fill its queue).
SCORING_THREADS = 2

TITLE = "leadml scoring API"
DESCRIPTION = """Calibrated conversion probabilities, grades and MQL decisions for leads.

Send an API key in the `X-API-Key` header (roles: `scorer` scores and reads the monitoring,
`sales` posts outcomes, `admin` may do everything, including reloading the model and setting the
MQL policy). A lead's fields come from the trained model: `GET /v1/model` lists them.
"""


class StartupError(LeadmlError):
    """The server cannot start as configured; the message says what to change."""


def access_keys(settings: Settings) -> ApiKeys:
    """The configured API keys; refuses a server that would be open without saying so."""
    try:
        keys = ApiKeys.parse(settings.api_keys)
    except KeyConfigError as error:
        raise StartupError(f"LEADML_API_KEYS: {error}") from None
    if keys and settings.allow_anonymous:
        raise StartupError(
            "LEADML_ALLOW_ANONYMOUS=true and LEADML_API_KEYS are both set (check the environment"
            " and .env): anonymous access would bypass the keys; unset one of them"
        )
    if not keys and not settings.allow_anonymous:
        raise StartupError(
            "no API keys are configured: set LEADML_API_KEYS to 'scorer:<sha256>,admin:<sha256>'"
            " (make them with `python -m api.keys new --role scorer`), or set"
            " LEADML_ALLOW_ANONYMOUS=true to serve without keys (local demos only)"
        )
    anonymous_roles(settings)
    return keys


def check_serving(settings: Settings, host: str) -> ApiKeys:
    """`access_keys`, and anonymous access bound to loopback only (for `leadml serve`)."""
    keys = access_keys(settings)
    if not keys and not is_loopback_host(host):
        raise StartupError(
            f"anonymous access (LEADML_ALLOW_ANONYMOUS=true) serves this machine only, not"
            f" --host {host}: use --host 127.0.0.1, or configure LEADML_API_KEYS instead"
        )
    return keys


def is_loopback_host(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def anonymous_roles(settings: Settings) -> frozenset[Role]:
    """What an anonymous caller may do: LEADML_ANONYMOUS_ROLE's grants (scorer by default)."""
    try:
        role = Role(settings.anonymous_role.strip().lower())
    except ValueError:
        raise StartupError(
            f"LEADML_ANONYMOUS_ROLE={settings.anonymous_role!r} is not a role; use one of"
            f" {', '.join(r.value for r in Role)}"
        ) from None
    return GRANTS[role]


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API for `settings` (default: from the environment, LEADML_*).

    Without `settings` (uvicorn's factory, `uvicorn api.main:create_app --factory`), a setting
    the server cannot start with is one line on stderr and exit code 2, as `leadml serve` says
    it, not a traceback."""
    if settings is not None:
        return _create_app(settings)
    try:
        return _create_app(load_settings())
    except LeadmlError as error:
        print(f"leadml: error: {' '.join(str(error).split())}", file=sys.stderr)
        raise SystemExit(ExitCode.BAD_INPUT) from None


def _create_app(settings: Settings) -> FastAPI:
    keys = access_keys(settings)
    _configure_logging()
    metrics = ApiMetrics()
    app = FastAPI(
        title=TITLE,
        description=DESCRIPTION,
        version="1",
        lifespan=_lifespan,
        responses={500: {"description": "A bug: please report it."}},
        # /docs and /openapi.json are routes of their own (api/routes/docs.py): they need a key.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        **_without_opentelemetry(),
    )
    app.state.settings = settings
    app.state.api_keys = keys
    app.state.anonymous_roles = anonymous_roles(settings) if not keys else frozenset()
    app.state.metrics = metrics
    app.state.holder = ModelHolder()
    app.state.worker_sync = None  # the lifespan joins the other workers, if there are any
    app.state.ledger = None
    metrics.ledger_enabled.set(1 if settings.ledger else 0)
    # The scoring routes first: a request is matched against the routes in this order.
    for router in (
        leads.router,
        health.router,
        model.router,
        admin.router,
        mql_policy.router,
        export.router,
        outcomes.router,
        monitoring.router,
    ):
        app.include_router(router)
    # Before the pages: their /static mount would otherwise shadow the docs' /static/docs files.
    docs.install_docs(app)
    # -- web pages (api/pages.py): HTML shells at /, /lead, /policy and their /static files --
    install_pages(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(SecurityHeaders)
    if settings.workers_dir is not None:
        app.add_middleware(WorkerHeader)
    # A user-fixable error reaching here: bad data is the caller's (422); a model, policy or
    # store problem is the server's state (503). Anything else is a bug (500).
    app.add_exception_handler(RequestValidationError, _invalid_request)
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
    sync = WorkerSync(settings.workers_dir) if settings.workers_dir is not None else None
    app.state.worker_sync = sync

    def policy_changed() -> None:  # a policy set here counts from the next score, everywhere
        policies.invalidate()
        if sync is not None:
            sync.bump("policy")

    book = ServingPolicyBook(
        store, on_change=policy_changed, cache_seconds=settings.policy_refresh_seconds
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
        on_asked=(lambda: sync.bump("reload")) if sync is not None else (lambda: None),
    )
    app.state.policy_book = book
    app.state.policies = policies
    app.state.reloader = reloader
    app.state.store = store
    ledger = _start_ledger(app, store) if settings.ledger else None
    app.state.scoring_threads = anyio.CapacityLimiter(SCORING_THREADS)
    # Reasons' compiled TreeSHAP is built now, before any request, whatever model comes first:
    # a reload (in a worker thread, beside the requests) then never compiles.
    await anyio.to_thread.run_sync(compile_kernels)
    try:
        first = await anyio.to_thread.run_sync(load_serving_model, settings, book, policies)
    except Exception as error:
        log.error(
            "cannot start: the model at %s cannot be served: %s. Train and promote one first"
            " (leadml train ..., leadml promote), or point LEADML_MODEL_URI at a model folder",
            settings.serving_uri,
            error,
        )
        if ledger is not None:
            ledger.close()
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
    tasks = []
    if settings.reload_interval_seconds > 0:
        tasks.append(asyncio.create_task(reloader.poll_forever(settings.reload_interval_seconds)))
    if sync is not None:
        publish_worker(app)
        tasks.append(
            asyncio.create_task(follow_workers(app, sync, reloader, settings.worker_sync_seconds))
        )
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if sync is not None:
            sync.leave()
            app.state.metrics.leave()
        if ledger is not None:
            app.state.ledger = None
            await anyio.to_thread.run_sync(ledger.close)
        store.close()


def _without_opentelemetry() -> dict[str, Any]:
    """FastAPI's own OpenTelemetry off: leadml reports through Prometheus (/metrics), and FastAPI
    0.165 otherwise looks for OpenTelemetry providers on every request, even with none set up
    (about 5 % of a single-lead score). Older FastAPI has no such option, nor the cost."""
    if "telemetry" not in inspect.signature(FastAPI.__init__).parameters:
        return {}
    return {"telemetry": {"tracing": False, "metrics": False, "logs": False}}


def _start_ledger(app: FastAPI, store: Store) -> LedgerWriter:
    settings: Settings = app.state.settings
    metrics: ApiMetrics = app.state.metrics
    ledger = LedgerWriter(
        store,
        queue_rows=settings.ledger_queue_rows,
        batch_rows=settings.ledger_batch_rows,
        flush_seconds=settings.ledger_flush_seconds,
        wait_seconds=settings.ledger_wait_seconds,
        count=metrics.count_ledger,
        on_waiting=metrics.ledger_waiting.set,
        on_waited=metrics.ledger_waited.inc,
    )
    ledger.start()
    app.state.ledger = ledger
    return ledger


def publish_worker(app: FastAPI) -> None:
    """Write what this worker serves where /readyz of any worker reads it."""
    sync: WorkerSync | None = app.state.worker_sync
    model = app.state.holder.current
    if sync is None or model is None:
        return
    error = app.state.holder.last_error
    sync.publish(
        {
            "model_name": model.name,
            "model_version": model.version,
            "fingerprint": model.fingerprint,
            "loaded_at": model.loaded_at.isoformat(),
            "last_reload_error": error.message if error is not None else None,
        }
    )


async def follow_workers(
    app: FastAPI, sync: WorkerSync, reloader: Reloader, interval: float
) -> None:
    """Do what another worker was asked to do (reload, re-read the policy); never raises."""
    while True:
        await asyncio.sleep(interval)
        try:
            if sync.changed("reload"):
                await reloader.reload(announce=False)
            if sync.changed("policy"):
                app.state.policy_book.forget_cached()
                app.state.policies.invalidate()
            publish_worker(app)
        except Exception:  # a bug here must not stop the following
            log.exception("following the other workers failed")


def _migrate(store: Store) -> None:
    try:
        store.migrate()
    except StoreError as error:  # scoring still works while the policy store is broken
        log.error("cannot prepare the app database: %s", error)


#: What each role lets a caller do, in the start banner's words.
ROLE_ABILITIES = {
    Role.SCORER: "score leads and read the model and the MQL policy",
    Role.ADMIN: "reload the model and set the MQL policy",
}


def anonymous_abilities(roles: frozenset[Role]) -> str:
    return "; ".join(
        ROLE_ABILITIES[role] for role in Role if role in roles and role in ROLE_ABILITIES
    )


def _announce_access(settings: Settings, keys: ApiKeys) -> None:
    if keys:
        log.info("API keys required (%d configured)", len(keys.entries))
        return
    roles = anonymous_roles(settings)
    cannot = [ROLE_ABILITIES[r] for r in Role if r not in roles and r in ROLE_ABILITIES]
    line = "!" * 78
    log.warning(
        "\n%s\n  ANONYMOUS ACCESS IS ON (LEADML_ALLOW_ANONYMOUS=true), for callers on this"
        " machine only.\n  Anyone on it may %s.%s\n  Use this for local demos only.\n%s",
        line,
        anonymous_abilities(roles),
        f"\n  Nobody may {'; '.join(cannot)} (LEADML_ANONYMOUS_ROLE=admin allows it)."
        if cannot
        else "",
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
        publish_worker(app)
        if old is not None and old.fingerprint != new.fingerprint:
            policies.forget(old.scorer)

    return swapped


def _on_refuse(app: FastAPI) -> Callable[[Refusal], None]:
    def refused(error: Refusal) -> None:
        metrics: ApiMetrics = app.state.metrics
        metrics.reloads.labels("refused").inc()
        publish_worker(app)

    return refused


def json_safe(value: Any) -> Any:
    """`value` made renderable as strict JSON: NaN and infinities, bytes and any other object
    become text, so an error about any input can be shown (and never turns into a 500)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


async def _invalid_request(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    return JSONResponse({"detail": json_safe(list(error.errors()))}, status_code=422)


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
