#!/bin/bash
# The whole test suite, as `make test` runs it:
#   unit         cmocka programs that need no /dev/kvm
#   integration  cmocka programs that boot, snapshot and restore real VMs, and the
#                benchmark harness in smoke mode, and the soak's short version
#                (tests/soak/soak.sh -n 10); run where /dev/kvm works: directly,
#                or all in one nested KVM host VM (tests/kvmhost/run.sh), which is
#                booted again after a wedge and goes on with the program it was in
#   fuzz         short bounded fuzz runs of every parser
# usage: tests/run.sh BUILD_DIR [all|unit|integration|fuzz]
#        tests/run.sh BUILD_DIR program PROG|smoke|soak   (one integration program, here)
#        tests/run.sh BUILD_DIR batch STATE PROG|smoke|soak...   (what `all` runs in the
#                nested VM: the programs STATE does not record as done)
# Every cmocka program prints its own summary; the last lines name what failed and
# total everything as "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
what=${2:-all}

# A program run inside the nested host gets the guests' paths from the suite outside
# (tests/kvmhost/run.sh passes the environment): checking the guests' caches again there
# is seconds of emulated work per program.
if [[ $what == program || $what == batch ]] && [[ -f ${THAW_KERNEL:-} && -f ${THAW_INITRD:-} && -f ${THAW_PROBE:-} &&
	-f ${THAW_ROOTFS:-} ]]; then
	:
else
	eval "$(guest/env.sh)" || { echo "tests: building the guests failed" >&2; exit 1; }
fi
export THAW_KERNEL THAW_INITRD THAW_PROBE THAW_ROOTFS
export THAW_BIN=$PWD/$B/thaw THAW_BUILD=$PWD/$B THAW_TOP=$PWD

# A program that hangs fails on its own instead of eating the suite's time.
readonly PROG_TIMEOUT=1200 # a PVM host where a Linux boot takes 60-100 s

passed=0 failed=0
failures=()
# Nested-host boots (issue 22): how many VMs each integration program needed; a program
# that needed more than one is named. Empty when /dev/kvm ran them directly.
kvm_programs=0 kvm_boots=0
kvm_reruns=()

