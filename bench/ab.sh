#!/bin/bash
# Interleaved A/B pairs of fresh restores (the way bench/README.md compares two builds on a
# shared machine): N rounds, each restoring SNAP once with every binary in turn through
# bench/spawn (send "ping", wait for "PROBE pong"), then the median, 10th and 90th
# percentile per binary of: restore .. first instruction (first_run_us minus
# process_to_restore_us), restore .. first answer, process start .. first answer.
# usage: bench/ab.sh N SNAP THAW_A THAW_B [...]   (run from the top level; build/ holds spawn)
set -uo pipefail
(($# >= 3)) || { echo "usage: bench/ab.sh N SNAP THAW..." >&2; exit 2; }
n=$1 snap=$2
shift 2
spawn=${SPAWN:-build/bench/spawn}
out=$(mktemp) err=$(mktemp)
trap 'rm -f -- "$out" "$err"' EXIT
for ((i = 0; i < n; i++)); do
	for b in "$@"; do
		"$spawn" --expect "PROBE pong" --send ping --stderr "$err" -- "$b" --restore "$snap" \
			--timing >/dev/null 2>&1 || { echo "run failed: $b" >&2; continue; }
		p=$(sed -n 's/.*process_to_restore_us=\([0-9]*\).*/\1/p' "$err")
		r=$(sed -n 's/.*first_run_us=\([0-9]*\).*/\1/p' "$err")
		l=$(sed -n 's/.*first_line_us=\([0-9]*\).*/\1/p' "$err")
		echo "$b $((r - p)) $((l - p)) $l"
	done
done >"$out"
for b in "$@"; do
	for c in 2:"restore .. first instruction" 3:"restore .. first answer" 4:"start .. first answer"; do
		awk -v b="$b" -v c="${c%%:*}" '$1 == b { print $c }' "$out" | sort -n |
			awk -v b="$b" -v what="${c#*:}" '{ a[NR] = $1 } END { if (NR)
				printf "%s  %-28s median %6d us  p10 %6d  p90 %6d  n %d\n", b, what,
					a[int((NR + 1) / 2)], a[int(NR * 0.1) + 1], a[int(NR * 0.9)], NR }'
	done
done
