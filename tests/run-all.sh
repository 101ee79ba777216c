#!/usr/bin/env bash
# Runs every test of Robot SRE on a fresh Debian 12 machine (as root): installs packages,
# builds twice (optimised, and with AddressSanitizer + UndefinedBehaviorSanitizer), runs the
# whole ctest suite on both, then builds the libFuzzer targets with clang and runs each one
# for a short, fixed time over its seed corpus.
#
#   RSRE_FUZZ_SECONDS   seconds per fuzz target (default 20; 0 skips fuzzing)
#   RSRE_SKIP_ASAN=1    skip the sanitizer build
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
JOBS=$(nproc)
FUZZ_SECONDS=${RSRE_FUZZ_SECONDS:-20}

deploy/local/install-deps.sh --test

run_suite() { # name, build dir, extra cmake args...
    local name=$1 dir=$2
    shift 2
    echo "== $name: configure and build ($dir)"
    cmake -S . -B "$dir" "$@" >/dev/null
    cmake --build "$dir" -j"$JOBS" 2>&1 | grep -E "error|warning" || true
    cmake --build "$dir" -j"$JOBS" >/dev/null
    echo "== $name: ctest"
    (cd "$dir" && ctest --output-on-failure -j"$JOBS" --timeout 900)
}

run_suite release "$ROOT/build-test" -DCMAKE_BUILD_TYPE=RelWithDebInfo
if [ "${RSRE_SKIP_ASAN:-0}" != 1 ]; then
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        run_suite asan+ubsan "$ROOT/build-asan" -DCMAKE_BUILD_TYPE=Debug -DRSRE_SANITIZE=ON -DRSRE_BENCH=OFF
fi

if [ "$FUZZ_SECONDS" -gt 0 ]; then
    echo "== fuzz: build with clang"
    CC=clang cmake -S . -B "$ROOT/build-fuzz" -DCMAKE_BUILD_TYPE=Debug -DRSRE_FUZZ=ON >/dev/null
    cmake --build "$ROOT/build-fuzz" -j"$JOBS" >/dev/null
    for f in "$ROOT"/build-fuzz/tests/fuzz_*; do
        name=$(basename "$f")
        corpus="$ROOT/tests/fuzz/corpus/${name#fuzz_}"
        work=$(mktemp -d)
        [ -d "$corpus" ] && cp -r "$corpus"/. "$work"/ 2>/dev/null || true
        echo "== fuzz: $name for ${FUZZ_SECONDS}s"
        "$f" -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 "$work" 2>&1 | tail -3
        rm -rf "$work"
    done
fi
echo "== all tests passed"
