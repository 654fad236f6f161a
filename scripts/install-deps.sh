#!/usr/bin/env bash
# Installs, with apt, whatever DRIFA needs that this Debian machine lacks. Safe to re-run.
set -euo pipefail
PACKAGES=(
  build-essential cmake pkg-config g++
  libtorch-dev libopenblas0-pthread            # LibTorch 1.13 (CPU); OpenBLAS instead of reference BLAS
  libopencv-dev libgdcm-dev                    # image decoding, DICOM
  libjpeg62-turbo-dev zlib1g-dev               # image integrity checks (libjpeg's warnings, PNG CRCs)
  libcli11-dev nlohmann-json3-dev libtomlplusplus-dev libspdlog-dev libfmt-dev libgloo-dev
  libgtest-dev
  libmicrohttpd-dev                            # drifa serve (HTTP: epoll, connection caps)
  libinsighttoolkit5-dev                       # volumes: NIfTI and DICOM series with their geometry (ITK)
  libcpp-httplib-dev                           # the serve tests' HTTP client
  clang libclang-rt-14-dev libfuzzer-14-dev    # the sanitizer build (ASan/UBSan runtimes) and the fuzz targets (scripts/sanitize.sh)
  python3-torch python3-sklearn python3-scipy python3-pydicom python3-nibabel python3-prometheus-client  # comparison peers in tests and benchmarks only
  gnuplot-nox dataset-fashion-mnist chromium   # plots for the report; headless Chromium renders it in a test
  mricron-data                                 # real brain volumes (NIfTI) for the volume tests and study
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
