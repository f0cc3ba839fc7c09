#!/bin/bash
# The soak (issue 22): N restore / answer / teardown cycles of the probe in each of three
# series, and no resource of a long-lived process may grow over them.
#   cli   thaw --restore SNAP (memory mapped from the file), one process per cycle
#   api   thaw --api-sock S --prepare mem-mib=M,vcpus=V, then PUT /snapshot/load with
#         resume_vm, one prepared process per cycle
#   uffd  thaw --restore SNAP --mem-backend uffd-ext against ONE thaw-uffd for the series
# Every cycle is driven by bench/spawn: start, send "ping" until "PROBE pong", SIGINT,
# reap. At the start (after cycle 1), the middle and the end of each series the soak
# samples the open fds (/proc/PID/fd), VmRSS and Threads of the series' processes: the
# cycle's thaw, and for uffd the handler. A sample is also taken of the soak's own shell
# and of the processes and files left behind. It fails when a cycle fails, when the fds
# or threads of a process differ between the samples, when RSS grows by more than
# SOAK_RSS_SLACK_KB (default 256) from start to end or from middle to end, or when
# anything is left behind.
# Needs /dev/kvm: run it through tests/kvmhost/run.sh where the host has none.
# usage: tests/soak/soak.sh [-n N] [--build B] [--series cli,api,uffd] [--mem-mib M]
#                           [--vcpus V] [--log FILE] [--timeout-ms MS]
# Prints one line per sample and "soak: N passed, N failed" (one count per series).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2

n=1000 build=build series=cli,api,uffd mib=128 vcpus=1 log= tmo=60000
while (($#)); do
	case $1 in
	-n) n=$2 && shift 2 ;;
	--build) build=$2 && shift 2 ;;
	--series) series=$2 && shift 2 ;;
	--mem-mib) mib=$2 && shift 2 ;;
	--vcpus) vcpus=$2 && shift 2 ;;
	--log) log=$2 && shift 2 ;;
	--timeout-ms) tmo=$2 && shift 2 ;;
	-h | --help) sed -n '2,20p' "$0" && exit 0 ;;
	*) echo "soak: unknown argument '$1' (see --help)" >&2 && exit 2 ;;
	esac
done
[[ $n =~ ^[0-9]+$ ]] && ((n >= 3)) || { echo "soak: -n: a number, at least 3" >&2 && exit 2; }
slack=${SOAK_RSS_SLACK_KB:-256}
me=soak
. tests/soak/common.sh
soak_setup "$build"
W= hpid=
cleanup() {
	[[ -n $hpid ]] && kill -KILL "$hpid" 2>/dev/null
	[[ -n $W ]] && rm -rf -- "$W"
}
trap cleanup EXIT
soak_workdir
# spawn resends "ping" until the answer; thaw queues console input until the guest reads
# it, so the first one is enough and a resend only wakes thaw's main thread while it
# restores (every 2 ms, as the benchmarks do for QEMU, costs the nested host ~0.2 s).
every=${SOAK_EVERY_US:-100000}
# Progress, one line per cycle, to --log (e.g. a file on a read-write export, so that a
# nested VM that wedges leaves behind how far it got).
# No fork nor exec per cycle outside spawn and thaw: in the nested host each costs 0.1-0.3 s
# (tests/soak/README.md), so the clock is printf's and files are read with read.
export TZ=UTC
progress() { [[ -n $log ]] && printf '%(%T)T %s\n' -1 "$*" >>"$log"; }
progress "soak start: n=$n series=$series mem=$mib vcpus=$vcpus kernel=$(uname -r) nproc=$(nproc)"

soak_snapshot "$mib" "$vcpus"

