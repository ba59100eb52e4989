"""Liveness, readiness and Prometheus metrics (no API key: they carry no lead data)."""

from __future__ import annotations

import json
import math
import os
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import HolderDep
from api.metrics import ApiMetrics
from api.model_holder import ModelHolder
from api.schemas import Health, Readiness
from api.workers import WorkerSync

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="A model is loaded and scoring",
    responses={503: {"model": Readiness, "description": "No model loaded, or it fails to score."}},
)
async def readyz(request: Request, holder: HolderDep) -> JSONResponse:
    body, ready = readiness(holder)
    body["pid"] = os.getpid()
    sync: WorkerSync | None = request.app.state.worker_sync
    # With several workers: what each says it serves (this one answered the request).
    body["workers"] = sync.workers() if sync is not None else None
    return JSONResponse(body, status_code=200 if ready else 503)


def readiness(holder: ModelHolder) -> tuple[dict[str, Any], bool]:
    model = holder.current
    error = holder.last_error.to_dict() if holder.last_error is not None else None
    last = holder.last_reload_at.isoformat() if holder.last_reload_at is not None else None
    body: dict[str, Any] = {
        "ready": False,
        "model_name": model.name if model is not None else None,
        "model_version": model.version if model is not None else None,
        "loaded_at": model.loaded_at.isoformat() if model is not None else None,
        "last_reload_at": last,
        "last_reload_error": error,
        "detail": None,
    }
    if model is None:
        body["detail"] = "no model is loaded"
        return body, False
    try:  # "scoring", not only "loaded": the example lead goes through the fast path
        record = model.lead_model.parse_one(json.dumps(model.lead_model.example).encode())
        probability = float(model.predictor.predict_proba([record])[0])
    except Exception as failure:
        body["detail"] = f"the model fails to score the example lead: {failure}"
        return body, False
    if not (math.isfinite(probability) and 0.0 <= probability <= 1.0):
        body["detail"] = f"the model scores the example lead {probability!r}"
        return body, False
    body["ready"] = True
    return body, True


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> Response:
    registry: ApiMetrics = request.app.state.metrics
    return Response(generate_latest(registry.exposition_registry()), media_type=CONTENT_TYPE_LATEST)
