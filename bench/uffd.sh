#!/bin/bash
# Lazy-restore benchmark: the probe plays a function touching a scattered working set
# (`touchscatter`, WS_MIB of a RAM_MIB guest, every page holding data), restored by
#   file      mmap MAP_PRIVATE of the snapshot (the default backend)
#   ondemand  uffd, one page per fault (handler thread inside thaw)
#   prefetch  uffd, the recorded working set read with io_uring and installed first
# with the page cache warm and dropped. Prints, per run, the time from starting thaw to
# the probe's answer and the page faults after restore: thaw's minor+major faults
# (/proc/PID/stat) for `file`, the handler's fault events for uffd.
# Needs /dev/kvm (run through tests/kvmhost/run.sh) and root for drop_caches.
#   bench/uffd.sh BUILD_DIR PROBE_ELF [RUNS]
# Environment: RAM_MIB (256), WS_MIB (48), CONFIGS ("file ondemand prefetch"),
# PREFETCH (the prefetch strategy's options, default none).
set -euo pipefail

build=${1:?build dir}
probe=${2:?probe.elf}
runs=${3:-3}
RAM_MIB=${RAM_MIB:-256}
WS_MIB=${WS_MIB:-48}
thaw=$build/thaw
work=$(mktemp -d /tmp/uffd-bench-XXXXXX)
trap 'rm -rf "$work"' EXIT
snap=$work/base.snap
ws=$work/ws.snap
req="touchscatter $WS_MIB 7 8 r"

# One thaw run: starts it, sends $req, waits for the answer; prints "ms faults".
# $1: label (file|uffd), rest: extra thaw options.
run_once() {
	local kind=$1 err=$work/err t0 t1 line minflt majflt
	shift
	t0=$(date +%s%N)
	coproc T { exec "$thaw" --restore "$snap" "$@" 2>"$err"; }
	local pid=$T_PID
	echo "$req" >&"${T[1]}"
	while IFS= read -r -t 600 line <&"${T[0]}"; do
		[[ $line == "PROBE touchscatter"* ]] && break
	done
	t1=$(date +%s%N)
	read -r minflt majflt < <(awk '{print $10, $12}' "/proc/$pid/stat")
	kill -TERM "$pid"
	wait "$pid" || true
	if [[ $kind == file ]]; then
		echo "$(((t1 - t0) / 1000000)) $((minflt + majflt))"
	else
		echo "$(((t1 - t0) / 1000000)) $(sed -n 's/.*uffd: faults=\([0-9]*\).*/\1/p' "$err")"
	fi
}

echo "# making a $RAM_MIB MiB probe snapshot with data in every page of [4, $((4 + WS_MIB + 8))) MiB" >&2
coproc B { exec "$thaw" --kernel "$probe" --vcpus 1 --mem-mib "$RAM_MIB" --snapshot "$snap" \
	--snapshot-after "PROBE touch" --snapshot-then exit 2>/dev/null; }
bpid=$B_PID
while IFS= read -r line <&"${B[0]}"; do [[ $line == THAW_PROBE_READY* ]] && break; done
echo "touch 4 $((WS_MIB + 8)) 3" >&"${B[1]}"
wait "$bpid"

echo "# recording the working set" >&2
run_once uffd --mem-backend uffd --uffd-strategy record --uffd-record "$ws" >/dev/null

printf '%-9s %-5s %8s %8s\n' backend cache ms faults
for cache in warm cold; do
	for cfg in ${CONFIGS:-file ondemand prefetch}; do
		for ((i = 0; i < runs; i++)); do
			if [[ $cache == cold ]]; then
				sync
				echo 3 >/proc/sys/vm/drop_caches
			else
				cat "$snap" >/dev/null
			fi
			case $cfg in
			file) r=$(run_once file) ;;
			ondemand) r=$(run_once uffd --mem-backend uffd --uffd-strategy ondemand) ;;
			prefetch) r=$(run_once uffd --mem-backend uffd --uffd-strategy "prefetch${PREFETCH:+,$PREFETCH},ws=$ws") ;;
			esac
			printf '%-9s %-5s %8s %8s\n' "$cfg" "$cache" "${r% *}" "${r#* }"
		done
	done
done