# Adds the counts of a run's log: every cmocka summary, or one "WHAT: N passed, N failed"
# line. $1 names the run in the failure list, $2 is its exit status, $3 its log.
count() {
	local name=$1 rc=$2 log=$3 p f t
	p=$(awk '/^\[  PASSED  \] [0-9]+ test/ { n += $4 }
		/^[a-z-]+: [0-9]+ passed, [0-9]+ failed$/ { n += $2 } END { print n + 0 }' "$log")
	f=$(awk '/^\[  FAILED  \] [0-9]+ test/ { n += $4 }
		/^[a-z-]+: [0-9]+ passed, [0-9]+ failed$/ { n += $4 } END { print n + 0 }' "$log")
	passed=$((passed + p))
	if ((f == 0 && rc == 0)); then
		return
	fi
	((f > 0)) || f=1
	failed=$((failed + f))
	# cmocka lists the failed tests after its summary: "[  FAILED  ] name"
	t=$(sed -n 's/^\[  FAILED  \] \([A-Za-z_][A-Za-z0-9_]*\)$/\1/p' "$log" | sort -u | tr '\n' ' ')
	if [[ -n $t ]]; then
		failures+=("$name: ${t% }")
	elif ((rc == 124)); then
		failures+=("$name: timed out")
	else
		t=$(grep -m 1 '^kvmhost: ' "$log" || grep -E -i -m 1 'error|fail' "$log")
		failures+=("$name: exit $rc${t:+, }$(cut -c1-160 <<<"$t")")
	fi
}

# Runs one program (or the smoke run) here and counts it.
run_here() {
	local prog=$1 log rc t0=$SECONDS
	log=$(mktemp)
	# In the nested host, a program that runs many VMs at once runs on one of its CPUs:
	# there, with two, the nested kernel crashed (a vCPU thread's kernel stack overwritten)
	# within a minute of test_pool's 50 clones, and on one it did not (tests/kvmhost/
	# README.md, E11-E14).
	local wrap=()
	if [[ -n ${THAW_KVMHOST_INSIDE:-} && " test_pool smoke " == *" $(basename "$prog") "* ]] &&
		(($(nproc) > 1)); then
		wrap=(taskset -c "$(($(nproc) - 1))")
		echo "kvmhost: $(basename "$prog") runs on CPU $(($(nproc) - 1)) only (many VMs at once: E14)"
	fi
	if [[ $prog == smoke ]]; then
		# the benchmark harness in smoke mode: proves it works, asserts no timing. The
		# QEMU peer (three levels of virtualization here) is left to `make bench`.
		timeout -k 10 "$PROG_TIMEOUT" "${wrap[@]}" bench/smoke.sh "$B" --no-qemu 2>&1 | tee "$log"
	elif [[ $prog == soak ]]; then
		# the soak's short version (`make soak` runs 1,000 cycles a series)
		timeout -k 10 "$PROG_TIMEOUT" tests/soak/soak.sh --build "$B" -n "${SOAK_SHORT_N:-10}" 2>&1 | tee "$log"
	else
		timeout -k 10 "$PROG_TIMEOUT" "${wrap[@]}" "$prog" 2>&1 | tee "$log"
	fi
	rc=${PIPESTATUS[0]}
	count "$(basename "$prog")" "$rc" "$log"
	rm -f "$log"
	echo "time: $(basename "$prog") $((SECONDS - t0)) s"
}

# Runs the integration programs, then the smoke and short soak runs, where /dev/kvm works:
# here, or all of them in one nested VM (tests/kvmhost/run.sh), booted once for the suite
# (each boot costs ~25 s of the nested host's time). A wedged VM is booted again and the
# batch goes on with the program it was running: the state file, in the build directory
# (read-write inside the VM), records each boot and each program's start and result.
# A program that was started three times is not started again, and fails.
run_integration() {
	local state log rc line name n f t t0=$SECONDS
	state=$PWD/$B/integration.state
	[[ $B == /* ]] && state=$B/integration.state
	log=$(mktemp)
	: >"$state"
	# The smoke run keeps its results in the build directory (shared with the VM), so
	# that a repeat after a wedge resumes it rather than starting over.
	local smoke_out=$B/bench-smoke
	[[ $smoke_out == /* ]] || smoke_out=$PWD/$smoke_out
	rm -rf -- "$smoke_out"
	BENCH_SMOKE_OUT=$smoke_out THAW_KVMHOST_RETRIES=${THAW_KVMHOST_RETRIES:-9} \
		tests/kvmhost/run.sh --timeout 0 -- tests/run.sh "$B" batch "$state" "$@" 2>&1 |
		tee "$log"
	rc=${PIPESTATUS[0]}
	# What each program reported (the VM's output above is for reading).
	for name in "$@"; do
		name=$(basename "$name")
		line=$(grep -m 1 "^done $name	" "$state")
		if [[ -z $line ]]; then
			failed=$((failed + 1))
			failures+=("$name: not run (the nested host ended with $rc: $(grep '^kvmhost: ' "$log" | tail -n 1 | cut -c1-120))")
			continue
		fi
		IFS=$'\t' read -r _ n f t <<<"$line"
		passed=$((passed + n)) failed=$((failed + f))
		[[ -n $t ]] && failures+=("$t")
		n=$(grep -c "^start $name\$" "$state")
		((n > 1)) && kvm_reruns+=("$name:$n")
	done
	if grep -q '^kvmhost: .*, running in a nested-SVM' "$log"; then
		kvm_programs=$#
		kvm_boots=$(grep -c '^boot$' "$state")
	fi
	echo "time: integration $((SECONDS - t0)) s$( ((kvm_programs)) && echo ", $kvm_boots boots of one nested VM")"
	rm -f -- "$log"
	rm -rf -- "$smoke_out"
}

# Inside run_integration's VM (or here): each program of the list not done yet, once.
run_batch() {
	local state=$1 name p0 f0 n0 starts
	shift
	echo boot >>"$state"
	for prog in "$@"; do
		name=$(basename "$prog")
		grep -q "^done $name	" "$state" && continue
		starts=$(grep -c "^start $name\$" "$state")
		if ((starts >= 3)); then
			printf 'done %s\t0\t1\t%s\n' "$name" "$name: the nested host wedged in it $starts times" >>"$state"
			continue
		fi
		echo "start $name" >>"$state"
		sync
		p0=$passed f0=$failed n0=${#failures[@]}
		run_here "$prog"
		printf 'done %s\t%s\t%s\t%s\n' "$name" $((passed - p0)) $((failed - f0)) \
			"$(IFS='|'; echo "${failures[*]:n0}")" >>"$state"
		sync
	done
}

case $what in
unit)
	for t in "$B"/tests/test_*; do [ -x "$t" ] && run_here "$t"; done
	;;
integration)
	for t in "$B"/itests/test_*; do [ -x "$t" ] && run_here "$t"; done
	run_here smoke
	run_here soak
	;;
program)
	(($# == 3)) || { echo "usage: tests/run.sh BUILD_DIR program PROG|smoke|soak" >&2; exit 2; }
	run_here "$3"
	;;
batch)
	(($# >= 4)) || { echo "usage: tests/run.sh BUILD_DIR batch STATE PROG|smoke|soak..." >&2; exit 2; }
	shift 2
	run_batch "$@"
	;;
fuzz)
	if make --no-print-directory -s fuzz; then passed=$((passed + 1)); else
		failed=$((failed + 1))
		failures+=(fuzz)
	fi
	;;
all)
	echo "== unit tests"
	for t in "$B"/tests/test_*; do [ -x "$t" ] && run_here "$t"; done
	echo "== integration tests (real VMs)"
	progs=()
	for t in "$B"/itests/test_*; do [ -x "$t" ] && progs+=("$t"); done
	run_integration "${progs[@]}" smoke soak
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

# The nested host's boot ledger: one line per whole run, so that "how many boots did the
# last ten runs need" has an answer (tests/kvmhost/boots.sh prints it).
if ((kvm_programs > 0)); then
	echo "kvmhost: $kvm_programs programs in nested VMs, $kvm_boots boots${kvm_reruns[*]:+; more than one: ${kvm_reruns[*]}}"
	if [[ $what == all ]]; then
		ledger=${THAW_KVMHOST_LEDGER:-${XDG_CACHE_HOME:-$HOME/.cache}/thaw/kvmhost-boots.log}
		mkdir -p -- "$(dirname -- "$ledger")" &&
			printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
				"$(git rev-parse --short HEAD 2>/dev/null || echo -)" "$kvm_programs" "$kvm_boots" \
				"$passed/$failed" "${kvm_reruns[*]:--}" "$SECONDS" >>"$ledger"
	fi
fi
for f in "${failures[@]}"; do echo "failed: $f"; done
[ "$what" = all ] && echo "$passed passed, $failed failed" || echo "$what: $passed passed, $failed failed"
[ "$failed" = 0 ]
