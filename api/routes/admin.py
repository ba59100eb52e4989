"""Admin: load the model the registry alias (or the model folder) points to now."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import AdminRole, ReloaderDep
from api.schemas import AUTH_RESPONSES, ReloadResult

router = APIRouter(prefix="/v1/admin", tags=["admin"])


@router.post(
    "/reload",
    response_model=ReloadResult,
    summary="Load the version the alias points to now",
    description="Loads and checks the new version while the current one keeps serving, then"
    " swaps atomically. A version that fails the checks (tampered file, different"
    " probabilities, failing example) is refused with 409 and the current one keeps serving.",
    responses={
        **AUTH_RESPONSES,
        409: {"model": ReloadResult, "description": "The new version was refused."},
    },
)
async def reload_model(_: AdminRole, reloader: ReloaderDep) -> JSONResponse:
    result = await reloader.reload()
    return JSONResponse(result.to_dict(), status_code=409 if result.outcome == "refused" else 200)
