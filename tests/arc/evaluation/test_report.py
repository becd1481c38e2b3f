"""The metrics table."""

from lpn_arc.evaluation import format_table


def test_format_table_aligns_percentages():
    rows = [
        {"search": "mean", "top1": 0.25, "pass2": 0.5, "pixel": 0.875, "shape": 1.0,
         "evaluations": 1},
        {"search": "grad:100", "top1": 1 / 3, "pass2": 1.0, "pixel": 0.9, "shape": 1.0,
         "evaluations": 101},
    ]  # fmt: skip
    table = format_table(rows)
    lines = table.splitlines()
    assert lines[0].split() == ["search", "top1", "pass2", "pixel", "shape", "evaluations"]
    assert lines[2].split() == ["mean", "25.0", "50.0", "87.5", "100.0", "1"]
    assert lines[3].split() == ["grad:100", "33.3", "100.0", "90.0", "100.0", "101"]
    assert len({len(line) for line in lines}) == 1
