#!/bin/bash
# Run a command where /dev/kvm works: directly when the host has it, otherwise inside a
# QEMU TCG VM whose kernel offers nested SVM (a real KVM), with the host's root visible.
# Usage and design: tests/kvmhost/README.md.
set -uo pipefail

# Part of the initramfs cache key: bump when the initramfs contents change meaning.
readonly KVH_FORMAT=2
# Modules PID 1 loads before the job (their dependencies follow automatically).
readonly KVH_MODULES="virtio_pci 9pnet_virtio 9p overlay kvm_amd tun"
# kvm_amd's parameters in the VM (part of the initramfs, so of its cache key).
KVH_KVM_AMD_ARGS=${THAW_KVMHOST_KVM_AMD_ARGS-}

here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P) || exit 125

die() {
	echo "kvmhost: $*" >&2
	exit 125
}

usage() {
	cat <<'EOF'
usage: tests/kvmhost/run.sh [--mem MIB] [--cpus N] [--timeout SEC] [--] CMD [ARGS...]
       tests/kvmhost/run.sh [--mem MIB] [--cpus N] [--timeout SEC] --selftest

Runs CMD where /dev/kvm is usable and exits with CMD's status. With /dev/kvm on the host
(and THAW_KVMHOST != force) CMD is simply exec'ed. Otherwise CMD runs as root in a QEMU
TCG VM (-cpu max, nested SVM, Debian's linux-image-amd64 kernel) that sees the host's
root read-only (writes land in a throw-away overlay), a fresh /tmp, and these host
directories read-write: the git top level of the current directory (or the directory
itself), ~/.cache/thaw, or instead of the first the colon-separated THAW_KVMHOST_RW.

  --mem MIB       guest memory (default 3072)
  --cpus N        vCPUs, one host thread each (default 2)
  --timeout SEC   kill the VM after SEC seconds, exit 124 (default 1800, 0 = none)
  --selftest      check /dev/kvm, vCPUs, tun, userfaultfd, netns, cgroups, perf; PASS/FAIL

Exit status: CMD's; 124 on timeout; 125 when the VM could not run CMD.
Environment: THAW_KVMHOST=force (use the VM even with /dev/kvm), THAW_KVMHOST_RW,
THAW_KVMHOST_CACHE (default ~/.cache/thaw/kvmhost), THAW_KVMHOST_DEBUG=1 (full kernel
log on ttyS0, keep the control directory), THAW_KVMHOST_QUIET=1 (no note on stderr);
for experiments: THAW_KVMHOST_CPU (QEMU's -cpu, default max; it must offer svm),
THAW_KVMHOST_TCG_THREAD (multi, the default, or single: one host thread for all vCPUs).
EOF
}

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

mem=3072
cpus=2
tmo=1800
selftest=0
while (($#)); do
	case $1 in
	--mem | --cpus | --timeout)
		(($# >= 2)) || die "$1 needs a value"
		is_uint "$2" || die "$1: '$2' is not a number"
		case $1 in --mem) mem=$2 ;; --cpus) cpus=$2 ;; --timeout) tmo=$2 ;; esac
		shift 2
		;;
	--mem=* | --cpus=* | --timeout=*)
		v=${1#*=}
		is_uint "$v" || die "${1%%=*}: '$v' is not a number"
		case $1 in --mem=*) mem=$v ;; --cpus=*) cpus=$v ;; --timeout=*) tmo=$v ;; esac
		shift
		;;
	--selftest) selftest=1 && shift ;;
	-h | --help) usage && exit 0 ;;
	--) shift && break ;;
	-*) die "unknown option '$1' (see --help)" ;;
	*) break ;;
	esac
