#!/bin/bash
# bench/ratelimit.sh: how close a guest's reads from a rate-limited drive come to the
# configured rate (issue 19: "a guest dd against a limited drive stays within 5% of the
# configured rate"). A bench series, not a test: it prints figures, it asserts nothing.
#
#   bench/ratelimit.sh BUILD_DIR [--runs N] [--mib N | --kib N] [--rate BYTES_PER_S] [--userspace]
#
# thaw (through its API, as Firecracker's clients drive it) boots the Linux guest with
# two read-only drives over the same random file: `vda` limited to RATE bytes per second
# (`{"bandwidth": {"size": RATE, "refill_time": 1000}}`, so the bucket holds one second's
# worth and starts full) and `vdb` unlimited, for the ceiling. Each run reads MIB MiB:
#
# - default: the kernel-resident agent's `blk read <sector> 2048 <disk>` (1 MiB each,
#   page-sized bios straight to the device, no page cache), one after another; runs
#   wherever the Linux guest boots, PVM included (guest user space is not needed);
# - --userspace: busybox `dd if=/dev/vda of=/dev/null bs=64k iflag=direct` from the
#   rootfs (guest/linux/rootfs.sh) as a third drive `vdc`, booted as root; needs a host
#   where guest user space runs (the nested host: run this through tests/kvmhost/run.sh).
#
# The clock is the host's, from sending the first request to the last answer. Before
# each run the script waits 1.5 s so the bucket is full again. Per run it prints the
# achieved rate over the limit (`ratio`), and `steady`: the same without the bucket's
# first second's worth (the bytes the full bucket let through at once), which is what a
# long transfer converges to; then the medians.
set -eu

B=${1:?usage: bench/ratelimit.sh BUILD_DIR [--runs N] [--mib N | --kib N] [--rate BYTES_PER_S] [--userspace]}
shift
runs=5 kib=8192 rate=1048576 userspace=0
while (($#)); do
	case $1 in
	--runs) runs=$2; shift 2 ;;
	--mib) kib=$(($2 * 1024)); shift 2 ;;
	--kib) kib=$2; shift 2 ;; # the agent only: in 512-byte sectors, --kib 64 is 128 of them
	--rate) rate=$2; shift 2 ;;
	--userspace) userspace=1; shift ;;
	*) echo "bench/ratelimit.sh: unknown option $1" >&2; exit 2 ;;
	esac
done
here=$(cd "$(dirname "$0")/.." && pwd)
eval "$("$here/guest/env.sh")"
thaw=$(cd "$B" && pwd)/thaw
[ -x "$thaw" ] || { echo "bench/ratelimit.sh: $thaw not built" >&2; exit 2; }

tmp=$(mktemp -d /tmp/thaw-ratelimit-XXXXXX)
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
sock=$tmp/api.sock console=$tmp/console
head -c $(((kib + 1024) << 10)) /dev/urandom >"$tmp/data"
mkfifo "$tmp/in"

"$thaw" --api-sock "$sock" <"$tmp/in" >"$console" 2>"$tmp/err" &
pid=$!
exec 3>"$tmp/in"
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done

api() { # METHOD PATH JSON: fails the script unless 2xx
	local out
	out=$(curl -s -w ' %{http_code}' --unix-socket "$sock" -X "$1" "http://localhost$2" \
		-H 'Content-Type: application/json' -d "$3")
	case ${out##* } in 2??) ;; *) echo "bench/ratelimit.sh: $1 $2: $out" >&2; exit 1 ;; esac
}
drive() { # ID PATH LIMIT_JSON ROOT
	api PUT "/drives/$1" "{\"drive_id\": \"$1\", \"path_on_host\": \"$2\", \"is_root_device\": $4, \"is_read_only\": true, \"rate_limiter\": $3}"
}

args="console=ttyS0 reboot=k panic=1 quiet"
api PUT /machine-config '{"vcpu_count": 1, "mem_size_mib": 256}'
drive vda "$tmp/data" "{\"bandwidth\": {\"size\": $rate, \"refill_time\": 1000}}" false
drive vdb "$tmp/data" null false
if ((userspace)); then
	# The rootfs's /sbin/init (guest/linux/initramfs/init) with one more command, in
	# this run's copy only: `dd <disk> <mib>` answers `THAW_AGENT dd <dd's summary>`.
	cp "$THAW_ROOTFS" "$tmp/root.ext4"
	debugfs -R "cat /sbin/init" "$tmp/root.ext4" 2>/dev/null >"$tmp/init"
	grep -q '^	\*) echo "THAW_AGENT error' "$tmp/init" ||
		{ echo "bench/ratelimit.sh: the rootfs init has changed shape" >&2; exit 1; }
	awk '/^\t\*\) echo "THAW_AGENT error/ {
		print "\tdd) echo \"THAW_AGENT dd $($bb dd if=/dev/$2 of=/dev/null bs=65536 count=$(($3 * 16)) iflag=direct 2>&1 | $bb tail -n 1)\" ;;"
	} { print }' "$tmp/init" >"$tmp/init.dd"
	debugfs -w -R "rm /sbin/init" "$tmp/root.ext4" >/dev/null 2>&1
	debugfs -w -f - "$tmp/root.ext4" >/dev/null 2>&1 <<-EOF
		write $tmp/init.dd /sbin/init
		sif /sbin/init mode 0100755
	EOF
	api PUT /drives/vdc "{\"drive_id\": \"vdc\", \"path_on_host\": \"$tmp/root.ext4\", \"is_root_device\": false, \"is_read_only\": false}"
	args="$args rdinit=/none root=/dev/vdc rw"
