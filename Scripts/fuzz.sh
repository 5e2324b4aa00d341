#!/usr/bin/env bash
# Runs the libFuzzer targets on their committed seed corpus (Docs/FUZZING.md).
#
#   Scripts/fuzz.sh TARGET SECONDS    fuzz one target (bundle import identity note witness signature range journal
#                                     grant claims)
#   Scripts/fuzz.sh all SECONDS       fuzz each target in turn for SECONDS
#   Scripts/fuzz.sh TARGET FILE…      run the target once on each FILE (to reproduce a crash)
#   Scripts/fuzz.sh seeds             remake Fuzz/corpus/ with the real code
#
# CUSTODY_FUZZ_RUNS=N stops a target after N inputs (for long runs: -runs of libFuzzer).
# Builds `custody-fuzz` first when needed (CUSTODY_FUZZ=1, scratch path CUSTODY_FUZZ_SCRATCH_PATH, default
# .build-fuzz, so the normal build is untouched). New inputs go to <scratch>/fuzz/<target>/corpus, crash files and
# the log to <scratch>/fuzz/<target>/. Prints execs and crashes; exits 1 when a target crashed or hung.
set -euo pipefail
cd "$(dirname "$0")/.."

targets=(bundle import identity note witness signature range journal grant claims)
scratch_path=${CUSTODY_FUZZ_SCRATCH_PATH:-.build-fuzz}
usage() {
    echo "usage: Scripts/fuzz.sh TARGET|all SECONDS | TARGET FILE… | seeds   (targets: ${targets[*]})" >&2
    exit 64
}
[ $# -ge 1 ] || usage

build() {
    local started=$SECONDS
    mkdir -p "$scratch_path/fuzz"
    if ! CUSTODY_FUZZ=1 swift build --scratch-path "$scratch_path" --product custody-fuzz \
        >"$scratch_path/fuzz/build.log" 2>&1; then
        tail -40 "$scratch_path/fuzz/build.log" >&2
        echo "custody fuzz: the fuzz build failed — see $scratch_path/fuzz/build.log" >&2
        exit 1
    fi
    echo "custody fuzz: built custody-fuzz in $((SECONDS - started)) s"
}

binary() { echo "$scratch_path/debug/custody-fuzz"; }

# A private folder for the per-input files, in memory when /dev/shm exists.
scratch_dir() { mktemp -d "$([ -d /dev/shm ] && echo /dev/shm || echo "${TMPDIR:-/tmp}")/custody-fuzz.XXXXXX"; }

# fuzz TARGET SECONDS: returns 0 when no crash, 1 otherwise.
fuzz() {
    local target=$1 seconds=$2
    local out="$scratch_path/fuzz/$target"
    mkdir -p "$out/corpus"
    rm -f "$out"/crash-* "$out"/timeout-* "$out"/oom-* "$out"/leak-*
    local log="$out/fuzz.log" tmp rc=0 started=$SECONDS seeds="Fuzz/corpus/$target"
    # The import planner reads only bundles addressed to its own archive, made afresh for each run (live.bundle);
    # the bundle seeds give it the records' structure.
    if [ "$target" = import ]; then seeds=Fuzz/corpus/bundle; fi
    tmp=$(scratch_dir)
    # The fuzzer stops itself after SECONDS; the KILL bounds a hang in its own shutdown.
    CUSTODY_FUZZ_TARGET=$target CUSTODY_FUZZ_SCRATCH=$tmp CUSTODY_FUZZ_LIVE_SEED=$out/corpus/live.bundle \
        ASAN_OPTIONS=detect_leaks=0 timeout -s KILL $((seconds + 60)) "$(binary)" \
        -max_total_time="$seconds" -close_fd_mask=3 -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 -dict=Fuzz/dict/custody.dict \
        ${CUSTODY_FUZZ_RUNS:+-runs=$CUSTODY_FUZZ_RUNS} -artifact_prefix="$out/" "$out/corpus" "$seeds" >"$log" 2>&1 || rc=$?
    rm -rf "$tmp"
    local execs crashes
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    crashes=$(find "$out" -maxdepth 1 \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' \) | wc -l)
    if [ -z "$execs" ]; then
        execs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#')
    fi
    execs=${execs:-0}
    local rate elapsed=$((SECONDS - started))
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    echo "fuzz $target: $execs execs in $elapsed s (${rate:-?}/s), $crashes crashes, exit $rc; log $log"
    if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ]; then
        grep -m 5 -E 'ERROR|Fatal error|Precondition failed|deadly signal|SUMMARY' "$log" >&2 || true
        ls "$out"/crash-* "$out"/timeout-* "$out"/oom-* "$out"/leak-* 2>/dev/null >&2 || true
        return 1
    fi
}

case $1 in
seeds)
    build
    rm -rf Fuzz/corpus
    tmp=$(scratch_dir)
    CUSTODY_FUZZ_MAKE_SEEDS="$PWD/Fuzz/corpus" CUSTODY_FUZZ_SCRATCH=$tmp ASAN_OPTIONS=detect_leaks=0 "$(binary)"
    rm -rf "$tmp"
    find Fuzz/corpus -type f | sort | xargs ls -l
    ;;
all)
    [ $# -eq 2 ] && [[ $2 =~ ^[0-9]+$ ]] || usage
    build
    failed=()
    for target in "${targets[@]}"; do fuzz "$target" "$2" || failed+=("$target"); done
    if [ ${#failed[@]} -gt 0 ]; then
        echo "custody fuzz: crashes in: ${failed[*]}" >&2
        exit 1
    fi
    ;;
*)
    [[ " ${targets[*]} " == *" $1 "* ]] || usage
    [ $# -ge 2 ] || usage
    build
    if [ $# -eq 2 ] && [[ $2 =~ ^[0-9]+$ ]]; then
        fuzz "$1" "$2"
    else
        target=$1
        shift
        tmp=$(scratch_dir)
        rc=0
        CUSTODY_FUZZ_TARGET=$target CUSTODY_FUZZ_SCRATCH=$tmp ASAN_OPTIONS=detect_leaks=0 "$(binary)" "$@" || rc=$?
        rm -rf "$tmp"
        exit $rc
    fi
    ;;
esac
