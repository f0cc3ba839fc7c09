#!/bin/busybox sh
# PID 1 of the kvmhost VM (see README.md). It lives in the initramfs next to a static
# busybox and the few modules listed in /lib/mod/order, and:
#   1. loads those modules (virtio, 9p, overlay, kvm-amd, tun) in dependency order;
#   2. builds the new root: the host's "/" (9p tag "root", read-only) under a tmpfs
#      overlay, so the test sees every host binary and can still write anywhere;
#   3. mounts fresh /proc /sys /dev /tmp /run, cgroups (the host's v1 layout plus
#      cgroup2 on unified), tracefs, debugfs, the read-write 9p exports listed in the
#      control directory, and the kernel's module tree on /lib/modules;
#   4. runs /run/kvmhost/job.sh (written by run.sh) in a chroot with stdout on ttyS1
#      and stderr on ttyS2, writes its exit status to /run/kvmhost/status, powers off.
# Kernel messages stay on ttyS0 (the console), which run.sh keeps in a log file.
# Any failure before the job runs powers off without a status; run.sh reports that.

/bin/busybox --install -s /bin
export PATH=/bin:/sbin
umask 022

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

# Phase marks for the kernel log (visible with THAW_KVMHOST_DEBUG=1).
mark() { echo "kvmhost-init: $*" >/dev/kmsg; }

fail() {
	echo "kvmhost-init: $*" >&2
	poweroff -f
	sleep 60
}

# The job's stdout and stderr: raw ttys (no \n -> \r\n), kept open by PID 1 until the
# end because the last close is what waits for the UART to drain.
exec 3<>/dev/ttyS1 4<>/dev/ttyS2 || fail "cannot open ttyS1/ttyS2"
stty raw -echo 115200 <&3
stty raw -echo 115200 <&4
exec 2>&4 1>&4

while read -r m args; do
	insmod "/lib/mod/$m" $args || fail "insmod $m failed"
	mark "loaded $m"
done </lib/mod/order

mark "modules loaded"
P9="trans=virtio,version=9p2000.L,msize=512000"
mkdir -p /ctl /lower /ovl /newroot
mount -t 9p -o "$P9,cache=none" ctl /ctl || fail "cannot mount the control export"
. /ctl/config || fail "cannot read /ctl/config"

# Host files do not change under a test, so the read-only root may cache everything.
mount -t 9p -o "$P9,cache=loose,ro" root /lower || fail "cannot mount the host root"
mount -t tmpfs -o mode=755 tmpfs /ovl
mkdir -p /ovl/upper /ovl/work
if ! mount -t overlay overlay -o lowerdir=/lower,upperdir=/ovl/upper,workdir=/ovl/work /newroot; then
	echo "kvmhost-init: overlay root failed, the root stays read-only" >&2
	mount --bind /lower /newroot
fi

R=/newroot
mount -t proc proc $R/proc
mount -t sysfs sysfs $R/sys
mount -t devtmpfs devtmpfs $R/dev
mkdir -p $R/dev/pts $R/dev/shm $R/dev/mqueue $R/dev/hugepages
mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts $R/dev/pts
ln -sf pts/ptmx $R/dev/ptmx 2>/dev/null
mount -t tmpfs -o mode=1777 tmpfs $R/dev/shm
mount -t mqueue mqueue $R/dev/mqueue
mount -t hugetlbfs hugetlbfs $R/dev/hugepages
ln -sf /proc/self/fd $R/dev/fd
ln -sf /proc/self/fd/0 $R/dev/stdin
ln -sf /proc/self/fd/1 $R/dev/stdout
ln -sf /proc/self/fd/2 $R/dev/stderr
mount -t tmpfs -o mode=1777,size=75% tmpfs $R/tmp
mount -t tmpfs -o mode=755 tmpfs $R/run
mkdir -p $R/run/kvmhost $R/run/netns $R/run/lock
mount --move /ctl $R/run/kvmhost

# The host's layout: one v1 hierarchy per controller, cgroup2 (no controllers) on unified.
mount -t tmpfs -o mode=755 cgroup $R/sys/fs/cgroup
# In parallel: each v1 mount waits for an RCU grace period, slow under TCG.
for c in cpu cpuacct cpuset memory devices freezer blkio pids; do
	mkdir -p $R/sys/fs/cgroup/$c
	mount -t cgroup -o $c cgroup $R/sys/fs/cgroup/$c || echo "kvmhost-init: cgroup $c unavailable" >&2 &
