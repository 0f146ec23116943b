"""Phase 1, inside the sandbox: execute the student's notebook and file each test's outputs.

``python -m course_utils.autograde.runner FOLDER`` (run by :mod:`.sandbox`; FOLDER is the submission's
scratch folder, the only writable place). It reads ``plan.json`` and ``submission.ipynb``, starts a kernel,
runs every cell in order under the cell timeout — except the test cells, whose text it never runs: each is
replaced by the planned check calls (:func:`.kernel.grade_call`) — and writes ``executed.ipynb`` and
``status.json``. A dead kernel stops the run; what was filed before stays.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def _meta(cell) -> dict:
    return (cell.get("metadata") or {}).get("nbgrader") or {}


def run(folder: Path) -> dict:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    plan = json.loads((folder / "plan.json").read_text())
    nb = nbformat.read(folder / "submission.ipynb", as_version=4)
    work = folder / "work"
    work.mkdir(exist_ok=True)
    client = NotebookClient(nb, timeout=plan["cell_timeout"], allow_errors=True, interrupt_on_timeout=True,
                            kernel_name="python3", resources={"metadata": {"path": str(work)}},
                            extra_arguments=["--HistoryManager.hist_file=:memory:", "--InteractiveShell.xmode=Minimal"])
    status = {"timeouts": [], "dead_at": None, "seconds": 0.0}
    t0 = time.perf_counter()
    calls = plan["calls"]
    cells = list(nb.cells)     # nbclient writes the cell it executes into nb.cells[index]: keep the originals
    with client.setup_kernel():
        pre = nbformat.v4.new_code_cell("import course_utils.autograde.kernel as __course_kernel__")
        client.execute_cell(pre, 0, store_history=False)
        for i, cell in enumerate(cells):
            if cell.cell_type != "code":
                continue
            meta = _meta(cell)
            target = cell
            if meta.get("grade") and not meta.get("solution"):
                lines = [f"__course_kernel__.grade_call({c['key']!r}, {c['check']!r}, "
                         f"lambda: ({''.join(s + ', ' for s in c['subjects'])}), {str(folder)!r})"
                         for c in calls if c["test"] == meta.get("grade_id")]
                target = nbformat.v4.new_code_cell("\n".join(lines) or "pass")
            started = time.perf_counter()
            try:
                client.execute_cell(target, i)
            except CellTimeoutError:
                status["timeouts"].append(i)
            except DeadKernelError:
                status["dead_at"] = i
                break
            # with interrupt_on_timeout nbclient interrupts the kernel instead of raising: the cell ends in a
            # KeyboardInterrupt once the timeout has passed
            if time.perf_counter() - started >= plan["cell_timeout"] and i not in status["timeouts"] and any(
                    o.get("output_type") == "error" and o.get("ename") == "KeyboardInterrupt" for o in target.outputs):
                status["timeouts"].append(i)
            if target is not cell:
                cell.outputs = target.outputs
    nb.cells = cells
    status["seconds"] = round(time.perf_counter() - t0, 1)
    nbformat.write(nb, folder / "executed.ipynb")
    (folder / "status.json").write_text(json.dumps(status))
    return status


if __name__ == "__main__":
    run(Path(sys.argv[1]))
