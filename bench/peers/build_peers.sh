#!/usr/bin/env bash
# Builds the peers that are not C++ (bench/peers/go, bench/peers/tokio) into OUTDIR, from
# Debian 12 packages only and without any network:
#   go     /usr/bin/go (golang-go), standard library only; GOPROXY=off, GOFLAGS=-mod=mod off
#   tokio  Debian's /usr/bin/cargo and /usr/bin/rustc (never rustup's), offline, with crates
#          from /usr/share/cargo/registry (librust-tokio-dev) through a source replacement
#          written into the build directory's cargo config; no other registry is reachable.
# CMake calls it (bench/peers/CMakeLists.txt) when the toolchains are installed; it can also
# be run by hand:
#   bash bench/peers/build_peers.sh go|tokio|all OUTDIR [CACHEDIR]
# CACHEDIR (default OUTDIR/cache) holds the Go build cache and cargo's target directory; the
# CMake presets share one so that the release and sanitizer builds compile each only once.
# Exit status: 0 built, 1 build failed, 3 the toolchain is missing (message on stderr).
set -euo pipefail
what=${1:?usage: build_peers.sh go|tokio|all OUTDIR [CACHEDIR]}
out=${2:?usage: build_peers.sh go|tokio|all OUTDIR [CACHEDIR]}
src=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
cache=${3:-$out/cache}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)

build_go() {
  if [ ! -x /usr/bin/go ]; then
    echo "build_peers: /usr/bin/go missing (apt-get install golang-go)" >&2
    return 3
  fi
  # Standard library only: no module download is possible (GOPROXY=off), no go.mod needed.
  env -u GOPATH GOCACHE="$cache/go-build" GOPATH="$cache/gopath" GOPROXY=off GOFLAGS= \
    GO111MODULE=off CGO_ENABLED=0 \
    /usr/bin/go build -trimpath -o "$out/go_echo_peer" "$src/go/main.go"
}

build_tokio() {
  if [ ! -x /usr/bin/cargo ] || [ ! -x /usr/bin/rustc ]; then
    echo "build_peers: Debian's /usr/bin/cargo or /usr/bin/rustc missing (apt-get install cargo rustc)" >&2
    return 3
  fi
  if ! compgen -G "/usr/share/cargo/registry/tokio-1.*" >/dev/null; then
    echo "build_peers: /usr/share/cargo/registry/tokio-1.* missing (apt-get install librust-tokio-dev)" >&2
    return 3
  fi
  # A private copy of the crate with its own cargo home: the source replacement lives in
  # the build directory, so neither the source tree nor ~/.cargo (rustup's) is touched,
  # and Cargo.lock is resolved against the versions Debian ships.
  local work="$out/tokio-src" home="$out/cargo-home"
  mkdir -p "$work/src" "$home"
  cp -p "$src/tokio/Cargo.toml" "$work/Cargo.toml"
  cp -p "$src/tokio/src/main.rs" "$work/src/main.rs"
  cat >"$home/config.toml" <<'TOML'
# Written by bench/peers/build_peers.sh: every crate comes from Debian's packages.
[source.crates-io]
replace-with = "debian"

[source.debian]
directory = "/usr/share/cargo/registry"

[net]
offline = true
TOML
  CARGO_HOME="$home" RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTUP_TOOLCHAIN= \
    CARGO_TARGET_DIR="$cache/cargo-target" PATH="/usr/bin:/bin" \
    /usr/bin/cargo build --release --offline --quiet --manifest-path "$work/Cargo.toml"
  cp -p "$cache/cargo-target/release/tokio_echo_peer" "$out/tokio_echo_peer"
}

case "$what" in
  go) build_go ;;
  tokio) build_tokio ;;
  all)
    rc=0
    build_go || rc=$?
    build_tokio || rc=$?
    exit $rc
    ;;
  *) echo "build_peers: unknown peer '$what' (go, tokio, all)" >&2; exit 2 ;;
esac
