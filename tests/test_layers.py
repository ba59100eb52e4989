"""The import rules the layers rely on (the layers themselves: `lint-imports`, pyproject.toml).

No leadml or api module imports another one inside a function: such an import hides a cycle
until someone moves it to the top. Only heavy third-party imports may be deferred, each with a
comment saying why. And the scorer, the policy book and the API never load matplotlib.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest
from fresh_python import assert_runs

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(
    path
    for folder in (ROOT / "src" / "leadml", ROOT / "api")
    for path in folder.rglob("*.py")
    if "migrations" not in path.parts
)
OWN_PACKAGES = ("leadml", "api")


def _imported_names(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.ImportFrom):
        return ["." * node.level + (node.module or "")]
    return [alias.name for alias in node.names]


def _imports_inside_functions(tree: ast.Module) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for function in ast.walk(tree):
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            for node in ast.walk(function):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    found.extend((node.lineno, name) for name in _imported_names(node))
    return sorted(set(found))


def _is_own(name: str) -> bool:
    return name.startswith(".") or name.split(".")[0] in OWN_PACKAGES


def test_the_scan_sees_every_module() -> None:
    names = {path.stem for path in SOURCES}
    assert {"scoring", "registry", "plots", "tracking", "cli", "main", "serving"} <= names


def test_the_scan_finds_an_import_inside_a_function() -> None:
    tree = ast.parse("def f():\n    if True:\n        from leadml.tracking import promote\n")
    assert _imports_inside_functions(tree) == [(3, "leadml.tracking")]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_own_module_is_imported_inside_a_function(path: Path) -> None:
    hidden = [
        f"line {line}: {name}"
        for line, name in _imports_inside_functions(ast.parse(path.read_text()))
        if _is_own(name)
    ]
    assert not hidden, f"move these imports to the top of {path.name}: {hidden}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_a_deferred_third_party_import_says_why(path: Path) -> None:
    lines = path.read_text().splitlines()
    unexplained = []
    for line, name in _imports_inside_functions(ast.parse("\n".join(lines))):
        # The reason is a comment in the function, above the import, or in the module's
        # note on deferred imports (one note may cover every deferred import of a module).
        before = lines[max(0, line - 8) : line - 1]
        noted = any("#" in text for text in before) or any(
            "imported in the functions" in text for text in lines
        )
        if not noted:
            unexplained.append(f"line {line}: {name}")
    assert not unexplained, f"say why these imports wait in {path.name}: {unexplained}"


def test_scoring_policy_and_the_api_do_not_load_matplotlib() -> None:
    code = (
        "import sys, api.main, leadml.scoring, leadml.policy, leadml.registry\n"
        "assert 'matplotlib' not in sys.modules, sorted(m for m in sys.modules if 'matplotlib' in m)\n"
        "import leadml.plots\n"
        "leadml.plots.plot_roc([0, 1], [0.2, 0.8])\n"
        "assert 'matplotlib' in sys.modules\n"  # the check above could fail
    )
    assert_runs(code)


def test_the_cli_starts_without_matplotlib_and_uvicorn() -> None:
    """Every command, `--help` included, imports the CLI: what only drawing or serving needs
    waits for the command that draws (train) or serves."""
    code = (
        "import sys, leadml.cli\n"
        "loaded = sorted(m for m in ('matplotlib', 'uvicorn') if m in sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    assert_runs(code)


def test_serving_a_model_folder_does_not_load_mlflow() -> None:
    code = "import sys, api.main\nassert 'mlflow' not in sys.modules\n"
    assert_runs(code)


def test_every_module_has_a_layer() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c for c in config["contracts"] if c["type"] == "layers")["layers"]
    placed = {name.strip() for layer in layers for name in layer.replace("|", ":").split(":")}
    modules = {
        f"leadml.{path.stem}"
        for path in (ROOT / "src" / "leadml").glob("*.py")
        if path.stem != "__init__"
    }
    assert modules - placed == set(), "add these modules to a layer in pyproject.toml"
