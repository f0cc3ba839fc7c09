#!/bin/bash
# Restores of the probe, each held idle after its answer (issue 22's triple fault in the
# nested host: a restored probe that answered and then ended its VM by itself). Each
# cycle: bench/spawn restores the snapshot, sends "ping" until "PROBE pong", the guest
# then idles (hlt, its LAPIC timer ticking) for --hold-ms, SIGINT, reap. A cycle fails
# when thaw ends with anything but 0 after the SIGINT, or ends before it. The first
# failure stops the loop and keeps, in --keep DIR, thaw's log (--log-level debug: the
# vCPU's state and last exits at its end), the probe's console, and with --trace the
# kernel's kvm:* trace of the last seconds (tracefs; in the nested host).
# usage: tests/soak/idle.sh [-n N] [--hold-ms MS] [--build B] [--mem-mib M] [--vcpus V]
#                           [--mem-backend file|uffd] [--keep DIR] [--trace] [--log FILE]
# Prints one line per failure and "idle: N of N cycles passed"; exit 0 when all did.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2

n=100 hold=3000 build=build mib=128 vcpus=1 backend=file keep= trace=0 log=
while (($#)); do
	case $1 in
	-n) n=$2 && shift 2 ;;
	--hold-ms) hold=$2 && shift 2 ;;
	--build) build=$2 && shift 2 ;;
	--mem-mib) mib=$2 && shift 2 ;;
	--vcpus) vcpus=$2 && shift 2 ;;
	--mem-backend) backend=$2 && shift 2 ;;
	--keep) keep=$2 && shift 2 ;;
	--trace) trace=1 && shift ;;
	--log) log=$2 && shift 2 ;;
	-h | --help) sed -n '2,13p' "$0" && exit 0 ;;
	*) echo "idle: unknown argument '$1' (see --help)" >&2 && exit 2 ;;
	esac
done
[[ $n =~ ^[0-9]+$ && $hold =~ ^[0-9]+$ ]] || { echo "idle: -n and --hold-ms: numbers" >&2 && exit 2; }
[[ $backend == file || $backend == uffd ]] || { echo "idle: --mem-backend file or uffd" >&2 && exit 2; }
me=idle
. tests/soak/common.sh
soak_setup "$build"
T=/sys/kernel/tracing
if ((trace)); then
	[[ -w $T/trace ]] || { echo "idle: --trace: $T is not writable" >&2 && exit 2; }
	echo 8192 >"$T/buffer_size_kb" && echo >"$T/trace" && echo 1 >"$T/events/kvm/enable" &&
		echo 1 >"$T/tracing_on" || { echo "idle: --trace: enabling kvm:* failed" >&2 && exit 2; }
fi

W= hpid=
cleanup() {
	[[ -n $hpid ]] && kill -TERM "$hpid" 2>/dev/null && wait "$hpid" 2>/dev/null
	((trace)) && echo 0 >"$T/events/kvm/enable"
	[[ -n $W ]] && rm -rf -- "$W"
}
trap cleanup EXIT
soak_workdir
progress() { [[ -n $log ]] && echo "$(date -u +%T) $*" >>"$log"; }

soak_snapshot "$mib" "$vcpus"
cmd=("$THAW" --restore "$S" --log-level debug)
if [[ $backend == uffd ]]; then
	soak_handler "$W/uffd.sock" || { echo "idle: thaw-uffd did not get ready: $(tail -n 1 "$W/uffd.err")" >&2 && exit 1; }
	cmd+=(--mem-backend uffd-ext --uffd-sock "$W/uffd.sock")
fi
progress "idle start: n=$n hold_ms=$hold backend=$backend vcpus=$vcpus kernel=$(uname -r)"

ok=0 t0=$SECONDS
for ((i = 1; i <= n; i++)); do
	rm -f -- "$W/ready" "$W/hold"
	"$SPAWN" --send ping --every 2000 --expect "PROBE pong" --timeout 60000 \
		--ready-file "$W/ready" --hold-file "$W/hold" --stderr "$W/err" --stdout "$W/console" \
		-- "${cmd[@]}" </dev/null >"$W/spawn.out" &
	sp=$!
	# The hold starts at the answer: the guest idles while its thaw lives (not a zombie).
	alive=1 t1=$(date +%s%N)
	while (($(date +%s%N) - t1 < hold * 1000000)); do
		c=$(cat "/proc/$sp/task/$sp/children" 2>/dev/null)
		[[ -n $c && $(awk '{ print $3 }' "/proc/${c%% *}/stat" 2>/dev/null) != Z ]] || { alive=0 && break; }
		sleep 0.1
	done
	touch "$W/hold"
	wait "$sp"
	rc=$? line=$(<"$W/spawn.out")
	progress "$i rc=$rc alive=$alive $line"
	if ((rc == 0 && alive)) && [[ ${line#*exit=} == 0 ]]; then
		ok=$((ok + 1))
		continue
	fi
	echo "idle: cycle $i: spawn exit $rc, thaw alive through the hold: $alive, $line"
	grep -v '^thaw: info: \(restore\|timing\)' "$W/err" | tail -n 12 | sed 's/^/idle:   /'
	if [[ -n $keep ]]; then
		mkdir -p "$keep"
		cp -- "$W/err" "$keep/thaw.err" && cp -- "$W/console" "$keep/console.txt"
		((trace)) && echo 0 >"$T/tracing_on" && cp -- "$T/trace" "$keep/kvm-trace.txt"
		echo "idle: kept thaw's log, the console${trace:+ and the kvm trace} in $keep"
	fi
	break
done
echo "idle: $ok of $n cycles passed in $((SECONDS - t0)) s (hold ${hold} ms)"
((ok == n))
