#!/usr/bin/env bash
# The GPU check (issue 20), one command for a fresh H100/H200 machine without network: it has
# nvcc, CMake, ninja, a C++ compiler and Python with PyTorch and transformers, but none of
# Debian's -dev packages. Beforehand, here:
#   scripts/fetch-gpu-debs.sh                       # .gpu-debs/: the packages and the book's data
#   scripts/stage-llmc.sh LLMC_CHECKOUT             # .gpu-debs/llm.c: llm.c's GPU trainer source
# then, through the device tool (carry [".gpu-debs"]), from the repository root:
#   scripts/gpu-check.sh                            # results in $OUT/gpu-check.txt (or ./gpu-check.txt)
# It unpacks the packages into a prefix (never into /), builds the CUDA backend, its tests and
# the benchmarks for the machine's GPU (llm.c's trainer beside, in the background), and runs, in
# this order (later sections are skipped, saying so, once GPU_CHECK_BUDGET seconds have passed,
# 270 by default):
#   1. each kernel against the scalar reference under the harness's error bounds
#      (tests/kernels/cuda_staged.cpp), the model on the GPU against the parity fixtures, the bf16
#      backend against the host's conversions, its widened ops, the products' bounds and the
#      tensor-core attention's (tests/kernels/cuda_bf16_test.cpp, cuda_flash_attention_test.cpp), the
#      batch uploads' ordering (tests/kernels/cuda_runtime_test.cpp);
#   2. the gpt2-small training step, batch 16 x 1024: gptrain f32 and bf16 (bench/train_step
#      --device cuda [--dtype bf16]) beside PyTorch f32, TF32, bf16 and bf16 + torch.compile
#      (bench/torch_gpu_train_step.py), and llm.c (bf16) built from source;
#   3. the book's three runs with --device cuda: chapter 5 pretraining, the spam classifier, the
#      instruction finetune (from the chapter 5 model: no pretrained weights here); chapter 5 in bf16;
#   4. gpt2-medium and a Qwen3-0.6B-shaped model, gptrain and PyTorch;
#   5. the CUDA ops at GPT-2 small's shapes beside PyTorch's (bench/cuda_ops.cpp; attention in
#      bf16 too: the tensor-core kernels and the warp kernels beside SDPA's flash attention).
# Everything it prints goes to the results file too.
set -uo pipefail
cd "$(dirname "$0")/.."
out_dir=${OUT:-.}
results="$(cd "$out_dir" && pwd)/gpu-check.txt"  # absolute: sections run in other dirs
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
budget=${GPU_CHECK_BUDGET:-270}
within_budget() {  # within_budget SECTION: false (and a note) once the budget is spent
  [ "$SECONDS" -lt "$budget" ] && return 0
  log "=== $1: skipped, ${SECONDS} s of the ${budget} s budget spent"
  return 1
}

# llm.c's GPU trainer, built in the background while ours builds (bf16, no cuDNN, no MPI/NCCL).
llmc=.gpu-debs/llm.c
if [ -f "$llmc/train_gpt2.cu" ]; then
  # CUDA 13's cudaMemAdvise takes a cudaMemLocation where llm.c (f1e2ace) passes cudaCpuDeviceId:
  # the same advice (the host), spelled for the new signature, in the staged copy only.
  if nvcc --version | grep -Eq 'release (1[3-9]|[2-9][0-9])\.'; then
    sed -i 's/cudaMemAdviseSetPreferredLocation, cudaCpuDeviceId)/cudaMemAdviseSetPreferredLocation, cudaMemLocation{cudaMemLocationTypeHost, 0})/' \
      "$llmc/llmc/cuda_utils.cuh"
  fi
  # llm.c links -lnvidia-ml; a driver installs libnvidia-ml.so.1, often without the unversioned
  # name the linker looks for: a link to it in a dir of our own (the toolkit's stubs otherwise).
  stubs=$PWD/$llmc/lib
  mkdir -p "$stubs"
  nvml=$(ldconfig -p 2>/dev/null | sed -n 's/.*libnvidia-ml\.so\.1 .*=> //p' | head -n 1)
  if [ -n "$nvml" ]; then ln -sf "$nvml" "$stubs/libnvidia-ml.so"; else stubs=$(dirname "$(command -v nvcc)")/../lib64/stubs; fi
  (cd "$llmc" && make train_gpt2cu USE_CUDNN=0 NO_MULTI_GPU=1 NO_USE_MPI=1 GPU_COMPUTE_CAPABILITY=90 \
     NVCC_LDLIBS="-L$stubs" \
     > build.log 2>&1; echo "exit $?" >> build.log) &
  llmc_build=$!
else
  log "no $llmc: run scripts/stage-llmc.sh here first to compare with llm.c"
fi

build=build-gpu
run "configure" cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGPTRAIN_CUDA=ON -DGPTRAIN_BENCH=ON \
  -DCMAKE_PREFIX_PATH="$prefix/usr" -DICU_ROOT="$prefix/usr" -DOPENSSL_ROOT_DIR="$prefix/usr" \
  -DZLIB_ROOT="$prefix/usr" -DBLAS_LIBRARY="$lib/openblas-openmp/libopenblas.so" \
  -DCBLAS_INCLUDE_DIR="$prefix/usr/include/x86_64-linux-gnu/openblas-openmp" || exit 1
run "build" ninja -C "$build" gptrain cuda_backend_test cuda_bf16_test cuda_runtime_test cuda_model_parity_test cuda_ops \
  train_step || exit 1

