"""Every stage's visualize.ipynb is stored with its figures, and runs top to bottom on a tiny run.

The stored file is what a reader sees on GitHub: its outputs come from the runs it describes
(`python bench/store_notebooks.py` after `make demo`). The test checks them, then executes a copy with
the outputs cleared on tiny runs, so the code still works and still draws.
"""

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(REPO.glob("stage*/visualize.ipynb"))
MAX_BYTES = 1_000_000


def figures(notebook) -> int:
    return sum("image/png" in o.get("data", {}) for cell in notebook.cells if cell.cell_type == "code"
               for o in cell.get("outputs", []))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.parent.name for p in NOTEBOOKS])
def test_notebook_is_stored_with_its_figures_and_guides_the_reader(path):
    notebook = nbformat.read(path, as_version=4)
    assert path.stat().st_size <= MAX_BYTES, f"{path} is {path.stat().st_size:,} bytes; store smaller figures"
    assert figures(notebook) >= 3, f"{path} is stored without its figures: run python bench/store_notebooks.py"
    errors = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors, f"{path} was stored with an error in it"
    assert "Before you run this" in notebook.cells[0].source
    assert notebook.cells[-1].cell_type == "markdown" and notebook.cells[-1].source.startswith("## Questions")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.parent.name for p in NOTEBOOKS])
def test_notebook_runs_and_draws(path, tmp_path, monkeypatch):
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    monkeypatch.setenv("LLM_NOTEBOOK_PRESET", "tiny")
    monkeypatch.setenv("LLM_RUNS_DIR", str(tmp_path))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    assert figures(notebook) >= 3, f"{path.name} drew {figures(notebook)} figures"
    assert os.listdir(tmp_path)  # it trained its own tiny run there
