#!/bin/bash
# The benchmark harness (bench/README.md). Runs where /dev/kvm works (bench/kvmhost.sh
# puts it there), measures everything in one go and writes
#   OUT/raw/<series>.txt   one line per run: key=value pairs (spawn's and thaw's own)
#   OUT/meta.txt           where it ran, counts, notes on what was skipped and why
#   OUT/results.json, OUT/*.png, OUT/table.txt   (by bench/report.py)
#
# usage: bench/bench.sh [--build DIR] [--out DIR] [--runs N] [--boot-runs N]
#                       [--qemu-runs N] [--perf-runs N] [--clones "1 8 32"]
#                       [--jail-runs N] [--jail-at-once N] [--jail-batches N] [--only GROUPS]
#                       [--fleet "32 256"] [--fleet-seconds S] [--linux-runs N]
#                       [--check] [--smoke] [--no-qemu] [--no-linux] [--resume]
#                       [--cold-ws "8 32 128"] [--cold-runs N] [--cold-drop-caches]
#   --only    a comma-separated subset of the series groups: floor, thaw (restores),
#             create, perf, boot, clones, qemu, linux, api (PUT /snapshot/load through the
#             API socket, with the direct 128m1v file restores it is compared with), jail
#             (jailed vs unjailed restores, N jailed at once, jail setup), flood (API GET /
#             latency while the probe floods each virtio device, bench/flood.c), ratelimit
#             (what a drive, a net and the entropy device deliver under a bandwidth limit
#             while the probe floods them, against the limit), disk (the probe's 4 KiB
#             reads from a raw file, an allocated qcow2 cluster and a qcow2 overlay's
#             backing file, bench/flood.c --measure; and the Linux guest's 4 KiB random
#             and 1 MiB sequential I/O on raw and a qcow2 overlay under thaw and QEMU,
#             bench/disk_guest.py; DISK_LINUX=0 leaves that out), diskclones (N clones restored
#             on their own overlays of one base: the base's page cache, PSS, overlay
#             sizes, the overlay's creation at restore), diskckpt (plain, external and
#             internal checkpoint snapshots in turn; both bench/disk_clones.py), fleet
#             (thaw-pool: request .. running/answer with a stocked pool, N clones at once
#             .. all answered ping, PSS per idle clone, sustained clone rate; bench/fleet.c),
#             cold (a scattered working set restored from a cold and a warm page cache by
#             each memory strategy: section 11)
#   --fleet   the burst sizes of the fleet group (issue 17 asks 1000: --fleet 1000)
#   --cold-ws      the cold group's working sets in MiB (default "8 32 128"; smoke "8")
#   --cold-runs    runs per cold case (default 10; check 6, smoke 2)
#   --cold-drop-caches  also write 1 to /proc/sys/vm/drop_caches before each cold run
#             (the whole machine's page cache: off by default on shared machines; the
#             snapshot's own pages are always dropped with posix_fadvise(DONTNEED))
#   --check   short run (floors and file restores, interleaved in rounds: section 3c; the
#             cold group with one working set), then bench/report.py --check: non-zero
#             exit naming the figure when thaw's fastest restore is over 3x its floor's
#             (the prepared path: the prepared floor), or that ratio is 50% over
#             bench/baseline.json's, or a cold goal is missed; a failure is measured
#             again over twice the runs before it is reported
#   --smoke   a few iterations of every series, no timing assertions; prints
#             "bench-smoke: N passed, N failed" (one per series that produced runs)
#   --resume  keep the runs the results directory already holds and measure only what
#             is missing. bench/kvmhost.sh passes it, so that when the nested VM wedges and
#             is booted again, the rerun goes on from the run where the last one stopped
#             (snapshots are taken again: the VM's /tmp does not survive it)
# The results directory is --out, or bench/results/<BENCH_STAMP or the UTC time> (with
# "check" or "smoke" appended in those modes).
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd -P)
cd "$top" || exit 2

B=build OUT="" RUNS=30 FLOOD_RUNS=5 FLOOD_REQUESTS=5000 BOOT_RUNS=20 QEMU_RUNS=10 PERF_RUNS=10 USDT_RUNS=10 CREATE_RUNS=5
CLONES="1 8 32" MODE=full QEMU=1 LINUX=1 LINUX_RUNS=1 ONLY="" JAIL_RUNS=20 JAIL_AT_ONCE=10 JAIL_BATCHES=3
RESUME=0 FLEET="32 256" FLEET_SECONDS=10
# The cold group (section 11): set before the options, adjusted by --check/--smoke.
COLD_WS="" COLD_RUNS="" COLD_DROP=0
while (($#)); do
	case $1 in
	--build) B=$2 && shift 2 ;;
	--out) OUT=$2 && shift 2 ;;
	--runs) RUNS=$2 && shift 2 ;;
	--boot-runs) BOOT_RUNS=$2 && shift 2 ;;
	--qemu-runs) QEMU_RUNS=$2 && shift 2 ;;
	--perf-runs) PERF_RUNS=$2 USDT_RUNS=$2 && shift 2 ;;
	--clones) CLONES=$2 && shift 2 ;;
	--jail-runs) JAIL_RUNS=$2 && shift 2 ;;
	--jail-at-once) JAIL_AT_ONCE=$2 && shift 2 ;;
	--jail-batches) JAIL_BATCHES=$2 && shift 2 ;;
	--only) ONLY=$2 && shift 2 ;;
	--fleet) FLEET=$2 && shift 2 ;;
	--fleet-seconds) FLEET_SECONDS=$2 && shift 2 ;;
	--check) MODE=check && shift ;;
	--smoke) MODE=smoke && shift ;;
	--no-qemu) QEMU=0 && shift ;;
	--no-linux) LINUX=0 && shift ;;
	--linux-runs) LINUX_RUNS=$2 && shift 2 ;;
	--resume) RESUME=1 && shift ;;
	--cold-ws) COLD_WS=$2 && shift 2 ;;
	--cold-runs) COLD_RUNS=$2 && shift 2 ;;
	--cold-drop-caches) COLD_DROP=1 && shift ;;
	*) echo "bench: unknown option '$1' (see bench/bench.sh)" >&2 && exit 2 ;;
	esac
done
# bench-check: CHECK_ROUNDS rounds of CHECK_PER_ROUND runs of each floor and restore.
CHECK_ROUNDS=${CHECK_ROUNDS:-6} CHECK_PER_ROUND=${CHECK_PER_ROUND:-5}
case $MODE in
check) RUNS=$((CHECK_ROUNDS * CHECK_PER_ROUND)) ;;
smoke) RUNS=2 FLOOD_RUNS=1 FLOOD_REQUESTS=500 BOOT_RUNS=2 QEMU_RUNS=1 PERF_RUNS=1 USDT_RUNS=1 CREATE_RUNS=1 CLONES="1 2" LINUX=0
	JAIL_RUNS=2 JAIL_AT_ONCE=3 JAIL_BATCHES=1 FLEET=4 FLEET_SECONDS=2 ;;
esac
for g in ${ONLY//,/ }; do
	case $g in
	floor | thaw | create | perf | boot | clones | qemu | linux | api | jail | flood | ratelimit | disk | diskclones | diskckpt | fleet | cold) ;;
	*) echo "bench: --only: unknown group '$g' (see bench/bench.sh)" >&2 && exit 2 ;;
	esac
done
# want GROUP: whether this run measures GROUP (all of them without --only).
want() { [[ -z $ONLY || ,$ONLY, == *",$1,"* ]]; }

[[ -c /dev/kvm ]] || { echo "bench: /dev/kvm is absent: run bench/kvmhost.sh (make bench)" >&2 && exit 2; }
THAW=$top/$B/thaw SPAWN=$top/$B/bench/spawn FLOOR=$top/$B/bench/floor FLOOD=$top/$B/bench/flood
for p in "$THAW" "$SPAWN" "$FLOOR" "$FLOOD"; do
	[[ -x $p ]] || { echo "bench: $p is missing (make programs)" >&2 && exit 2; }
done
if [[ -z ${THAW_PROBE:-} ]]; then
	eval "$(guest/env.sh)" || { echo "bench: guest/env.sh failed" >&2 && exit 2; }
fi
PROBE=$THAW_PROBE
# The system's python (standard library only), not a user's shim the VM may not see.
PY=$(command -v /usr/bin/python3 || command -v python3)
[[ -f $PROBE ]] || { echo "bench: THAW_PROBE=$PROBE is missing" >&2 && exit 2; }

[[ -n $OUT || -n ${BENCH_STAMP:-} ]] || ((!RESUME)) ||
	{ echo "bench: --resume needs --out DIR or BENCH_STAMP" >&2 && exit 2; }
OUT=${OUT:-$top/bench/results/${BENCH_STAMP:-$(date -u +%Y%m%dT%H%M%SZ)}${MODE/full/}}
mkdir -p "$OUT/raw" || exit 2
# A resumed run keeps meta.txt and raw/ and adds to them; steps.txt names the steps (a
# floor series, a clone count, ...) that ended, so that a rerun leaves them be.
[[ -s $OUT/meta.txt ]] || RESUME=0
((RESUME)) || : >"$OUT/steps.txt"
# Snapshots and scratch on local storage (tmpfs in the nested host), not on the 9p export.
W=$(mktemp -d "${TMPDIR:-/tmp}/thaw-bench.XXXXXX") || exit 2
# Jails are removed by thaw-jailer --cleanup (their cgroups are not files under $W).
trap 'while read -r id; do "$top/$B/thaw-jailer" --cleanup --id "$id" --chroot-base "$W/jails" >/dev/null 2>&1; done 2>/dev/null <"$W/jail-ids"; rm -rf -- "$W"' EXIT
# The programs and the probe kernel run from local storage too, as they would on a real
# host. In the nested host the build directory and the guest cache are 9p exports read
# without a page cache (cache=mmap), so each exec of thaw read its 1 MiB again (~100 ms of
# every process start .. answer), while QEMU came from the cached root export.
if ! mkdir -p "$W/bin" || ! cp -- "$THAW" "$SPAWN" "$FLOOR" "$FLOOD" "$W/bin/" || ! cp -- "$PROBE" "$W/probe"; then
	echo "bench: cannot copy the programs to $W" >&2 && exit 2
