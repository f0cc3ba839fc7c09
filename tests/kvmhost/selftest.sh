#!/bin/bash
# The body of "tests/kvmhost/run.sh --selftest": runs inside the runner (VM or host)
# with $1 = the compiled selftest.c. One "PASS/FAIL/INFO <check>: ..." line per check,
# then "kvmhost selftest: PASS" or "... FAIL (n failed)"; exit status 0 only on PASS.
set -u
bin=$1
failed=0

pass() { echo "PASS $1: $2"; }
fail() {
	echo "FAIL $1: $2"
	failed=$((failed + 1))
}

# KVM, vCPUs, userfaultfd, tun: the C part prints its own lines.
"$bin"
n=$?
failed=$((failed + n))

# Loopback and network namespaces (thaw's jailer joins one).
ns=kvmhost-selftest-$$
err=$(mktemp)
if ip -o link show lo | grep -q 'UP'; then
	pass loopback "lo is up"
else
	fail loopback "lo is down"
fi
# veth is not loaded yet: creating one also proves the kernel's module autoloading.
if ip netns add "$ns" 2>"$err" &&
	ip netns exec "$ns" ip link set lo up 2>"$err" &&
	ip netns exec "$ns" ip link add kvh0 type veth peer name kvh1 2>"$err" &&
	ip netns exec "$ns" ip link set kvh0 up 2>"$err" &&
	ip netns exec "$ns" ip link set kvh1 up 2>"$err" &&
	ip netns exec "$ns" busybox ping -c 1 -W 2 127.0.0.1 >/dev/null 2>"$err"; then
	pass netns "ip netns add/exec, veth pair (autoloaded) up, ping 127.0.0.1 inside $ns"
else
	fail netns "$(tr '\n' ' ' <"$err")"
fi
ip netns del "$ns" 2>/dev/null
rm -f "$err"

# cgroups: the host's v1 layout (one hierarchy per controller) and cgroup2.
cg=kvmhost-selftest-$$
ok=1
for c in cpu memory pids; do
	d=/sys/fs/cgroup/$c/$cg
	if ! mkdir "$d" 2>/dev/null; then
		fail cgroup-v1 "mkdir $d"
		ok=0
		continue
	fi
	case $c in
	cpu) echo 50000 >"$d/cpu.cfs_quota_us" ;;
	memory) echo $((256 << 20)) >"$d/memory.limit_in_bytes" ;;
	pids) echo 64 >"$d/pids.max" ;;
	esac || ok=0
	sh -c "echo \$\$ >$d/cgroup.procs && grep -q ':$c:/$cg\$' /proc/self/cgroup" || ok=0
	rmdir "$d" || ok=0
done
((ok)) && pass cgroup-v1 "cpu, memory, pids: limits set and a process moved in"
((ok)) || fail cgroup-v1 "setting a limit or moving a process failed"
if [[ -e /sys/fs/cgroup/unified/cgroup.procs ]] && mkdir /sys/fs/cgroup/unified/$cg &&
	rmdir /sys/fs/cgroup/unified/$cg; then
	pass cgroup2 "mounted on /sys/fs/cgroup/unified (no controllers: they are on v1)"
else
	fail cgroup2 "/sys/fs/cgroup/unified unusable"
fi

# Writable places: /tmp and the read-write exports (the current directory's repo).
if t=$(mktemp -p /tmp) && rm -f "$t"; then
	pass tmp "$(df -h --output=fstype,size /tmp | tail -n 1 | tr -s ' ')"
else
	fail tmp "cannot write /tmp"
fi
if t=$(mktemp -p "$PWD" .kvmhost-selftest.XXXXXX) && echo hi >"$t" && rm -f "$t"; then
	pass cwd-writable "$PWD"
else
	fail cwd-writable "cannot write $PWD"
fi

# modprobe from the kernel package's module tree.
if modprobe dummy 2>/dev/null && grep -q "^dummy " /proc/modules; then
	pass modprobe "dummy loaded from the kernel package's tree"
else
	fail modprobe "modprobe dummy"
fi

# perf: software events and the kvm:* tracepoints thaw's bench uses.
if ! command -v perf >/dev/null; then
	fail perf "perf not installed"
else
	out=$(perf stat -x, -e task-clock,page-faults -- true 2>&1)
	if grep -q 'task-clock' <<<"$out"; then
		pass perf-stat "software events count"
	else
		fail perf-stat "$(head -n 2 <<<"$out" | tr '\n' ' ')"
	fi
	out=$(perf stat -x, -e kvm:kvm_exit,kvm:kvm_pio -- "$bin" kvm-io-hlt 2>&1)
	exits=$(sed -n 's/^\([0-9]*\),,kvm:kvm_exit,.*/\1/p' <<<"$out")
	pio=$(sed -n 's/^\([0-9]*\),,kvm:kvm_pio,.*/\1/p' <<<"$out")
	if [[ ${exits:-0} -gt 0 && ${pio:-0} -gt 0 ]]; then
		pass perf-kvm-tracepoints "kvm:kvm_exit=$exits kvm:kvm_pio=$pio for kvm-io-hlt"
	else
		fail perf-kvm-tracepoints "$(tail -n 3 <<<"$out" | tr '\n' ' ')"
	fi
	out=$(perf stat -x, -e cycles,instructions -- true 2>&1)
	if grep -q '^[0-9]*,,cycles' <<<"$out"; then
		echo "INFO perf-hw: hardware counters available"
	else
		echo "INFO perf-hw: no hardware counters (expected: TCG has no PMU)"
	fi
fi

if ((failed)); then
	echo "kvmhost selftest: FAIL ($failed failed)"
	exit 1
fi
echo "kvmhost selftest: PASS"
