#!/bin/bash
# thaw-oci through the real engines against runc's trivial container, in one run
# (issue 18, docs/oci.md): from the engine's command start to the first answer.
#   ctr_thaw     ctr run --runc-binary thaw-oci of the probe snapshot image: `ping` on
#                stdin, until "PROBE pong" on stdout
#   ctr_runc     ctr run (Debian's runc) of a busybox image: until its `echo` prints
#   podman_thaw  podman run -i --runtime thaw-oci --rootfs (the snapshot): until the pong
#   podman_runc  podman run --runtime runc --rootfs (busybox): until its echo
#   ctr_pool     as ctr_thaw, with --annotation org.thaw.pool=<socket>: create takes a
#                prepared VMM from a jailed thaw-pool of the same snapshot (stock 2,
#                refilled between runs) instead of starting one; pool_hits=1 in its line
#                says the run was served by the stock (0: create fell back)
#   podman_pool  as podman_thaw, through the same pool
#   run_thaw     no engine: `thaw-oci run` of a bundle (the snapshot, a cgroups path and a
#                memory limit: jailed as under ctr) in the foreground, `ping` on its
#                stdin, until the pong: create + start + the answer, the runtime alone
#   run_pool     as run_thaw with the pool annotation (pool_hits as above)
# Each run ends its container (ctr task kill / podman kill for the clone, the trivial
# one exits) and the engine's --rm removes it. The series are interleaved run by run, so
# a change in the shared machine's load hits all four alike. A wrapper runtime records
# when each runtime command (create, start, delete) begins and ends, to say where the
# time goes. containerd and podman run with their own root, state and sockets in a
# temporary directory; the overlayfs snapshotter (native copies the snapshot per
# container) and podman's vfs storage (--rootfs does not use it).
#
#
# Page-cache sharing (--share N, default 4; 0 skips it): N containers of the snapshot
# image at once under ctr, with each snapshotter containerd has (overlayfs, native),
# each guest reading all its RAM (the probe's `sum`, so every page of the snapshot's
# memory is faulted in). Then, per snapshotter: the snapshot files in the snapshotter's
# store that hold page cache and how much (fincore), and each VMM's RSS and PSS
# (/proc/PID/smaps_rollup). One copy of the pages shared by all clones shows as one
# file, ~64 MiB of page cache and PSS ~RSS/N; a copy per container as N of each.
#
# usage: bench/oci.sh [--build DIR] [--runs N] [--share N] [--out DIR]
# Writes OUT/raw/oci_<series>.txt (one line per run: first_ms= end_ms= rc= and the
# runtime's phases), OUT/raw/share_<snapshotter>.txt (one line per VMM, then the totals)
# and prints medians and the sharing table; needs root, /dev/kvm, containerd, podman,
# runc, umoci, busybox, fincore (make deps).
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd -P)
cd "$top" || exit 2
B=build RUNS=10 SHARE=4 OUT=""
while (($#)); do
	case $1 in
	--build) B=$2 && shift 2 ;;
	--runs) RUNS=$2 && shift 2 ;;
	--share) SHARE=$2 && shift 2 ;;
	--out) OUT=$2 && shift 2 ;;
	*) echo "usage: bench/oci.sh [--build DIR] [--runs N] [--share N] [--out DIR]" >&2 && exit 2 ;;
	esac
