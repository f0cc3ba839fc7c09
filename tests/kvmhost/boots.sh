#!/bin/bash
# The nested host's boot ledger (issue 22): every whole `make test` whose integration
# programs ran in nested VMs appends one line to it (tests/run.sh). This prints the last
# N runs (default 10) and whether any program in them needed more than one boot.
# usage: tests/kvmhost/boots.sh [N]
set -euo pipefail
n=${1:-10}
[[ $n =~ ^[1-9][0-9]*$ ]] || { echo "usage: tests/kvmhost/boots.sh [N]" >&2; exit 2; }
ledger=${THAW_KVMHOST_LEDGER:-${XDG_CACHE_HOME:-$HOME/.cache}/thaw/kvmhost-boots.log}
[[ -s $ledger ]] || { echo "boots: no nested make test recorded yet ($ledger)"; exit 0; }
printf '%-20s  %-9s  %8s  %5s  %-9s  %6s  %s\n' finished commit programs boots 'pass/fail' minutes 'more than one boot'
tail -n "$n" -- "$ledger" | awk -F '\t' '
	{ printf "%-20s  %-9s  %8s  %5s  %-9s  %6s  %s\n", $1, $2, $3, $4, $5, ($7 == "" ? "-" : int($7 / 60)), $6
	  runs++; progs += $3; boots += $4; if ($6 != "-") bad++ }
	END { printf "%d runs, %d programs, %d boots; runs where a program needed more than one boot: %d\n",
		runs, progs, boots, bad }'