else
	args="$args thaw_agent.hold_init=1" # the kernel-resident agent answers
fi
api PUT /boot-source "{\"kernel_image_path\": \"$THAW_KERNEL\", \"boot_args\": \"$args\"}"
t0=$(date +%s%N)
api PUT /actions '{"action_type": "InstanceStart"}'
for _ in $(seq 6000); do grep -q THAW_GUEST_READY "$console" && break; sleep 0.1; done
grep -q THAW_GUEST_READY "$console" || { echo "no THAW_GUEST_READY:"; tail -20 "$console"; exit 1; } >&2
echo "# guest ready in $((($(date +%s%N) - t0) / 1000000)) ms: $(grep -m1 THAW_GUEST_READY "$console")"

# One run on DISK: the elapsed nanoseconds on stdout.
run() {
	local disk=$1 want start end i
	sleep 1.5
	if ((userspace)); then
		want=$(($(grep -c 'THAW_AGENT dd' "$console" || true) + 1))
		start=$(date +%s%N)
		echo "dd $disk $((kib / 1024))" >&3
		until (($(grep -c 'THAW_AGENT dd' "$console" || true) >= want)); do sleep 0.02; done
	else
		local sectors=$((kib * 2)) n=0
		want=$(($(grep -c "THAW_AGENT blk read disk=$disk" "$console" || true) + (sectors + 2047) / 2048))
		start=$(date +%s%N)
		for ((i = 0; i < sectors; i += 2048)); do
			n=$((sectors - i < 2048 ? sectors - i : 2048))
			echo "blk read $i $n $disk" >&3
		done
		until (($(grep -c "THAW_AGENT blk read disk=$disk" "$console" || true) >= want)); do
			sleep 0.02
		done
	fi
	end=$(date +%s%N)
	echo $((end - start))
}

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

bytes=$((kib << 10))
echo "# $kib KiB per run, limit $rate B/s (bucket $rate B, refill 1000 ms), $runs runs, $([ "$userspace" = 1 ] && echo "busybox dd" || echo "agent blk read")"
: >"$tmp/ratio" && : >"$tmp/steady" && : >"$tmp/free"
for ((r = 1; r <= runs; r++)); do
	ns=$(run vda)
	free=$(run vdb)
	awk -v b="$bytes" -v ns="$ns" -v rate="$rate" -v f="$free" -v r="$r" 'BEGIN {
		s = ns / 1e9
		printf "run %d: limited %.3f s %.0f B/s ratio %.4f steady %.4f; unlimited %.0f B/s\n",
			r, s, b / s, b / s / rate, (b - rate) / s / rate, b / (f / 1e9) }'
	awk -v b="$bytes" -v ns="$ns" -v rate="$rate" 'BEGIN { print b / (ns / 1e9) / rate }' >>"$tmp/ratio"
	awk -v b="$bytes" -v ns="$ns" -v rate="$rate" 'BEGIN { print (b - rate) / (ns / 1e9) / rate }' >>"$tmp/steady"
	awk -v b="$bytes" -v f="$free" 'BEGIN { print b / (f / 1e9) }' >>"$tmp/free"
done
echo "median: ratio $(median <"$tmp/ratio") steady $(median <"$tmp/steady") (achieved/limit); unlimited $(median <"$tmp/free") B/s"
