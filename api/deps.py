"""Dependencies of the routes, as `Annotated` aliases.

All are `async def`: FastAPI runs plain `def` dependencies in a thread pool, which would cost more
than scoring a lead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader

from api.keys import HEADER, ApiKeys, Role
from api.model_holder import ModelHolder, Reloader
from api.policies import PolicyCache, ServingPolicyBook
from api.serving import ServingModel
from leadml.policy import ActivePolicy
from leadml.scoring import Scorer
from leadml.settings import Settings

api_key_header = APIKeyHeader(
    name=HEADER,
    auto_error=False,
    description="An API key; its role (scorer or admin) decides what it may do.",
)


@dataclass(frozen=True)
class Principal:
    """Who is calling: the roles their key carries (all roles when anonymous access is on)."""

    roles: frozenset[Role]
    anonymous: bool


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_holder(request: Request) -> ModelHolder:
    holder: ModelHolder = request.app.state.holder
    return holder


async def get_serving(request: Request) -> ServingModel:
    """The model serving now, taken once: the request finishes on it even if a reload swaps."""
    holder: ModelHolder | None = getattr(request.app.state, "holder", None)
    model = holder.current if holder is not None else None
    if model is None:
        raise HTTPException(503, "no model is loaded yet; see /readyz")
    return model


async def get_scorer(model: Annotated[ServingModel, Depends(get_serving)]) -> Scorer:
    return model.scorer


async def get_policies(request: Request) -> PolicyCache:
    policies: PolicyCache = request.app.state.policies
    return policies


async def get_policy_book(request: Request) -> ServingPolicyBook:
    book: ServingPolicyBook = request.app.state.policy_book
    return book


async def get_active_policy(
    model: Annotated[ServingModel, Depends(get_serving)],
    policies: Annotated[PolicyCache, Depends(get_policies)],
) -> ActivePolicy:
    return await policies.active(model.scorer)


async def get_reloader(request: Request) -> Reloader:
    reloader: Reloader = request.app.state.reloader
    return reloader


async def get_principal(
    request: Request, key: Annotated[str | None, Security(api_key_header)]
) -> Principal:
    keys: ApiKeys = request.app.state.api_keys
    anonymous_allowed: bool = request.app.state.settings.allow_anonymous
    if not key:
        if anonymous_allowed:
            return Principal(frozenset(Role), anonymous=True)
        raise HTTPException(
            401,
            f"send an API key in the {HEADER} header",
            headers={"WWW-Authenticate": f'APIKey header="{HEADER}"'},
        )
    if not keys and anonymous_allowed:
        return Principal(frozenset(Role), anonymous=True)
    roles = keys.roles_of(key)
    if not roles:
        raise HTTPException(
            401,
            f"the {HEADER} key is not known here",
            headers={"WWW-Authenticate": f'APIKey header="{HEADER}"'},
        )
    return Principal(roles, anonymous=False)


def _require(role: Role):  # type: ignore[no-untyped-def]
    async def check(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if role not in principal.roles:
            raise HTTPException(403, f"this needs the {role.value} role; the key does not have it")
        return principal

    check.__name__ = f"require_{role.value}"
    return check


require_scorer = _require(Role.SCORER)
require_admin = _require(Role.ADMIN)

SettingsDep = Annotated[Settings, Depends(get_settings)]
HolderDep = Annotated[ModelHolder, Depends(get_holder)]
ServingDep = Annotated[ServingModel, Depends(get_serving)]
ScorerDep = Annotated[Scorer, Depends(get_scorer)]
PoliciesDep = Annotated[PolicyCache, Depends(get_policies)]
PolicyBookDep = Annotated[ServingPolicyBook, Depends(get_policy_book)]
ActivePolicyDep = Annotated[ActivePolicy, Depends(get_active_policy)]
ReloaderDep = Annotated[Reloader, Depends(get_reloader)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
#: The caller may score leads (scorer or admin key, or anonymous access).
ScorerRole = Annotated[Principal, Depends(require_scorer)]
#: The caller may reload the model and change the MQL policy (admin key, or anonymous access).
AdminRole = Annotated[Principal, Depends(require_admin)]
