"""The benchmarks' result schema and the summary table that the README and the docs quote.

Nothing is timed here: synthetic result files go through ``benchmarks/common.py``'s writer,
``run_all.summary`` and the docs' ``benchmark-results:: summary`` renderer. The
``benchmarks`` package imports from the repository root, where pytest runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from benchmarks import common, reproduce_paper, reproduce_report, reproduce_runs, run_all

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"


def _write(results: Path, name: str, rows: list[dict]) -> None:
    common.write_results(name, rows, seed=0, results_dir=results)


def test_results_have_one_schema_and_record_the_machine(tmp_path):
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


def test_timed_rows_keep_the_spread_of_their_calls():
    timing = common.Timing(min=1.0, median=2.0, max=4.0, repeats=3, times=(2.0, 1.0, 4.0))
    row = common.timing_record("pattern", "cached", "seconds_per_grid", timing, per=2)
    assert (row["value"], row["min"], row["median"], row["max"]) == (1.0, 0.5, 1.0, 2.0)
    assert row["repeats"] == 3 and row["unit"] == "s"
    rate = common.rate_record("search", "scan", "steps_per_s", timing, 100, "steps/s")
    assert (rate["value"], rate["min"], rate["max"]) == (50.0, 25.0, 100.0)
    sample = common.sample_record("peer", "ours", "seconds", [3.0, 1.0, 2.0, 10.0])
    assert (sample["value"], sample["min"], sample["max"], sample["repeats"]) == (2.5, 1, 10, 4)


def test_a_benchmark_runs_again_as_a_module_of_the_package():
    command = common.module_command(BENCHMARKS / "bench_allocator.py", "--child")
    assert command == [sys.executable, "-m", "benchmarks.bench_allocator", "--child"]
    assert set(run_all.SCRIPTS.values()) <= {p.stem for p in BENCHMARKS.glob("*.py")}


def test_summary_merges_partial_full_runs_without_overriding_the_quick_run(tmp_path):
    quick = [common.record("train_step", "mean", "seconds", 2.25, "s", 2)]
    partial = [
        common.record("train_step", "mean", "seconds", 9.0, "s", 3),  # already in lpn.json
        common.record("train_step", "grad:5", "seconds", 12.5, "s", 3),
    ]
    _write(tmp_path, "lpn", quick)
    _write(tmp_path, "lpn_train", partial)
    lines = run_all.summary(tmp_path)
    assert "| pattern train step, mean (target 0.6) | 2.25 s | lpn.json |" in lines
    assert "| pattern train step, grad:5 | 12.5 s | lpn.json |" in lines
    assert not any("9 s" in line for line in lines)
    assert lines[-1].startswith("machine: ")


def test_docs_render_the_same_summary_as_rst_tables(tmp_path):
    _write(tmp_path, "lpn", [common.record("search", "grad:100", "seconds_per_task", 2.38, "s", 2)])
    sys.path.insert(0, str(ROOT / "docs" / "_ext"))
    try:
        import benchtables  # the renderer of the docs' directive, without Sphinx
    finally:
        sys.path.remove(str(ROOT / "docs" / "_ext"))
    rst = benchtables.summary_lines(tmp_path, BENCHMARKS)
    assert rst[:3] == [".. list-table::", "   :header-rows: 1", ""]
    assert "   * - grad:100 search per task (target 0.5)" in rst
    assert "     - 2.38 s" in rst
    assert not any(set(line.strip()) <= set("-|:") and line.strip() for line in rst)


def test_a_mean_over_seeds_row_keeps_std_and_each_seed(tmp_path):
    row = reproduce_paper._row(
        "table1", "train=grad:1/infer=grad:100", [0.5, 1.0, 0.75], [0, 1, 2], 128, [0.0, 0.0, 0.0]
    )
    assert row["value"] == pytest.approx(0.75) and row["std"] == pytest.approx(0.25)
    assert row["tasks"] == 128 and row["seen_programs"] == 0.0
    assert (row["min"], row["median"], row["max"], row["repeats"]) == (0.5, 0.75, 1.0, 3)
    assert row["seeds"] == [0, 1, 2] and row["per_seed"] == [0.5, 1.0, 0.75]
    path = common.write_results("table1", [row], seed=0, results_dir=tmp_path)
    assert json.loads(path.read_text())["rows"] == [row]
    partial = {k: v for k, v in row.items() if k != "per_seed"}
    with pytest.raises(ValueError, match="row keys"):
        common.write_results("table1", [partial], seed=0, results_dir=tmp_path)


def test_the_reproduced_table_stands_beside_the_papers():
    searches = reproduce_report.TABLE1_SEARCHES
    rows = [
        reproduce_paper._row("table1", f"train={m}/infer={s}", [0.25, 0.75], [0, 1], 64, [0.0, 0.0])
        for m in ("mean", "grad:1")
        for s in searches
    ]
    table = reproduce_report.table1_markdown(rows, ["mean", "grad:1"], searches)
    lines = table.splitlines()
    assert lines[2].startswith("| mean | ours | 50.0 ± 35.4 |")
    assert lines[3] == (
        "| mean | paper | 3.2 ± 2.7 | 3.6 ± 3.0 | 18.8 ± 14.4 | 52.5 ± 25.0 | 67.5 ± 20.0 "
        "| 3.2 ± 2.7 |"
    )
    grad1_sample250 = lines[5].removesuffix(" |").split(" | ")[-1]
    assert grad1_sample250 == "10.2 ± 5.3"
    assert reproduce_runs.model_name("ood", "grad:1") == "pattern-6x6-d0.5-grad1"
