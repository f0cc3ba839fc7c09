#!/bin/bash
# The whole test suite, as `make test` runs it:
#   unit         cmocka programs that need no /dev/kvm
#   integration  cmocka programs that boot, snapshot and restore real VMs; run where
#                /dev/kvm works: directly, or inside a nested KVM host VM
#                (tests/kvmhost/run.sh) on machines without it
#   fuzz         short bounded fuzz runs of every parser
# usage: tests/run.sh BUILD_DIR [all|unit|integration|fuzz]
# Every cmocka program prints its own summary; the last line totals them.
set -uo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
what=${2:-all}

eval "$(guest/env.sh)" || { echo "tests: building the guests failed" >&2; exit 1; }
export THAW_KERNEL THAW_INITRD THAW_PROBE THAW_ROOTFS
export THAW_BIN=$PWD/$B/thaw THAW_BUILD=$PWD/$B THAW_TOP=$PWD

passed=0 failed=0
failures=()

# Runs one cmocka program and adds its counts to the totals.
run_one() {
	local prog=$1 log rc p f
	log=$(mktemp)
	"$prog" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	# a program may run several cmocka groups: add up every summary line
	p=$(awk '/^\[  PASSED  \] [0-9]+ test/ { n += $4 } END { print n + 0 }' "$log")
	f=$(awk '/^\[  FAILED  \] [0-9]+ test/ { n += $4 } END { print n + 0 }' "$log")
	rm -f "$log"
	passed=$((passed + ${p:-0}))
	if [ "${f:-0}" != 0 ] || [ "$rc" != 0 ]; then
		failed=$((failed + ${f:-1}))
		failures+=("$(basename "$prog")")
	fi
}

run_dir() {
	local t
	for t in "$1"/test_*; do
		[ -x "$t" ] && run_one "$t"
	done
}

case $what in
unit)
	run_dir "$B/tests"
	;;
integration)
	run_dir "$B/itests"
	# the benchmark harness in smoke mode: proves it works, asserts no timing. The
	# QEMU peer (three levels of virtualization here) is left to `make bench`.
	log=$(mktemp)
	bench/smoke.sh "$B" --no-qemu 2>&1 | tee "$log"
	p=$(sed -n 's/^bench-smoke: \([0-9]*\) passed, \([0-9]*\) failed$/\1/p' "$log" | tail -1)
	f=$(sed -n 's/^bench-smoke: \([0-9]*\) passed, \([0-9]*\) failed$/\2/p' "$log" | tail -1)
	rm -f "$log"
	passed=$((passed + ${p:-0}))
	if [ -z "$p" ] || [ "${f:-1}" != 0 ]; then
		failed=$((failed + ${f:-1}))
		failures+=(bench-smoke)
	fi
	;;
fuzz)
	if make --no-print-directory -s fuzz; then passed=$((passed + 1)); else
		failed=$((failed + 1))
		failures+=(fuzz)
	fi
	;;
all)
	echo "== unit tests"
	run_dir "$B/tests"
	echo "== integration tests (real VMs)"
	log=$(mktemp)
	tests/kvmhost/run.sh --timeout 2400 -- tests/run.sh "$B" integration 2>&1 | tee "$log"
	p=$(sed -n 's/^integration: \([0-9]*\) passed, \([0-9]*\) failed$/\1/p' "$log" | tail -1)
	f=$(sed -n 's/^integration: \([0-9]*\) passed, \([0-9]*\) failed$/\2/p' "$log" | tail -1)
	rm -f "$log"
	passed=$((passed + ${p:-0}))
	if [ -z "$p" ] || [ "${f:-1}" != 0 ]; then
		failed=$((failed + ${f:-1}))
		failures+=(integration)
	fi
	echo "== fuzz (bounded)"
	if make --no-print-directory -s fuzz; then passed=$((passed + 1)); else
		failed=$((failed + 1))
		failures+=(fuzz)
	fi
	;;
*)
	echo "usage: tests/run.sh BUILD_DIR [all|unit|integration|fuzz]" >&2
	exit 2
	;;
esac

[ ${#failures[@]} -gt 0 ] && echo "failing: ${failures[*]}"
[ "$what" = all ] && echo "$passed passed, $failed failed" || echo "$what: $passed passed, $failed failed"
[ "$failed" = 0 ]