fi
THAW=$W/bin/thaw SPAWN=$W/bin/spawn FLOOR=$W/bin/floor FLOOD=$W/bin/flood PROBE=$W/probe
META=$OUT/meta.txt
((RESUME)) || : >"$META"
meta() { echo "$1=$2" >>"$META"; }
note() {
	echo "bench: note: $*" >&2
	echo "note=$*" >>"$META"
}
say() { echo "bench: $(date -u +%H:%M:%S) $*" >&2; }
# runs FILE: how many runs a series file holds (0 when it does not exist).
runs() { [[ -f $1 ]] && wc -l <"$1" || echo 0; }
# ended STEP / end STEP: whether STEP ended in an earlier attempt; record that it did.
ended() { grep -qxF -- "$1" "$OUT/steps.txt" 2>/dev/null; }
end() { echo "$1" >>"$OUT/steps.txt"; }

# Where the numbers come from: they mean little without it.
if [[ -n ${THAW_KVMHOST_INSIDE:-} ]]; then
	where=nested-tcg
	whatis="KVM (nested SVM) inside a QEMU TCG VM (tests/kvmhost/run.sh): every guest and host instruction is emulated, figures are 10-1000x native; compare ratios measured in this run"
elif [[ -d /sys/module/kvm_pvm ]] || grep -qw pvm /proc/cpuinfo 2>/dev/null; then
	where=pvm
	whatis="KVM through PVM (the host is itself a PVM guest)"
else
	where=native
	whatis="native /dev/kvm"
fi
if ((RESUME)); then
	# Each attempt's start is on record: figures from both sides of a reboot are in one set.
	note "resumed at $(date -u +%H:%M:%S) (load $(cut -d' ' -f1-3 /proc/loadavg)), the runs before kept"
	say "resuming $OUT: $(cat "$OUT"/raw/*.txt 2>/dev/null | wc -l) runs and $(wc -l <"$OUT/steps.txt") steps kept"
else
	meta where "$where"
	meta where_text "$whatis"
	meta mode "$MODE"
	meta date "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
	meta host_kernel "$(uname -r)"
	meta cpu "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
	meta cpus "$(nproc)"
	meta mem_mib "$(($(sed -n 's/^MemTotal: *\([0-9]*\).*/\1/p' /proc/meminfo) / 1024))"
	meta loadavg "$(cut -d' ' -f1-3 /proc/loadavg)"
	meta outer_loadavg "${BENCH_OUTER_LOADAVG:-}"
	meta git "$(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo unknown)"
	meta runs "$RUNS"
	meta only "${ONLY:-all}"
	meta command "${BENCH_COMMAND:-bench/bench.sh}"
	meta scratch_fs "$(stat -f -c %T "$W")"
fi
say "running on $where: $whatis; results in $OUT"

# jail_steps FILE: thaw-jailer -v's step times ("timing (us): validate=150 ... total=2100")
# as jail_<step>_us=N, the total as jail_setup_us=N; nothing for a run without a jail.
jail_steps() {
	sed -n 's/^.*timing (us): //p' "$1" | tr ' ' '\n' |
		sed -n -e 's/^total=\([0-9]*\)$/jail_setup_us=\1 /p' -e 's/^\([a-z-]*\)=\([0-9]*\)$/jail_\1_us=\2 /p' |
		tr -d '\n' | tr '-' '_'
}

# rec SERIES [spawn options] -- CMD...: one run; appends spawn's line, thaw's timing
# lines and the exit code to raw/SERIES.txt. Returns spawn's status.
rec() {
	local series=$1 line rc extra
	shift
	line=$("${SPAWN_PRE[@]}" "$SPAWN" --stderr "$W/err" "$@")
	rc=$?
	extra=$(sed -n -e 's/^thaw: restore: //p' -e 's/^thaw: timing: //p' \
		-e 's/^thaw: snapshot: .* in \([0-9]*\) us$/create_us=\1/p' \
		"$W/err" | tr '\n' ' ')$(jail_steps "$W/err")
	# thaw's own uffd handler's counters at exit (the cold group, section 11) as uffd_*=.
	extra+=$(sed -n 's/^thaw: info: uffd: \(faults=.*\)$/\1/p' "$W/err" | sed 's/\([a-z_]*\)=/uffd_\1=/g' | tr '\n' ' ')
	echo "$line $extra${REC_EXTRA:-}rc=$rc" >>"$OUT/raw/$series.txt"
	if ((rc != 0)); then
		echo "bench: $series: run failed (spawn status $rc): $(grep -v '^thaw: info' "$W/err" | tail -n 2 | tr '\n' ' ')" >&2
		cp -f -- "$W/err" "$OUT/raw/$series.last-error.txt"
	fi
	return $rc
}

# series N SERIES [spawn options] -- CMD...: N runs (those a resumed run already has
# count); gives up after 3 failures in a row.
series() {
	local n=$1 s=$2 i fails=0
	shift 2
	i=$(runs "$OUT/raw/$s.txt")
	((i < n)) || return 0
	say "$s: $((n - i)) runs"
	((i > 0)) || : >"$OUT/raw/$s.txt"
	for (( ; i < n; i++)); do
		if rec "$s" "$@"; then fails=0; else fails=$((fails + 1)); fi
		if ((fails >= 3)); then
			note "$s: stopped after 3 failed runs in a row (see raw/$s.last-error.txt)"
			return 1
		fi
	done
}

# snapshot PATH MIB VCPUS [CMDLINE]: a probe snapshot taken right after its ready line.
snapshot() {
	timeout 300 "$THAW" --kernel "$PROBE" --mem-mib "$2" --vcpus "$3" ${4:+--cmdline "$4"} --snapshot "$1" \
		--snapshot-after THAW_PROBE_READY --snapshot-then exit </dev/null >/dev/null 2>"$W/snap.err"
	local rc=$?
	if ((rc != 0)) || [[ ! -s $1 ]]; then
		note "snapshot $1 ($2 MiB, $3 vCPUs) failed: exit $rc: $(tail -n 1 "$W/snap.err")"
		return 1
	fi
	sed -n 's/^thaw: snapshot: .* in \([0-9]*\) us$/create_us=\1/p' "$W/snap.err"
}

# rec runs spawn behind SPAWN_PRE (bench-check: nice -n -20).
SPAWN_PRE=()
PING=(--send ping --every 2000 --expect "PROBE pong" --timeout 60000)

# ---- 1. the floor -------------------------------------------------------------------------
# thaw restores the probe without a PIT (its timer 0 was never programmed: docs/vmm.md),
# and a prepared thaw makes none; the floor leaves it out too, so that it does the same KVM
# work (with a PIT: FLOOR_PIT= in the environment).
read -r -a FLOOR_PIT <<<"${FLOOR_PIT---no-pit}"
floor_series() { # NAME RUNS ARGS...
	local name=$1 n=$2
	shift 2
	ended "$name" && return
	say "$name: $n runs"
	if ! "$FLOOR" --runs "$n" "${FLOOR_PIT[@]}" "$@" >"$OUT/raw/$name.txt" 2>"$W/floor.err"; then
		note "$name: floor failed: $(tail -n 1 "$W/floor.err")"
	fi
	end "$name"
}
# bench-check measures its floors interleaved with the restores (section 3c).
if want floor && [[ $MODE != check ]]; then
	floor_series floor_128m1v "$RUNS" --mem-mib 128 --vcpus 1
	floor_series floor_512m2v "$RUNS" --mem-mib 512 --vcpus 2
	# The prepared path's floor (issue 21): the VM built before the clock starts.
	floor_series floor_prepared_128m1v "$RUNS" --mem-mib 128 --vcpus 1 --order prepared
	floor_series floor_prepared_512m2v "$RUNS" --mem-mib 512 --vcpus 2 --order prepared
	[[ $MODE == check ]] || floor_series floor_naive_128m1v "$RUNS" --mem-mib 128 --vcpus 1 --order naive
	[[ $MODE == check ]] || series "$RUNS" floor_proc_128m1v --expect "FLOOR first_instruction" \
		--timeout 60000 -- "$FLOOR" --once "${FLOOR_PIT[@]}" --mem-mib 128 --vcpus 1
fi

# ---- 2. snapshots and their create time ----------------------------------------------------
S128=$W/probe-128m1v.snap S512=$W/probe-512m2v.snap
snapshot "$S128" 128 1 >/dev/null
if want thaw; then snapshot "$S512" 512 2 >/dev/null; fi
if [[ $MODE != check ]] && want create; then
	i=$(runs "$OUT/raw/create_256m1v.txt")
	((i < CREATE_RUNS)) && say "create_256m1v: $((CREATE_RUNS - i)) runs"
	((i > 0)) || : >"$OUT/raw/create_256m1v.txt"
	for (( ; i < CREATE_RUNS; i++)); do
		line=$(snapshot "$W/probe-256.snap" 256 1) && echo "$line size_bytes=$(stat -c %s "$W/probe-256.snap") disk_kb=$(du -k "$W/probe-256.snap" | cut -f1)" >>"$OUT/raw/create_256m1v.txt"
		rm -f -- "$W/probe-256.snap"
	done
fi

# ---- 3. thaw restores: each shape x path x memory backend -------------------------------
# The uffd prefetch strategy replays a working set recorded by an earlier restore.
backends="file uffd-ondemand uffd-prefetch"
uffd_ok=1
shapes="128m1v 512m2v"
# bench-check's restores are interleaved with its floors (section 3c).
[[ $MODE == check ]] && shapes=""
if ! want thaw; then
	# The API series is compared with the direct restores of the same snapshot in this run.
	shapes="" backends=file
	want api && shapes=128m1v