status=0
# 1. correctness
run "CUDA kernels against the reference" "$build/tests/kernels/cuda_backend_test" || status=1
run "the model on the GPU against PyTorch's float64 (parity fixtures)" "$build/tests/model/cuda_model_parity_test" || status=1
run "the bf16 backend: conversions, bf16-storage kernels against the widened ops, products and attention within their bounds" \
  "$build/tests/kernels/cuda_bf16_test" || status=1
run "uploads ordered with the queued kernels" "$build/tests/kernels/cuda_runtime_test" || status=1

# 2. the gpt2-small training step, batch 16 x 1024, dropout off, tied head (GPT-2's and llm.c's layout)
if within_budget "gpt2-small step"; then
  run "gpt2-small step, gptrain f32" "$build/bench/train_step" --device cuda --preset gpt2-small --batch 16 \
    --context 1024 --steps 5 --drop 0 --tie || status=1
  run "gpt2-small step, gptrain bf16" "$build/bench/train_step" --device cuda --dtype bf16 \
    --preset gpt2-small --batch 16 --context 1024 --steps 5 --drop 0 --tie || status=1
  run "gpt2-small step, PyTorch" python3 bench/torch_gpu_train_step.py --preset gpt2-small --batch 16 --context 1024 \
    --steps 5 --modes f32,tf32,bf16,bf16-compile || status=1
fi
if [ -n "${llmc_build:-}" ]; then
  wait "$llmc_build"
  run "llm.c build" tail -n 3 "$llmc/build.log"
  [ -x "$llmc/train_gpt2cu" ] || status=1
  if [ -x "$llmc/train_gpt2cu" ] && within_budget "gpt2-small step, llm.c"; then
    python3 - <<'PY'
import numpy as np, os
os.makedirs(".gpu-debs/llm.c/data", exist_ok=True)
rng = np.random.default_rng(0)
for name, n in [("train", 2_000_000), ("val", 200_000)]:  # llm.c's token files: header, then uint16 ids
    h = np.zeros(256, dtype=np.int32)
    h[:3] = [20240520, 1, n]
    with open(f".gpu-debs/llm.c/data/{name}.bin", "wb") as f:
        f.write(h.tobytes())
        f.write(rng.integers(0, 50257, n, dtype=np.uint16).tobytes())
PY
    # -e d12: GPT-2 124M from random weights; bf16 with fp32 master weights, no validation or sampling
    (cd "$llmc" && run "gpt2-small step, llm.c bf16" ./train_gpt2cu -e d12 -b 16 -t 1024 -d 16384 -x 15 -v 0 -s 0 \
       -n 0 -i data/train.bin -j data/val.bin -o none) || status=1
  fi
fi

# 3. the book's three runs on the GPU
gdata=.gpu-debs/data
[ -f "$gdata/the-verdict.txt" ] || log "no $gdata/the-verdict.txt: run scripts/fetch-gpu-debs.sh here first for the book's runs"
if [ -f "$gdata/the-verdict.txt" ] && within_budget "the book's runs"; then
  runs=/tmp/gptrain-book-runs
  rm -rf "$runs"
  run "chapter 5 pretraining (the book's run), --device cuda" "$build/gptrain" pretrain --data-dir "$gdata" \
    --device cuda --out-dir "$runs/ch5" || status=1
  run "chapter 6 spam classifier from the chapter 5 model, --device cuda" "$build/gptrain" finetune-cls \
    --data-dir "$gdata" --init "$runs/ch5/final" --device cuda --out-dir "$runs/ch6" || status=1
  within_budget "chapter 7" &&
    { run "chapter 7 instruction finetune from the chapter 5 model, --device cuda" "$build/gptrain" \
        finetune-instruct --data-dir "$gdata" --init "$runs/ch5/final" --device cuda --answer-tokens 64 \
        --out-dir "$runs/ch7" || status=1; }
  within_budget "chapter 5 in bf16" &&
    { run "chapter 5 pretraining, --device cuda --dtype bf16" "$build/gptrain" pretrain --data-dir "$gdata" \
        --device cuda --dtype bf16 --out-dir "$runs/ch5-bf16" || status=1; }
  within_budget "generate" &&
    { run "generate with the KV cache, --device cuda" "$build/gptrain" generate --model "$runs/ch5/final" \
        --device cuda --prompt "Every effort moves you" --max-new-tokens 200 || status=1; }
fi

# 4. bigger models
for preset in gpt2-medium qwen3-0.6b; do
  within_budget "$preset step" || break
  run "$preset step, gptrain f32" "$build/bench/train_step" --device cuda --preset "$preset" --batch 8 \
    --context 1024 --steps 3 --drop 0 --tie || status=1
  run "$preset step, PyTorch" python3 bench/torch_gpu_train_step.py --preset "$preset" --batch 8 --context 1024 \
    --steps 3 --modes f32,bf16 || status=1
done

# 5. the ops at GPT-2 small's shapes (batch 8 x 1024), ours and PyTorch's float32 ones on this card
if within_budget "CUDA ops"; then
  run "CUDA ops, gptrain" "$build/bench/cuda_ops" 8 1024 768 12 50257 || status=1
  run "CUDA ops, PyTorch" python3 bench/cuda_ops_torch.py 8 1024 768 12 50257 || status=1
fi
log "gpu-check: $([ "$status" -eq 0 ] && echo passed || echo FAILED) after ${SECONDS} s; results in $results"
exit "$status"
