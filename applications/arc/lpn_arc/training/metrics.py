"""The metrics files of a run folder: ``metrics.jsonl`` and ``metrics.csv``."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from lpn_arc.training.run_folder import atomic_write

__all__ = ["MetricsWriter"]


class MetricsWriter:
    """Appends metric records to ``metrics.jsonl`` and ``metrics.csv`` in the run folder."""

    def __init__(self, run_dir: Path, keep_until: int) -> None:
        self.jsonl = run_dir / "metrics.jsonl"
        self.csv = run_dir / "metrics.csv"
        # on resume, drop records written after the checkpoint we continue from
        records = []
        if self.jsonl.exists():
            for line in self.jsonl.read_text(errors="replace").splitlines():
                try:
                    record = json.loads(line)
                except ValueError:  # e.g. the last line of a run killed while writing it
                    continue
                if isinstance(record, dict) and isinstance(record.get("step"), int):
                    if record["step"] <= keep_until:
                        records.append(record)
        self.records = records
        self._rewrite()

    def _fields(self) -> list[str]:
        fields: dict[str, None] = {}
        for record in self.records:  # union in first-seen order (fine-tuning adds metrics)
            fields.update(dict.fromkeys(record))
        return list(fields)

    def _rewrite(self) -> None:
        atomic_write(self.jsonl, "".join(json.dumps(r) + "\n" for r in self.records))
        self._rewrite_csv()

    def _rewrite_csv(self) -> None:
        if not self.records:
            if self.csv.exists():
                self.csv.unlink()
            return
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=self._fields(), restval="")
        writer.writeheader()
        writer.writerows(self.records)
        atomic_write(self.csv, text.getvalue())

    def write(self, record: dict[str, float]) -> None:
        known = set(self._fields())
        self.records.append(record)
        with self.jsonl.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if len(self.records) == 1 or not set(record) <= known:
            self._rewrite_csv()  # a new column: rewrite with the wider header
            return
        with self.csv.open("a", newline="") as f:
            csv.DictWriter(f, fieldnames=self._fields(), restval="").writerow(record)
