#!/usr/bin/env bash
# One-shot set-up on a fresh Debian machine: system packages, a virtual environment in .venv,
# and the project with pinned dependencies. Idempotent; safe to run again.
#
#   bash scripts/setup.sh          # runtime only
#   bash scripts/setup.sh --dev    # plus test and lint tools
#   bash scripts/setup.sh --gpu    # plus onnxruntime-gpu (CUDA machines)
set -euo pipefail
cd "$(dirname "$0")/.."

extras=""
dev=0
for arg in "$@"; do
  case "$arg" in
    --dev) extras="${extras:+$extras,}dev"; dev=1 ;;
    --gpu) extras="${extras:+$extras,}gpu" ;;
    *) echo "setup.sh: unknown option '$arg' (use --dev and/or --gpu)" >&2; exit 2 ;;
  esac
done

# System packages: libusb for open3d's native library; with --dev, what the tests drive.
apt_packages=(libusb-1.0-0)
# Tests also run a real MQTT broker (the one docker-compose.yml deploys), make TLS certificates and drive
# the dashboard in Debian's headless Chromium.
if [ "$dev" -eq 1 ]; then apt_packages+=(mosquitto openssl chromium chromium-driver); fi
missing=()
for p in "${apt_packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  echo "setup: installing system packages: ${missing[*]}"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi

python=${PYTHON:-python3.11}
command -v "$python" >/dev/null 2>&1 || python=python3
[ -x .venv/bin/python ] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip --disable-pip-version-check -q)
# torch is pinned first: 2.13.0 is the CPU build on this disk; an unpinned torch pulls a multi-GB CUDA build.
"${pip[@]}" install "torch==2.13.0"
"${pip[@]}" install -e ".${extras:+[$extras]}"
echo "setup: done (.venv)"
