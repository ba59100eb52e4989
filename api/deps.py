"""Dependencies of the routes, as `Annotated` aliases.

All are `async def` (FastAPI runs plain `def` dependencies in a thread pool, which costs more than
scoring a lead) and shallow: each dependency FastAPI resolves costs about 8 microseconds a request,
so the scoring routes take one, `ScoringDep` (key, model and policy at once).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
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
    description="An API key; its role (scorer, sales or admin) decides what it may do.",
)
ApiKey = Annotated[str | None, Security(api_key_header)]
_CHALLENGE = {"WWW-Authenticate": f'APIKey header="{HEADER}"'}


@dataclass(frozen=True)
class Principal:
    """Who is calling: the roles their key carries (LEADML_ANONYMOUS_ROLE's when anonymous)."""

    roles: frozenset[Role]
    anonymous: bool


def is_loopback(request: Request) -> bool:
    host = request.client.host if request.client is not None else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def authorize(request: Request, key: str | None, role: Role) -> Principal:
    """The caller, if their key (or anonymous access) grants `role`; else 401 or 403.

    Anonymous access exists only when no keys are configured (the start refuses both at once),
    grants LEADML_ANONYMOUS_ROLE's roles (scorer unless set), and only to callers on this machine.
    """
    state = request.app.state
    keys: ApiKeys = state.api_keys
    if not keys:
        anonymous: frozenset[Role] = state.anonymous_roles
        if not is_loopback(request):
            raise HTTPException(403, "anonymous access is for callers on the server's machine")
        if role not in anonymous:
            raise HTTPException(
                403,
                f"this needs the {role.value} role; anonymous callers do not have it"
                f" (LEADML_ANONYMOUS_ROLE={role.value} grants it, for a local demo)",
            )
        return Principal(anonymous, anonymous=True)
    if not key:
        raise HTTPException(401, f"send an API key in the {HEADER} header", headers=_CHALLENGE)
    roles = keys.roles_of(key)
    if not roles:
        raise HTTPException(401, f"the {HEADER} key is not known here", headers=_CHALLENGE)
    if role not in roles:
        raise HTTPException(403, f"this needs the {role.value} role; the key does not have it")
    return Principal(roles, anonymous=False)


def current_model(request: Request) -> ServingModel:
    """The model serving now, taken once: the request finishes on it even if a reload swaps."""
    holder: ModelHolder | None = getattr(request.app.state, "holder", None)
    model = holder.current if holder is not None else None
    if model is None:
        raise HTTPException(503, "no model is loaded yet; see /readyz")
    return model


def _require(role: Role) -> Callable[[Request, str | None], Awaitable[Principal]]:
    async def check(request: Request, key: ApiKey) -> Principal:
        return authorize(request, key, role)

    check.__name__ = f"require_{role.value}"
    return check


require_scorer = _require(Role.SCORER)
require_admin = _require(Role.ADMIN)
require_sales = _require(Role.SALES)


@dataclass(frozen=True)
class Scoring:
    """What a scoring request needs: the caller, the model serving now and its MQL policy."""

    principal: Principal
    model: ServingModel
    policy: ActivePolicy


async def get_scoring(request: Request, key: ApiKey) -> Scoring:
    principal = authorize(request, key, Role.SCORER)
    model = current_model(request)
    policies: PolicyCache = request.app.state.policies
    return Scoring(principal, model, await policies.active(model.scorer))


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_holder(request: Request) -> ModelHolder:
    holder: ModelHolder = request.app.state.holder
    return holder


async def get_serving(request: Request) -> ServingModel:
    return current_model(request)


async def get_scorer(request: Request) -> Scorer:
    return current_model(request).scorer


async def get_policies(request: Request) -> PolicyCache:
    policies: PolicyCache = request.app.state.policies
    return policies


async def get_policy_book(request: Request) -> ServingPolicyBook:
    book: ServingPolicyBook = request.app.state.policy_book
    return book


async def get_active_policy(request: Request) -> ActivePolicy:
    policies: PolicyCache = request.app.state.policies
    return await policies.active(current_model(request).scorer)


async def get_reloader(request: Request) -> Reloader:
    reloader: Reloader = request.app.state.reloader
    return reloader


SettingsDep = Annotated[Settings, Depends(get_settings)]
HolderDep = Annotated[ModelHolder, Depends(get_holder)]
ServingDep = Annotated[ServingModel, Depends(get_serving)]
ScorerDep = Annotated[Scorer, Depends(get_scorer)]
PoliciesDep = Annotated[PolicyCache, Depends(get_policies)]
PolicyBookDep = Annotated[ServingPolicyBook, Depends(get_policy_book)]
ActivePolicyDep = Annotated[ActivePolicy, Depends(get_active_policy)]
ReloaderDep = Annotated[Reloader, Depends(get_reloader)]
#: Key + model + policy for the scoring routes, in one dependency.
ScoringDep = Annotated[Scoring, Depends(get_scoring)]
#: The caller may score leads (scorer or admin key, or anonymous access).
ScorerRole = Annotated[Principal, Depends(require_scorer)]
#: The caller may post sales outcomes (sales or admin key; anonymous only when
#: LEADML_ANONYMOUS_ROLE grants it).
SalesRole = Annotated[Principal, Depends(require_sales)]
#: The caller may reload the model and change the MQL policy (admin key; anonymous only when
#: LEADML_ANONYMOUS_ROLE=admin).
AdminRole = Annotated[Principal, Depends(require_admin)]
