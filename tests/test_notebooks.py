"""The notebooks run top to bottom on small demo data, show their charts as images, and are
committed without outputs.

Each notebook is executed by papermill in a real Jupyter kernel, with its parameters cell
overridden only where a test must (fewer demo leads, a throwaway MLflow store), exactly as a data
scientist would point it at their own export.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import papermill
import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
#: Small enough to train in seconds, large enough for the leakage guard and calibration.
DEMO_ROWS = 3000
FIGURE_TAG = "figure"


def _tags(cell: Any) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _parameters(notebook: Path, tmp_path: Path) -> dict[str, object]:
    declared = papermill.inspect_notebook(str(notebook))
    wanted: dict[str, object] = {
        "demo_rows": DEMO_ROWS,
        "tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
    }
    return {name: value for name, value in wanted.items() if name in declared}


def test_there_are_notebooks() -> None:
    assert len(NOTEBOOKS) >= 3


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(notebook: Path) -> None:
    cells = nbformat.read(notebook, as_version=4).cells
    with_outputs = [
        index
        for index, cell in enumerate(cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
    assert with_outputs == [], (
        f"{notebook.name}: cells {with_outputs} carry outputs; "
        "clear them (Jupyter: Edit > Clear Outputs of All Cells) before committing"
    )


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_one_parameters_cell(notebook: Path) -> None:
    cells = nbformat.read(notebook, as_version=4).cells
    tagged = [cell for cell in cells if "parameters" in _tags(cell)]
    assert len(tagged) == 1
    names = papermill.inspect_notebook(str(notebook))
    assert {"data_path", "target", "time_column"} <= set(names)
    assert names["data_path"]["default"] == '""', "the default must be the notebook's own demo data"


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_top_to_bottom_with_inline_charts(notebook: Path, tmp_path: Path) -> None:
    executed = tmp_path / notebook.name
    papermill.execute_notebook(
        str(notebook),
        str(executed),
        parameters=_parameters(notebook, tmp_path),
        cwd=str(tmp_path),
        kernel_name="python3",
        progress_bar=False,
    )
    cells = nbformat.read(executed, as_version=4).cells
    figure_cells = [cell for cell in cells if FIGURE_TAG in _tags(cell)]
    assert figure_cells, f"{notebook.name} shows no chart"
    for cell in figure_cells:
        kinds = {kind for output in cell.outputs for kind in output.get("data", {})}
        assert "image/png" in kinds, f"chart cell did not render as an image:\n{cell.source}"
    printed_figures = [
        cell.source
        for cell in cells
        for output in cell.get("outputs", [])
        if str(output.get("data", {}).get("text/plain", "")).startswith("<Figure size")
        and "image/png" not in output.get("data", {})
    ]
    assert printed_figures == [], f"figures printed as text instead of drawn: {printed_figures}"
