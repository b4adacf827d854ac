#!/usr/bin/env bash
# The project's test command (README, .ci/run): installs what is missing, then builds and
# runs the whole suite in the release build and under ASan+UBSan, the threaded end-to-end
# tests under TSan, then fuzzes the decoder, the request logic and the io_uring engine's
# completion handling for a bounded time.
# The release build includes the peers of bench/peers (Asio, libuv, Go, Tokio; Go and
# Tokio through bench/peers/build_peers.sh) and peers_test runs each of them under the load
# client; the sanitizer builds skip them (only echo_peer is ours to sanitize).
# Exits non-zero on the first failure.
#   C10M_FUZZ_SECONDS  seconds for the session fuzzer (default 60; the frame reader and the
#                      epoll engine fuzzers get 1/3 each, the io_uring completion fuzzer 1/2)
#   C10M_SKIP_ASAN=1, C10M_SKIP_TSAN=1   skip a sanitizer pass (local iteration only; CI never sets them)
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
fuzz_seconds=${C10M_FUZZ_SECONDS:-60}
step() { printf '\n=== %s (%s)\n' "$*" "$(date +%T)"; }

bash scripts/setup.sh

step "release build"
cmake --preset release >/dev/null
cmake --build --preset release -j "$jobs"
step "release tests"
ctest --preset release -j "$jobs"

if [ "${C10M_SKIP_ASAN:-0}" != 1 ]; then
  step "ASan+UBSan build"
  cmake --preset asan >/dev/null
  cmake --build --preset asan -j "$jobs"
  step "ASan+UBSan tests"
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --preset asan -j "$jobs"
fi

if [ "${C10M_SKIP_TSAN:-0}" != 1 ]; then
  # TSan where threads meet: the server (event loops or connection threads, the signal
  # thread, the admin port; the supervisor and its workers), the io_uring engine in process
  # (its loops, the drain request and a worker's gate from other threads), the load
  # client's loops, and the metrics reader. The CPU profile test is left out: gperftools'
  # SIGPROF sampler writes its buffer from whichever thread the signal lands on, which TSan
  # reports as a race it cannot model.
  step "TSan build (server, load client, their end-to-end tests)"
  cmake --preset tsan >/dev/null
  cmake --build --preset tsan -j "$jobs" --target c10m-server c10m-loadclient server_test \
    metrics_e2e_test loadclient_run_test metrics_shm_region_test workers_test uring_engine_test
  step "TSan tests"
  ctest --preset tsan -j "$jobs" \
    -R 'ServerTest|MetricsE2E|LoadClientRun|MetricsShmRegion|WorkersTest|UringEngine' \
    -E 'GooglePprof'
fi

step "libFuzzer (clang): session ${fuzz_seconds}s, frame reader and epoll engine $((fuzz_seconds / 3))s each, io_uring completions $((fuzz_seconds / 2))s"
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz -j "$jobs" --target session_fuzz frame_reader_fuzz epoll_loop_fuzz \
  uring_loop_fuzz
mkdir -p build/fuzz/corpus-session build/fuzz/corpus-frame build/fuzz/corpus-epoll \
  build/fuzz/corpus-uring
build/fuzz/tests/fuzz/session_fuzz -max_total_time="$fuzz_seconds" -print_final_stats=1 \
  build/fuzz/corpus-session tests/fuzz/corpus/session 2>&1 | tail -n 15
build/fuzz/tests/fuzz/frame_reader_fuzz -max_total_time=$((fuzz_seconds / 3)) \
  build/fuzz/corpus-frame tests/fuzz/corpus/frame_reader 2>&1 | tail -n 5
build/fuzz/tests/fuzz/epoll_loop_fuzz -max_total_time=$((fuzz_seconds / 3)) -timeout=10 \
  build/fuzz/corpus-epoll tests/fuzz/corpus/epoll_loop 2>&1 | tail -n 5
# The io_uring loop against a model of the kernel (no ring needed: runs anywhere).
build/fuzz/tests/fuzz/uring_loop_fuzz -max_total_time=$((fuzz_seconds / 2)) \
  build/fuzz/corpus-uring tests/fuzz/corpus/uring_loop 2>&1 | grep -v 'c10m: warning' | tail -n 5
step "all tests passed"
