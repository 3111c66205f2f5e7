
"""The fault matrix's CI cells (benchmarks/fault_matrix.py runs them all): each cell is a real
`python -m hookbench` against the stock stand-in with one fault injected at a phase, asserted on exit
code, run status and reason, exact restore (probe losses) and a rerun that keeps every finished answer.
kill -9 is covered by tests/test_recovery.py."""

from __future__ import annotations

import pytest

from hookbench.testing.fault_matrix import CI_CELLS, print_table, run_cell


@pytest.mark.slow
def test_fault_matrix_ci_cells(stock_server, tmp_path, monkeypatch):
    monkeypatch.setenv("FAULT_MATRIX_DIR", str(tmp_path))
    cells = [run_cell(stock_server, phase, fault) for phase, fault in CI_CELLS]
    print_table(cells)
    assert all(c.ok for c in cells), [(c.phase, c.fault, c.problem) for c in cells if not c.ok]