fi
for shape in $shapes; do
	case $shape in 128m1v) snap=$S128 mib=128 vcpus=1 ;; 512m2v) snap=$S512 mib=512 vcpus=2 ;; esac
	[[ -s $snap ]] || continue
	for be in $backends; do
		[[ $be == uffd-* ]] && ((!uffd_ok)) && continue
		bargs=()
		case $be in
		uffd-ondemand) bargs=(--mem-backend uffd --uffd-strategy ondemand) ;;
		uffd-prefetch)
			# A resumed run records the working set again only when it still needs it.
			(($(runs "$OUT/raw/thaw_${shape}_prepared_$be.txt") < RUNS)) || continue
			ws=$W/ws-$shape
			"$SPAWN" --stderr "$W/err" "${PING[@]}" -- "$THAW" --restore "$snap" --mem-backend uffd \
				--uffd-strategy ondemand --uffd-record "$ws" >/dev/null
			if [[ ! -s $ws ]]; then
				note "uffd-prefetch $shape: recording the working set failed: $(grep -v '^thaw: info' "$W/err" | tail -n 1)"
				continue
			fi
			bargs=(--mem-backend uffd --uffd-strategy "prefetch,ws=$ws")
			;;
		esac
		for path in plain prepared; do
			pargs=()
			[[ $path == prepared ]] && pargs=(--prepare "mem-mib=$mib,vcpus=$vcpus")
			s=thaw_${shape}_${path}_$be
			series "$RUNS" "$s" "${PING[@]}" --mem --guest-mib "$mib" -- \
				"$THAW" --restore "$snap" --timing "${pargs[@]}" "${bargs[@]}" && continue
			if [[ $be == uffd-* ]] && ! grep -q 'rc=0' "$OUT/raw/$s.txt"; then
				uffd_ok=0
				note "uffd restores fail here, skipped: $(grep -v '^thaw: info' "$OUT/raw/$s.last-error.txt" | tail -n 1)"
				break
			fi
		done
	done
done

# ---- 3c. bench-check: floors and file restores interleaved (issue 21) ---------------------
# The check compares thaw's restore with the floor measured in the same run. Measured one
# after the other, a change in the shared machine's load between the floor's series and
# the restores' moved the ratio by 2x (the nested host's floor median went from 20 to 9
# ms between two runs of one commit). So the check measures CHECK_ROUNDS rounds, each
# with CHECK_PER_ROUND runs of every floor and of every checked restore: a load change
# hits the floors and the restores alike. bench/report.py --check then compares the
# minimum of each side (its comment says why), and a failure is confirmed before it is
# reported: CHECK_ROUNDS more rounds are measured and the check is made again over all
# the runs. A slower restore stays slower in any number of runs; a burst of other jobs'
# load on the shared machine (one run in eleven had no plain restore under 2.4 ms, the
# next ten had them near 1.2 ms) rarely lasts through both.
# Both sides also run at nice -20 when root, so that other jobs' CPU-bound work takes a
# small share while a run is measured (it does not help against the host's steal time).
check_rounds() { # FIRST LAST
	local round f shape mib vcpus order name snap path pargs
	for ((round = $1; round <= $2; round++)); do
		say "check round $round of $2"
		for f in 128m1v:128:1:floor 512m2v:512:2:floor 128m1v:128:1:prepared 512m2v:512:2:prepared; do
			IFS=: read -r shape mib vcpus order <<<"$f"
			name=floor_$shape
			[[ $order == prepared ]] && name=floor_prepared_$shape
			"${chk[@]}" "$FLOOR" --runs "$CHECK_PER_ROUND" "${FLOOR_PIT[@]}" --mem-mib "$mib" --vcpus "$vcpus" --order "$order" \
				>>"$OUT/raw/$name.txt" 2>"$W/floor.err" || note "$name: floor failed: $(tail -n 1 "$W/floor.err")"
		done
		for f in 128m1v:128:1:"$S128" 512m2v:512:2:"$S512"; do
			IFS=: read -r shape mib vcpus snap <<<"$f"
			[[ -s $snap ]] || continue
			for path in plain prepared; do
				pargs=()
				[[ $path == prepared ]] && pargs=(--prepare "mem-mib=$mib,vcpus=$vcpus")
				SPAWN_PRE=("${chk[@]}")
				series $((round * CHECK_PER_ROUND)) "thaw_${shape}_${path}_file" "${PING[@]}" --mem \
					--guest-mib "$mib" -- "$THAW" --restore "$snap" --timing "${pargs[@]}" || :
				SPAWN_PRE=()
			done
		done
	done
}
chk=()
if [[ $MODE == check ]]; then
	if (($(id -u) == 0)); then chk=(nice -n -20); else note "check: not root, so not at nice -20: other jobs' load reaches the figures"; fi
	meta check_rounds "$CHECK_ROUNDS x $CHECK_PER_ROUND runs, floors and restores interleaved${chk:+, at nice -20}"
	for f in floor_128m1v floor_512m2v floor_prepared_128m1v floor_prepared_512m2v; do : >"$OUT/raw/$f.txt"; done
	check_rounds 1 "$CHECK_ROUNDS"
fi

# ---- 3b. the clone's new generation ID, on and off (issue 16) ----------------------------
# The prepared file restore of 128m1v once more with --keep-generation: the difference
# to thaw_128m1v_prepared_file is what writing a fresh VMGenID and raising the GED costs.
if [[ $MODE != check ]] && want thaw && [[ -s $S128 ]]; then
	series "$RUNS" thaw_128m1v_prepared_file_keepgen "${PING[@]}" --mem --guest-mib 128 -- \
		"$THAW" --restore "$S128" --timing --prepare mem-mib=128,vcpus=1 --keep-generation || :
fi

# ---- 4. perf stat per restore, USDT phases ------------------------------------------------
if [[ $MODE == check ]] || ! want perf; then
	: # bench-check: restore latencies only
elif command -v perf >/dev/null && [[ -s $S128 ]]; then
	events=() missing=()
	for e in task-clock page-faults minor-faults major-faults context-switches cpu-migrations \
		kvm:kvm_exit kvm:kvm_entry kvm:kvm_pio kvm:kvm_mmio kvm:kvm_userspace_exit \
		kvm:kvm_page_fault kvm:kvm_msr kvm:kvm_cpuid kvm:kvm_set_irq kvm:kvm_hypercall \
		cycles instructions; do
		if perf stat -x, -e "$e" true >/dev/null 2>"$W/perf.probe" &&
			! grep -q 'not supported\|not counted' "$W/perf.probe"; then
			events+=("$e")
		else
			missing+=("$e")
		fi
	done
	meta perf_events "${events[*]}"
	meta perf_events_unavailable "${missing[*]:-none}"
	ev=$(IFS=, && echo "${events[*]}")
	for path in plain prepared; do
		pargs=()
		[[ $path == prepared ]] && pargs=(--prepare "mem-mib=128,vcpus=1")
		s=perf_128m1v_${path}_file
		i=$(runs "$OUT/raw/$s.txt")
		((i < PERF_RUNS)) && say "$s: $((PERF_RUNS - i)) runs"
		((i > 0)) || : >"$OUT/raw/$s.txt"
		for (( ; i < PERF_RUNS; i++)); do
			rm -f "$W/perf.csv"
			REC_EXTRA=" " rec "$s.tmp" "${PING[@]}" -- perf stat -x, -o "$W/perf.csv" -e "$ev" -- \
				"$THAW" --restore "$S128" --timing "${pargs[@]}" || continue
			# perf's CSV: value,unit,event,...
			echo "$(tail -n 1 "$OUT/raw/$s.tmp.txt") $(awk -F, '$1 ~ /^[0-9.]+$/ {gsub(/[:-]/, "_", $3); printf "perf_%s=%s ", $3, $1}' "$W/perf.csv")" >>"$OUT/raw/$s.txt"
		done
		rm -f "$OUT/raw/$s.tmp.txt"
	done

	# USDT: thaw's probes become uprobe events with perf probe; they are read from tracefs
	# directly (perf record under TCG took over a minute to start). Each hit traps, so the
	# phases come out a little longer than thaw's own clock says: they check its numbers.
	T=/sys/kernel/tracing
	[[ -d $T/events ]] || T=/sys/kernel/debug/tracing
	perf probe -q -d 'sdt_thaw:*' >/dev/null 2>&1
	# perf probe finds SDT notes only in its build-id cache: a fresh build is not there
	# until something adds it, and an earlier run's copy of the same build (a removed
	# scratch directory) leaves the build id pointing at nothing; -u adds or repoints
	perf buildid-cache -u "$THAW" >/dev/null 2>&1
	s=usdt_128m1v_plain_file
	i=$(runs "$OUT/raw/$s.txt")
	if ((i >= USDT_RUNS)); then
		: # a resumed run that has them
	elif perf probe -q -x "$THAW" -a 'sdt_thaw:*' >"$W/probe.log" 2>&1 && [[ -d $T/events/sdt_thaw ]]; then
		say "$s: $((USDT_RUNS - i)) runs"
		((i > 0)) || : >"$OUT/raw/$s.txt"
		echo 1 >"$T/events/sdt_thaw/enable"
		for (( ; i < USDT_RUNS; i++)); do
			: >"$T/trace"
			REC_EXTRA=" " rec "$s.tmp" "${PING[@]}" -- "$THAW" --restore "$S128" --timing || continue
			# "thaw-123 [000] ..... 4711.000123: restore_start: (0x...)"
			echo "$(tail -n 1 "$OUT/raw/$s.tmp.txt") $(sed -n 's/.* \([0-9][0-9]*\.[0-9]*\): \([a-z_]*\): .*/\2 \1/p' "$T/trace" | awk '
				$1 == "restore_start" { t0 = $2; next }
				t0 != "" { printf "usdt_%s_us=%.1f ", $1, ($2 - t0) * 1e6 }')" >>"$OUT/raw/$s.txt"
		done
		echo 0 >"$T/events/sdt_thaw/enable"
		rm -f "$OUT/raw/$s.tmp.txt"
		perf probe -q -d 'sdt_thaw:*' >/dev/null 2>&1
	else
		note "USDT: perf probe could not make uprobe events of thaw's SDT notes here: $(tail -n 1 "$W/probe.log")"
	fi
