#!/bin/bash
# Reproduces the nested host's wedge (issue 22) and keeps the evidence: runs
# tests/soak/soak.sh in a forced kvmhost VM (THAW_KVMHOST=force, THAW_KVMHOST_DEBUG=1,
# no retries), watches the soak's per-cycle progress file and QEMU's threads, and when
# the progress stops for WEDGE_STALL s (default 60) dumps QEMU's view of the vCPUs
# through QMP (info cpus, info registers -a, info irq / pic / lapic) and the state of
# its threads (CPU time, wchan, kernel stack) before the VM is killed.
# usage: tests/kvmhost/wedge.sh OUTDIR [run.sh options] -- [soak.sh options]
# threads.log: seconds, cycles done, and per vCPU thread "CPU_N/TCG:utime+stime" (ticks).
# Everything the kvmhost knobs do applies (THAW_KVMHOST_KVM_AMD_ARGS, ..._QEMU_OPTS,
# ..._APPEND). OUTDIR gets progress.log, threads.log, qmp-*.txt, console logs
# (the control directory run.sh keeps) and result.txt. WEDGE_TRACE: see below.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd -P) || exit 2
out=${1:?usage: tests/kvmhost/wedge.sh OUTDIR [run.sh options] -- [soak.sh options]}
shift
ropts=()
while (($#)) && [[ $1 != -- ]]; do ropts+=("$1") && shift; done
(($#)) && shift
mkdir -p "$out" && out=$(cd "$out" && pwd -P) || exit 2
stall=${WEDGE_STALL:-60}
tag=kvmhost-wedge-$$
qmp=$(mktemp -u "${TMPDIR:-/tmp}/wedge-qmp.XXXXXX")

# WEDGE_TRACE=1: the kvm:* tracepoints of the nested kernel into a small ring buffer
# (WEDGE_TRACE_KB per CPU, default 32), dumped on the console when a lockup panics it.
pre=
if [[ ${WEDGE_TRACE:-} == 1 ]]; then
	pre="T=/sys/kernel/tracing; echo ${WEDGE_TRACE_KB:-32} >\$T/buffer_size_kb &&"
	pre+=" echo 1 >\$T/events/kvm/enable && echo 1 >/proc/sys/kernel/ftrace_dump_on_oops || exit 125; "
fi

qmp_cmd() { # $1: HMP command line; prints its output
	python3 - "$qmp" "$1" <<'EOF'
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(20)
s.connect(sys.argv[1])
f = s.makefile("rw")
f.readline()
for cmd in ({"execute": "qmp_capabilities"},
            {"execute": "human-monitor-command", "arguments": {"command-line": sys.argv[2]}}):
    f.write(json.dumps(cmd) + "\n")
    f.flush()
    while True:
        r = json.loads(f.readline())
        if "return" in r or "error" in r:
            break
print(r.get("return", r))
EOF
}

threads() { # $1: QEMU pid; one line per thread: tid name state utime stime wchan
	local t
	for t in /proc/"$1"/task/*; do
		printf '%s %s %s %s\n' "${t##*/}" "$(tr ' ' _ <"$t/comm" 2>/dev/null)" \
			"$(awk '{ print $3, $14, $15 }' "$t/stat" 2>/dev/null)" "$(cat "$t/wchan" 2>/dev/null)"
	done
}

dump() { # $1: QEMU pid, $2: label
	local c
	{
		echo "== $2 $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
		threads "$1"
		for t in /proc/"$1"/task/*; do
			echo "-- ${t##*/} $(cat "$t/comm" 2>/dev/null)"
			cat "$t/stack" 2>/dev/null
		done
	} >>"$out/threads-$2.txt"
	for c in "info cpus" "info registers -a" "info irq" "info pic" "info lapic" "info lapic 1" \
		"info tlb" "info status"; do
		echo "== $c" >>"$out/qmp-$2.txt"
		qmp_cmd "$c" >>"$out/qmp-$2.txt" 2>&1
	done
}

: >"$out/progress.log"
(
	cd "$top" || exit 2
	THAW_KVMHOST=force THAW_KVMHOST_DEBUG=1 THAW_KVMHOST_RETRIES=0 \
		THAW_KVMHOST_STALL_TIMEOUT=$((stall + 120)) \
		THAW_KVMHOST_QEMU_OPTS="${THAW_KVMHOST_QEMU_OPTS:-} -name $tag,debug-threads=on -qmp unix:$qmp,server=on,wait=off" \
		tests/kvmhost/run.sh "${ropts[@]}" -- bash -c "$pre"'exec "$@"' soak \
		tests/soak/soak.sh --log "$out/progress.log" "$@"
) >"$out/soak.out" 2>"$out/run.err" &
rpid=$!
t0=$SECONDS last=-1 since=$SECONDS dumped=0 qpid=
while kill -0 "$rpid" 2>/dev/null; do
	sleep 5
	[[ -n $qpid ]] && kill -0 "$qpid" 2>/dev/null || qpid=$(pgrep -f -- "-name $tag," | head -n 1)
	[[ -n $qpid ]] || continue
	echo "$((SECONDS - t0)) $(wc -l <"$out/progress.log") $(threads "$qpid" | awk '$2 ~ /CPU/ { printf "%s:%s+%s ", $2, $4, $5 }')" >>"$out/threads.log"
	n=$(wc -l <"$out/progress.log")
	if ((n != last)); then
		last=$n since=$SECONDS
	elif ((!dumped && n > 1 && SECONDS - since >= stall)); then
		dump "$qpid" wedge1
		sleep 20
		dump "$qpid" wedge2
		dumped=1
	fi
done
wait "$rpid"
rc=$?
grep -o 'kvmhost: kept .*' "$out/run.err" | while read -r _ _ d; do
	cp -r -- "$d" "$out/ctl" 2>/dev/null && rm -rf -- "$d"
done
cycles=$(grep -c ' rc=0 ' "$out/progress.log")
echo "exit=$rc cycles_ok=$cycles seconds=$((SECONDS - t0)) wedged=$dumped" \
	"lockups=$(cat "$out"/ctl/console*.log 2>/dev/null | grep -c 'soft lockup')" | tee "$out/result.txt"
rm -f -- "$qmp"
