#!/usr/bin/env bash
# GPU/TPU check of lpn-arc at paper scale (run on a machine with an accelerator):
#   1. one arc-paper training step (Table 16: 44.6M parameters, bfloat16) on BATCH tasks
#      (default 8 per device: the paper's 256 ran on 32 TPU chips, and the full-attention
#      activations of 1805-token sequences take ~1.5 GB per task): time, XLA's memory
#      estimate and the device's measured peak memory;
#   2. the evaluation throughput of the repo-size ARC model (6.48M parameters) with grad:100
#      on ARC-AGI-1 evaluation tasks, measured directly, extrapolated to all 400 tasks;
#   3. a cached 30x30 generation check (python -m benchmarks.bench_generate --quick).
# Results: benchmarks/results/gpu_arc.json (and generate.json); a summary table is printed.
#
#   bash benchmarks/gpu_check.sh [TASKS]        # TASKS evaluation tasks, default 40
#
# Needs the venv (make .venv/.installed-dev) with a CUDA-enabled jax
# (pip install -U "jax[cuda12]"); it refuses to run on a CPU-only jax.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
TASKS=${1:-40}

"$PY" - <<'EOF'
import jax, sys
backend = jax.default_backend()
print(f"jax {jax.__version__}, backend {backend}, devices {jax.devices()}")
if backend == "cpu":
    sys.exit("gpu_check.sh: no accelerator visible to jax; install jax[cuda12] first")
EOF

"$PY" -m benchmarks.bench_arc --name gpu_arc --preset arc-paper --batch-size "${BATCH:-8}" \
  --eval-preset arc-repo --tasks "$TASKS" --search grad:100 --direct --eval-batch 32
if [ -f benchmarks/bench_generate.py ]; then
  "$PY" -m benchmarks.bench_generate --quick
fi
