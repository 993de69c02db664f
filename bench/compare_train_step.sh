#!/usr/bin/env bash
# Side by side, in one run, on the same threads: gptrain's training step and PyTorch eager's
# (the book's model) for the same config; prints both JSON lines and the speed ratio.
#   bench/compare_train_step.sh [build-dir] [--batch 2 --context 256 --threads 2 --steps 5 ...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}
shift || true
args=("$@")
ours=$("$build/bench/train_step" "${args[@]}" --sgemm)
theirs=$(python3 "$here/torch_train_step.py" "${args[@]}")
echo "$ours"
echo "$theirs"
python3 - "$ours" "$theirs" <<'PY'
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"speedup gptrain vs {b['impl']}: {b['step_s'] / a['step_s']:.2f}x "
      f"({a['step_s']:.3f} s vs {b['step_s']:.3f} s per step); gptrain at "
      f"{100 * a['gflops'] / a['sgemm_gflops']:.0f}% of this machine's measured sgemm rate "
      f"({a['gflops']:.1f} of {a['sgemm_gflops']:.1f} GFLOP/s)")
PY
