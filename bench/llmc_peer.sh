#!/usr/bin/env bash
# Builds llm.c's CPU trainer (train_gpt2.c) beside the project as the second peer of
# bench/compare.py --sections llmc. llm.c is never committed here: pass a checkout of
# https://github.com/karpathy/llm.c (measured at commit f1e2ace).
#
#   bench/llmc_peer.sh LLMC_CHECKOUT OUT_DIR [B] [T] [STEPS]
#   python3 bench/compare.py --sections llmc --llmc OUT_DIR --llmc-batch B --llmc-context T
#
# The only changes to train_gpt2.c are its hard-coded batch size, sequence length and step count
# (B=4, T=64, 40 steps upstream), replaced by -D values so it trains the shapes we compare. Its
# weights are random (no GPT-2 checkpoint here) and its data random tokens: llm.c's step time does
# not depend on either. Compiler flags are llm.c's Makefile's for the CPU build with OpenMP.
set -euo pipefail
src=${1:?llm.c checkout}; out=${2:?output dir}; B=${3:-2}; T=${4:-256}; STEPS=${5:-4}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
sed -e 's/int B = 4;/int B = LLMC_B;/' -e 's/int T = 64;/int T = LLMC_T;/' \
    -e 's/step <= 40; step++/step <= LLMC_STEPS; step++/' "$src/train_gpt2.c" > "$out/train_gpt2.c"
grep -q LLMC_B "$out/train_gpt2.c" && grep -q LLMC_STEPS "$out/train_gpt2.c" || { echo "train_gpt2.c changed upstream: patch by hand" >&2; exit 1; }
cp -r "$src/llmc" "$out/"
gcc -Ofast -Wno-unused-result -Wno-ignored-pragmas -Wno-unknown-attributes -march=native -fopenmp -DOMP \
    -DLLMC_B="$B" -DLLMC_T="$T" -DLLMC_STEPS="$STEPS" -I"$out" "$out/train_gpt2.c" -lm -lgomp -o "$out/train_gpt2"
(cd "$out" && python3 "$here/llmc_files.py")
echo "built $out/train_gpt2 (B=$B T=$T steps=$STEPS)"
