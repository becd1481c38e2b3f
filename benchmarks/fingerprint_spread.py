"""How far another CPU moves the fingerprint test's pinned numbers, and how far a real change
moves them: the measurement behind ``tests/arc/training/test_fingerprint.py``'s tolerances.

XLA compiles for the CPU it runs on; ``--xla_cpu_max_isa`` makes it emit the code it would
emit for an older one (SSE4.2, AVX, AVX2, AVX-512), which changes vector widths and so the
order of summation, as another machine does. Each level, and each real change of the
computation (``tests.arc.training.fingerprint.VARIANTS``), runs in its own process.

Rows: ``variant="isa=<level>/<dtype>"`` or ``"change=<variant>/<dtype>"``,
``metric="max_rel_dev"``: the largest relative difference from the pinned numbers.

    python -m benchmarks.fingerprint_spread      # about 5 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from benchmarks.common import REPO_ROOT, print_table, record, write_results

ISA_LEVELS = ("SSE4_2", "AVX", "AVX2", "AVX512", "native")
PINNED = REPO_ROOT / "tests" / "arc" / "fixtures" / "fingerprint.json"


def _numbers(isa: str = "native", variant: str | None = None) -> dict:
    env = dict(os.environ)
    if isa != "native":
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_cpu_max_isa={isa}".strip()
    argv = [sys.executable, "-m", "tests.arc.training.fingerprint"]
    argv += ["--variant", variant] if variant else []
    done = subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} (isa {isa}) failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    from tests.arc.training.fingerprint import VARIANTS, relative_deviation

    pinned = json.loads(PINNED.read_text())
    rows = []
    for isa in ISA_LEVELS:
        for dtype, dev in relative_deviation(_numbers(isa), pinned).items():
            rows.append(record("fingerprint_spread", f"isa={isa}/{dtype}", "max_rel_dev", dev, "1"))
    for variant in VARIANTS:
        for dtype, dev in relative_deviation(_numbers(variant=variant), pinned).items():
            rows.append(
                record("fingerprint_spread", f"change={variant}/{dtype}", "max_rel_dev", dev, "1")
            )
    print_table(rows)
    print(write_results("fingerprint_spread", rows, seed=0))


if __name__ == "__main__":
    main()
