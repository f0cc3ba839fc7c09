#!/bin/bash
# The harness in smoke mode, for `make test`: a few iterations of every series (floor,
# thaw restores with each backend, perf, USDT, cold boot, clones N=1,2, QEMU), the
# report and the plots, without timing assertions. Run it where /dev/kvm works (the test
# runner calls it inside tests/kvmhost/run.sh). Prints "bench-smoke: N passed, N failed";
# exits non-zero when a series produced no good run or a plot is missing.
# usage: bench/smoke.sh [BUILD_DIR [bench.sh options, e.g. --no-qemu]]
# BENCH_SMOKE_OUT names a results directory that outlives the VM: the test runner sets
# it, so that when the nested VM wedges and the run is repeated in a new one, the
# repeat resumes (bench.sh --resume) instead of starting over; the caller removes it.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
if [[ -n ${BENCH_SMOKE_OUT:-} ]]; then
	out=$BENCH_SMOKE_OUT resume=(--resume)
	mkdir -p "$out" || exit 1
else
	out=$(mktemp -d "${TMPDIR:-/tmp}/thaw-bench-smoke.XXXXXX") || exit 1
	resume=()
	trap 'rm -rf -- "$out"' EXIT
fi
build=${1:-build}
shift || true
bench/bench.sh --build "$build" --smoke --out "$out" "${resume[@]}" "$@" >"$out.log" 2>&1
rc=$?
grep -E '^bench-smoke: |^note: |run failed' "$out.log"
grep -q '^bench-smoke: [0-9]* passed, [0-9]* failed$' "$out.log" || {
	tail -n 20 "$out.log"
	echo "bench-smoke: 0 passed, 1 failed"
}
rm -f -- "$out.log"
exit $rc
