#!/usr/bin/env bash
# Installs the Debian packages ufo needs to build, test and benchmark.
# Idempotent: asks apt only for what is missing, so a second run is a no-op.
set -euo pipefail
pkgs=(cmake make gcc clang libclang-rt-14-dev pkg-config
      libdnnl-dev libjpeg62-turbo-dev libpng-dev libcjson-dev libomp-dev
      libopenmpi-dev openmpi-bin
      python3-torch python3-pil python3-numpy python3-sklearn python-matplotlib-data
      libopenblas0-pthread)  # an optimised BLAS for numpy/torch: benchmarks compare against a fair peer
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
