#!/bin/sh
# Boots the thaw Linux guest under QEMU's microvm machine (TCG) and checks the
# kernel-resident agent through its serial protocol (AGENT.md): it becomes
# ready, answers ping/count/echo, reports errors, reads the hardware RNG,
# reads host-written sectors of a virtio-blk disk and writes sectors that are
# in the host file afterwards, exchanges UDP datagrams with the host through
# QEMU's user-mode network (when socat is installed), and reboots on request.
# Prints one PASS/FAIL line per check and a final PASS/FAIL; exits non-zero
# when anything failed.  Nothing here is QEMU-specific in the guest: the same
# vmlinux boots under thaw through its PVH entry with the same command line.
#
# Usage: guest/linux/selftest.sh [-v]     (-v: show the guest console after)
# The whole script is one function, read completely before it runs, so
# editing this file while an instance runs (or waits for the lock) cannot
# make that instance execute a mix of old and new lines.
main() {
set -u

here=$(cd "$(dirname "$0")" && pwd)
verbose=0
[ "${1:-}" = "-v" ] && verbose=1

paths=$("$here/build.sh") || { echo "FAIL build"; exit 1; }
eval "$paths"

work=$(mktemp -d /tmp/thaw-selftest.XXXXXX)
qpid=
cat_pid=
cleanup() {
	exec 3>&- 2>/dev/null
	[ -n "$qpid" ] && kill "$qpid" 2>/dev/null
	[ -n "${udp_pid:-}" ] && kill "$udp_pid" 2>/dev/null
	[ -n "${cat_pid:-}" ] && kill "$cat_pid" 2>/dev/null
	wait 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

fails=0
pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; fails=$((fails + 1)); }

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# zlib CRC-32 of a file, from the gzip trailer (no extra tools needed).
crc32_of() {
	gzip -c <"$1" | tail -c8 | head -c4 | od -An -tx4 | tr -d ' \n'
}

# --- disk: 1 MiB, sectors 8..9 written by the host before boot ----------
disk=$work/disk.img
dd if=/dev/zero of="$disk" bs=1M count=1 status=none
seq 1 400 | tr '\n' ' ' | head -c 1024 >"$work/host-data"
dd if="$work/host-data" of="$disk" bs=512 seek=8 conv=notrunc status=none
host_crc=$(crc32_of "$work/host-data")

# --- network: guest 10.0.2.15 on QEMU's user network; host is 10.0.2.2 --
net_args=
have_socat=0
if command -v socat >/dev/null 2>&1; then
	have_socat=1
	udp_host_port=$((20000 + $$ % 20000))
	udp_fwd_port=$((udp_host_port + 1))
	net_args="-netdev user,id=n0,hostfwd=udp:127.0.0.1:$udp_fwd_port-:7000 -device virtio-net-device,netdev=n0"
fi

# boot NAME CMDLINE QEMU-ARGS...: starts QEMU with the serial port on fifos;
# the console goes to $work/NAME.log ($log), requests go to fd 3.
boot() {
	name=$1
	cmdline=$2
	shift 2
	rm -f "$work/serial.in" "$work/serial.out"
	mkfifo "$work/serial.in" "$work/serial.out"
	log=$work/$name.log
	seen=0
	start=$(now_ms)
	qemu-system-x86_64 -M microvm,acpi=off -accel tcg -cpu max -smp 2 -m 256 \
		-nodefaults -no-user-config -display none -no-reboot \
		-serial pipe:"$work/serial" \
		-kernel "$THAW_KERNEL" -append "$cmdline" "$@" \
		>"$work/qemu-$name.log" 2>&1 &
	qpid=$!
	cat "$work/serial.out" >"$log" &
	cat_pid=$!
	exec 3>"$work/serial.in"
}

# stop: ends QEMU if it still runs, closes the fifos.
stop() {
	exec 3>&-
	[ -n "$qpid" ] && kill "$qpid" 2>/dev/null
	[ -n "$qpid" ] && wait "$qpid" 2>/dev/null
	wait "$cat_pid" 2>/dev/null
	qpid=
	cat_pid=
}

# wait_for PATTERN TIMEOUT_S: waits for a console line matching PATTERN (ERE)
# after the lines already consumed; sets $got to it.
seen=0
wait_for() {
	deadline=$(($(date +%s) + $2))
	while :; do
		got=$(tail -n +"$((seen + 1))" "$log" | tr -d '\r' |
			grep -n -m1 -E "$1")
		if [ -n "$got" ]; then
			seen=$((seen + ${got%%:*}))
			got=${got#*:}
			return 0
		fi
		if [ "$(date +%s)" -ge "$deadline" ] || ! kill -0 "$qpid" 2>/dev/null; then
			got=
			return 1
		fi
		sleep 0.05
	done
}

# ask COMMAND: sends a line, waits for the next reply line; $got is the reply
# without its "THAW_AGENT " prefix.
ask() {
	printf '%s\n' "$1" >&3
	if wait_for '^THAW_AGENT ' 30; then
		got=${got#THAW_AGENT }
		return 0
	fi
	return 1
}

check() { # check NAME COMMAND ERE-for-the-reply
	if ask "$2" && echo "$got" | grep -qE "$3"; then
		pass "$1: '$2' -> '$got'"
	else
		fail "$1: '$2' -> '${got:-<no reply>}' (wanted /$3/)"
	fi
}

# shellcheck disable=SC2086
boot agent "console=ttyS0 reboot=t thaw_agent.hold_init=1 ip=10.0.2.15::10.0.2.2:255.255.255.0::eth0:off" \
	-drive id=d0,file="$disk",format=raw,if=none,cache=writeback \
	-device virtio-blk-device,drive=d0 -device virtio-rng-device $net_args

if wait_for 'THAW_GUEST_READY' 120; then
	ready_ms=$(($(now_ms) - start))
	pass "ready: '$got' after ${ready_ms} ms (QEMU start to THAW_GUEST_READY, TCG)"
else
	fail "ready: no THAW_GUEST_READY within 120 s"
fi

if [ "$fails" -eq 0 ]; then
	check ping "ping" '^pong$'
	check count "count" '^count requests=2 uptime_ms=[0-9]+ agent_ms=[0-9]+ jiffies=[0-9]+$'
	check echo "echo  hello   agent " '^echo hello   agent $'
	check info "info" '^info agent=1 kernel=6\.1\.[0-9]+ cpus=2 mem_kib=[0-9]+ hz=100 tty=ttyS0$'
	check unknown "frobnicate" '^error frobnicate unknown-command$'
	check usage "blk read 1" '^error blk usage: blk read <sector> <count> \[disk\]$'
	check errno "blk read 999999 1" '^error blk read -ERANGE$'
	long=$(head -c 300 /dev/zero | tr '\0' x)
	check too-long "$long" '^error line-too-long max=255$'
	check rng "rng 16" '^rng bytes=16 hex=[0-9a-f]{32}$'
	check blk-info "blk info" '^blk info disk=vda sectors=2048 ro=0$'
	check blk-read-host-data "blk read 8 2" "^blk read disk=vda sector=8 count=2 crc32=$host_crc head="
	check blk-write "blk write 16 THAWDATA 2" '^blk write disk=vda sector=16 count=2 crc32=[0-9a-f]{8} flushed$'
	# The flushed data must be in the host file now.
	head -c 1024 /dev/zero | tr '\0' x | sed 's/xxxxxxxx/THAWDATA/g' >"$work/want"
	dd if="$disk" of="$work/have" bs=512 skip=16 count=2 status=none
	if cmp -s "$work/want" "$work/have"; then
		pass "blk-write-in-host-file: sectors 16-17 hold THAWDATA*128"
	else
		fail "blk-write-in-host-file: sectors 16-17 differ from THAWDATA*128"
	fi
	check blk-read-back "blk read 16 2" "^blk read disk=vda sector=16 count=2 crc32=$(crc32_of "$work/want") head=5448415744415441"
	check mem-fill "mem fill 1 7" '^mem fill mib=1 seed=7 crc32=[0-9a-f]{8}$'
	fill_crc=${got##*crc32=}
	check mem-check "mem check" "^mem check mib=1 seed=7 crc32=$fill_crc$"

	if [ "$have_socat" = 1 ]; then
		check net-info "net info" 'if=eth0,mac=[0-9a-f:]+,up=1,carrier=1,ipv4=10\.0\.2\.15/24'
		# guest -> host
		socat -u UDP-RECV:"$udp_host_port",bind=127.0.0.1 OPEN:"$work/udp-got",creat &
		udp_pid=$!
		sleep 0.3
		check net-send "net send 10.0.2.2 $udp_host_port hello from guest" '^net sent bytes=16 to=10\.0\.2\.2:[0-9]+$'
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			[ -s "$work/udp-got" ] && break
			sleep 0.2
		done
		if [ "$(cat "$work/udp-got" 2>/dev/null)" = "hello from guest" ]; then
			pass "net-send-arrived: host received 'hello from guest'"
		else
			fail "net-send-arrived: host got '$(cat "$work/udp-got" 2>/dev/null)'"
		fi
		kill "$udp_pid" 2>/dev/null
		udp_pid=
		# host -> guest, and echoed back
		check net-bind "net bind 7000" '^net bound port=7000$'
		echo "ping over udp" | socat -t 1 - UDP:127.0.0.1:"$udp_fwd_port" >/dev/null 2>&1
		check net-recv "net recv 5000" '^net recv bytes=14 from=10\.0\.2\.2:[0-9]+ crc32=[0-9a-f]{8} text=ping over udp\?$'
		# The bound socket queues the datagram until the agent reads it.
		printf 'net echo 5000\n' >&3
		reply=$(echo "round trip" | socat -t 3 - UDP:127.0.0.1:"$udp_fwd_port" 2>/dev/null)
		if wait_for '^THAW_AGENT ' 30 && echo "$got" | grep -q 'net echo bytes=11 from=10\.0\.2\.2' &&
			[ "$reply" = "round trip" ]; then
			pass "net-echo: '${got#THAW_AGENT }', host got '$reply' back"
		else
			fail "net-echo: '${got:-<no reply>}', host got '$reply'"
		fi
		check net-close "net close" '^net closed$'
	else
		echo "SKIP net: socat is not installed (apt-get install socat)"
	fi
	# No vhost-vsock here: a connection to the host (CID 2) must fail
	# cleanly; the agent's listener and connector are tested against each
	# other over the loopback transport (CID 1) instead.
	check vsock-no-device "vsock connect 2 1234 hi" '^error vsock connect -[A-Z]+$'
	check vsock-listen "vsock listen 5000" '^vsock listening port=5000$'
	check vsock-listen-twice "vsock listen 5000" '^error vsock listen -EADDRINUSE$'
	check vsock-loopback-echo "vsock connect 1 5000 hello over vsock" '^vsock connect cid=1 port=5000 sent=17 got=16 text=hello over vsock$'
	if wait_for '^THAW_EVENT vsock closed port=5000 echoed=17 ' 30; then
		pass "vsock-listener-event: '$got'"
	else
		fail "vsock-listener-event: no 'THAW_EVENT vsock closed' line"
	fi
	check count-again "count" '^count requests=[0-9]+ '

	printf 'reboot\n' >&3
	if wait_for '^THAW_AGENT reboot$' 30; then
		i=0
		while kill -0 "$qpid" 2>/dev/null && [ $i -lt 300 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		if kill -0 "$qpid" 2>/dev/null; then
			fail "reboot: QEMU still running 30 s after 'reboot'"
		else
			wait "$qpid"
			pass "reboot: guest reset, QEMU exited with status $?"
			qpid=
		fi
	else
		fail "reboot: no reply"
	fi
fi

agent_fails=$fails
if [ "$verbose" = 1 ] || [ "$fails" -ne 0 ]; then
	echo "--- guest console (agent boot) ---"
	tr -d '\r' <"$work/agent.log" | tail -n 80
	echo "--- qemu ---"
	cat "$work/qemu-agent.log"
fi
stop

# --- user space: the busybox initramfs (runs under TCG, not on PVM) -------
boot initrd "console=ttyS0" -initrd "$THAW_INITRD"
if wait_for 'THAW_GUEST_READY userspace' 120; then
	pass "initrd-ready: '$got' after $(($(now_ms) - start)) ms"
	check initrd-ping "ping" '^pong$'
	check initrd-count "count" '^count requests=2 uptime_ms=[0-9]+$'
else
	fail "initrd-ready: no 'THAW_GUEST_READY userspace' within 120 s"
fi
stop

# --- user space from an ext4 root on virtio-blk (rootfs.sh) ---------------
# rdinit= names a file the built-in initramfs lacks, so the kernel mounts root=.
rootfs=$("$here/rootfs.sh") && eval "$rootfs"
if [ -n "${THAW_ROOTFS:-}" ]; then
	cp "$THAW_ROOTFS" "$work/root.ext4"
	boot rootfs "console=ttyS0 root=/dev/vda rw rdinit=/sbin/init" \
		-drive id=r0,file="$work/root.ext4",format=raw,if=none \
		-device virtio-blk-device,drive=r0
	if wait_for 'THAW_GUEST_READY userspace' 120; then
		pass "rootfs-ready: '$got' after $(($(now_ms) - start)) ms"
		check rootfs-ping "ping" '^pong$'
	else
		fail "rootfs-ready: no 'THAW_GUEST_READY userspace' within 120 s"
	fi
	stop
else
	fail "rootfs: rootfs.sh failed"
fi
if [ "$fails" -ne "$agent_fails" ]; then
	for f in initrd rootfs; do
		[ -f "$work/$f.log" ] || continue
		echo "--- guest console ($f boot) ---"
		tr -d '\r' <"$work/$f.log" | tail -n 40
	done
fi

if [ "$fails" -eq 0 ]; then
	echo "PASS guest/linux selftest"
	exit 0
fi
echo "FAIL guest/linux selftest ($fails failed)"
exit 1
}

main "$@"
exit $?
