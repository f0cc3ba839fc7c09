#!/bin/bash
# `make bench` / `make bench-check`: runs bench/bench.sh where /dev/kvm works: directly
# when this machine has it (on this project's machines, KVM through PVM), otherwise
# inside the nested-SVM QEMU TCG VM of tests/kvmhost/run.sh; bench.sh records where.
# usage: bench/kvmhost.sh BUILD_DIR [bench.sh options]
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
B=${1:?usage: bench/kvmhost.sh BUILD_DIR [options]}
shift

# The guests are built here, outside the VM (the cache is shared with it).
if [[ -z ${THAW_PROBE:-} ]]; then
	eval "$(guest/env.sh)" || {
		echo "bench: building the guests failed" >&2
		exit 1
	}
fi
export THAW_PROBE THAW_KERNEL THAW_INITRD
# The outer machine is shared: its load at the start goes into the results.
BENCH_OUTER_LOADAVG=$(cut -d" " -f1-3 /proc/loadavg)
export BENCH_OUTER_LOADAVG

# The nested VM wedged every 10-80 restores, most in the uffd series, until run.sh's pin
# (tests/kvmhost/README.md, "The wedge"); in case another wedge remains, run.sh notices the missing heartbeat and gives up
# (exit 125); the results directory's name is fixed here and bench.sh runs with --resume,
# so the next VM keeps every run made so far and goes on from where the wedge stopped
# it. A run thus survives any number of wedges while each VM adds runs; it ends after
# BENCH_STALLS VMs in a row (default 3) added none, or after BENCH_TIMEOUT seconds.
BENCH_STAMP=${BENCH_STAMP:-$(date -u +%Y%m%dT%H%M%SZ)}
export BENCH_STAMP
export THAW_KVMHOST_RETRIES=0
# What the results and a baseline written from them say made them.
export BENCH_COMMAND=${BENCH_COMMAND:-make bench BENCH_STAMP=$BENCH_STAMP (bench/kvmhost.sh $B $*)}
out=bench/results/$BENCH_STAMP
progress() { cat "$out"*/raw/*.txt "$out"*/steps.txt 2>/dev/null | wc -l; }
tmo=${BENCH_TIMEOUT:-10800} stalls=0 vms=0
while :; do
	before=$(progress)
	vms=$((vms + 1))
	# Results go to bench/results/<stamp>/ (the repository is shared read-write with
	# the VM). Memory: the snapshots live on the VM's /tmp (tmpfs), 32 clones at once.
	tests/kvmhost/run.sh --mem "${BENCH_VM_MIB:-4096}" --cpus 2 --timeout "$((tmo > SECONDS ? tmo - SECONDS : 1))" \
		-- bench/bench.sh --build "$B" --resume "$@"
	rc=$?
	# 125: the VM wedged or could not run the command; anything else is bench.sh's.
	((rc == 125)) || exit $rc
	if (($(progress) > before)); then stalls=0; else stalls=$((stalls + 1)); fi
	if ((stalls >= ${BENCH_STALLS:-3})); then
		echo "bench: giving up: $stalls VMs in a row ended without adding a run ($vms VMs in all)" >&2
		exit 125
	fi
	if ((SECONDS >= tmo)); then
		echo "bench: giving up after $SECONDS s (BENCH_TIMEOUT) and $vms VMs" >&2
		exit 124
	fi
	echo "bench: VM $vms ended without finishing (exit 125); resuming in a new one" >&2
done
