#!/usr/bin/env bash
# Stages llm.c's GPU trainer source (https://github.com/karpathy/llm.c: Makefile, train_gpt2.cu,
# llmc/) into .gpu-debs/llm.c, which scripts/gpu-check.sh carries to the GPU machine and builds
# there as the peer of issue 20's training benchmark. Never committed (.gpu-debs is ignored).
#   scripts/stage-llmc.sh LLMC_CHECKOUT_OR_GIT_DIR   (measured at llm.c commit f1e2ace)
set -euo pipefail
src=${1:?an llm.c checkout or its git dir}
cd "$(dirname "$0")/.."
dest=.gpu-debs/llm.c
rm -rf "$dest" && mkdir -p "$dest"
if [ -d "$src/.git" ] || git --git-dir="$src" rev-parse --git-dir > /dev/null 2>&1; then
  gd=$([ -d "$src/.git" ] && echo "$src/.git" || echo "$src")
  git --git-dir="$gd" archive --format=tar HEAD Makefile train_gpt2.cu llmc | tar -x -C "$dest"
  git --git-dir="$gd" rev-parse --short HEAD > "$dest/COMMIT"
else
  cp -r "$src/Makefile" "$src/train_gpt2.cu" "$src/llmc" "$dest/"
  echo unknown > "$dest/COMMIT"
fi
echo "staged llm.c $(cat "$dest/COMMIT") in $dest ($(du -sh "$dest" | cut -f1))"