elif ! command -v perf >/dev/null; then
	note "perf is not installed: no perf stat or USDT figures"
else
	note "no 128 MiB snapshot: no perf stat or USDT figures"
fi

# ---- 5. cold boot of the probe (issue 2) and the VMM's memory ---------------------------
if [[ $MODE != check ]] && want boot; then
	series "$BOOT_RUNS" boot_probe_128m1v --expect THAW_PROBE_READY --timeout 60000 --mem --guest-mib 128 -- \
		"$THAW" --kernel "$PROBE" --vcpus 1 --mem-mib 128 --timing
	series "$BOOT_RUNS" boot_probe_512m2v --expect THAW_PROBE_READY --timeout 60000 --mem --guest-mib 512 -- \
		"$THAW" --kernel "$PROBE" --vcpus 2 --mem-mib 512 --timing
fi

# ---- 6. N concurrent clones from one snapshot ----------------------------------------------
clones() { # N
	local n=$1 d=$W/clones-$1 i t pids=()
	mkdir -p "$d"
	say "clones_$n: $n restores at once"
	for ((i = 0; i < n; i++)); do
		"$SPAWN" --stderr "$d/err.$i" "${PING[@]}" --timeout 600000 --mem --guest-mib 128 \
			--ready-file "$d/ready.$i" --hold-file "$d/go" -- "$THAW" --restore "$S128" --timing >"$d/out.$i" &
		pids+=($!)
	done
	# Memory is read while all N are alive: PSS shares the page cache among them.
	for ((t = 0; t < 6000; t++)); do
		local ready=0 alive=0
		for ((i = 0; i < n; i++)); do
			[[ -e $d/ready.$i ]] && ready=$((ready + 1))
			kill -0 "${pids[$i]}" 2>/dev/null && alive=$((alive + 1))
		done
		((ready + (n - alive) >= n)) && break
		sleep 0.1
	done
	touch "$d/go"
	wait "${pids[@]}"
	: >"$OUT/raw/clones_$n.txt"
	for ((i = 0; i < n; i++)); do
		echo "$(cat "$d/out.$i") $(sed -n -e 's/^thaw: restore: //p' -e 's/^thaw: timing: //p' "$d/err.$i" | tr '\n' ' ')n=$n" >>"$OUT/raw/clones_$n.txt"
	done
	rm -rf -- "$d"
}
if [[ $MODE != check && -s $S128 ]] && want clones; then
	memfree=$(($(sed -n 's/^MemAvailable: *\([0-9]*\).*/\1/p' /proc/meminfo) / 1024))
	for n in $CLONES; do
		# Each clone costs a few MiB of its own (PSS): refuse what cannot fit.
		if ((n * 8 > memfree)); then
			note "clones: N=$n does not fit in $memfree MiB available here, skipped"
			continue
		fi
		ended "clones_$n" || { clones "$n" && end "clones_$n"; }
	done
fi

