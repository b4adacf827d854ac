#!/usr/bin/env bash
# A long fuzzing run of one libFuzzer target, its coverage, and the corpus it grows.
#   usage: experiments/fuzz_long.sh FUZZER [SECONDS=3600]
#   FUZZER: session | frame_reader | epoll_loop | uring_loop (tests/fuzz/<FUZZER>_fuzz.cc)
# Builds the target twice (fuzz preset: ASan+UBSan; fuzzcov preset: llvm-cov, no
# sanitizers), fuzzes for SECONDS from the repository corpus (new inputs go to
# results/fuzz/FUZZER/corpus), merges what adds coverage back into tests/fuzz/corpus/FUZZER
# (commit it: the corpus grows in the repository), replays the merged corpus in the coverage
# build and reports line/region/branch coverage of the files under test. Writes
# results/fuzz_FUZZER.json and results/fuzz_FUZZER.png (coverage against executions).
# It is not a measurement: exec/s depends on what else runs.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZER=${1:?usage: experiments/fuzz_long.sh session|frame_reader|epoll_loop|uring_loop [SECONDS]}
SECONDS_RUN=${2:-3600}
case "$FUZZER" in
  session) FILES="src/core/session.cc src/proto/frame.cc" ;;
  frame_reader) FILES="src/proto/frame_reader.h src/proto/frame.cc" ;;
  epoll_loop) FILES="src/engine/epoll/epoll_loop.cc src/core/session.cc" ;;
  uring_loop) FILES="src/engine/uring/uring_loop.cc src/engine/uring/uring_buffer_ring.cc src/core/session.cc" ;;
  *) echo "unknown fuzzer $FUZZER" >&2; exit 2 ;;
esac
TARGET=${FUZZER}_fuzz
OUT=results/fuzz/$FUZZER
mkdir -p "$OUT/corpus" results
bash scripts/setup.sh

cmake --preset fuzz >/dev/null
cmake --build --preset fuzz -j 2 --target "$TARGET" >/dev/null
cmake --preset fuzzcov >/dev/null
cmake --build --preset fuzzcov -j 2 --target "$TARGET" >/dev/null

REPO_CORPUS=tests/fuzz/corpus/$FUZZER
before=$(find "$REPO_CORPUS" -type f | wc -l)
CMD="build/fuzz/tests/fuzz/$TARGET -max_total_time=$SECONDS_RUN -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix=$OUT/ $OUT/corpus $REPO_CORPUS"
echo "$CMD" >&2
set +e
$CMD >"$OUT/log.txt" 2>&1
rc=$?
set -e
tail -n 8 "$OUT/log.txt" >&2

# Grow the repository corpus with what adds coverage (never removes a file).
build/fuzz/tests/fuzz/$TARGET -merge=1 "$REPO_CORPUS" "$OUT/corpus" >"$OUT/merge.txt" 2>&1 || true
after=$(find "$REPO_CORPUS" -type f | wc -l)

# Coverage of the merged corpus, in the uninstrumented-by-sanitizer coverage build.
rm -f "$OUT"/cov-*.profraw
LLVM_PROFILE_FILE="$OUT/cov-%p.profraw" build/fuzzcov/tests/fuzz/$TARGET -runs=0 "$REPO_CORPUS" \
  >"$OUT/cov_run.txt" 2>&1 || true
llvm-profdata merge -sparse "$OUT"/cov-*.profraw -o "$OUT/cov.profdata"
# shellcheck disable=SC2086
llvm-cov report "build/fuzzcov/tests/fuzz/$TARGET" -instr-profile="$OUT/cov.profdata" $FILES \
  >"$OUT/coverage.txt"
# shellcheck disable=SC2086
llvm-cov export -summary-only "build/fuzzcov/tests/fuzz/$TARGET" \
  -instr-profile="$OUT/cov.profdata" $FILES >"$OUT/coverage.json"
cat "$OUT/coverage.txt" >&2

HOST=$(bash scripts/host_record.sh)
/usr/bin/python3 - "$FUZZER" "$SECONDS_RUN" "$CMD" "$rc" "$before" "$after" "$OUT" "$HOST" <<'PY'
import json, re, sys, glob
fuzzer, secs, cmd, rc, before, after, out, host = sys.argv[1:9]
log = open(f"{out}/log.txt", errors="replace").read()
stats = dict(re.findall(r"stat::(\w+):\s+(\d+)", log))
points = []  # (executions, cov, ft) from libFuzzer's status lines
for m in re.finditer(r"^#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+)", log, re.M):
    points.append((int(m.group(1)), int(m.group(2)), int(m.group(3))))
last = points[-1] if points else (0, 0, 0)
cov = json.load(open(f"{out}/coverage.json"))
files = {}
for f in cov["data"][0]["files"]:
    s = f["summary"]
    name = f["filename"].split("/src/")[-1]
    files[name] = {k: round(s[k]["percent"], 2) for k in ("lines", "regions", "branches", "functions")}
crashes = [p for p in glob.glob(f"{out}/crash-*") + glob.glob(f"{out}/timeout-*") + glob.glob(f"{out}/oom-*") + glob.glob(f"{out}/leak-*")]
res = {
    "fuzzer": fuzzer, "seconds": int(secs), "command": cmd, "exit_code": int(rc),
    "executions": int(stats.get("number_of_executed_units", 0)),
    "exec_per_s": int(stats.get("average_exec_per_sec", 0)),
    "peak_rss_mb": int(stats.get("peak_rss_mb", 0)),
    "edges_covered": last[1], "features": last[2],
    "corpus_files_before": int(before), "corpus_files_after": int(after),
    "artifacts": crashes, "coverage_percent": files,
    "host": json.loads(host),
}
json.dump(res, open(f"results/fuzz_{fuzzer}.json", "w"), indent=2)
print(json.dumps({k: v for k, v in res.items() if k != "host"}, indent=2))
try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    if points:
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.plot([p[0] for p in points], [p[1] for p in points], label="edges (cov)")
        ax2 = ax.twinx()
        ax2.plot([p[0] for p in points], [p[2] for p in points], color="tab:orange", label="features (ft)")
        ax.set_xscale("log")
        ax.set_xlabel("executions")
        ax.set_ylabel("edges covered")
        ax2.set_ylabel("features")
        ax.set_title(f"{fuzzer}_fuzz, {int(secs)} s: {res['executions']:,} executions, {res['exec_per_s']:,}/s")
        fig.legend(loc="lower right")
        fig.tight_layout()
        fig.savefig(f"results/fuzz_{fuzzer}.png", dpi=110)
except ImportError:
    pass
PY
[ "$rc" -eq 0 ] || { echo "fuzzer exited $rc: see $OUT/log.txt and artifacts in $OUT/" >&2; exit 1; }
