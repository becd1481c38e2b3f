"""The benchmarks' result schema and the summary table that the README and the docs quote.

Nothing is timed here: synthetic result files go through ``benchmarks/common.py``'s writer,
``run_all.summary`` and the docs' ``benchmark-results:: summary`` renderer.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCHMARKS))  # run_all imports common
    try:
        yield importlib.import_module("common"), importlib.import_module("run_all")
    finally:
        sys.path.remove(str(BENCHMARKS))


def _write(common, results: Path, name: str, rows: list[dict]) -> None:
    common.write_results(name, rows, seed=0, results_dir=results)


def test_results_have_one_schema_and_record_the_machine(bench, tmp_path):
    common, _ = bench
    row = common.record("train_step", "mean", "seconds", 2.0, "s", 3, 1.5, 2.0, 2.5)
    path = common.write_results("x", [row], seed=7, results_dir=tmp_path)
    data = json.loads(path.read_text())
    assert set(data) == {"name", "created_utc", "machine", "seed", "rows"}
    assert data["seed"] == 7 and data["rows"] == [row]
    for key in ("cpu_model", "usable_cores", "jax", "device_kind", "allocator"):
        assert key in data["machine"]
    assert set(row) == {"name", "variant", "metric", "value", "unit", "repeats"} | {
        "min",
        "median",
        "max",
    }
    with pytest.raises(ValueError, match="schema key 'rows'"):
        common.write_results("x", [row], seed=0, extra={"rows": []}, results_dir=tmp_path)


def test_summary_merges_partial_full_runs_without_overriding_the_quick_run(bench, tmp_path):
    common, run_all = bench
    quick = [common.record("train_step", "mean", "seconds", 2.25, "s", 2)]
    partial = [
        common.record("train_step", "mean", "seconds", 9.0, "s", 3),  # already in lpn.json
        common.record("train_step", "grad:5", "seconds", 12.5, "s", 3),
    ]
    _write(common, tmp_path, "lpn", quick)
    _write(common, tmp_path, "lpn_train", partial)
    lines = run_all.summary(tmp_path)
    assert "| pattern train step, mean (target 0.6) | 2.25 s | lpn.json |" in lines
    assert "| pattern train step, grad:5 | 12.5 s | lpn.json |" in lines
    assert not any("9 s" in line for line in lines)
    assert lines[-1].startswith("machine: ")


def test_docs_render_the_same_summary_as_rst_tables(bench, tmp_path):
    pytest.importorskip("sphinx")
    common, _ = bench
    _write(common, tmp_path, "lpn", [common.record("search", "grad:100", "seconds_per_task",
                                                   2.38, "s", 2)])  # fmt: skip
    sys.path.insert(0, str(ROOT / "docs" / "_ext"))
    try:
        import benchresults
    finally:
        sys.path.remove(str(ROOT / "docs" / "_ext"))
    rst = benchresults._summary_lines(tmp_path, BENCHMARKS)
    assert rst[:3] == [".. list-table::", "   :header-rows: 1", ""]
    assert "   * - grad:100 search per task (target 0.5)" in rst
    assert "     - 2.38 s" in rst
    assert not any(set(line.strip()) <= set("-|:") and line.strip() for line in rst)
