"""Execute every stage's visualize.ipynb on the runs in runs/ and store it with its outputs.

    make demo                      # the runs the notebooks read (~16 minutes on 2 CPU cores)
    make instruct                  # stage 7's runs (~1 hour on 2 cores, after `make pretrain`)
    python bench/store_notebooks.py [--stages 1 5]

A notebook trains whatever it reads that is missing (each says what, and how long, in its first
cell), so run `make demo` first; stage 7's trains nothing here: it reads the runs of `make instruct`
and says which are missing. Figures are stored as PNG at 72 dpi so that each notebook stays well
under 1 MB on GitHub (tests/test_notebooks.py checks the size and that the figures are there).
One notebook at a time: two trainings at once on 2 cores slow each other down several times over.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stages", nargs="*", type=int, default=[1, 2, 3, 4, 5, 6, 7], choices=range(1, 8))
    args = parser.parse_args()
    import nbformat
    from nbclient import NotebookClient

    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    os.environ.pop("LLM_NOTEBOOK_PRESET", None)  # the cpu runs, not the tiny ones of the tests
    os.environ.pop("LLM_RUNS_DIR", None)
    for path in sorted(REPO.glob("stage*/visualize.ipynb")):
        if int(path.parent.name[5]) not in args.stages:
            continue
        notebook = nbformat.read(path, as_version=4)
        # Smaller figures: set once in a hidden first cell, removed before the file is written.
        setup = nbformat.v4.new_code_cell("import matplotlib\nmatplotlib.rcParams['figure.dpi'] = 72")
        notebook.cells.insert(0, setup)
        started = time.perf_counter()
        NotebookClient(notebook, timeout=1800, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
        notebook.cells.pop(0)
        for count, cell in enumerate((c for c in notebook.cells if c.cell_type == "code"), 1):
            cell.execution_count = count
            for output in cell.get("outputs", []):
                if "execution_count" in output:
                    output["execution_count"] = count
        nbformat.write(notebook, path)
        print(f"{path.relative_to(REPO)}: {time.perf_counter() - started:.0f} s, {path.stat().st_size / 1e3:.0f} kB",
              file=sys.stderr)


if __name__ == "__main__":
    main()