# ---- 6b. the fleet: clones from thaw-pool's prepared processes (issue 17) -----------------
# One thaw-pool (unjailed: the jail's cost is the jail group's) over the 128 MiB probe;
# bench/fleet drives it: request .. running (the pool's clock) and .. first answer with a
# stocked pool, N at once .. all answered, PSS per idle clone, clones per second
# (request, answer, delete; the pool refilling meanwhile). The preparation of the stock
# (time, and what the prepared processes hold) is reported apart.
fleet_group() {
	local pd=$W/fleet sock=$W/fleet.sock pid n t0 t1 target rc=0
	local S128=$W/probe-128m1v-idle.snap
	# The fleet's clones idle as a function instance waits for its next request: no
	# timer tick (probe.tick_us=0), as a Linux guest's NOHZ idle. With the probe's
	# default 250 Hz tick each idle clone costs ~3% of a PVM core in timer exits, and
	# a burst of hundreds measures the ticks of those already answered.
	snapshot "$S128" 128 1 "probe.tick_us=0" >/dev/null || return 1
	rm -rf -- "$pd"
	cp -f -- "$top/$B/thaw-pool" "$top/$B/bench/fleet" "$top/$B/thawctl" "$W/bin/" || return 1
	# The processes' run directories on a tmpfs (--run-dir), as docs/pool.md advises:
	# on ext4, inode allocation among the churn of per-clone sockets and records cost
	# the pool as much CPU as the restores of a 512-clone burst.
	local rund=""
	[[ $(stat -f -c %T /dev/shm 2>/dev/null) == tmpfs ]] && rund=$(mktemp -d /dev/shm/thaw-fleet.XXXXXX)
	"$W/bin/thaw-pool" --state-dir "$pd" --api-sock "$sock" --thaw "$THAW" ${rund:+--run-dir "$rund"} \
		2>"$W/fleet-pool.err" &
	pid=$!
	for ((t0 = 0; t0 < 500; t0++)); do
		[[ -S $sock ]] && break
		sleep 0.01
	done
	# pool_stock N: a pool of N prepared; one line "prepare_us= n= pss_total_kb= rss_total_kb="
	pool_stock() {
		local id=$1 want=$2 t0 t1 got=0
		t0=$(date +%s%N)
		"$W/bin/thawctl" -q -s "$sock" pool create "$id" "$S128" --prepared "$want" --refill-per-s 1000 >/dev/null ||
			return 1
		for ((i = 0; i < 60000; i++)); do
			got=$("$W/bin/thawctl" -s "$sock" raw GET "/pools/$id" | sed -n 's/.*"prepared":\([0-9]*\).*/\1/p')
			((got >= want)) && break
			sleep 0.01
		done
		t1=$(date +%s%N)
		"$PY" - "$pd/run" "$(((t1 - t0) / 1000))" "$want" "$got" <<'PYEOF' >>"$OUT/raw/fleet_prepare_$want.txt"
import json, os, sys
run, us, want, got = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
pss = rss = 0
for d in os.listdir(run):
    try:
        rec = json.load(open(os.path.join(run, d, "proc.json")))
        if rec["state"] != "prepared":
            continue
        for line in open("/proc/%d/smaps_rollup" % rec["pid"]):
            k, v = line.split(":", 1)
            if k == "Pss":
                pss += int(v.split()[0])
            elif k == "Rss":
                rss += int(v.split()[0])
    except (OSError, ValueError, KeyError):
        pass
print("prepare_us=%s n=%s prepared=%s pss_total_kb=%d rss_total_kb=%d rc=%d" % (
    us, want, got, pss, rss, 0 if int(got) >= int(want) else 1))
PYEOF
	}
	if ! ended fleet_latency; then
		pool_stock fl 8 && say "fleet_latency_128m1v: $RUNS runs" &&
			"$W/bin/fleet" "$sock" fl latency "$RUNS" >"$OUT/raw/fleet_latency_128m1v.txt" 2>>"$W/fleet.err" || rc=1
		"$W/bin/thawctl" -s "$sock" raw DELETE /pools/fl >/dev/null
		end fleet_latency
	fi
	for n in $FLEET; do
		ended "fleet_burst_$n" && continue
		target=$n
		((target > 1024)) && target=1024
		say "fleet_burst_$n: $n clones at once from a stock of $target"
		pool_stock "fb$n" "$target" &&
			"$W/bin/fleet" "$sock" "fb$n" burst "$n" >"$OUT/raw/fleet_burst_$n.txt" 2>>"$W/fleet.err" || rc=1
		# the deleted clones are reaped before the pool goes
		for ((t1 = 0; t1 < 3000; t1++)); do
			"$W/bin/thawctl" -s "$sock" raw DELETE "/pools/fb$n" >/dev/null && break
			sleep 0.01
		done
		end "fleet_burst_$n"
	done
	if ! ended fleet_rate; then
		say "fleet_rate: $FLEET_SECONDS s of request, answer, delete"
		pool_stock fr 8 && "$W/bin/fleet" "$sock" fr rate "$FLEET_SECONDS" >"$OUT/raw/fleet_rate.txt" 2>>"$W/fleet.err" || rc=1
		end fleet_rate
	fi
	# The same with one client per core: what the pool sustains on the machine, not the
	# latency chain of one client waiting for each step.
	if ! ended fleet_rate_par; then
		say "fleet_rate_par: $FLEET_SECONDS s of request, answer, delete, $(nproc) clients"
		pool_stock frp 16 && "$W/bin/fleet" "$sock" frp rate "$FLEET_SECONDS" "$(nproc)" \
			>"$OUT/raw/fleet_rate_par.txt" 2>>"$W/fleet.err" || rc=1
		end fleet_rate_par
	fi
	kill "$pid" 2>/dev/null
	wait "$pid"
	"$W/bin/thaw-pool" --cleanup --state-dir "$pd" 2>>"$W/fleet.err" || rc=1
	left=$(find "$pd/run/" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
	meta fleet_leftover "$left"
	[[ -n $rund ]] && rmdir -- "$rund" 2>/dev/null
	((rc == 0)) || note "fleet: a step failed: $(tail -n 2 "$W/fleet.err" "$W/fleet-pool.err" | tr '\n' ' ')"
	return $rc
}
if [[ $MODE != check && -s $S128 ]] && want fleet; then
	fleet_group
fi

# ---- 7. the peer: QEMU microvm with KVM, same probe, same clock ----------------------------
if ! want qemu; then
	: # not asked for (--only)
elif ((QEMU)) && [[ $MODE != check ]] && command -v qemu-system-x86_64 >/dev/null; then
	meta qemu_version "$(qemu-system-x86_64 --version | head -n 1)"
	# shellcheck disable=SC2054 # commas belong to the QEMU options
	q=(qemu-system-x86_64 -M microvm -accel kvm -cpu host,-arch-capabilities -m 128 -smp 1
		-nodefaults -no-user-config -display none -serial stdio -kernel "$PROBE")
	qshared=(-object "memory-backend-file,id=ram0,size=128M,mem-path=$W/qemu-ram,share=on"
		-machine memory-backend=ram0)
	if series "$QEMU_RUNS" qemu_boot_128m1v --expect THAW_PROBE_READY --timeout 120000 --mem --guest-mib 128 -- "${q[@]}"; then
		# Its own snapshot: migration to a file (bench/qemu_snap.py drives QMP).
		if (($(runs "$OUT/raw/qemu_restore_128m1v_exec.txt") >= QEMU_RUNS)); then
			: # a resumed run that has them
		elif "$PY" bench/qemu_snap.py "$W/qemu-128.mig" "$W/qs.sock" -- "${q[@]}" \
			-qmp "unix:$W/qs.sock,server=on,wait=off" >"$OUT/raw/qemu_create_128m1v.txt" 2>"$W/qsnap.err"; then
			series "$QEMU_RUNS" qemu_restore_128m1v_exec "${PING[@]}" --timeout 120000 --mem --guest-mib 128 -- \
				"${q[@]}" -incoming "exec:cat $W/qemu-128.mig"
		else
			note "QEMU snapshot (migrate to file) failed: $(tail -n 1 "$W/qsnap.err")"
		fi
		rm -f -- "$W/qemu-128.mig"
		# File-backed memory shared with the file, left out of the stream (x-ignore-shared,
		# settable over QMP only, so the restore uses -incoming defer).
		s=qemu_restore_128m1v_shared
		i=$(runs "$OUT/raw/$s.txt")
		if ((i >= QEMU_RUNS)); then
			: # a resumed run that has them
		elif "$PY" bench/qemu_snap.py --ignore-shared "$W/qemu-128s.mig" "$W/qs.sock" -- "${q[@]}" "${qshared[@]}" \
			-qmp "unix:$W/qs.sock,server=on,wait=off" >"$OUT/raw/qemu_create_128m1v_shared.txt" 2>"$W/qsnap.err"; then
			# A run writes to the shared file: each restore starts from a pristine copy.
			mv -- "$W/qemu-ram" "$W/qemu-ram.orig"
			say "$s: $((QEMU_RUNS - i)) runs"
			((i > 0)) || : >"$OUT/raw/$s.txt"
			for (( ; i < QEMU_RUNS; i++)); do
				cp -- "$W/qemu-ram.orig" "$W/qemu-ram"
				rm -f -- "$W/qr.sock"
				rec "$s" "${PING[@]}" --timeout 120000 --mem --guest-mib 128 --qmp "$W/qr.sock" \
					--qmp-cmd '{"execute":"migrate-set-capabilities","arguments":{"capabilities":[{"capability":"x-ignore-shared","state":true}]}}' \
					--qmp-cmd "{\"execute\":\"migrate-incoming\",\"arguments\":{\"uri\":\"exec:cat $W/qemu-128s.mig\"}}" -- \
					"${q[@]}" "${qshared[@]}" -incoming defer -qmp "unix:$W/qr.sock,server=on,wait=off"
			done
		else
			note "QEMU snapshot with x-ignore-shared failed: $(tail -n 1 "$W/qsnap.err")"
		fi
		rm -f -- "$W/qemu-128s.mig" "$W/qemu-ram" "$W/qemu-ram.orig"
	else
		note "QEMU microvm with -accel kvm could not boot the probe here"
	fi
elif [[ $MODE != check ]]; then
	note "QEMU comparison skipped (--no-qemu or qemu-system-x86_64 missing)"
fi

# ---- 8. the Linux guest's boot, once -------------------------------------------------------
if ((LINUX)) && [[ $MODE != check ]] && want linux; then
	if [[ -f ${THAW_KERNEL:-} ]]; then
		# with ACPI (the default) and without: what the tables, the AML interpreter and the
		# VMGenID/GED devices add to a boot (issue 16)
		for acpi in "" noacpi; do
			series "$LINUX_RUNS" "boot_linux${acpi:+_$acpi}" --expect THAW_GUEST_READY \
				--timeout 600000 --mem --guest-mib 160 -- \
				"$THAW" --kernel "$THAW_KERNEL" --mem-mib 160 --timing ${acpi:+--no-acpi} \
				--cmdline "console=ttyS0 thaw_agent.hold_init=1 quiet"
		done
	else
		note "Linux guest boot skipped: THAW_KERNEL is not built"
	fi
fi

# ---- 9. PUT /snapshot/load through the API socket (issue 6) --------------------------------
# thaw --api-sock, then GET / (answered once the main loop runs, i.e. after --prepare has
# built its VM: a prepared process waits for its request), PUT /metrics, and the timed
# PUT /snapshot/load with resume_vm; ping is in the console pipe from the start. spawn
# reports request .. 204 and request .. "PROBE pong" by its clock, then FlushMetrics gives
# thaw's own latencies_us.load_snapshot. The direct restores of the same snapshot in this
# run (thaw_128m1v_<path>_file) are the comparison.
if [[ $MODE != check && -s $S128 ]] && want api; then
	for path in plain prepared; do
		pargs=()
		[[ $path == prepared ]] && pargs=(--prepare "mem-mib=128,vcpus=1")
		series "$RUNS" "api_128m1v_${path}_file" "${PING[@]}" --mem --guest-mib 128 \
			--api-sock "$W/api.sock" --api-metrics "$W/api-$path.metrics" --api-pre "GET /" \
			--api-req "PUT /snapshot/load {\"snapshot_path\": \"$S128\", \"resume_vm\": true}" -- \
			"$THAW" --api-sock "$W/api.sock" --timing "${pargs[@]}"
		rm -f -- "$W/api.sock" "$W/api-$path.metrics"
	done
	# The API's cost per request without a VM (api/bench_api.c): GET / round trips on one
	# kept-alive connection (issue 6 asks for the median of 10 000), against a bare socket.
	n=10000
	[[ $MODE == smoke ]] && n=1000
	if ended api_overhead; then
		: # a resumed run that has it
	elif [[ -x $top/$B/bench_api ]]; then
		say "api_overhead: $top/$B/bench_api $n"
		if "$top/$B/bench_api" "$n" >"$W/bench_api.out" 2>&1; then
			echo "$(sed -n 's/^bench_api: //p' "$W/bench_api.out") rc=0" >"$OUT/raw/api_overhead.txt"
		else
			note "api_overhead: bench_api failed: $(tail -n 1 "$W/bench_api.out")"
			echo "rc=1" >"$OUT/raw/api_overhead.txt"
		fi
		end api_overhead
	else
		note "api_overhead: $B/bench_api is missing (make programs)"
	fi
fi

# ---- 9b. a guest flooding its devices must not starve the API (issue 14) -----------------
# bench/flood.c: thaw --api-sock with the probe, an rng, a vsock and (in a private network
# namespace, when unshare -n works) a net on a tap thaw creates; per device, N GET / on one
# kept-alive connection while the guest idles, then N while the probe's `flood` request
# keeps the device's queue full. raw/flood_<dev>.txt: idle and flooded p50/p99/max (us), the
# p99 ratio (issue 14 asks for at most 2) and how many chains the guest published.
# flood_series GROUP DRIVE [flood options]: FLOOD_RUNS runs of bench/flood.c, in a private
# network namespace with a tap (made and up before thaw attaches: a down tap refuses
# writes) when one can be made; DRIVE 1 gives the VM a 16 MiB drive too. Each device's
# line goes to raw/GROUP_<dev>.txt.
flood_series() {
	local group=$1 drive=$2 pre=() tap=() dargs=() i fd
	shift 2
	if command -v ip >/dev/null && unshare -n sh -c 'ip tuntap add thawflood0 mode tap vnet_hdr' 2>/dev/null; then
		pre=(unshare -n sh -c 'ip tuntap add thawflood0 mode tap vnet_hdr && ip link set thawflood0 up && exec "$@"' flood)
		tap=(--tap thawflood0)
	else
		note "$group: no tap in a private network namespace here (unshare -n or ip tuntap failed): no net device"
	fi
	i=$(runs "$OUT/raw/${group}_rng.txt")
	for (( ; i < FLOOD_RUNS; i++)); do
		fd=$W/$group-$i
		mkdir -p "$fd"
		dargs=()
		((drive)) && truncate -s 16M "$fd/disk.img" && dargs=(--drive "$fd/disk.img")
		if "${pre[@]}" "$FLOOD" "$@" "${dargs[@]}" "${tap[@]}" "$THAW" "$PROBE" "$fd" \
			>"$W/$group.out" 2>"$W/$group.err"; then
			while read -r dev rest; do
				echo "$rest rc=0" >>"$OUT/raw/${group}_${dev#dev=}.txt"
			done <"$W/$group.out"
		else
			note "$group: run $i failed: $(tail -n 1 "$W/$group.err") $(grep -v '^thaw: info' "$fd/thaw.err" 2>/dev/null | tail -n 1)"
			echo "rc=1" >>"$OUT/raw/${group}_rng.txt"
		fi
		rm -rf -- "$fd"
	done
}

if [[ $MODE != check ]] && want flood; then
	i=$(runs "$OUT/raw/flood_rng.txt")
	((i < FLOOD_RUNS)) && say "flood: $((FLOOD_RUNS - i)) runs of $FLOOD_REQUESTS GET / idle and flooded"
	flood_series flood 0 --requests "$FLOOD_REQUESTS"
fi

# ---- 9c. rate limiters (issue 19 item 5) -------------------------------------------------
# bench/flood.c --limit: the drive (a 16 MiB file), the net (on a tap, as above) and the
# entropy device each get a 1 MiB/s bandwidth bucket (100 KiB per 100 ms) and the probe
# floods each for RL_SECONDS; raw/ratelimit_<dev>.txt: achieved bytes/s (what the device
# used less the bucket it started with) and its ratio to the limit (issue 19: within 5%).
RL_SECONDS=${RL_SECONDS:-10} RL_LIMIT=1048576
[[ $MODE == smoke ]] && RL_SECONDS=2
if [[ $MODE != check ]] && want ratelimit; then
	i=$(runs "$OUT/raw/ratelimit_rng.txt")
	((i < FLOOD_RUNS)) && say "ratelimit: $((FLOOD_RUNS - i)) runs of ${RL_SECONDS} s per device at $RL_LIMIT B/s"
	flood_series ratelimit 1 --limit "$RL_LIMIT" --seconds "$RL_SECONDS"
fi

# ---- 9d. disks (issue 20) ---------------------------------------------------------------
# bench/flood.c --measure: the probe floods a drive's queue with 4 KiB reads of sector 0
# for DISK_SECONDS, on a raw file, on a qcow2 image whose first cluster is allocated
# (qemu-io), and on a thaw-disk overlay over the raw file (the read goes to the backing
# file). raw/disk_<kind>.txt: bytes/s the guest got; report.py gives each against raw.
DISK_SECONDS=${DISK_SECONDS:-5}
[[ $MODE == smoke ]] && DISK_SECONDS=2
if [[ $MODE != check ]] && want disk; then
	if command -v qemu-io >/dev/null && [[ -x $top/$B/thaw-disk ]]; then
		i=$(runs "$OUT/raw/disk_raw.txt")
		((i < FLOOD_RUNS)) && say "disk: $((FLOOD_RUNS - i)) runs of ${DISK_SECONDS} s per kind"
		for (( ; i < FLOOD_RUNS; i++)); do
			dd=$W/disk-$i
			mkdir -p "$dd"
			truncate -s 16M "$dd/raw.img"
			"$top/$B/thaw-disk" create "$dd/qcow2.img" 16777216 &&
				qemu-io -f qcow2 -c 'write 0 64k' "$dd/qcow2.img" >/dev/null &&
				"$top/$B/thaw-disk" overlay "$dd/overlay.img" raw.img ||
				note "disk: making the images failed"
			for kind in raw qcow2 overlay; do
				mkdir -p "$dd/$kind"
				if "$FLOOD" --measure --drive "$dd/$kind.img" --seconds "$DISK_SECONDS" \
					"$THAW" "$PROBE" "$dd/$kind" >"$W/disk.out" 2>"$W/disk.err"; then
					echo "$(sed 's/^dev=blk //' "$W/disk.out") rc=0" >>"$OUT/raw/disk_$kind.txt"
				else
					note "disk: $kind run $i failed: $(tail -n 1 "$W/disk.err")"
					echo "rc=1" >>"$OUT/raw/disk_$kind.txt"
				fi
			done
			rm -rf -- "$dd"
		done
	else
		note "disk: qemu-io or thaw-disk missing: no disk group"
	fi
fi
# The same group in the Linux guest (bench/disk_guest.py): its kernel agent's timed bio
# loops at queue depth 1 (guest user space, hence fio, does not run on PVM), 4 KiB random
# and 1 MiB sequential, on a raw file and a qcow2 overlay of the same base, under thaw and
# under QEMU microvm with KVM (the same kernel, virtio-blk). One VM per VMM, DISK_LINUX_MS
# per measurement. raw/disk_linux_<vmm>_<drive>_<rw>_<region>.txt (iops, mbps, ...),
# raw/disk_linux_boot_<vmm>.txt. DISK_LINUX=0 leaves it out.
DISK_LINUX_MS=${DISK_LINUX_MS:-10000} DISK_LINUX_MIB=${DISK_LINUX_MIB:-256}
[[ $MODE == smoke ]] && DISK_LINUX_MS=1000 DISK_LINUX_MIB=16
if [[ $MODE != check && ${DISK_LINUX:-1} != 0 ]] && want disk; then
	vmms=thaw
	if ((QEMU)) && command -v qemu-system-x86_64 >/dev/null; then
		vmms=thaw,qemu
	else
		note "disk_linux: QEMU left out (--no-qemu or qemu-system-x86_64 missing)"
	fi
	if [[ ! -f ${THAW_KERNEL:-} ]]; then
		note "disk_linux: THAW_KERNEL is not built: no Linux disk runs"
	elif ! command -v qemu-img >/dev/null; then
		note "disk_linux: qemu-img missing: no Linux disk runs"
	elif (($(runs "$OUT/raw/disk_linux_boot_thaw.txt") < 1)); then
		say "disk_linux: $vmms, ${DISK_LINUX_MS} ms per measurement on a ${DISK_LINUX_MIB} MiB base"
		mkdir -p "$W/dlinux"
		"$PY" bench/disk_guest.py "$THAW" "$top/$B/thaw-disk" "$THAW_KERNEL" "$W/dlinux" \
			--base-mib "$DISK_LINUX_MIB" --ms "$DISK_LINUX_MS" --vmms "$vmms" >"$W/dlinux.out" 2>"$W/dlinux.err" ||
			note "disk_linux: $(tail -n 1 "$W/dlinux.err")"
		re='^vmm=([a-z]+) drive=([a-z0-9]+) rw=([a-z]+) bs=[0-9]+ region=([a-z]+) '
		while read -r line; do
			if [[ $line =~ $re ]]; then
				echo "$line rc=0" >>"$OUT/raw/disk_linux_${BASH_REMATCH[1]}_${BASH_REMATCH[2]}_${BASH_REMATCH[3]}_${BASH_REMATCH[4]}.txt"
			elif [[ $line =~ ^vmm=([a-z]+)\ boot_s= ]]; then
				echo "$line rc=0" >>"$OUT/raw/disk_linux_boot_${BASH_REMATCH[1]}.txt"
			elif [[ $line =~ ^vmm=([a-z]+)\ overlay_check=([0-9]+) ]]; then
				meta "disk_linux_${BASH_REMATCH[1]}_overlay_check" "${BASH_REMATCH[2]}"
			fi
		done <"$W/dlinux.out"
		rm -rf -- "$W/dlinux"
	fi
fi

# ---- 9e. disks that clone, and what a disk checkpoint costs (issue 20) -------------------
# bench/disk_clones.py clones: a probe snapshot with a 256 MiB raw base as its drive, then
# DISK_CLONES clones restored at once, each on its own overlay (overlay-of), each reading
# the base's first 16 MiB and writing 4 KiB. raw/diskclones.txt: the base's pages in the
# page cache, the sum of the clones' PSS, each overlay's allocated size and qemu-img check;
# raw/diskclones_overlay.txt: the restore's devices phase with a ready-made overlay and
# with overlay-of, in pairs (their difference: the overlay's creation at restore).
# bench/disk_clones.py checkpoint: a 1 GiB qcow2 with 256 MiB allocated; rounds of a plain
# snapshot, --snapshot-disks external and internal in turn, as thaw times them.
# raw/diskckpt.txt (the memory file fsynced, as by default) and raw/diskckpt_nofsync.txt
# (--snapshot-no-fsync: the disk checkpoint's own syncs without the memory file's);
# raw/diskckpt_calls.txt: bench/disk_ckpt.c, the same disk calls alone, on such an image
# (no VM: what the checkpoints add, and the overlay a restore makes).
# On tmpfs (the nested host's scratch) the base stays whole in memory and fdatasync does
# nothing: there the page cache and checkpoint figures say little (meta: scratch_fs).
DISK_CLONES=${DISK_CLONES:-100} DISK_PAIRS=${DISK_PAIRS:-30} DISK_CKPT_ROUNDS=${DISK_CKPT_ROUNDS:-30}
DISK_BASE_MIB=256
[[ $MODE == smoke ]] && DISK_CLONES=4 DISK_PAIRS=3 DISK_CKPT_ROUNDS=2 DISK_BASE_MIB=80
DISK_TOOL=$top/$B/thaw-disk
# disk_run SERIES CMD...: CMD's `round=`/`clones=` lines to raw/SERIES.txt and its
# `pair=` lines to raw/SERIES_overlay.txt, each with rc=0; a failure is a note and rc=1.
disk_run() {
	local s=$1
	shift
	if "$@" >"$W/dk.out" 2>"$W/dk.err"; then
		sed -n 's/^\(round\|clones\)=.*/& rc=0/p' "$W/dk.out" >>"$OUT/raw/$s.txt"
		! grep -q '^pair=' "$W/dk.out" ||
			sed -n 's/^pair=.*/& rc=0/p' "$W/dk.out" >>"$OUT/raw/${s}_overlay.txt"
	else
		note "$s: failed: $(tail -n 1 "$W/dk.err")"
		echo "rc=1" >>"$OUT/raw/$s.txt"
	fi
}
if [[ $MODE != check ]] && want diskclones; then
	if command -v qemu-img >/dev/null && command -v fincore >/dev/null && [[ -x $DISK_TOOL ]]; then
		if (($(runs "$OUT/raw/diskclones.txt") < 1)); then
			say "diskclones: $DISK_CLONES clones on their own overlays of one base, $DISK_PAIRS overlay pairs"
			mkdir -p "$W/diskclones"
			disk_run diskclones "$PY" bench/disk_clones.py clones "$THAW" "$DISK_TOOL" "$PROBE" \
				"$W/diskclones" --clones "$DISK_CLONES" --pairs "$DISK_PAIRS" --base-mib "$DISK_BASE_MIB"
			rm -rf -- "$W/diskclones"
		fi
	else
		note "diskclones: qemu-img, fincore or thaw-disk missing: no diskclones group"
	fi
fi
if [[ $MODE != check ]] && want diskckpt; then
	if command -v qemu-io >/dev/null && [[ -x $DISK_TOOL && -x $top/$B/bench-disk-ckpt ]]; then
		i=$(runs "$OUT/raw/diskckpt_calls.txt")
		if ((i < DISK_CKPT_ROUNDS)); then
			say "diskckpt_calls: $((DISK_CKPT_ROUNDS - i)) rounds of the disk calls alone"
			mkdir -p "$W/dkc"
			if "$DISK_TOOL" create "$W/dkc/disk.qcow2" 1G >/dev/null &&
				qemu-io -f qcow2 -c 'write -P 0xab 0 256M' "$W/dkc/disk.qcow2" >/dev/null; then
				disk_run diskckpt_calls "$top/$B/bench-disk-ckpt" "$W/dkc/disk.qcow2" $((DISK_CKPT_ROUNDS - i))
			else
				note "diskckpt_calls: making the image failed"
			fi
			rm -rf -- "$W/dkc"
		fi
		for nf in 0 1; do
			s=diskckpt && ((nf)) && s=diskckpt_nofsync
			i=$(runs "$OUT/raw/$s.txt")
			((i < DISK_CKPT_ROUNDS)) || continue
			say "$s: $((DISK_CKPT_ROUNDS - i)) rounds of plain, external and internal snapshots"
			mkdir -p "$W/$s"
			disk_run "$s" "$PY" bench/disk_clones.py checkpoint "$THAW" "$DISK_TOOL" "$PROBE" "$W/$s" \
				--rounds $((DISK_CKPT_ROUNDS - i)) --no-fsync $nf
			rm -rf -- "${W:?}/$s"
		done
	else
		note "diskckpt: qemu-io, thaw-disk or bench-disk-ckpt missing: no diskckpt group"
	fi
fi

# ---- 10. the jail (issue 8): jailed vs unjailed restores, N jailed at once, setup ----------
# The static thaw (no libraries to bring into the jail), restoring the 128m1v snapshot
# linked in read-only; the unjailed runs use the same binary and snapshot, interleaved with
# the jailed ones so drift in the machine's load hits both alike. thaw-jailer -v prints its
# own setup time (start .. execve of thaw): jail_setup_us. Every jail is removed with
# thaw-jailer --cleanup right after its run and checked gone at the end.
JAILER=$top/$B/thaw-jailer TSTATIC=$top/$B/thaw-static JB=$W/jails
: >"$W/jail-ids"
jail_cleanup() { # ID: 0 when the jail left nothing behind
	"$JAILER" --cleanup --id "$1" --chroot-base "$JB" >/dev/null 2>>"$W/jail-cleanup.err" &&
		! compgen -G "$JB/*/$1" >/dev/null
}
if [[ $MODE != check && -s $S128 ]] && want jail; then
	jthaw=$TSTATIC jlinks=()
	if [[ ! -x $TSTATIC ]]; then
		# A dynamic thaw works with its loader and libraries linked in; the figure then
		# includes those extra bind mounts, so the note says so.
		jthaw=$THAW
		for f in $(ldd "$THAW" | grep -o '/[^ ]*'); do jlinks+=(--link "$f:$f:ro"); done
		note "jail: $TSTATIC is missing (make $B/thaw-static): jailed the dynamic thaw with ${#jlinks[@]} library links, and the unjailed runs use it too"
	fi
	if [[ ! -x $JAILER ]]; then
		note "jail: $JAILER is missing (make programs): no jail figures"
	elif (($(id -u) != 0)); then
		note "jail: needs root (thaw-jailer): no jail figures"
	else
		mkdir -p "$JB" && chmod 755 "$JB"
		# Both binaries from local storage, as on a real host: the jailer copies thaw into
		# each jail, and reading it over the test host's 9p export cost 80-350 ms a jail.
		if [[ $jthaw == "$TSTATIC" ]]; then
			cp -- "$jthaw" "$W/bin/thaw-static" && jthaw=$W/bin/thaw-static
		fi
		cp -- "$JAILER" "$W/bin/thaw-jailer" && JAILER=$W/bin/thaw-jailer
		meta jail_exec "$jthaw"
		# The jailed uid reads the snapshot through its read-only link.
		chmod 644 "$S128"
		jargs=(-v --exec-file "$jthaw" --uid 10000 --gid 10000 --chroot-base "$JB"
			--cgroup pids.max=64 "${jlinks[@]}" --link "$S128:/ready.snap:ro" --)
		leftover=0
		# A resumed run goes on from the last pair both series hold.
		i=$(runs "$OUT/raw/jail_128m1v_unjailed.txt") j=$(runs "$OUT/raw/jail_128m1v_jailed.txt")
		((j < i)) && i=$j
		for kind in unjailed jailed; do
			head -n "$i" "$OUT/raw/jail_128m1v_$kind.txt" >"$W/jail.part" 2>/dev/null
			mv -- "$W/jail.part" "$OUT/raw/jail_128m1v_$kind.txt"
		done
		((i < JAIL_RUNS)) && say "jail_128m1v_{unjailed,jailed}: $((JAIL_RUNS - i)) runs each, interleaved"
		for (( ; i < JAIL_RUNS; i++)); do
			rec jail_128m1v_unjailed "${PING[@]}" -- "$jthaw" --restore "$S128" --timing
			id=bj-s$i
			echo "$id" >>"$W/jail-ids"
			rec jail_128m1v_jailed "${PING[@]}" -- "$JAILER" --id "$id" "${jargs[@]}" \
				--restore /ready.snap --timing
			jail_cleanup "$id" || leftover=$((leftover + 1))
		done
		# N at once: each spawn's own figures, and per batch the wall time from the first
		# start to the last answer (spawn --clock: CLOCK_MONOTONIC, one clock for all).
		for kind in unjailed jailed; do
			s=jail_at_once_${JAIL_AT_ONCE}_$kind
			# A resumed run keeps the batches that ended (those with a wall line).
			b=$(runs "$OUT/raw/${s}_wall.txt")
			awk -v b="$b" '{ for (i = 1; i <= NF; i++) if ($i ~ /^batch=/ && substr($i, 7) + 0 < b) print }' \
				"$OUT/raw/$s.txt" >"$W/jail.part" 2>/dev/null
			mv -- "$W/jail.part" "$OUT/raw/$s.txt"
			((b > 0)) || : >"$OUT/raw/${s}_wall.txt"
			((b < JAIL_BATCHES)) && say "$s: $((JAIL_BATCHES - b)) batches of $JAIL_AT_ONCE restores at once"
			for (( ; b < JAIL_BATCHES; b++)); do
				d=$W/at-once && rm -rf -- "$d" && mkdir -p "$d"
				pids=()
				for ((i = 0; i < JAIL_AT_ONCE; i++)); do
					if [[ $kind == jailed ]]; then
						id=bj-c$b-$i
						echo "$id" >>"$W/jail-ids"
						cmd=("$JAILER" --id "$id" "${jargs[@]}" --restore /ready.snap --timing)
					else
						cmd=("$jthaw" --restore "$S128" --timing)
					fi
					"$SPAWN" --clock --stderr "$d/err.$i" "${PING[@]}" --timeout 300000 -- \
						"${cmd[@]}" >"$d/out.$i" &
					pids+=($!)
				done
				good=0
				for ((i = 0; i < JAIL_AT_ONCE; i++)); do
					wait "${pids[$i]}"
					rc=$?
					((rc == 0)) && good=$((good + 1))
					((rc == 0)) || cp -f -- "$d/err.$i" "$OUT/raw/$s.last-error.txt"
					echo "$(cat "$d/out.$i") $(sed -n -e 's/^thaw: restore: //p' -e 's/^thaw: timing: //p' \
						"$d/err.$i" | tr '\n' ' ')$(jail_steps "$d/err.$i")n=$JAIL_AT_ONCE batch=$b rc=$rc" \
						>>"$OUT/raw/$s.txt"
					if [[ $kind == jailed ]]; then
						jail_cleanup "bj-c$b-$i" || leftover=$((leftover + 1))
					fi
				done
				# The batch counts only when every restore in it answered.
				cat "$d"/out.* | awk -v n="$JAIL_AT_ONCE" -v good="$good" '
					{ for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
					  if (v["answer_ns"] > 0) {
						if (start == "" || v["start_ns"] < start) start = v["start_ns"]
						if (v["answer_ns"] > last) last = v["answer_ns"] } }
					END { printf "wall_us=%d n=%d good=%d rc=%d\n", (last - start) / 1000, n, good, good == n ? 0 : 1 }' \
					>>"$OUT/raw/${s}_wall.txt"
				if ((good < JAIL_AT_ONCE)); then
					echo "bench: $s: batch $b: only $good of $JAIL_AT_ONCE answered" >&2
				fi
			done
			rm -rf -- "$W/at-once"
		done
		# Nothing may stay: no jail directory, nothing mounted under the base.
		left=$(find "$JB/thaw" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
		grep -q " $JB" /proc/self/mountinfo && left=$((left + 1))
		leftover=$((leftover > left ? leftover : left))
		meta jail_leftover "$leftover"
		((leftover == 0)) || note "jail: $leftover jails were not cleaned up: $(tail -n 2 "$W/jail-cleanup.err" 2>/dev/null | tr '\n' ' ')"
	fi

	# Jail setup alone, with and without cgroups and a PID namespace (jailer/bench_jail.c:
	# jailer start .. the jailed program's main(), each configuration's median).
	if ended jail_setup; then
		: # a resumed run that has it
	elif [[ -x $top/$B/bench_jail && -x $top/$B/tests/jailer_probe ]] && (($(id -u) == 0)); then
		say "jail_setup: $top/$B/bench_jail, $((JAIL_RUNS > 4 ? JAIL_RUNS : 4)) runs"
		cp -- "$top/$B/tests/jailer_probe" "$W/bin/"
		[[ -x $W/bin/thaw-jailer ]] || cp -- "$top/$B/thaw-jailer" "$W/bin/"
		if "$top/$B/bench_jail" "$W/bin/thaw-jailer" "$W/bin/jailer_probe" \
			$((JAIL_RUNS > 4 ? JAIL_RUNS : 4)) >"$W/bench_jail.out" 2>"$W/bench_jail.err"; then
			grep '^{"bench":"jail"' "$W/bench_jail.out" | "$PY" -c '
import json, sys
names = ("plain", "jail", "cgroups", "cgroups_pidns")
for name, r in zip(names, json.load(sys.stdin)["results"]):
    with open(sys.argv[1] + "/raw/jail_setup_" + name + ".txt", "w") as f:
        f.write("setup_us=%.0f setup_min_us=%.0f cleanup_us=%.0f at_once_each_us=%.0f "
                "ten_at_once_wall_us=%.0f ten_sequential_us=%.0f\n" % (
                    r["setup_us"]["median"], r["setup_us"]["min"], r["cleanup_us"],
                    r["concurrent_each_median_us"], r["ten_concurrent_wall_ms"] * 1000,
                    r["ten_sequential_ms"] * 1000))
' "$OUT" || note "jail setup: bench_jail's JSON line unreadable"
		else
			note "jail setup: bench_jail failed: $(tail -n 1 "$W/bench_jail.err")"
		fi
		end jail_setup
	else
		note "jail setup: $B/bench_jail or $B/tests/jailer_probe missing (make $B/bench_jail $B/tests/jailer_probe), or not root"
	fi
fi

# ---- 11. cold restores: a scattered working set, page cache cold and warm (issue 21) ---
# The probe plays a function whose working set is spread over its memory: `touchscatter
# WS SEED 4 w` visits every 4 KiB page of [4, 4+WS) MiB once in a fixed pseudo-random
# order (guest/probe/PROTOCOL.md) and writes its first word. The snapshot (COLD_RAM MiB)
# is taken after `touch` has written data into every page, so no page is a hole or a
# zero page. Its working set is recorded once per size by a restore that runs the same
# request (--uffd-strategy record) and stored in a copy of the snapshot as its
# `workingset` section (thaw-uffd embed): the first restore on a new host has it.
# Restores are prepared (--prepare): creating the VM, whose kernel waits grow with the
# machine's load (bench/README.md, "Fresh-VM restore"), is then not in the figure, which
# is about memory. Per working set, cache state and strategy, series
# cold_<WS>m_<cache>_<strategy>:
#   file                  mmap MAP_PRIVATE of the snapshot (thaw's default)
#   uffd-ondemand         anonymous memory, thaw's handler installs one page a fault
#   uffd-prefetch         thaw's handler reads the embedded working set with io_uring in
#                         batches of 4096 pages in recorded order, while the vCPU runs
#   uffd-prefetch-sorted  the same with one batch (batch=65536): the whole working set
#                         sorted into file order, fewest and largest reads
# cold: posix_fadvise(POSIX_FADV_DONTNEED) on the snapshot before each run (and with
# --cold-drop-caches, drop_caches); warm: the whole snapshot read (cat) before each run.
# Each run's line has spawn's answer_us, thaw's restore .. first answer, the faults of the
# thaw process (minflt/majflt), uffd_faults (events its handler read), io_read_bytes (what
# the process had fetched from storage) and cache_resident_kb (the snapshot's pages in the
# page cache when the run started, fincore).
case $MODE in
check) COLD_WS=${COLD_WS:-32} COLD_RUNS=${COLD_RUNS:-6} COLD_RAM=256 ;;
smoke) COLD_WS=${COLD_WS:-8} COLD_RUNS=${COLD_RUNS:-2} COLD_RAM=32 ;;
*) COLD_WS=${COLD_WS:-8 32 128} COLD_RUNS=${COLD_RUNS:-10} COLD_RAM=256 ;;
esac
COLD_STRATEGIES="file uffd-ondemand uffd-prefetch uffd-prefetch-sorted"
# cold_cache STATE FILE: puts FILE's pages in or out of the page cache; sets REC_EXTRA.
cold_cache() {
	if [[ $1 == cold ]]; then
		((COLD_DROP)) && { sync && echo 1 >/proc/sys/vm/drop_caches || note "cold: drop_caches refused"; }
		"$PY" -c 'import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
os.fdatasync(fd)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)' "$2"
	else
		cat -- "$2" >/dev/null
	fi
	REC_EXTRA="cache_resident_kb=$(($(fincore -b -n -o RES -- "$2" 2>/dev/null || echo 0) / 1024)) "
}
# cold_measure: tops every cold series up to COLD_RUNS runs (the check's confirmation
# calls it again with more), for the working sets whose snapshots are ready.
COLD_READY=""
cold_measure() {
	local ws req snap cache st cargs s i
	for ws in $COLD_READY; do
		req="touchscatter $ws 7 4 w"
		snap=$W/cold-$ws.snap
		for cache in warm cold; do
			for st in $COLD_STRATEGIES; do
				case $st in
				file) cargs=() ;;
				uffd-ondemand) cargs=(--mem-backend uffd --uffd-strategy ondemand) ;;
				uffd-prefetch) cargs=(--mem-backend uffd --uffd-strategy prefetch) ;;
				uffd-prefetch-sorted) cargs=(--mem-backend uffd --uffd-strategy "prefetch,batch=65536") ;;
				esac
				s=cold_${ws}m_${cache}_$st
				i=$(runs "$OUT/raw/$s.txt")
				((i < COLD_RUNS)) || continue
				say "$s: $((COLD_RUNS - i)) runs"
				((i > 0)) || : >"$OUT/raw/$s.txt"
				for (( ; i < COLD_RUNS; i++)); do
					cold_cache "$cache" "$snap"
					rec "$s" --send "$req" --expect "PROBE touchscatter" --timeout 600000 --mem \
						--guest-mib "$COLD_RAM" -- "$THAW" --restore "$snap" --timing \
						--prepare "mem-mib=$COLD_RAM,vcpus=1" "${cargs[@]}" || :
					REC_EXTRA=""
				done
			done
		done
	done
}
if want cold; then
	meta cold_ws_mib "$COLD_WS"
	meta cold_ram_mib "$COLD_RAM"
	meta cold_cache_drop "posix_fadvise(DONTNEED) on the snapshot$( ((COLD_DROP)) && echo ', and drop_caches')"
	[[ $(stat -f -c %T "$W") == tmpfs ]] &&
		note "cold: the scratch ($W) is tmpfs, whose pages cannot be dropped: the 'cold' runs start from a warm cache (cache_resident_kb) and the check skips the cold goals"
	UFFDBIN=$top/$B/thaw-uffd
	CB=$W/cold-base.snap
	if [[ ! -x $UFFDBIN ]]; then
		note "cold: $UFFDBIN is missing (make programs): no cold group"
	elif ! {
		coproc CSNAP { exec timeout 600 "$THAW" --kernel "$PROBE" --vcpus 1 --mem-mib "$COLD_RAM" \
			--snapshot "$CB" --snapshot-after "PROBE touch" --snapshot-then exit 2>"$W/cold-snap.err"; }
		while IFS= read -r -t 300 line <&"${CSNAP[0]}"; do [[ $line == THAW_PROBE_READY* ]] && break; done
		echo "touch 2 $((COLD_RAM - 4)) 3" >&"${CSNAP[1]}"
		wait "$CSNAP_PID" && [[ -s $CB ]]
	}; then
		note "cold: the base snapshot failed: $(tail -n 1 "$W/cold-snap.err")"
	else
		for ws in $COLD_WS; do
			req="touchscatter $ws 7 4 w"
			snap=$W/cold-$ws.snap
			if ! "$SPAWN" --stderr "$W/err" --send "$req" --expect "PROBE touchscatter" --timeout 600000 -- \
				"$THAW" --restore "$CB" --mem-backend uffd --uffd-strategy record --uffd-record "$W/ws-$ws" >/dev/null ||
				! "$UFFDBIN" embed --snapshot "$CB" --workingset "$W/ws-$ws" --out "$snap" >"$W/embed.err" 2>&1; then
				note "cold ${ws}m: recording or embedding the working set failed: $(grep -v '^thaw: info' "$W/err" | tail -n 1) $(tail -n 1 "$W/embed.err")"
				continue
			fi
			meta "cold_${ws}m_ws_pages" "$(sed -n 's/^thaw: info: uffd: .* recorded=\([0-9]*\).*/\1/p' "$W/err")"
			sync -f "$snap" 2>/dev/null
			COLD_READY+=" $ws"
		done
		rm -f -- "$CB"
		cold_measure
	fi
fi

# ---- report --------------------------------------------------------------------------------
meta loadavg_end "$(cut -d' ' -f1-3 /proc/loadavg)"
rargs=()
[[ $MODE == check ]] && rargs=(--check "$top/bench/baseline.json")
[[ $MODE == smoke ]] && rargs=(--smoke)
if [[ $MODE == check ]] && ! "$PY" bench/report.py "$OUT" "${rargs[@]}" >"$W/check1.txt"; then
	# Confirm a failure over twice the runs (section 3c) before reporting it.
	sed -n 's/^bench-check: FAIL: /bench: check: first verdict: /p' "$W/check1.txt" >&2
	note "check: the first $CHECK_ROUNDS rounds failed ($(grep -c '^bench-check: FAIL' "$W/check1.txt") figures): $CHECK_ROUNDS more rounds measured to confirm, the verdict is over all of them"
	check_rounds $((CHECK_ROUNDS + 1)) $((2 * CHECK_ROUNDS))
	COLD_RUNS=$((2 * COLD_RUNS))
	cold_measure
fi
"$PY" bench/report.py "$OUT" "${rargs[@]}"
