"""Every stage's visualize.ipynb runs top to bottom on a tiny run and draws its figures."""

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(REPO.glob("stage*/visualize.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.parent.name for p in NOTEBOOKS])
def test_notebook_runs_and_draws(path, tmp_path, monkeypatch):
    notebook = nbformat.read(path, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), \
        f"{path} is stored with outputs; clear them before committing"
    monkeypatch.setenv("LLM_NOTEBOOK_PRESET", "tiny")
    monkeypatch.setenv("LLM_RUNS_DIR", str(tmp_path))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    images = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])
              if "image/png" in o.get("data", {})]
    assert len(images) >= 3, f"{path.name} drew {len(images)} figures"
    assert os.listdir(tmp_path)  # it trained its own tiny run there
