#!/bin/bash
# `make bench` / `make bench-check`: runs bench/bench.sh where /dev/kvm works. On this
# project's machines /dev/kvm is absent (they are PVM guests), so the harness runs inside
# the nested-SVM QEMU TCG VM of tests/kvmhost/run.sh; bench.sh records where it ran.
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

# The nested VM wedges now and then (every 10-80 restores, tests/kvmhost/README.md);
# run.sh notices the missing heartbeat, boots it again and reruns the command. The
# results directory's name is fixed here and bench.sh runs with --resume, so a rerun
# keeps every run made so far and goes on from where the wedge stopped it: a full run
# survives any number of wedges up to BENCH_RETRIES, instead of starting over.
BENCH_STAMP=${BENCH_STAMP:-$(date -u +%Y%m%dT%H%M%SZ)}
export BENCH_STAMP
export THAW_KVMHOST_RETRIES=${BENCH_RETRIES:-12}

# Results go to bench/results/<stamp>/ (the repository is shared read-write with the
# VM). Memory: the snapshots live on the VM's /tmp (tmpfs), 32 clones run at once.
exec tests/kvmhost/run.sh --mem "${BENCH_VM_MIB:-4096}" --cpus 2 --timeout "${BENCH_TIMEOUT:-7200}" \
	-- bench/bench.sh --build "$B" --resume "$@"
