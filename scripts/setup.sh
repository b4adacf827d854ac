#!/usr/bin/env bash
# Installs every build/test dependency from Debian's repositories when it is missing.
# Idempotent and silent when everything is present. Needs root (apt-get).
set -euo pipefail

packages=(
  cmake ninja-build g++ clang libclang-rt-14-dev pkg-config
  libgtest-dev libgmock-dev libbenchmark-dev
  libcli11-dev libfmt-dev nlohmann-json3-dev libcpp-httplib-dev
  libgoogle-perftools-dev google-perftools liburing-dev
  prometheus procps iproute2 curl python3 python3-matplotlib linux-perf iperf3
  # peers (bench/peers, experiments/peers.sh): Asio, libuv, Go, and Tokio built offline by
  # Debian's cargo against Debian's crates
  libasio-dev libuv1-dev golang-go cargo rustc librust-tokio-dev
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done" >&2
