#!/bin/bash
# A real thaw through thaw-jailer: boot the probe guest jailed and snapshot it, restore
# the snapshot jailed (read-only --link) and get an answer from the guest, check the
# running thaw has no capabilities, then time restores with and without the jail and
# ten jailed restores at once. Needs root and /dev/kvm:
#   tests/kvmhost/run.sh -- tests/integration/jailer_thaw.sh [BUILD_DIR] [RUNS]
# thaw is dynamically linked today, so its loader and libraries are --link'ed in
# read-only (a static thaw would not need them).
set -uo pipefail
cd "$(dirname "$0")/../.."
B=${1:-build}
RUNS=${2:-5}
case $B in /*) ;; *) B=$PWD/$B ;; esac
J=$B/thaw-jailer
T=$B/thaw

fail() {
	echo "jailer_thaw: FAIL: $*" >&2
	exit 1
}
[ "$(id -u)" = 0 ] || { echo "jailer_thaw: SKIPPED: needs root"; exit 0; }
[ -c /dev/kvm ] || { echo "jailer_thaw: SKIPPED: no /dev/kvm (use tests/kvmhost/run.sh)"; exit 0; }
[ -x "$J" ] && [ -x "$T" ] || fail "build $J and $T first"
# Only the probe guest is needed (guest/env.sh would also build the Linux guest).
eval "$(guest/probe/build.sh)" || fail "guest/probe/build.sh"
[ -r "${THAW_PROBE:-}" ] || fail "no probe guest"

base=$(mktemp -d /tmp/thaw-jailer-thaw.XXXXXX)
chmod 755 "$base"
ids=()
cleanup_all() {
	local id
	for id in "${ids[@]}"; do "$J" --cleanup --id "$id" --chroot-base "$base" 2>/dev/null; done
	rm -rf "$base"
}
trap cleanup_all EXIT

libs=()
for f in $(ldd "$T" | grep -o '/[^ ]*'); do
	libs+=(--link "$f:$f:ro")
done
common=(--uid 10000 --gid 10000 --chroot-base "$base" --cgroup pids.max=64 "${libs[@]}")
ms() { echo $(($(date +%s%N) / 1000000)); }

# 1. Boot jailed, snapshot once the probe is ready.
ids+=(jt-snap)
cp "$THAW_PROBE" "$base/probe.elf" && chmod 644 "$base/probe.elf"
"$J" --id jt-snap --exec-file "$T" "${common[@]}" --link "$base/probe.elf:/probe.elf:ro" \
	-- --kernel /probe.elf --mem-mib 64 --snapshot /ready.snap \
	--snapshot-after THAW_PROBE_READY --snapshot-then exit </dev/null >"$base/boot.out" 2>&1 ||
	{ cat "$base/boot.out"; fail "jailed boot + snapshot"; }
snap=$base/thaw/jt-snap/root/ready.snap
[ -s "$snap" ] || fail "no snapshot at $snap"
cp "$snap" "$base/ready.snap" && chmod 644 "$base/ready.snap"
"$J" --cleanup --id jt-snap --chroot-base "$base" 2>/dev/null || fail "cleanup jt-snap"
echo "jailer_thaw: PASS jailed boot and snapshot ($(stat -c %s "$base/ready.snap") bytes)"

# Starts "$@" with the console on a coprocess, sends ping, waits for the answer; prints
# the milliseconds from start to answer. With CHECK_CAPS=1, checks thaw's capabilities
# while it runs (its pid is the coprocess's, or the pid file's with --new-pid-ns).
restore_and_ping() {
	local t0 line pid status t
	t0=$(ms)
	coproc RP { exec "$@" 2>"$base/restore.err"; }
	pid=$RP_PID
	echo ping >&"${RP[1]}"
	t=""
	while IFS= read -r -t 120 line <&"${RP[0]}"; do
		if [[ $line == *"PROBE pong"* ]]; then
			t=$(($(ms) - t0))
			break
		fi
	done
	if [ -z "$t" ]; then
		kill -9 "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		cat "$base/restore.err" >&2
		return 1
	fi
	if [ "${CHECK_CAPS:-0}" = 1 ]; then
		status=$(cat "/proc/$pid/status")
		for k in CapInh CapPrm CapEff CapBnd CapAmb; do
			grep -q "^$k:[[:space:]]*0000000000000000$" <<<"$status" ||
				{ echo "$status" >&2; kill -9 "$pid"; return 2; }
		done
		grep -q "^NoNewPrivs:[[:space:]]*1$" <<<"$status" || { kill -9 "$pid"; return 2; }
		grep -q "^Uid:[[:space:]]*10000[[:space:]]" <<<"$status" || { kill -9 "$pid"; return 2; }
	fi
	kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	echo "$t"
}

# 2. Restore jailed, snapshot linked read-only; the guest answers; no capabilities.
ids+=(jt-r0)
t=$(CHECK_CAPS=1 restore_and_ping "$J" --id jt-r0 --exec-file "$T" "${common[@]}" \
	--link "$base/ready.snap:/ready.snap:ro" -- --restore /ready.snap) ||
	fail "jailed restore did not answer or kept capabilities"
"$J" --cleanup --id jt-r0 --chroot-base "$base" 2>/dev/null || fail "cleanup jt-r0"
[ -e "$base/thaw/jt-r0" ] && fail "cleanup left $base/thaw/jt-r0"
grep -q " $base/thaw" /proc/self/mountinfo && fail "something is mounted under $base/thaw"
echo "jailer_thaw: PASS jailed restore answers ping (${t} ms), caps all zero, cleanup clean"

# 3. Timing: start to first answer, unjailed vs jailed, and ten jailed at once.
plain=() jailed=()
for i in $(seq 1 "$RUNS"); do
	plain+=("$(restore_and_ping "$T" --restore "$base/ready.snap")") || fail "plain restore"
	ids+=("jt-t$i")
	jailed+=("$(restore_and_ping "$J" --id "jt-t$i" --exec-file "$T" "${common[@]}" \
		--link "$base/ready.snap:/ready.snap:ro" -- --restore /ready.snap)") ||
		fail "jailed restore $i"
	"$J" --cleanup --id "jt-t$i" --chroot-base "$base" 2>/dev/null
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "jailer_thaw: start-to-answer ms, $RUNS runs: unjailed median $(median "${plain[@]}")" \
	"[${plain[*]}], jailed median $(median "${jailed[@]}") [${jailed[*]}]"

t0=$(ms)
pids=()
for i in $(seq 1 10); do
	ids+=("jt-c$i")
	(
		t=$(restore_and_ping "$J" --id "jt-c$i" --exec-file "$T" "${common[@]}" \
			--link "$base/ready.snap:/ready.snap:ro" -- --restore /ready.snap) || exit 1
		echo "$t" >"$base/c$i.ms"
	) &
	pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "a concurrent jailed restore failed"; done
wall=$(($(ms) - t0))
each=()
for i in $(seq 1 10); do each+=("$(cat "$base/c$i.ms")"); done
echo "jailer_thaw: 10 jailed restores at once: wall ${wall} ms, each median" \
	"$(median "${each[@]}") ms [${each[*]}]"
echo "jailer_thaw: PASS"
