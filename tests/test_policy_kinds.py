"""Parity of the policy-kind registry (leadml.threshold.POLICY_TYPES) with everything derived
from it: the kinds the store accepts, the CLI's options, the API's request bodies and the policy
page's choices. A kind added to the registry and left out of one of them fails here, by name."""

from __future__ import annotations

import re
from dataclasses import MISSING
from typing import Any

import pytest
import typer.main
from cli_testkit import flat, run_cli_streams
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import TypeAdapter

from api.pages import install_pages
from api.schemas_policy import CHANGES, PROPOSALS, PolicyChange, SimulationRequest
from conftest import TrainedModel
from leadml.cli import app
from leadml.store import POLICY_KINDS
from leadml.threshold import POLICY_TYPES, policy_from_dict, policy_options

KINDS = list(POLICY_TYPES)


def _example(kind: str) -> dict[str, object]:
    """A valid policy of `kind` from its options' examples and defaults."""
    values: dict[str, object] = {}
    for option in policy_options(kind):
        if option.default is not MISSING:
            values[option.name] = option.default
        else:
            assert option.metadata.get("example") is not None, f"{kind}.{option.name}: no example"
            values[option.name] = option.metadata["example"]
    return values


def test_every_kind_resolves_its_own_sentence_and_options() -> None:
    for kind, policy in POLICY_TYPES.items():
        assert policy.kind == kind and policy.title
        assert "resolve" in vars(policy) and "opening" in vars(policy), kind
        built = policy_from_dict({"kind": kind, **_example(kind)})
        assert built.to_dict() == {"kind": kind, **_example(kind)}


def test_the_store_accepts_every_kind_and_no_other() -> None:
    assert set(POLICY_KINDS) == set(KINDS)


def _threshold_command() -> Any:
    return typer.main.get_command(app).commands["threshold"]  # type: ignore[attr-defined]


def test_the_cli_has_an_option_for_every_policy_option() -> None:
    command = _threshold_command()
    flags = {flag for param in command.params for flag in getattr(param, "opts", [])}
    missing = sorted(
        f"{kind}: --{option.name.replace('_', '-')}"
        for kind in KINDS
        for option in policy_options(kind)
        if f"--{option.name.replace('_', '-')}" not in flags
    )
    assert not missing, f"add these options to `leadml threshold`: {missing}"
    policy_help = next(p for p in command.params if "--policy" in getattr(p, "opts", []))
    assert all(kind in (policy_help.help or "") for kind in KINDS), policy_help.help


@pytest.mark.parametrize("kind", KINDS)
def test_the_cli_passes_every_option_of_the_kind(
    kind: str, trained: TrainedModel, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    monkeypatch.setenv("COLUMNS", "160")
    argv = ["threshold", "--policy", kind, "--model", str(trained.export_dir)]
    for name, value in _example(kind).items():
        argv += [f"--{name.replace('_', '-')}", str(value)]
    code, out, err = run_cli_streams(argv, capsys)
    assert code == 0, err
    assert f"{kind} policy" in flat(out)


def test_the_api_has_a_request_body_for_every_kind() -> None:
    assert list(PROPOSALS) == KINDS and list(CHANGES) == KINDS
    for kind in KINDS:
        body = {"kind": kind, **_example(kind)}
        expected = policy_from_dict(body)
        assert TypeAdapter(SimulationRequest).validate_python(body).to_policy() == expected
        change = TypeAdapter(PolicyChange).validate_python({**body, "set_by": "parity test"})
        assert change.to_policy() == expected


def test_the_policy_page_offers_every_kind_with_its_fields() -> None:
    pages = FastAPI()
    install_pages(pages)
    html = TestClient(pages).get("/policy").text
    start = html.index('<select id="sim-kind"')
    select = html[start : html.index("</select>", start)]
    # First the page's own "move the line by points", then every kind, in the registry's order.
    assert re.findall(r'<option value="([a-z_]+)"', select) == ["shift", *KINDS]
    for kind in KINDS:
        for option in policy_options(kind):
            if option.metadata["unit"] == "choice":
                continue  # the page keeps the default (e.g. max_value's basis)
            field = re.search(
                rf'<div class="field" data-kinds="([a-z_ ]+)">\s*<label for="sim-{option.name}"',
                html,
            )
            assert field and kind in field.group(1).split(), f"the page lacks {kind}.{option.name}"