# sample LABEL PID: "fds=N rss_kb=N threads=N" of PID.
sample() {
	local fds rss thr
	fds=$(find "/proc/$2/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
	rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$2/status" 2>/dev/null)
	thr=$(awk '/^Threads:/ { print $2 }' "/proc/$2/status" 2>/dev/null)
	echo "fds=$fds rss_kb=${rss:-?} threads=${thr:-?}"
}

passed=0 failed=0
declare -A samp

# check SERIES WHAT: compares the start/middle/end samples of WHAT; prints the verdict.
check() {
	local s=$1 what=$2 a b c f1 f2 f3 r1 r2 r3 t1 t2 t3 bad=
	a=${samp[$s.$what.start]} b=${samp[$s.$what.middle]} c=${samp[$s.$what.end]}
	read -r f1 r1 t1 <<<"$(sed 's/[a-z_]*=//g' <<<"$a")"
	read -r f2 r2 t2 <<<"$(sed 's/[a-z_]*=//g' <<<"$b")"
	read -r f3 r3 t3 <<<"$(sed 's/[a-z_]*=//g' <<<"$c")"
	[[ $f1 == "$f2" && $f2 == "$f3" ]] || bad+=" fds $f1/$f2/$f3"
	[[ $t1 == "$t2" && $t2 == "$t3" ]] || bad+=" threads $t1/$t2/$t3"
	if [[ $r1 =~ ^[0-9]+$ && $r2 =~ ^[0-9]+$ && $r3 =~ ^[0-9]+$ ]]; then
		((r3 - r1 <= slack && r3 - r2 <= slack)) || bad+=" rss_kb $r1/$r2/$r3 (slack $slack)"
	else
		bad+=" rss unreadable"
	fi
	if [[ -n $bad ]]; then
		echo "soak: $s: $what grew:$bad"
		return 1
	fi
	return 0
}

# One series: $1 name. Runs n cycles; samples at cycles 1, n/2 and n.
run_series() {
	local s=$1 i k c rc line pid cmd=() pre=() ok=1 where t0 f
	local usock=$W/uffd.sock asock=$W/api.sock
	hpid=
	if [[ $s == uffd ]]; then
		soak_handler "$usock" || {
			echo "soak: uffd: thaw-uffd did not get ready: $(tail -n 1 "$W/uffd.err")"
			failed=$((failed + 1))
			return
		}
		echo "soak: uffd: handler pid $hpid before cycle 1: $(sample x "$hpid")"
	fi
	case $s in
	cli) cmd=("$THAW" --restore "$S") ;;
	uffd) cmd=("$THAW" --restore "$S" --mem-backend uffd-ext --uffd-sock "$usock") ;;
	api)
		cmd=("$THAW" --api-sock "$asock" --prepare "mem-mib=$mib,vcpus=$vcpus")
		pre=(--api-sock "$asock" --api-req "PUT /snapshot/load {\"snapshot_path\": \"$S\", \"resume_vm\": true}")
		;;
	esac
	t0=$SECONDS
	for ((i = 1; i <= n; i++)); do
		where=
		((i == 1)) && where=start
		((i == (n + 1) / 2)) && where=middle
		((i == n)) && where=end
		for f in "$asock" "$W/ready" "$W/hold"; do [[ -e $f || -S $f ]] && rm -f -- "$f"; done
		if [[ -n $where ]]; then
			"$SPAWN" --send ping --every "$every" --expect "PROBE pong" --timeout "$tmo" \
				--ready-file "$W/ready" --hold-file "$W/hold" --stderr "$W/err" "${pre[@]}" \
				-- "${cmd[@]}" </dev/null >"$W/spawn.out" &
			local sp=$!
			while [[ ! -e $W/ready ]] && kill -0 "$sp" 2>/dev/null; do sleep 0.05; done
			# spawn's child, once it is thaw (/proc/PID/exe) and readable
			pid= line=
			for ((k = 0; k < 50; k++)); do
				for c in $(cat "/proc/$sp/task/$sp/children" 2>/dev/null); do
					[[ $(readlink "/proc/$c/exe" 2>/dev/null) == "$THAW" ]] && pid=$c
				done
				[[ -n $pid ]] && line=$(sample thaw "$pid") && [[ $line != *'?'* ]] && break
				pid= line=
				sleep 0.1
			done
			samp[$s.thaw.$where]=${line:-"fds=? rss_kb=? threads=?"}
			echo "soak: $s: cycle $i ($where): thaw ${line:-not found (children of spawn $sp: $(cat "/proc/$sp/task/$sp/children" 2>/dev/null))}"
			if [[ -n $hpid ]]; then
				samp[$s.handler.$where]=$(sample handler "$hpid")
				echo "soak: $s: cycle $i ($where): handler $(sample handler "$hpid")"
			fi
			touch "$W/hold"
			wait "$sp"
			rc=$?
		else
			"$SPAWN" --send ping --every "$every" --expect "PROBE pong" --timeout "$tmo" \
				--stderr "$W/err" "${pre[@]}" -- "${cmd[@]}" </dev/null >"$W/spawn.out"
			rc=$?
		fi
		line=
		read -r line <"$W/spawn.out"
		progress "$s $i rc=$rc $line"
		if ((rc != 0)); then
			echo "soak: $s: cycle $i failed (spawn exit $rc: $line): $(grep -v '^thaw: info' "$W/err" | tail -n 2 | tr '\n' ' ')"
			ok=0
			break
		fi
		# thaw ends with 0 on spawn's SIGINT; anything else is the VM's own end
		# (vmm/vmm.h: 3 guest panic, 4 triple fault, ...) or a crash (128 + signal).
		if [[ ${line#*exit=} != 0 ]]; then
			echo "soak: $s: cycle $i: thaw exited with ${line#*exit=} instead of 0 after SIGINT: $(grep -v '^thaw: info' "$W/err" | tail -n 2 | tr '\n' ' ')"
			ok=0
			break
		fi
		if [[ $where == start ]]; then
			samp[$s.self.start]=$(sample self $$)
		elif [[ $where == middle ]]; then
			samp[$s.self.middle]=$(sample self $$)
		elif [[ $where == end ]]; then
			samp[$s.self.end]=$(sample self $$)
		fi
	done
	if [[ -n $hpid ]]; then
		kill -TERM "$hpid" 2>/dev/null
		wait "$hpid" 2>/dev/null
		hpid=
	fi
	if ((ok)); then
		check "$s" thaw || ok=0
		check "$s" self || ok=0
		[[ $s == uffd ]] && { check "$s" handler || ok=0; }
	fi
	# Nothing may be left behind: no child processes, only the snapshot (and the
	# handler's output) in the work directory, no process whose command line names it.
	local left
	left=$(jobs -rp | tr '\n' ' ')$(pgrep -f -- "$W/" | tr '\n' ' ')
	[[ -z ${left// /} ]] || { echo "soak: $s: processes left behind: $left" && ok=0; }
	left=$(find "$W" -mindepth 1 -maxdepth 1 ! -name probe.snap ! -name 'uffd.*' ! -name err \
		! -name snap.err ! -name bin ! -name spawn.out ! -name ready ! -name hold | tr '\n' ' ')
	[[ -z ${left// /} ]] || { echo "soak: $s: files left behind: $left" && ok=0; }
	echo "soak: $s: $((i > n ? n : i)) cycles in $((SECONDS - t0)) s: thaw ${samp[$s.thaw.start]:-} -> ${samp[$s.thaw.end]:-}"
	if ((ok)); then passed=$((passed + 1)); else failed=$((failed + 1)); fi
	progress "$s done ok=$ok"
}

IFS=, read -r -a list <<<"$series"
for s in "${list[@]}"; do
	case $s in
	cli | api | uffd) run_series "$s" ;;
	*) echo "soak: unknown series '$s'" >&2 && exit 2 ;;
	esac
done
echo "soak: $passed passed, $failed failed"
((failed == 0))
