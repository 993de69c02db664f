#!/usr/bin/env bash
# The GPU check (issue 20), one command for a fresh H100/H200 machine without network: it has
# nvcc, CMake, ninja and a C++ compiler, but none of Debian's -dev packages. Beforehand, here:
#   scripts/fetch-gpu-debs.sh              # .gpu-debs/, about 41 MB
# then, through the device tool (carry [".gpu-debs"]), from the repository root:
#   scripts/gpu-check.sh                   # results in $OUT/gpu-check.txt (or ./gpu-check.txt)
# It unpacks the packages into a prefix (never into /), builds the CUDA backend and its tests for
# the machine's GPU, and runs them: each kernel against the scalar reference under the harness's
# error bounds (tests/kernels/cuda_staged.cpp), then times the ops at GPT-2 small's shapes beside
# PyTorch's (bench/cuda_ops.cpp, bench/cuda_ops_torch.py). Everything it prints goes to the results
# file too.
# Budget: the build takes about a minute on 16 cores; the whole check well under 5 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
out_dir=${OUT:-.}
results="$out_dir/gpu-check.txt"
: > "$results"
log() { echo "$*" | tee -a "$results"; }
run() {  # run TITLE COMMAND...: the command's output into the results, with its time and exit code
  local title=$1
  shift
  log "=== $title: $*"
  local start=$SECONDS
  "$@" 2>&1 | tee -a "$results"
  local rc=${PIPESTATUS[0]}
  log "=== $title: exit $rc after $((SECONDS - start)) s"
  return "$rc"
}

log "gptrain GPU check, $(date -u '+%Y-%m-%d %H:%M:%S UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
run "GPU" nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
run "nvcc" nvcc --version

prefix=/tmp/gptrain-prefix
if ! ls .gpu-debs/*.deb > /dev/null 2>&1; then
  log "no .gpu-debs/*.deb: run scripts/fetch-gpu-debs.sh on a Debian machine first and carry .gpu-debs"
  exit 1
fi
rm -rf "$prefix" && mkdir -p "$prefix"
for f in .gpu-debs/*.deb; do dpkg-deb -x "$f" "$prefix" || { log "cannot unpack $f"; exit 1; }; done
lib=$prefix/usr/lib/x86_64-linux-gnu
export PATH="$prefix/usr/bin:$PATH"
export LD_LIBRARY_PATH="$lib:$lib/openblas-openmp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PKG_CONFIG_PATH="$lib/pkgconfig:$prefix/usr/share/pkgconfig"
export PKG_CONFIG_SYSROOT_DIR="$prefix"  # the .pc files say /usr: their paths under the prefix
log "prefix $prefix: $(ls .gpu-debs/*.deb | wc -l) packages"

build=build-gpu
run "configure" cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGPTRAIN_CUDA=ON -DGPTRAIN_BENCH=ON \
  -DCMAKE_PREFIX_PATH="$prefix/usr" -DICU_ROOT="$prefix/usr" -DOPENSSL_ROOT_DIR="$prefix/usr" \
  -DZLIB_ROOT="$prefix/usr" -DBLAS_LIBRARY="$lib/openblas-openmp/libopenblas.so" \
  -DCBLAS_INCLUDE_DIR="$prefix/usr/include/x86_64-linux-gnu/openblas-openmp" || exit 1
run "build" ninja -C "$build" cuda_backend_test cuda_model_parity_test kernels_test cuda_ops || exit 1

status=0
run "CUDA kernels against the reference" "$build/tests/kernels/cuda_backend_test" || status=1
run "the model on the GPU against PyTorch's float64 (parity fixtures)" "$build/tests/model/cuda_model_parity_test" || status=1
run "CPU kernels (the same harness, for comparison)" "$build/tests/kernels/kernels_test" --gtest_brief=1 || status=1
# The ops at GPT-2 small's shapes (batch 8 x 1024), ours and PyTorch's float32 ones on this card.
run "CUDA ops, gptrain" "$build/bench/cuda_ops" 8 1024 768 12 50257 || status=1
run "CUDA ops, PyTorch" python3 bench/cuda_ops_torch.py 8 1024 768 12 50257 || status=1
log "gpu-check: $([ "$status" -eq 0 ] && echo passed || echo FAILED); results in $results"
exit "$status"
