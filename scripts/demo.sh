#!/bin/bash
# `make demo`: boot a microVM, snapshot it, restore it (plain, prepared, as clones),
# and print what happened and how long each step took. Runs where /dev/kvm works;
# on a machine without it, inside the nested KVM host of tests/kvmhost/.
set -uo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}

if [ -z "${THAW_DEMO_INNER:-}" ] && [ ! -w /dev/kvm ]; then
	eval "$(guest/env.sh)" || exit 1
	echo "demo: /dev/kvm is not available here; running inside a nested KVM host (QEMU TCG +"
	echo "      nested SVM): every figure below is slowed by instruction emulation."
	exec env THAW_DEMO_INNER=1 THAW_KERNEL="$THAW_KERNEL" THAW_PROBE="$THAW_PROBE" \
		tests/kvmhost/run.sh --timeout 900 -- scripts/demo.sh "$B"
fi
[ -n "${THAW_PROBE:-}" ] || eval "$(guest/env.sh)"

THAW=$PWD/$B/thaw
SNAP_TOOL=$PWD/$B/thaw-snap
work=$(mktemp -d /tmp/thaw-demo-XXXXXX)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$work"' EXIT

ms() { echo $(($(date +%s%N) / 1000000)); }
say() { printf '%s\n' "$*"; }

# start NAME ARGS...: runs thaw with its console on $work/NAME.{in,out,err}
start() {
	local name=$1
	shift
	mkfifo "$work/$name.in"
	"$THAW" "$@" <"$work/$name.in" >"$work/$name.out" 2>"$work/$name.err" &
	pids+=($!)
	eval "pid_$name=$!"
	exec {fd}>"$work/$name.in"
	eval "fd_$name=$fd"
}

# wait_for NAME PATTERN [SECONDS]: waits for a console line; prints it
wait_for() {
	local name=$1 pat=$2 secs=${3:-60} i out
	for ((i = 0; i < secs * 100; i++)); do
		# Whole lines only: the guest writes a line one byte (one port write) at a
		# time, so the console file often ends in part of one.
		out=$(cat "$work/$name.out" 2>/dev/null && printf x)
		out=${out%x}
		if [[ $out == *$'\n'* ]] && grep -a -m1 -- "$pat" <<<"${out%$'\n'*}"; then
			return 0
		fi
		sleep 0.01
	done
	say "demo: '$pat' did not appear on $name's console within ${secs}s"
	tail -5 "$work/$name.out" "$work/$name.err"
	return 1
}

send() {
	local fd
	eval "fd=\$fd_$1"
	printf '%s\n' "$2" >&"$fd"
}

say "== 1. cold boot of the probe guest (a function stand-in that runs at CPL3)"
t0=$(ms)
start boot --kernel "$THAW_PROBE" --vcpus 2 --mem-mib 128 --timing \
	--snapshot "$work/base.snap" --snapshot-then exit
wait_for boot THAW_PROBE_READY || exit 1
say "   first serial line $(($(ms) - t0)) ms after process start"
send boot "touch 8 32 42"
wait_for boot "PROBE touch" >/dev/null || exit 1
say "   the function warmed up: wrote 32 MiB ($(grep -a -o 'sum=0x[0-9a-f]*' "$work/boot.out" | head -1))"

say "== 2. snapshot (SIGUSR1; the VM is paused, saved, and the process exits)"
kill -USR1 "$pid_boot"
wait "$pid_boot"
grep -a "snapshot:" "$work/boot.err" | sed 's/^/   /'
"$SNAP_TOOL" verify "$work/base.snap" | tail -1 | sed 's/^/   /'
say "   $(du -h --apparent-size "$work/base.snap" | cut -f1) file, $(du -h "$work/base.snap" | cut -f1) on disk (zero pages are holes)"

say "== 3. restore (plain path: MAP_PRIVATE memory from the file)"
t0=$(ms)
start r1 --restore "$work/base.snap" --timing
send r1 "sum 8 32"
wait_for r1 "PROBE sum" | sed 's/^/   /' || exit 1
say "   first answer $(($(ms) - t0)) ms after process start (checksum above matches the one written before the snapshot)"
grep -a "restore:" "$work/r1.err" | sed 's/^thaw: /   /'
kill "$pid_r1"

say "== 4. restore into a prepared VM (--prepare: VM, memory slot and vCPUs built first)"
start r2 --prepare mem-mib=128,vcpus=2 --restore "$work/base.snap" --timing
send r2 ping
wait_for r2 "PROBE pong" >/dev/null || exit 1
grep -a "restore:" "$work/r2.err" | sed 's/^thaw: /   /'
kill "$pid_r2"

say "== 5. four clones from the one file at once, each with its own writes"
for i in 1 2 3 4; do start "c$i" --restore "$work/base.snap"; done
for i in 1 2 3 4; do send "c$i" "touch 40 8 $i"; done
for i in 1 2 3 4; do
	line=$(wait_for "c$i" "PROBE touch") || exit 1
	say "   clone $i: ${line##* }"
done
sum_before=$(sha256sum "$work/base.snap" | cut -c1-16)
kill "$pid_c1" "$pid_c2" "$pid_c3" "$pid_c4" 2>/dev/null
say "   snapshot file unchanged by the clones: sha256 $sum_before..."

say "== done: see README.md for the tour, docs/ for the file format and the API"
