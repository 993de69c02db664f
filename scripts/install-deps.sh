#!/usr/bin/env bash
# Installs gptrain's build and test dependencies from Debian (bookworm) packages. Idempotent: when
# every package is already installed it returns at once without touching the network.
set -euo pipefail
packages=(
  build-essential cmake ninja-build pkg-config
  libopenblas-openmp-dev      # BLAS built on OpenMP: one thread pool shared with our kernels
  nlohmann-json3-dev libcli11-dev libfmt-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libpcre2-dev
  libicu-dev                  # NFC for Qwen's tokenizer.json (src/tokenizer/nfc.cpp)
  libcurl4-openssl-dev libssl-dev zlib1g-dev ca-certificates  # downloads (libcurl, HTTPS roots), sha256, zip data sets
  libopenmpi-dev openmpi-bin  # data-parallel training across processes (src/dist/); mpirun for its tests
  libcpp-httplib-dev          # gptrain serve (src/serve/): HTTP/1.1 server, chunked streaming
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
