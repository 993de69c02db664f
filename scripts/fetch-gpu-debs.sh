#!/usr/bin/env bash
# Run here (a Debian bookworm machine with package access), before a GPU session: downloads into
# .gpu-debs/ (ignored by git) the Debian packages that the GPU machine lacks and gptrain's build
# needs: that machine has nvcc, CMake, ninja and a C++ compiler but no network and no -dev
# packages. scripts/gpu-check.sh unpacks them into a prefix there, never into /. It also copies
# the few data files of the book's three runs from the data dir (DATA_DIR, default ../shared/data)
# into .gpu-debs/data. About 45 MB; carry it with the device tool's `carry: [".gpu-debs"]`.
# llm.c, the training peer, is staged beside them by scripts/stage-llmc.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
packages=(
  libfmt-dev libfmt9 nlohmann-json3-dev libcli11-dev libgtest-dev libgmock-dev libbenchmark-dev libbenchmark1debian
  libopenblas-openmp-dev libopenblas0-openmp libgfortran5 libgomp1
  libicu-dev libicu72 zlib1g-dev libzstd-dev libpcre2-dev
  libcurl4-openssl-dev libcurl4 libnghttp2-14 librtmp1 libssh2-1 libpsl5 libldap-2.5-0 libgssapi-krb5-2 libidn2-0
  libssl-dev libssl3 libcpp-httplib-dev libcpp-httplib0.11 libbrotli-dev libbrotli1
  pkgconf pkgconf-bin libpkgconf3
)
mkdir -p .gpu-debs
grep -qx '/.gpu-debs/' .git/info/exclude 2>/dev/null || echo '/.gpu-debs/' >> .git/info/exclude
(cd .gpu-debs && apt-get download "${packages[@]}")
data=${DATA_DIR:-../shared/data}
mkdir -p .gpu-debs/data/sms_spam .gpu-debs/data/gpt2_tokenizer
cp "$data/the-verdict.txt" "$data/instruction-data.json" .gpu-debs/data/
cp "$data/sms_spam/SMSSpamCollection" .gpu-debs/data/sms_spam/
cp "$data/gpt2_tokenizer/encoder.json" "$data/gpt2_tokenizer/vocab.bpe" .gpu-debs/data/gpt2_tokenizer/
du -sh .gpu-debs