done
B=$(cd "$B" && pwd -P)
OUT=${OUT:-bench/results/oci-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT/raw"
OUT=$(cd "$OUT" && pwd -P)
for p in containerd ctr podman runc umoci busybox python3 fincore; do
	command -v $p >/dev/null || { echo "bench/oci.sh: $p is missing (make deps)" >&2; exit 2; }
done
eval "$(guest/env.sh)" || exit 2
W=$(mktemp -d /tmp/thaw-ocibench-XXXXXX)
chmod 755 "$W"
say() { echo "bench/oci: $(date -u +%H:%M:%S) $*" >&2; }

cdpid="" poolpid=""
cleanup() {
	for t in $(ctr -a "$W/cd/c.sock" task ls -q 2>/dev/null); do
		ctr -a "$W/cd/c.sock" task kill -s SIGKILL "$t"; sleep 0.2
		ctr -a "$W/cd/c.sock" task delete -f "$t"
	done >/dev/null 2>&1
	for c in $(ctr -a "$W/cd/c.sock" containers ls -q 2>/dev/null); do
		ctr -a "$W/cd/c.sock" container delete "$c" >/dev/null 2>&1
	done
	[[ -n $cdpid ]] && kill "$cdpid" 2>/dev/null && wait "$cdpid" 2>/dev/null
	if [[ -n $poolpid ]]; then
		kill "$poolpid" 2>/dev/null && wait "$poolpid" 2>/dev/null
		"$B/thaw-pool" --cleanup --state-dir "$W/pool" >/dev/null 2>&1
	fi
	"${PM[@]}" rm -af -t 0 >/dev/null 2>&1
	grep -o " $W/[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l
	rm -rf "$W"
	rmdir /sys/fs/cgroup/*/thaw-ocibench 2>/dev/null # the containers' parent, now empty
}
PM=(podman --root "$W/pm/root" --runroot "$W/pm/run" --tmpdir "$W/pm/tmp" --storage-driver vfs
	--cgroup-manager cgroupfs --events-backend file)
trap cleanup EXIT

# The runtime wrapper: one line per command with its start and end (ns) in $W/phases.
for rt in thaw-oci runc; do
	bin=$B/thaw-oci
	[[ $rt == runc ]] && bin=$(command -v runc)
	cat >"$W/$rt-timed" <<EOF
#!/bin/sh
t0=\$(date +%s%N)
"$bin" "\$@"
rc=\$?
for a in "\$@"; do case \$a in create|start|delete|kill) cmd=\$a;; esac; done
echo "$rt \$cmd \$t0 \$(date +%s%N)" >>"$W/phases"
exit \$rc
EOF
	chmod +x "$W/$rt-timed"
done
# thaw-oci finds thaw beside itself: the wrapper calls it by its real path.

say "snapshot, images, engines in $W"
mkdir -p "$W/snaproot" "$W/bbroot/bin"
(sleep 1; echo info) | timeout 60 "$B/thaw" --kernel "$THAW_PROBE" --vcpus 1 --mem-mib 64 \
	--snapshot "$W/snaproot/base.snap" --snapshot-after "PROBE info" --snapshot-then exit \
	>/dev/null 2>&1 || { echo "bench/oci.sh: the probe snapshot failed" >&2; exit 1; }
chmod 644 "$W/snaproot/base.snap"
cp "$(command -v busybox)" "$W/bbroot/bin/busybox"
(
	set -e
	cd "$W"
	umoci init --layout img
	umoci new --image img:snap && umoci unpack --image img:snap u1
	cp snaproot/base.snap u1/rootfs/ && umoci repack --image img:snap u1
	umoci config --image img:snap --config.cmd /fn
	umoci new --image img:bb && umoci unpack --image img:bb u2
	cp -a bbroot/bin u2/rootfs/ && umoci repack --image img:bb u2
	umoci config --image img:bb --config.cmd /bin/busybox
	tar -C img -cf img.tar .
) >/dev/null || { echo "bench/oci.sh: building the images failed" >&2; exit 1; }
mkdir -p "$W/cd"
cat >"$W/cd/config.toml" <<EOF
version = 2
root = "$W/cd/root"
state = "$W/cd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "$W/cd/c.sock"
[ttrpc]
  address = "$W/cd/c.sock.ttrpc"
EOF
containerd --config "$W/cd/config.toml" >"$W/cd/log" 2>&1 &
cdpid=$!
CTR=(ctr -a "$W/cd/c.sock")
for _ in $(seq 500); do "${CTR[@]}" version >/dev/null 2>&1 && break; sleep 0.02; done
"${CTR[@]}" images import --base-name bench/img "$W/img.tar" >/dev/null ||
	{ echo "bench/oci.sh: ctr images import failed" >&2; exit 1; }
SNAPIMG=$("${CTR[@]}" images ls -q | grep ':snap$')
BBIMG=$("${CTR[@]}" images ls -q | grep ':bb$')
"${CTR[@]}" plugins ls >"$OUT/plugins.txt"
SNAPSHOTTER=overlayfs
grep -q 'overlayfs.*ok' "$OUT/plugins.txt" || SNAPSHOTTER=native

# the pool of prepared VMMs (jailed as the ctr series' VMMs are)
"$B/thaw-pool" --state-dir "$W/pool" --api-sock "$W/pool.sock" >"$W/pool.log" 2>&1 &
poolpid=$!
for _ in $(seq 500); do [[ -S $W/pool.sock ]] && break; sleep 0.02; done
POOL=(curl -sf --unix-socket "$W/pool.sock")
"${POOL[@]}" -X PUT http://l/pools/probe -d "{\"snapshot_path\": \"$W/snaproot/base.snap\",
	\"prepared\": 2, \"jail\": {\"uid\": 10000, \"gid\": 10000}}" >/dev/null ||
	{ echo "bench/oci.sh: the pool refused its configuration" >&2; exit 1; }
pool_num() { "${POOL[@]}" http://l/pools/probe | python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
# waits (10 s at most) for the stock to be full, so a run takes a prepared VMM
pool_stocked() {
	for _ in $(seq 500); do [[ $(pool_num prepared) == 2 ]] && return; sleep 0.02; done
}
# one pooled run: the stock's hits it took are added to its line
one_pool() {
	local series=$1 h0
	pool_stocked
	h0=$(pool_num hits)
	one "$@" || return 1
	sed -i "\$ s/\$/ pool_hits=$(($(pool_num hits) - h0))/" "$OUT/raw/oci_$series.txt"
}

# the bundles of the run_ series: the snapshot's directory is their root file system
for s in thaw pool; do
	mkdir -p "$W/run_$s"
	ln -sfn "$W/snaproot" "$W/run_$s/rootfs"
	ann='"org.thaw.snapshot": "/base.snap"'
	[[ $s == pool ]] && ann+=", \"org.thaw.pool\": \"$W/pool.sock\""
	cat >"$W/run_$s/config.json" <<EOF2
{"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "process": {"args": ["/fn"]},
 "annotations": {$ann}, "linux": {"cgroupsPath": "/thaw-ocibench/run-$s",
 "resources": {"memory": {"limit": 268435456}}}}
EOF2
done

{
	echo "host=$(hostname) kernel=$(uname -r) nproc=$(nproc) load=$(cut -d' ' -f1-3 /proc/loadavg)"
	echo "git=$(git rev-parse --short HEAD) runs=$RUNS snapshotter=$SNAPSHOTTER"
	echo "containerd=$(containerd --version | cut -d' ' -f3) podman=$(podman --version | cut -d' ' -f3) runc=$(runc --version | head -1 | cut -d' ' -f3)"
} >"$OUT/meta.txt"

# one run: SERIES, then oci_first.py's arguments; the phases of this run appended.
one() {
	local series=$1 line
	shift
	: >"$W/phases"
	line=$(python3 bench/oci_first.py "$@") || { say "$series: run failed"; return 1; }
	# each runtime command's begin and end (realtime ns, as t0_ns)
	line+=$(awk '{ printf " %s_begin_ns=%s %s_end_ns=%s", $2, $3, $2, $4 }' "$W/phases")
	echo "$line" >>"$OUT/raw/oci_$series.txt"
}

say "$RUNS runs of each series, interleaved"
for i in $(seq "$RUNS"); do
	one ctr_thaw --send ping --stop "${CTR[*]} task kill -s SIGKILL ct$i" "PROBE pong" -- \
		"${CTR[@]}" run --rm --snapshotter $SNAPSHOTTER --runc-binary "$W/thaw-oci-timed" \
		--annotation org.thaw.snapshot=/base.snap --cgroup "/thaw-ocibench/ct$i" \
		"$SNAPIMG" "ct$i"
	one ctr_runc "ready" -- "${CTR[@]}" run --rm --snapshotter $SNAPSHOTTER \
		--runc-binary "$W/runc-timed" --cgroup "/thaw-ocibench/cr$i" "$BBIMG" "cr$i" \
		/bin/busybox echo ready
	one podman_thaw --send ping --stop "${PM[*]} kill -s KILL pt$i" "PROBE pong" -- \
		"${PM[@]}" --runtime "$W/thaw-oci-timed" run -i --rm --name "pt$i" --network none \
		--annotation org.thaw.snapshot=/base.snap --rootfs "$W/snaproot" /fn
	one podman_runc "ready" -- "${PM[@]}" --runtime "$W/runc-timed" run --rm --name "pr$i" \
		--network none --rootfs "$W/bbroot" /bin/busybox echo ready
	one_pool ctr_pool --send ping --stop "${CTR[*]} task kill -s SIGKILL cp$i" "PROBE pong" -- \
		"${CTR[@]}" run --rm --snapshotter $SNAPSHOTTER --runc-binary "$W/thaw-oci-timed" \
		--annotation org.thaw.snapshot=/base.snap --annotation "org.thaw.pool=$W/pool.sock" \
		--cgroup "/thaw-ocibench/cp$i" "$SNAPIMG" "cp$i"
	one_pool podman_pool --send ping --stop "${PM[*]} kill -s KILL pp$i" "PROBE pong" -- \
		"${PM[@]}" --runtime "$W/thaw-oci-timed" run -i --rm --name "pp$i" --network none \
		--annotation org.thaw.snapshot=/base.snap --annotation "org.thaw.pool=$W/pool.sock" \
		--rootfs "$W/snaproot" /fn
	one run_thaw --send ping --stop "$B/thaw-oci --root $W/ocir kill rt$i KILL" "PROBE pong" -- \
		"$B/thaw-oci" --root "$W/ocir" run --bundle "$W/run_thaw" "rt$i"
	one_pool run_pool --send ping --stop "$B/thaw-oci --root $W/ocir kill rp$i KILL" \
		"PROBE pong" -- "$B/thaw-oci" --root "$W/ocir" run --bundle "$W/run_pool" "rp$i"
done

python3 - "$OUT" <<'EOF'
import os, statistics, sys
out = sys.argv[1]
med, lines = {}, []
lines.append("%-12s %5s %12s %14s %10s %10s %14s" % ("series", "runs", "first answer", "cmd..create",
                                                      "create", "start", "start..answer"))
for s in ["ctr_thaw", "ctr_pool", "ctr_runc", "podman_thaw", "podman_pool", "podman_runc",
          "run_thaw", "run_pool"]:
    p = os.path.join(out, "raw", "oci_%s.txt" % s)
    if not os.path.exists(p):
        continue
    runs = [dict(kv.split("=", 1) for kv in l.split()) for l in open(p) if l.strip()]
    def m(f):
        v = []
        for r in runs:
            try:
                v.append(f(r))
            except (KeyError, ValueError):
                pass
        return statistics.median(v) if v else float("nan")
    ns = lambda r, k: int(r[k])
    med[s] = m(lambda r: float(r["first_ms"]))
    lines.append("%-12s %5d %9.1f ms %11.1f ms %7.1f ms %7.1f ms %11.1f ms" % (
        s, len(runs), med[s],
        m(lambda r: (ns(r, "create_begin_ns") - ns(r, "t0_ns")) / 1e6),
        m(lambda r: (ns(r, "create_end_ns") - ns(r, "create_begin_ns")) / 1e6),
        m(lambda r: (ns(r, "start_end_ns") - ns(r, "start_begin_ns")) / 1e6),
        m(lambda r: float(r["first_ms"]) - (ns(r, "start_end_ns") - ns(r, "t0_ns")) / 1e6)))
    if s.endswith("_pool"):
        lines[-1] += "  (%d of %d from the stock)" % (sum(int(r.get("pool_hits", 0)) for r in runs), len(runs))
for e in ["ctr", "podman", "run"]:
    if e + "_thaw" in med and e + "_runc" in med:
        lines.append("%s: thaw-oci / runc = x%.2f (medians of the first answer)" %
                     (e, med[e + "_thaw"] / med[e + "_runc"]))
    if e + "_pool" in med and e + "_thaw" in med:
        lines.append("%s: prepared (pool) / not = x%.2f" % (e, med[e + "_pool"] / med[e + "_thaw"]))
text = "\n".join(lines) + "\n"
open(os.path.join(out, "table.txt"), "w").write(text)
sys.stdout.write(text)
EOF

# ---- page-cache sharing --------------------------------------------------------------------
# share SNAPSHOTTER: SHARE containers at once, each guest reads its RAM, then the files
# their VMMs map, the page cache of those files, and each VMM's RSS and PSS.
share() {
	local snap=$1 i id pid ok f fds=() runs=() out="$OUT/raw/share_$1.txt"
	mkdir -p "$W/share"
	for i in $(seq "$SHARE"); do
		rm -f "$W/share/in$i" && mkfifo "$W/share/in$i"
		"${CTR[@]}" run --rm --snapshotter "$snap" --runc-binary "$B/thaw-oci" \
			--annotation org.thaw.snapshot=/base.snap --cgroup "/thaw-ocibench/sh$i" \
			"$SNAPIMG" "sh$i" <"$W/share/in$i" >"$W/share/out$i" 2>&1 &
		runs+=($!)
		exec {f}>"$W/share/in$i"
		fds+=("$f")
		echo sum >&"$f"
	done
	for i in $(seq "$SHARE"); do
		ok=""
		for _ in $(seq 1200); do
			grep -q "PROBE sum" "$W/share/out$i" && ok=1 && break
			sleep 0.1
		done
		[[ -n $ok ]] || say "share $snap: container sh$i did not answer"
	done
	: >"$out"
	# every VMM (ctr task ls): its largest file mapping is the snapshot's memory, named by
	# the device and inode of the file really mapped (overlayfs maps its lower file);
	# its RSS and PSS; and the page cache of each distinct file, counted once
	"${CTR[@]}" task ls | awk 'NR > 1 && $1 ~ /^sh[0-9]+$/ { print $1, $2 }' |
		while read -r id pid; do
			read -r range file < <(python3 -c '
import sys
best = (0, "", "")
for l in open(sys.argv[1]):
    f = l.split()
    if len(f) >= 5 and f[4] != "0":
        a, b = (int(x, 16) for x in f[0].split("-"))
        best = max(best, (b - a, f[0], f[3] + ":" + f[4]))
print(best[1], best[2])' "/proc/$pid/maps")
			echo "vmm id=$id pid=$pid file=$file map=$range" \
				"$(awk '/^Rss:/ { printf "rss_kib=%s ", $2 } /^Pss:/ { printf "pss_kib=%s", $2 }' \
					"/proc/$pid/smaps_rollup")"
		done >>"$out"
	# the page cache of every snapshot file in the snapshotter's store (the image's
	# and the containers'): the files really read, whatever a mount shows
	# (overlayfs keeps a snapshot's files in snapshots/N/fs, native in snapshots/N)
	for f in "$W"/cd/root/io.containerd.snapshotter.v1.$snap/snapshots/*/{fs/,}base.snap; do
		[[ -f $f ]] && echo "cache file=$(stat -c %d:%i "$f") bytes=$(fincore -b -n -o RES "$f" |
			tr -d ' ')"
	done >>"$out"
	for i in $(seq "$SHARE"); do
		"${CTR[@]}" task kill -s SIGKILL "sh$i" >/dev/null 2>&1
	done
	for f in "${fds[@]}"; do exec {f}>&-; done
	wait "${runs[@]}"
}
if ((SHARE > 0)); then
	say "page-cache sharing: $SHARE containers at once, per snapshotter"
	for snap in overlayfs native; do
		grep -q "snapshotter.*$snap.*ok" "$OUT/plugins.txt" || { say "no $snap"; continue; }
		share $snap
	done
	python3 - "$OUT" <<'EOF'
