#!/usr/bin/env bash
# The project's test command (README, .ci/run): installs what is missing, then builds and
# runs the whole suite in the release build and under ASan+UBSan, then fuzzes the decoder
# and request logic for a bounded time. Exits non-zero on the first failure.
#   C10M_FUZZ_SECONDS  seconds for the session fuzzer (default 60; the frame fuzzer gets 1/3)
#   C10M_SKIP_ASAN=1   skip the sanitizer pass (local iteration only; CI never sets it)
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

step "libFuzzer (clang): session ${fuzz_seconds}s, frame reader $((fuzz_seconds / 3))s"
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz -j "$jobs" --target session_fuzz frame_reader_fuzz
mkdir -p build/fuzz/corpus-session build/fuzz/corpus-frame
build/fuzz/tests/fuzz/session_fuzz -max_total_time="$fuzz_seconds" -print_final_stats=1 \
  build/fuzz/corpus-session tests/fuzz/corpus 2>&1 | tail -n 15
build/fuzz/tests/fuzz/frame_reader_fuzz -max_total_time=$((fuzz_seconds / 3)) \
  build/fuzz/corpus-frame 2>&1 | tail -n 5
step "all tests passed"