done
wait
mkdir -p $R/sys/fs/cgroup/unified
mount -t cgroup2 cgroup2 $R/sys/fs/cgroup/unified
mount -t tracefs tracefs $R/sys/kernel/tracing
mount -t debugfs debugfs $R/sys/kernel/debug
mount -t bpf bpf $R/sys/fs/bpf 2>/dev/null

# Read-write exports, parents first (run.sh sorts them): "tag path" per line.
while read -r tag path; do
	[ -n "$tag" ] || continue
	mkdir -p "$R$path" && mount -t 9p -o "$P9,cache=mmap" "$tag" "$R$path" ||
		fail "cannot mount the read-write export $path"
done </newroot/run/kvmhost/mounts

# The module tree of this kernel, so modprobe works in the job (host has none).
# The kernel's own requests (e.g. "ip link add type veth") run /sbin/modprobe in PID 1's
# root, the initramfs: forward them to the host's modprobe in the new root.
if [ -n "$KVH_MODTREE" ] && [ -d "$R$KVH_MODTREE" ]; then
	mkdir -p "$R/lib/modules/$KVH_KVER" &&
		mount --bind "$R$KVH_MODTREE" "$R/lib/modules/$KVH_KVER"
	mkdir -p /sbin
	printf '#!/bin/sh\nexec chroot /newroot /sbin/modprobe "$@"\n' >/sbin/modprobe
	chmod 755 /sbin/modprobe
	echo /sbin/modprobe >/proc/sys/kernel/modprobe
fi

mark "mounts done"
# From here on warnings and the stacks of lockup reports reach the console log.
echo 5 >/proc/sys/kernel/printk
ip link set lo up
hostname "$KVH_HOSTNAME"
sysctl -q -w kernel.perf_event_paranoid=-1 kernel.kptr_restrict=0 >/dev/null 2>&1

# The heartbeat: a counter in the control export, rewritten every 5 s while the VM
# lives. A guest wedged by TCG (both vCPUs stuck, seen under host load) stops it and
# run.sh boots again; the kernel's own lockup detectors need the interrupts such a
# wedge loses, so they stay silent.
(n=0; while :; do echo $n >$R/run/kvmhost/heartbeat; n=$((n + 1)); sleep 5; done) &
hbpid=$!

# The pin (pin.c): one idle VM for the VM's whole life, so that the job's VMs never flip
# KVM's static keys and the kernel never live-patches hot code under MTTCG (the wedge in
# README.md). It is never killed: its VM's end would patch again; poweroff ends it.
pinpid=
if [ -n "$KVH_PIN" ] && [ -x "$R$KVH_PIN" ]; then
	chroot $R "$KVH_PIN" /run/kvmhost-pin.ready </dev/null >/dev/null 2>/dev/kmsg &
	pinpid=$!
	i=0
	while [ ! -e $R/run/kvmhost-pin.ready ] && [ $i -lt 100 ] && kill -0 $pinpid 2>/dev/null; do
		sleep 0.1
		i=$((i + 1))
	done
	[ -e $R/run/kvmhost-pin.ready ] || echo "kvmhost-init: the pin is not holding a VM" >&2
fi

mkfifo /job.out /job.err
cat /job.out >&3 &
outpid=$!
cat /job.err >&4 &
errpid=$!
: >$R/run/kvmhost/started
chroot $R /bin/bash /run/kvmhost/job.sh </dev/null >/job.out 2>/job.err 3>&- 4>&-
rc=$?
mark "job exited with $rc"

# Leftover processes would hold the pipes open and the exports busy.
for d in /proc/[0-9]*; do
	p=${d#/proc/}
	case " 1 $outpid $errpid $hbpid $pinpid " in *" $p "*) continue ;; esac
	# nor the heartbeat's sleep (its shell would report it "Killed")
	read -r _ _ _ ppid _ 2>/dev/null <"$d/stat" && [ "$ppid" = "$hbpid" ] && continue
	kill -9 "$p" 2>/dev/null
done
wait $outpid $errpid
exec 1>/dev/console 2>/dev/console 3>&- 4>&-

mark "output drained"
echo "$rc" >$R/run/kvmhost/status
# Dirty pages of mmap-ed files on the read-write exports reach the host here.
sync
poweroff -f
sleep 60
