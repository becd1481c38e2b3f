"""The figures of an evaluation."""

import numpy as np
import pytest
from lpn_arc.config import parse_search
from lpn_arc.evaluation import EvalOutput
from lpn_arc.plots import (
    interesting_tasks,
    plot_accuracy_vs_steps,
    plot_search_traces,
    plot_tasks,
    search_steps,
)

from tests.arc.helpers import EVAL_TASKS


def _is_png(path):
    data = path.read_bytes()
    return len(data) > 100 and data[:8] == b"\x89PNG\r\n\x1a\n"


def test_search_steps():
    assert search_steps("mean") == 0
    assert search_steps("grad:25") == 25
    assert search_steps("grad:5:implicit") == 5
    assert search_steps("sample:250") is None
    assert search_steps("hybrid:10:5") is None


def test_plots_write_png(tmp_path, tiny_eval, mean_output, grad_output, sample_padded):
    _, _, tasks = tiny_eval
    rows = [mean_output.metrics, grad_output.metrics, sample_padded.metrics]
    path = plot_accuracy_vs_steps(rows, tmp_path / "a" / "accuracy.png")
    assert path == tmp_path / "a" / "accuracy.png" and _is_png(path)
    path = plot_tasks(tasks, grad_output, tmp_path / "b" / "tasks.png", num_tasks=3)
    assert _is_png(path)
    path = plot_tasks(tasks, mean_output, tmp_path / "tasks_all.png", num_tasks=50)
    assert _is_png(path)
    path = plot_search_traces(grad_output.traces, tmp_path / "c" / "traces.png")
    assert _is_png(path)
    path = plot_search_traces(mean_output.traces, tmp_path / "traces_empty.png")
    assert _is_png(path)
    path = plot_tasks(tasks, grad_output, tmp_path / "chosen.png", indices=[4, 0])
    assert _is_png(path)
    with pytest.raises(ValueError, match="indices"):
        plot_tasks(tasks, grad_output, tmp_path / "bad.png", indices=[EVAL_TASKS])


def _fake_output(top1):
    top1 = np.asarray(top1, bool)
    return EvalOutput(
        attempt_1=np.zeros((len(top1), 1, 1)), attempt_2=np.zeros((len(top1), 1, 1)),
        attempt_shapes=np.ones((len(top1), 2, 2)), scores=np.zeros((len(top1), 2)),
        traces=np.zeros((len(top1), 0)), metrics={}, per_task={"top1": top1},
    )  # fmt: skip


def test_interesting_tasks_prefers_fixed_then_failed():
    before = _fake_output([1, 0, 0, 0, 0, 1, 0])
    after = _fake_output([1, 0, 1, 1, 0, 1, 1])
    # fixed by search: 2, 3, 6 (up to 3 of 4); still wrong: 1; then the rest in order
    assert interesting_tasks(before, after) == [2, 3, 6, 1]
    assert interesting_tasks(before, after, num_tasks=6) == [2, 3, 6, 1, 0, 4]
    assert interesting_tasks(before, after, num_tasks=2) == [2, 1]
    assert interesting_tasks(_fake_output([1]), _fake_output([1])) == [0]
    with pytest.raises(ValueError, match="differ"):
        interesting_tasks(before, _fake_output([1]))


def test_search_steps_reads_the_parsed_specification():
    assert search_steps(parse_search("grad:12:unrolled")) == 12
    assert search_steps(parse_search("es:4:3")) is None
    assert search_steps("a free label") is None  # drawn as a line with its label
