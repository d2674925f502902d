#!/usr/bin/env bash
# Installs the Debian packages ufo needs to build, test and benchmark.
# Idempotent: asks apt only for what is missing, so a second run is a no-op.
set -euo pipefail
# Build: compilers (clang + its runtime for the libFuzzer targets), oneDNN, codecs, cJSON.
# Oracles: Debian's torch, Pillow, numpy, scikit-learn, and OpenBLAS so that numpy and
# torch run at a fair speed in the benchmarks. Demo: Fashion-MNIST and Debian's sample
# photos. Bench: /usr/bin/time for peak memory.
pkgs=(cmake make gcc g++ clang libclang-rt-14-dev pkg-config
      libdnnl-dev libjpeg62-turbo-dev libpng-dev libcjson-dev libomp-dev
      libopenmpi-dev openmpi-bin
      python3-torch python3-pil python3-numpy python3-sklearn python-matplotlib-data
      libopenblas0-pthread dataset-fashion-mnist time)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "install-deps: installing ${missing[*]}"
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