import os, statistics, sys
out = sys.argv[1]
lines = ["%-11s %4s %14s %15s %14s %14s %14s" % ("snapshotter", "VMMs", "files in cache",
         "page cache MiB", "RSS MiB (sum)", "PSS MiB (sum)", "PSS MiB (med)")]
for s in ["overlayfs", "native"]:
    p = os.path.join(out, "raw", "share_%s.txt" % s)
    if not os.path.exists(p):
        continue
    rows = [dict(kv.split("=", 1) for kv in l.split()[1:]) for l in open(p) if l.strip()]
    vmms = [r for r in rows if "pss_kib" in r]
    cache = [r for r in rows if "bytes" in r]
    if not vmms:
        continue
    lines.append("%-11s %4d %14d %15.1f %14.1f %14.1f %14.1f" % (
        s, len(vmms), sum(1 for r in cache if int(r["bytes"]) > 0),
        sum(int(r["bytes"]) for r in cache) / 2**20,
        sum(int(r["rss_kib"]) for r in vmms) / 1024,
        sum(int(r["pss_kib"]) for r in vmms) / 1024,
        statistics.median(int(r["pss_kib"]) for r in vmms) / 1024))
text = "\n".join(lines) + "\n"
open(os.path.join(out, "share.txt"), "w").write(text)
sys.stdout.write(text)
EOF
fi
echo "bench/oci: results in $OUT"