done
((mem >= 256)) || die "--mem: at least 256 MiB"
((cpus >= 1 && cpus <= 64)) || die "--cpus: 1..64"
if ((selftest)); then
	(($# == 0)) || die "--selftest takes no command"
else
	(($#)) || die "no command given (see --help)"
fi

# Paths of everything a run creates; removed on every exit path.
ctl= qpid= spid= bpid= hpid= outpid= errpid=
cleanup() {
	local p
	# A forked child that is signalled before it execs would run this trap too.
	[[ $BASHPID == "$$" ]] || return
	for p in $qpid $spid $bpid $hpid $outpid $errpid; do
		kill -KILL "$p" 2>/dev/null
	done
	if [[ -n $ctl && -d $ctl ]]; then
		if [[ ${THAW_KVMHOST_DEBUG:-} == 1 ]]; then
			echo "kvmhost: kept $ctl" >&2
		else
			rm -rf -- "$ctl"
		fi
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# --selftest: compile selftest.c into $1 and set cmd to run selftest.sh with it, whose
# path inside the runner is $2.
cmd=("$@")
selftest_prepare() {
	command -v gcc >/dev/null || die "--selftest needs gcc"
	gcc -O2 -std=gnu11 -Wall -Wextra -Werror -pthread -o "$1/selftest" "$here/selftest.c" ||
		die "cannot compile $here/selftest.c"
	cmd=("$here/selftest.sh" "$2/selftest")
}

if [[ -n ${THAW_KVMHOST_INSIDE:-} ]] ||
	{ [[ -c /dev/kvm ]] && [[ ${THAW_KVMHOST:-} != force ]]; }; then
	((selftest)) || exec -- "$@"
	ctl=$(mktemp -d "${TMPDIR:-/tmp}/kvmhost.XXXXXX") || die "mktemp failed"
	selftest_prepare "$ctl" "$ctl"
	"${cmd[@]}"
	exit
fi

for t in qemu-system-x86_64 apt-cache apt-get dpkg-deb depmod modprobe cpio sha256sum flock; do
	command -v "$t" >/dev/null || die "'$t' is missing (scripts/deps.sh installs what thaw needs)"
done
((BASH_VERSINFO[0] > 5 || (BASH_VERSINFO[0] == 5 && BASH_VERSINFO[1] >= 1))) ||
	die "bash 5.1 or newer needed (wait -n -p)"

# ---- cache: the kernel package by name, the initramfs by a hash of its inputs ----------
cache=${THAW_KVMHOST_CACHE:-$HOME/.cache/thaw/kvmhost}
mkdir -p -- "$cache" || die "cannot create $cache"
exec 9>"$cache/.lock" || die "cannot open $cache/.lock"
flock 9 || die "flock $cache/.lock failed"

# "apt-cache depends" costs a second here; its answer changes only with the apt lists.
lists=$(stat -c %Y /var/lib/apt/lists 2>/dev/null)
pkg=${THAW_KVMHOST_KERNEL:-}
if [[ -z $pkg && -n $lists && -s $cache/resolved ]]; then
	read -r stamp p <"$cache/resolved" && [[ $stamp == "$lists" ]] && pkg=$p
fi
if [[ -z $pkg ]]; then
	pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
		sed -n 's/^ *|\{0,1\}Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n 1)
	[[ -n $pkg && -n $lists ]] && echo "$lists $pkg" >"$cache/resolved"
fi
if [[ -z $pkg ]]; then
	# Offline or no apt lists: the newest kernel already cached still does the job.
	k=$(ls -1d "$cache"/kernel-linux-image-*/.ok 2>/dev/null | sort -V | tail -n 1)
	[[ -n $k ]] || die "cannot resolve linux-image-amd64 with apt-cache (run 'apt-get update' as root)"
	pkg=$(basename -- "$(dirname -- "$k")")
	pkg=${pkg#kernel-}
fi
kdir=$cache/kernel-$pkg
if [[ ! -e $kdir/.ok ]]; then
	echo "kvmhost: fetching $pkg into $kdir (first run only)" >&2
	tmpk=$(mktemp -d "$cache/.kernel.XXXXXX") || die "mktemp in $cache failed"
	if ! (cd -- "$tmpk" && apt-get download -q "$pkg") >"$tmpk/apt.log" 2>&1; then
		cat -- "$tmpk/apt.log" >&2
		rm -rf -- "$tmpk"
		die "'apt-get download $pkg' failed: run as root with network access and current apt lists"
	fi
	deb=$(ls -1 "$tmpk"/*.deb | head -n 1)
	if ! dpkg-deb -x "$deb" "$tmpk/tree"; then
		rm -rf -- "$tmpk"
		die "dpkg-deb -x $deb failed"
	fi
	kver=$(ls -1 "$tmpk/tree/lib/modules" | head -n 1)
	if [[ -z $kver || ! -f $tmpk/tree/boot/vmlinuz-$kver ]] || ! depmod -b "$tmpk/tree" "$kver"; then
		rm -rf -- "$tmpk"
		die "$pkg: no kernel or modules in the package, or depmod failed"
	fi
	# QEMU boots the uncompressed ELF through its PVH entry: decompressing the xz
	# bzImage under TCG costs about 6 s per boot.
	bz=$tmpk/tree/boot/vmlinuz-$kver
	off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$bz" | head -n 1 | cut -d: -f1)
	if [[ -n $off ]] && command -v xz >/dev/null; then
		tail -c +"$((off + 1))" -- "$bz" | xz -dcq >"$tmpk/vmlinux" 2>/dev/null
		LC_ALL=C file -- "$tmpk/vmlinux" | grep -q 'ELF 64-bit' || rm -f -- "$tmpk/vmlinux"
	fi
	[[ -s $tmpk/vmlinux ]] || echo "kvmhost: cannot extract vmlinux, booting the bzImage (slower)" >&2
	echo "$kver" >"$tmpk/kver"
	rm -rf -- "$kdir" && mv -- "$tmpk" "$kdir" && touch -- "$kdir/.ok" || die "cannot store $kdir"
fi
kver=$(<"$kdir/kver")
modtree=$kdir/tree/lib/modules/$kver
kernel=$kdir/vmlinux
[[ -s $kernel ]] || kernel=$kdir/tree/boot/vmlinuz-$kver

busybox=$(command -v busybox) || die "busybox is missing (apt-get install busybox-static)"
if ! LC_ALL=C file -L -- "$busybox" 2>/dev/null | grep -q 'statically linked'; then
	die "$busybox is not static (apt-get install busybox-static)"
fi
# Drops a module's appended signature: checking it under TCG costs more than loading,
# and the kernel does not enforce signatures (it only notes the taint).
strip_signature() {
	local f=$1 size len
	[[ $(tail -c 28 -- "$f") == "~Module signature appended~" ]] || return 0
	size=$(stat -c %s -- "$f")
	len=$(tail -c 32 -- "$f" | head -c 4 | od -An -tu1 | awk '{ print $1 * 16777216 + $2 * 65536 + $3 * 256 + $4 }')
	is_uint "$len" && ((len + 40 < size)) && truncate -s "$((size - 40 - len))" -- "$f"
}
key=$({
	echo "format $KVH_FORMAT $pkg $kver $KVH_MODULES kvm_amd:$KVH_KVM_AMD_ARGS"
	sha256sum <"$here/init.sh"
	sha256sum <"$busybox"
} | sha256sum | cut -c1-16)
idir=$cache/$key
if [[ ! -e $idir/initrd.cpio ]]; then
	tmpi=$(mktemp -d "$cache/.initrd.XXXXXX") || die "mktemp in $cache failed"
	st=$tmpi/root
	mkdir -p "$st/bin" "$st/lib/mod" "$st/proc" "$st/sys" "$st/dev" "$st/tmp" &&
		cp -- "$busybox" "$st/bin/busybox" &&
		install -m 755 -- "$here/init.sh" "$st/init" || die "cannot stage the initramfs"
	: >"$st/lib/mod/order"
	for m in $KVH_MODULES; do
		deps=$(modprobe --show-depends -d "$kdir/tree" -S "$kver" "$m") || {
			rm -rf -- "$tmpi"
			die "module $m not found in $pkg"
		}
		while read -r verb ko _; do
			[[ $verb == insmod ]] || continue # builtin modules need no loading
			b=$(basename -- "$ko")
			grep -qxF -- "$b" "$st/lib/mod/order" && continue
			cp -- "$ko" "$st/lib/mod/$b" && echo "$b" >>"$st/lib/mod/order" || die "cannot copy $ko"
			strip_signature "$st/lib/mod/$b"
		done <<<"$deps"
	done
	[[ -z $KVH_KVM_AMD_ARGS ]] || sed -i "s|^kvm-amd\.ko\$|kvm-amd.ko $KVH_KVM_AMD_ARGS|" "$st/lib/mod/order"
	(cd -- "$st" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$tmpi/initrd.cpio" ||
		die "cpio failed"
	rm -rf -- "$st"
	echo "$pkg" >"$tmpi/kernel"
	rm -rf -- "$idir" && mv -- "$tmpi" "$idir" || die "cannot store $idir"
fi
# The pin (pin.c, README "The wedge"): an idle VM held for the job's whole life, so that
# KVM's per-VM static keys never flip and the kernel never live-patches __schedule()
# under MTTCG. Built with the host's gcc into the cache; THAW_KVMHOST_PIN=0 leaves it out.
pin=
if [[ ${THAW_KVMHOST_PIN:-1} != 0 ]]; then
	pin=$cache/pin-$(sha256sum <"$here/pin.c" | cut -c1-16)
	if [[ ! -x $pin ]]; then
		if command -v gcc >/dev/null &&
			gcc -O2 -std=gnu11 -Wall -Wextra -Werror -o "$pin.tmp" "$here/pin.c" && mv -f -- "$pin.tmp" "$pin"; then
			find "$cache" -maxdepth 1 -name 'pin-*' ! -path "$pin" -mtime +7 -delete 2>/dev/null
		else
			echo "kvmhost: cannot build $here/pin.c: the VM runs without the pin and may wedge (README)" >&2
			pin=
		fi
	fi
fi
# Initramfs builds of older init.sh versions (other checkouts may still use them).
touch -- "$idir"
find "$cache" -mindepth 1 -maxdepth 1 -type d -regextype posix-extended -regex '.*/[0-9a-f]{16}' -mtime +7 \
	-exec rm -rf -- {} + 2>/dev/null
exec 9>&-

# One VM at a time per machine: two of them on a small host make both crawl and, under
# that load, wedge. A later caller waits for the earlier one's VM to end.
if [[ ${THAW_KVMHOST_SHARE:-} != 1 ]]; then
	exec 8>"$cache/.vm.lock" || die "cannot open $cache/.vm.lock"
	if ! flock -n 8; then
		echo "kvmhost: waiting for another kvmhost VM on this machine to end" >&2
		flock 8 || die "flock $cache/.vm.lock failed"
	fi
fi

# ---- the run's control directory: config, job, pipes, logs, status ----------------------
ctl=$(mktemp -d "${TMPDIR:-/tmp}/kvmhost.XXXXXX") || die "mktemp failed"
((selftest)) && selftest_prepare "$ctl" /run/kvmhost

# Read-write exports: deduplicated real paths, parents before children.
rw=()
if [[ -n ${THAW_KVMHOST_RW+x} ]]; then
	IFS=: read -r -a rw <<<"$THAW_KVMHOST_RW"
else
	top=$(git -C "$PWD" rev-parse --show-toplevel 2>/dev/null) || top=$PWD
	# From "/" the command sees the overlay root: writable, but thrown away.
	[[ $(realpath -e -- "$top" 2>/dev/null) == / ]] || rw=("$top")
fi
mkdir -p -- "$HOME/.cache/thaw" && rw+=("$HOME/.cache/thaw")
real=()
for d in "${rw[@]}"; do
	[[ -n $d ]] || continue
	r=$(realpath -e -- "$d") || die "read-write export '$d' does not exist"
	[[ -d $r ]] || die "read-write export '$d' is not a directory"
	[[ $r != / ]] || die "read-write export of / is not supported"
	[[ $r != *$'\n'* ]] || die "read-write export '$d' has a newline in its path"
	real+=("$r")
done
exports=()
while IFS= read -r d; do
	skip=0
	for e in "${exports[@]}"; do
		[[ $d == "$e"/* ]] && skip=1
	done
	((skip)) || exports+=("$d")
done < <(printf '%s\n' "${real[@]}" | LC_ALL=C sort -u)
[[ $PWD != *$'\n'* ]] || die "the current directory has a newline in its path"

sq() { printf "'%s'" "${1//\'/\'\\\'\'}"; }
{
	echo "KVH_KVER=$(sq "$kver")"
	echo "KVH_MODTREE=$(sq "$modtree")"
	echo "KVH_HOSTNAME=$(sq "$(hostname 2>/dev/null || echo kvmhost)")"
	echo "KVH_PIN=$(sq "$pin")"
} >"$ctl/config"
: >"$ctl/mounts"
for i in "${!exports[@]}"; do
	echo "rw$i ${exports[$i]}" >>"$ctl/mounts"
done
{
	echo '#!/bin/bash'
	echo '# Written by tests/kvmhost/run.sh: the caller'\''s environment, umask, cwd, command.'
	while IFS= read -r v; do
		case $v in PWD | OLDPWD | SHLVL | _ | BASH_* | THAW_KVMHOST_INSIDE) continue ;; esac
		[[ $v =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || continue
		printf 'export %s=%q\n' "$v" "${!v}"
	done < <(compgen -e)
	echo 'export THAW_KVMHOST_INSIDE=1'
	echo "umask $(umask)"
	echo "ulimit -Hn $(ulimit -Hn) 2>/dev/null; ulimit -Sn $(ulimit -Sn) 2>/dev/null"
	printf 'cd -- %q || exit 125\n' "$PWD"
	printf 'exec --'
	printf ' %q' "${cmd[@]}"
	echo
} >"$ctl/job.sh"
# QEMU's pipe chardev writes PATH.out and reads PATH.in; nothing is ever typed in.
mkfifo -- "$ctl/out.out" "$ctl/err.out" || die "mkfifo failed"
ln -s /dev/null "$ctl/out.in" && ln -s /dev/null "$ctl/err.in" || die "ln failed"

# QEMU option values double their commas.
qv() { printf '%s' "${1//,/,,}"; }
# softlockup_panic: a guest wedged by TCG (seen rarely under host load: both vCPUs stuck
# with interrupts unserviced) ends within a minute instead of at --timeout; run.sh then
# boots again and reruns the command.
append="console=ttyS0 panic=-1 mitigations=off tsc=reliable softlockup_panic=1 watchdog_thresh=30"
# Skip the secondary vCPUs' delay-loop calibration (0.2 s): the guest TSC runs at the
# host's rate, and lpj counts TSC cycles per jiffy.
hz=$(sed -n 's/^CONFIG_HZ=//p' "$kdir/tree/boot/config-$kver" 2>/dev/null)
mhz=$(sed -n 's/^cpu MHz[[:space:]]*: *\([0-9]*\).*/\1/p' /proc/cpuinfo | head -n 1)
if is_uint "${hz:-x}" && is_uint "${mhz:-x}" && ((hz > 0 && mhz > 0)); then
	append+=" lpj=$((mhz * 1000000 / hz))"
fi
if [[ ${THAW_KVMHOST_DEBUG:-} != 1 ]]; then
	append+=" quiet loglevel=4"
fi
append+=" ${THAW_KVMHOST_APPEND:-}"
qargs=(
	-nodefaults -no-user-config -display none -no-reboot
	-machine pc -accel "tcg,thread=${THAW_KVMHOST_TCG_THREAD:-multi}"
	-cpu "${THAW_KVMHOST_CPU:-max}" -smp "$cpus" -m "$mem"
	-kernel "$kernel" -initrd "$idir/initrd.cpio" -append "$append"
	-chardev "file,id=con,path=$(qv "$ctl/console.log")" -serial chardev:con
	-chardev "pipe,id=out,path=$(qv "$ctl/out")" -serial chardev:out
	-chardev "pipe,id=err,path=$(qv "$ctl/err")" -serial chardev:err
	-fsdev local,id=root,path=/,security_model=none,readonly=on,multidevs=remap
	-device virtio-9p-pci,fsdev=root,mount_tag=root
	-fsdev "local,id=ctl,path=$(qv "$ctl"),security_model=none"
	-device virtio-9p-pci,fsdev=ctl,mount_tag=ctl
)
# Extra QEMU words for experiments (split on blanks, no quoting).
read -r -a extra <<<"${THAW_KVMHOST_QEMU_OPTS:-}"
qargs+=("${extra[@]}")
for i in "${!exports[@]}"; do
	qargs+=(-fsdev "local,id=rw$i,path=$(qv "${exports[$i]}"),security_model=none,multidevs=remap"
		-device "virtio-9p-pci,fsdev=rw$i,mount_tag=rw$i")
done

if [[ ${THAW_KVMHOST_QUIET:-} != 1 ]]; then
	why="/dev/kvm is absent"
	[[ -c /dev/kvm ]] && why="THAW_KVMHOST=force"
	echo "kvmhost: $why, running in a nested-SVM QEMU TCG VM ($pkg, $cpus vCPUs, $mem MiB)" >&2
fi

# One boot: QEMU plus the two readers of the job's output. Sets qrc and outcome: "done"
# (QEMU exited), "timeout" (the command overran --timeout), "hung" (the VM did not
# reach the job within $boot_tmo s: MTTCG under host load rarely wedges during boot) or
# "stalled" (its heartbeat stopped while the job ran: the same wedge, later).
boot_tmo=${THAW_KVMHOST_BOOT_TIMEOUT:-90}
is_uint "$boot_tmo" || die "THAW_KVMHOST_BOOT_TIMEOUT: '$boot_tmo' is not a number"
# A VM whose heartbeat (init.sh rewrites $ctl/heartbeat every 5 s) stops this long is
# wedged: TCG lost its interrupts, and it would sit there until --timeout.
hb_tmo=${THAW_KVMHOST_STALL_TIMEOUT:-60}
is_uint "$hb_tmo" && ((hb_tmo >= 15)) || die "THAW_KVMHOST_STALL_TIMEOUT: a number of seconds, at least 15"
start=$SECONDS

# Exits when the heartbeat, once it has begun, has not changed for $hb_tmo s.
watch_heartbeat() {
	local beat last= since=$SECONDS
	while sleep 5; do
		beat=$(cat -- "$ctl/heartbeat" 2>/dev/null) || beat=
		if [[ -z $beat || $beat != "$last" ]]; then
			last=$beat since=$SECONDS
		elif ((SECONDS - since >= hb_tmo)); then
			return 0
		fi
	done
}
run_vm() {
	local w g bpid p left pending
	rm -f -- "$ctl/started" "$ctl/status" "$ctl/heartbeat"
	cat <"$ctl/out.out" &
	outpid=$!
	cat <"$ctl/err.out" >&2 &
	errpid=$!
	qemu-system-x86_64 "${qargs[@]}" </dev/null >"$ctl/qemu.log" 2>&1 &
	qpid=$!
	spid= bpid=
	if ((tmo > 0)); then
		sleep "$((tmo - (SECONDS - start) > 1 ? tmo - (SECONDS - start) : 1))" 8>&- &
		spid=$!
	fi
	# The timers do not hold the machine-wide lock (fd 8): one left behind by a killed
	# run.sh would keep the next VM waiting.
	sleep "$boot_tmo" 8>&- &
	bpid=$!
	watch_heartbeat 8>&- &
	hpid=$!
	outcome=
	while [[ -z $outcome ]]; do
		wait -n -p w "$qpid" $spid $bpid $hpid
		qrc=$?
		if [[ $w == "$qpid" ]]; then
			outcome=done
		elif [[ $w == "$bpid" ]]; then
			bpid=
			[[ -e $ctl/started ]] || outcome=hung
		elif [[ $w == "$spid" ]]; then
			spid=
			outcome=timeout
		elif [[ $w == "$hpid" ]]; then
			hpid=
			outcome=stalled
		fi
	done
	if [[ $outcome != done ]]; then
		kill -TERM "$qpid" 2>/dev/null
		sleep 2 &
		g=$!
		wait -n "$qpid" "$g"
		kill -KILL "$qpid" "$g" 2>/dev/null
		wait "$qpid" "$g" 2>/dev/null
	fi
	kill -KILL $spid $bpid $hpid 2>/dev/null
	wait $spid $bpid $hpid 2>/dev/null
	qpid= spid= bpid= hpid=

	# The readers end with QEMU, unless QEMU died before opening the pipes.
	sleep 2 &
	g=$!
	pending=("$outpid" "$errpid")
	while ((${#pending[@]})); do
		wait -n -p w "${pending[@]}" "$g"
		[[ $w == "$g" ]] && break
		left=()
		for p in "${pending[@]}"; do [[ $p == "$w" ]] || left+=("$p"); done
		pending=("${left[@]}")
	done
	kill -KILL "$g" "${pending[@]}" 2>/dev/null
	wait "$g" "${pending[@]}" 2>/dev/null
	outpid= errpid=
}

is_uint "${THAW_KVMHOST_RETRIES:-2}" || die "THAW_KVMHOST_RETRIES: not a number"
tries=$((1 + ${THAW_KVMHOST_RETRIES:-2}))
for ((attempt = 1; attempt <= tries; attempt++)); do
	run_vm
	if [[ $outcome == done && ! -s $ctl/status ]] &&
		grep -q -E 'soft lockup|rcu_preempt detected stalls' "$ctl/console.log" 2>/dev/null; then
		outcome=wedged
	fi
	[[ $outcome == hung || $outcome == wedged || $outcome == stalled ]] || break
	mv -f -- "$ctl/console.log" "$ctl/console.$outcome$attempt.log"
	if [[ $outcome == hung ]]; then
		echo "kvmhost: the VM did not reach the command within ${boot_tmo} s (attempt $attempt/$tries), last console line:" \
			"$(tail -n 1 -- "$ctl/console.hung$attempt.log" 2>/dev/null)" >&2
	elif [[ $outcome == stalled ]]; then
		echo "kvmhost: the VM stopped answering for ${hb_tmo} s while running the command (attempt $attempt/$tries)" >&2
	else
		echo "kvmhost: the guest kernel locked up while running the command (attempt $attempt/$tries):" \
			"$(grep -m 1 -E 'soft lockup|rcu_preempt detected stalls' "$ctl/console.wedged$attempt.log")" >&2
	fi
	((attempt < tries)) && echo "kvmhost: booting again and rerunning '${cmd[*]}'" >&2
done

if [[ $outcome == timeout ]]; then
	echo "kvmhost: timeout: '${cmd[*]}' still running after $tmo s, VM killed" >&2
	exit 124
fi
if [[ $outcome == hung || $outcome == wedged || $outcome == stalled ]]; then
	echo "kvmhost: giving up after $tries VMs that hung or locked up (logs: THAW_KVMHOST_DEBUG=1 keeps $ctl)" >&2
	exit 125
fi
if [[ -s $ctl/status ]]; then
	rc=$(<"$ctl/status")
	is_uint "$rc" && exit "$rc"
fi
echo "kvmhost: the VM ended without the command's exit status (qemu exit $qrc); last console lines:" >&2
tail -n 25 -- "$ctl/console.log" >&2 2>/dev/null
[[ -s $ctl/qemu.log ]] && tail -n 10 -- "$ctl/qemu.log" >&2
exit 125
