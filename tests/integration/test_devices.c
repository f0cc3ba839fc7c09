/* The virtio devices with real guests: the Linux guest's kernel agent reads and writes
 * the virtio-blk disk (checked against the host file both ways; a qcow2 overlay judged
 * by qemu-img), reads the RNG,
 * exchanges UDP datagrams with the host over a tap in a private network namespace,
 * and talks vsock both ways through the hybrid unix sockets; the probe guest writes
 * bad rings by hand and the VMM must keep running, marking only that device as
 * needing reset. See docs/devices.md and guest/linux/AGENT.md. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/integration/harness.h"

#define BOOT_TIMEOUT_MS 180000
#define ASK_TIMEOUT_MS	60000
#define DISK_SECTORS	8192 /* 4 MiB */

static char tmpdir[64];

static int group_setup(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/thaw-itest-dev-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* zlib's CRC-32, which the agent reports. */
static uint32_t crc32_buf(const uint8_t *p, size_t n)
{
	uint32_t c = 0xffffffffu;

	for (size_t i = 0; i < n; i++) {
		c ^= p[i];
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
	}
	return ~c;
}

static char *disk_file(const char *name)
{
	static char path[128];
	uint8_t sector[512];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	for (unsigned s = 0; s < DISK_SECTORS; s++) {
		for (unsigned i = 0; i < 512; i++)
			sector[i] = (uint8_t)(s * 7 + i);
		assert_int_equal(pwrite(fd, sector, 512, (off_t)s * 512), 512);
	}
	close(fd);
	return path;
}

/* Boots the Linux guest in agent mode with extra thaw arguments. */
static struct vmproc *linux_start(const char *const *extra)
{
	const char *argv[32] = {harness_env("THAW_BIN"),
				"--kernel",
				harness_env("THAW_KERNEL"),
				"--cmdline",
				"console=ttyS0 thaw_agent.hold_init=1 quiet",
				"--mem-mib",
				"160"};
	struct vmproc *p = calloc(1, sizeof(*p));
	unsigned n = 7;

	for (unsigned i = 0; extra && extra[i] && n < 31; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	assert_non_null(p);
	assert_int_equal(vmproc_start(p, argv), 0);
	if (vmproc_expect(p, "THAW_GUEST_READY", BOOT_TIMEOUT_MS, NULL, 0)) {
		vmproc_dump(p, "Linux guest did not become ready");
		fail();
	}
	return p;
}

static void stop(struct vmproc *p)
{
	vmproc_stop(p);
	free(p);
}

static void ask(struct vmproc *p, const char *req, const char *prefix, char *ans, size_t len)
{
	if (vmproc_ask(p, req, prefix, ASK_TIMEOUT_MS, ans, len)) {
		vmproc_dump(p, req);
		fail_msg("no '%s' answer to '%s'", prefix, req);
	}
}

#define SKIP_WITHOUT_KVM()                                                                         \
	do {                                                                                       \
		if (!harness_have_kvm())                                                           \
			skip();                                                                    \
	} while (0)

/* ---------------------------------------------------------------- virtio-blk */

/* The guest reads `count` sectors from `sector` and reports the CRC of what the host
 * file `fd` (a raw file with the same contents) holds there. */
static void assert_guest_reads(struct vmproc *p, int fd, unsigned sector, unsigned count)
{
	uint8_t buf[4 * 512];
	char req[64], want[64], ans[512];

	assert_true(count * 512 <= sizeof(buf));
	assert_int_equal(pread(fd, buf, count * 512, (off_t)sector * 512), (ssize_t)count * 512);
	snprintf(want, sizeof(want), "crc32=%08x", crc32_buf(buf, count * 512));
	snprintf(req, sizeof(req), "blk read %u %u", sector, count);
	ask(p, req, "THAW_AGENT blk read", ans, sizeof(ans));
	assert_non_null(strstr(ans, want));
}

static void linux_blk_reads_host_data_and_writes_reach_the_file(void **state)
{
	SKIP_WITHOUT_KVM();
	char *path = disk_file("rw.img"), spec[200], ans[512];
	const char *extra[] = {"--drive", spec, NULL};
	uint8_t buf[2 * 512];
	struct vmproc *p;
	int fd;

	snprintf(spec, sizeof(spec), "id=disk0,path=%s,ro=off", path);
	p = linux_start(extra);
	ask(p, "blk info", "THAW_AGENT blk info", ans, sizeof(ans));
	assert_non_null(strstr(ans, "sectors=8192"));
	assert_non_null(strstr(ans, "ro=0"));

	/* Host data read by the guest. */
	fd = open(path, O_RDWR | O_CLOEXEC);
	assert_guest_reads(p, fd, 40, 2);

	/* Guest writes, flushed, are in the file. */
	ask(p, "blk write 100 THAWDATA 2", "THAW_AGENT blk write", ans, sizeof(ans));
	assert_non_null(strstr(ans, "flushed"));
	assert_int_equal(pread(fd, buf, 1024, 100 * 512), 1024);
	for (unsigned i = 0; i < 1024; i++)
		assert_int_equal(buf[i], "THAWDATA"[i % 8]);

	/* Host-written data (sectors the guest never cached) is read back. */
	memset(buf, 0x5a, 512);
	assert_int_equal(pwrite(fd, buf, 512, 3000 * 512), 512);
	assert_guest_reads(p, fd, 3000, 1);
	ask(p, "blk flush", "THAW_AGENT blk flush", ans, sizeof(ans));
	/* Past the end: an error, not a crash. */
	ask(p, "blk read 8192 1", "THAW_AGENT", ans, sizeof(ans));
	ask(p, "ping", "THAW_AGENT pong", ans, sizeof(ans));
	close(fd);
	stop(p);
}

/* The same agent requests on a qcow2 drive: an overlay (made by qemu-img) over a qcow2
 * base converted from the raw disk, so reads fall through to the base, writes allocate
 * clusters and copy the rest of each from the base. Afterwards `qemu-img check` finds
 * the overlay consistent, `qemu-img compare` finds it equal to the raw file with the
 * same writes, and the base is unchanged. */
static void linux_blk_on_qcow2_overlay_passes_qemu_img_check_and_compare(void **state)
{
	SKIP_WITHOUT_KVM();
	if (system("command -v qemu-img >/dev/null 2>&1")) {
		print_message(
		    "*** SKIPPED: qemu-img missing; `make deps` installs qemu-utils ***\n");
		skip();
	}
	char *raw = disk_file("q.raw"), spec[200], ans[512], cmd[600];
	const char *extra[] = {"--drive", spec, NULL};
	uint8_t buf[2 * 512];
	struct vmproc *p;
	int fd;

	snprintf(cmd, sizeof(cmd),
		 "cd %s && qemu-img convert -O qcow2 q.raw base.qcow2 && cp q.raw orig.raw && "
		 "qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 top.qcow2",
		 tmpdir);
	assert_int_equal(system(cmd), 0);
	snprintf(spec, sizeof(spec), "id=disk0,path=%s/top.qcow2,ro=off", tmpdir);
	p = linux_start(extra);
	ask(p, "blk info", "THAW_AGENT blk info", ans, sizeof(ans));
	assert_non_null(strstr(ans, "sectors=8192"));

	/* The base's data through the overlay. */
	fd = open(raw, O_RDWR | O_CLOEXEC);
	assert_guest_reads(p, fd, 40, 2);

	/* Writes: inside a cluster the base holds (COW), and across a cluster boundary. */
	ask(p, "blk write 100 THAWDATA 2", "THAW_AGENT blk write", ans, sizeof(ans));
	assert_non_null(strstr(ans, "flushed"));
	ask(p, "blk write 127 QCOW2OVL 3", "THAW_AGENT blk write", ans, sizeof(ans));
	assert_non_null(strstr(ans, "flushed"));
	for (unsigned i = 0; i < 1024; i++)
		buf[i] = (uint8_t) "THAWDATA"[i % 8];
	assert_int_equal(pwrite(fd, buf, 1024, 100 * 512), 1024);
	for (unsigned i = 0; i < 512; i++)
		buf[i] = (uint8_t) "QCOW2OVL"[i % 8];
	for (unsigned s = 127; s < 130; s++)
		assert_int_equal(pwrite(fd, buf, 512, (off_t)s * 512), 512);
	/* Read back through the guest: its writes, and an untouched part of a COW cluster. */
	assert_guest_reads(p, fd, 126, 2);
	ask(p, "ping", "THAW_AGENT pong", ans, sizeof(ans));
	close(fd);
	stop(p);

	snprintf(cmd, sizeof(cmd),
		 "cd %s && qemu-img check -q top.qcow2 && qemu-img compare -q top.qcow2 q.raw && "
		 "qemu-img compare -q base.qcow2 orig.raw && qemu-img check -q base.qcow2",
		 tmpdir);
	assert_int_equal(system(cmd), 0);
}

static void linux_blk_read_only_drive_refuses_writes(void **state)
{
	SKIP_WITHOUT_KVM();
	char *path = disk_file("ro.img"), spec[200], ans[512];
	const char *extra[] = {"--drive", spec, NULL};
	uint8_t buf[512];
	struct vmproc *p;
	int fd;

	snprintf(spec, sizeof(spec), "id=ro0,path=%s,ro=on", path);
	p = linux_start(extra);
	ask(p, "blk info", "THAW_AGENT blk info", ans, sizeof(ans));
	assert_non_null(strstr(ans, "ro=1"));
	ask(p, "blk write 5 NOPE", "THAW_AGENT", ans, sizeof(ans));
	assert_non_null(strstr(ans, "error"));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_int_equal(pread(fd, buf, 512, 5 * 512), 512);
	assert_int_equal(buf[0], (uint8_t)(5 * 7));
	close(fd);
	ask(p, "blk read 5 1", "THAW_AGENT blk read", ans, sizeof(ans));
	stop(p);
}

/* The busybox root filesystem (guest/linux/rootfs.sh, THAW_ROOTFS) as the virtio-blk
 * root: the kernel mounts it and runs its /sbin/init. rdinit= names a file the
 * built-in initramfs lacks, so the kernel mounts root= instead of staying there. */
static void linux_boots_busybox_from_virtio_blk_root(void **state)
{
	SKIP_WITHOUT_KVM();
	const char *img = getenv("THAW_ROOTFS");
	char path[128], spec[200], cmd[400], ans[256];
	const char *argv[] = {harness_env("THAW_BIN"),
			      "--kernel",
			      harness_env("THAW_KERNEL"),
			      "--cmdline",
			      "console=ttyS0 rdinit=/none",
			      "--mem-mib",
			      "160",
			      "--drive",
			      spec,
			      NULL};
	struct vmproc *p;

	if (!img) {
		print_message(
		    "SKIPPED: THAW_ROOTFS is not set (guest/linux/rootfs.sh prints it)\n");
		skip();
	}
	/* A copy: the guest writes to its root. */
	snprintf(path, sizeof(path), "%s/root.ext4", tmpdir);
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", img, path);
	assert_int_equal(system(cmd), 0);
	snprintf(spec, sizeof(spec), "id=root,path=%s,ro=off,root=on", path);
	p = calloc(1, sizeof(*p));
	assert_int_equal(vmproc_start(p, argv), 0);
	if (vmproc_expect(p, "THAW_GUEST_READY", BOOT_TIMEOUT_MS, ans, sizeof(ans))) {
		/* PVM hosts cannot run guest user space (guest/linux/AGENT.md): init's
		 * first syscall faults and the kernel panics. The root file system was
		 * still found on virtio-blk, mounted and its init started; that much is
		 * checked, the rest is skipped, on PVM only. */
		if (access("/sys/module/kvm_pvm", F_OK) == 0 &&
		    strstr(p->out, "VFS: Mounted root (ext4 filesystem)") &&
		    strstr(p->out, "Run /sbin/init as init process") &&
		    strstr(p->out, "init[1]: segfault") &&
		    strstr(p->out, "Attempted to kill init")) {
			print_message("SKIPPED: the root file system mounted and its init "
				      "started, but guest user space cannot run on PVM\n");
			stop(p);
			skip();
		}
		vmproc_dump(p, "no ready line from the root filesystem's init");
		fail();
	}
	ask(p, "uname", "THAW_AGENT uname", ans, sizeof(ans));
	assert_non_null(strstr(ans, "userspace"));
	stop(p);
}

/* ---------------------------------------------------------------- virtio-rng */

static void linux_rng_gives_bytes(void **state)
{
	SKIP_WITHOUT_KVM();
	const char *extra[] = {"--rng", NULL};
	char ans[1024];
	const char *hex;
	struct vmproc *p = linux_start(extra);

	ask(p, "rng 32", "THAW_AGENT rng", ans, sizeof(ans));
	assert_non_null(strstr(ans, "bytes=32"));
	hex = strstr(ans, "hex=");
	assert_non_null(hex);
	assert_true(strspn(hex + 4, "0123456789abcdef") == 64);
	assert_null(strstr(hex, "0000000000000000000000000000000000000000"));
	stop(p);
}

/* ---------------------------------------------------------------- virtio-vsock */

struct echo_server {
	int lfd;
	char got[64];
};

/* Host side of a guest-initiated connection: reads a line, answers "pong\n". */
static void *serve_one(void *arg)
{
	struct echo_server *s = arg;
	struct pollfd pf = {.fd = s->lfd, .events = POLLIN};
	size_t n = 0;
	int fd;

	if (poll(&pf, 1, ASK_TIMEOUT_MS) != 1)
		return NULL;
	fd = accept(s->lfd, NULL, NULL);
	if (fd < 0)
		return NULL;
	while (n < sizeof(s->got) - 1) {
		ssize_t r = read(fd, s->got + n, 1);

		if (r <= 0 || s->got[n] == '\n')
			break;
		n++;
	}
	s->got[n] = 0;
	if (write(fd, "pong\n", 5) != 5)
		s->got[0] = 0;
	close(fd);
	return NULL;
}

static int unix_listen(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%.100s", path);
	unlink(path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 4), 0);
	return fd;
}

static ssize_t read_line(int fd, char *buf, size_t cap, int timeout_ms)
{
	size_t n = 0;

	while (n < cap - 1) {
		struct pollfd pf = {.fd = fd, .events = POLLIN};
		ssize_t r;

		if (poll(&pf, 1, timeout_ms) != 1)
			return -ETIMEDOUT;
		r = read(fd, buf + n, 1);
		if (r <= 0)
			break;
		if (buf[n++] == '\n')
			break;
	}
	buf[n] = 0;
	return (ssize_t)n;
}

static void linux_vsock_both_directions(void **state)
{
	SKIP_WITHOUT_KVM();
	char uds[128], spec[200], ans[512], line[64], side[160];
	const char *extra[] = {"--vsock", spec, NULL};
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct echo_server srv;
	pthread_t th;
	struct vmproc *p;
	int fd;

	snprintf(uds, sizeof(uds), "%s/v.sock", tmpdir);
	snprintf(spec, sizeof(spec), "cid=3,uds=%s", uds);
	p = linux_start(extra);

	/* Host-initiated: CONNECT, OK, echo. */
	ask(p, "vsock listen 5000", "THAW_AGENT vsock listening", ans, sizeof(ans));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%.100s", uds);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(write(fd, "CONNECT 5000\n", 13), 13);
	assert_true(read_line(fd, line, sizeof(line), ASK_TIMEOUT_MS) > 0);
	assert_int_equal(strncmp(line, "OK ", 3), 0);
	assert_int_equal(write(fd, "hello thaw\n", 11), 11);
	assert_int_equal(read_line(fd, line, sizeof(line), ASK_TIMEOUT_MS), 11);
	assert_string_equal(line, "hello thaw\n");
	close(fd);
	if (vmproc_expect(p, "THAW_EVENT vsock closed port=5000", ASK_TIMEOUT_MS, line,
			  sizeof(line))) {
		vmproc_dump(p, "vsock close not seen");
		fail();
	}
	assert_non_null(strstr(line, "echoed=11"));

	/* Refused: nobody listens on 5001, the client is closed without OK. */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(write(fd, "CONNECT 5001\n", 13), 13);
	assert_int_equal(read_line(fd, line, sizeof(line), ASK_TIMEOUT_MS), 0);
	close(fd);

	/* Guest-initiated to host port 6000: thaw connects to <uds>_6000. */
	snprintf(side, sizeof(side), "%s_6000", uds);
	srv.lfd = unix_listen(side);
	srv.got[0] = 0;
	assert_int_equal(pthread_create(&th, NULL, serve_one, &srv), 0);
	ask(p, "vsock connect 2 6000 ping", "THAW_AGENT vsock connect", ans, sizeof(ans));
	pthread_join(th, NULL);
	close(srv.lfd);
	assert_string_equal(srv.got, "ping");
	assert_non_null(strstr(ans, "text=pong"));

	/* Guest-initiated to a port with no host listener: refused, guest fine. */
	ask(p, "vsock connect 2 6001 ping", "THAW_AGENT", ans, sizeof(ans));
	assert_non_null(strstr(ans, "error"));
	ask(p, "ping", "THAW_AGENT pong", ans, sizeof(ans));
	stop(p);
}

/* ---------------------------------------------------------------- figures */

/* KVM's per-VM statistics in debugfs ("<pid>-<vm fd>/"): exits to user space for MMIO
 * and in total. Returns -1 when debugfs is not available. */
static long long kvm_stat(pid_t pid, const char *name)
{
	char cmd[320], out[64] = "";
	FILE *f;

	if (access("/sys/kernel/debug/kvm", R_OK) != 0 &&
	    system("mount -t debugfs none /sys/kernel/debug 2>/dev/null") != 0)
		return -1;
	snprintf(cmd, sizeof(cmd), "cat /sys/kernel/debug/kvm/%d-*/%s 2>/dev/null", (int)pid, name);
	f = popen(cmd, "r");
	if (!f)
		return -1;
	if (!fgets(out, sizeof(out), f))
		out[0] = 0;
	pclose(f);
	return out[0] ? atoll(out) : -1;
}

static int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;

	return x < y ? -1 : x > y;
}

/* Not a pass/fail check: prints the figures the device issue asks for (vsock
 * round-trip latency over 1000 messages, block read throughput, and the exits to
 * user space each takes, which ioeventfd/irqfd should keep near zero). */
static void linux_figures_vsock_rtt_and_blk_throughput(void **state)
{
	SKIP_WITHOUT_KVM();
	char uds[128], vspec[200], dspec[200], path[128], ans[512], line[64];
	const char *extra[] = {"--vsock", vspec, "--drive", dspec, NULL};
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	enum { N = 200, MIB = 4 }; /* the guest kernel is emulated on PVM: keep it short */
	static long long rtt[N];
	long long t0, e0, m0, e1, m1;
	struct vmproc *p;
	int fd;

	snprintf(uds, sizeof(uds), "%s/bench.sock", tmpdir);
	snprintf(vspec, sizeof(vspec), "cid=3,uds=%s", uds);
	snprintf(path, sizeof(path), "%s/bench.img", tmpdir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_int_equal(ftruncate(fd, (off_t)MIB << 20), 0);
	close(fd);
	snprintf(dspec, sizeof(dspec), "id=bench,path=%s,ro=off", path);
	p = linux_start(extra);

	ask(p, "vsock listen 5000", "THAW_AGENT vsock listening", ans, sizeof(ans));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%.100s", uds);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(write(fd, "CONNECT 5000\n", 13), 13);
	assert_true(read_line(fd, line, sizeof(line), ASK_TIMEOUT_MS) > 0);
	e0 = kvm_stat(p->pid, "exits");
	m0 = kvm_stat(p->pid, "mmio_exits");
	for (int i = 0; i < N; i++) {
		char c = 'a' + (char)(i % 26), r = 0;
		struct pollfd pf = {.fd = fd, .events = POLLIN};

		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		t0 = ts.tv_sec * 1000000000ll + ts.tv_nsec;
		assert_int_equal(write(fd, &c, 1), 1);
		assert_int_equal(poll(&pf, 1, ASK_TIMEOUT_MS), 1);
		assert_int_equal(read(fd, &r, 1), 1);
		assert_int_equal(r, c);
		clock_gettime(CLOCK_MONOTONIC, &ts);
		rtt[i] = ts.tv_sec * 1000000000ll + ts.tv_nsec - t0;
	}
	e1 = kvm_stat(p->pid, "exits");
	m1 = kvm_stat(p->pid, "mmio_exits");
	close(fd);
	qsort(rtt, N, sizeof(rtt[0]), cmp_ll);
	print_message("FIGURE vsock_rtt_us median=%.1f p10=%.1f p90=%.1f n=%d "
		      "mmio_exits_per_msg=%.3f exits_per_msg=%.2f\n",
		      rtt[N / 2] / 1000.0, rtt[N / 10] / 1000.0, rtt[N * 9 / 10] / 1000.0, N,
		      m0 >= 0 ? (double)(m1 - m0) / N : -1.0,
		      e0 >= 0 ? (double)(e1 - e0) / N : -1.0);

	/* Block reads, 1 MiB each, every one at a new place (no guest cache hits). */
	e0 = kvm_stat(p->pid, "exits");
	m0 = kvm_stat(p->pid, "mmio_exits");
	t0 = harness_ms();
	for (int i = 0; i < MIB; i++) {
		char req[64];

		snprintf(req, sizeof(req), "blk read %d 2048", i * 2048);
		ask(p, req, "THAW_AGENT blk read", ans, sizeof(ans));
	}
	t0 = harness_ms() - t0;
	e1 = kvm_stat(p->pid, "exits");
	m1 = kvm_stat(p->pid, "mmio_exits");
	print_message("FIGURE blk_read MiB=%d ms=%lld MiB_per_s=%.1f (each 1 MiB read is one "
		      "agent command over the serial console) mmio_exits_per_MiB=%.2f "
		      "exits_per_MiB=%.1f\n",
		      MIB, t0, MIB * 1000.0 / (double)(t0 ? t0 : 1),
		      m0 >= 0 ? (double)(m1 - m0) / MIB : -1.0,
		      e0 >= 0 ? (double)(e1 - e0) / MIB : -1.0);
	stop(p);
}

/* ---------------------------------------------------------------- virtio-net */

static void linux_net_udp_both_ways_over_tap(void **state)
{
	SKIP_WITHOUT_KVM();
	const char *extra[] = {"--net", "id=eth0,tap=thawtap0,mac=06:00:ac:10:00:02", NULL};
	char ans[512];
	struct vmproc *p;

	/* A private network namespace: the tap and addresses vanish with the test. */
	if (unshare(CLONE_NEWNET) != 0) {
		print_message("SKIPPED: unshare(CLONE_NEWNET): %s (needs root)\n", strerror(errno));
		skip();
	}
	assert_int_equal(system("ip link set lo up"), 0);
	p = linux_start(extra);
	assert_int_equal(system("ip addr add 172.16.0.1/24 dev thawtap0 && "
				"ip link set thawtap0 up"),
			 0);
	ask(p, "net up eth0 172.16.0.2/24", "THAW_AGENT net up", ans, sizeof(ans));
	ask(p, "net bind 7000", "THAW_AGENT net bound", ans, sizeof(ans));
	if (harness_udp_both_ways(p, "172.16.0.1", "172.16.0.2", ASK_TIMEOUT_MS))
		fail();
	stop(p);
}

/* ---------------------------------------------------------------- bad rings (probe) */

#define RNG_BASE  0xd0001000ull /* after one drive */
#define DISK_BASE 0xd0000000ull
#define RING	  0x400000ull /* 4 MiB: desc; avail +0x1000; used +0x2000 */
#define BUF	  0x480000ull

static struct vmproc *probe_with_devices(void)
{
	char *path = disk_file("probe.img"), spec[200];
	const char *argv[] = {harness_env("THAW_BIN"),
			      "--kernel",
			      harness_env("THAW_PROBE"),
			      "--mem-mib",
			      "64",
			      "--drive",
			      spec,
			      "--rng",
			      NULL};
	struct vmproc *p = calloc(1, sizeof(*p));

	snprintf(spec, sizeof(spec), "id=d0,path=%s,ro=off", path);
	assert_int_equal(vmproc_start(p, argv), 0);
	if (vmproc_expect(p, "THAW_PROBE_READY", BOOT_TIMEOUT_MS, NULL, 0)) {
		vmproc_dump(p, "probe did not start");
		fail();
	}
	return p;
}

static void probe_bad_rings_mark_device_and_vmm_keeps_running(void **state)
{
	SKIP_WITHOUT_KVM();
	struct vmproc *p = probe_with_devices();
	char ans[256];

	assert_int_equal(harness_probe_read(p, 32, RNG_BASE), 0x74726976);
	assert_int_equal(harness_probe_read(p, 32, RNG_BASE + 8), 4);

	/* A good request first: the rng answers through the ioeventfd path. */
	harness_probe_queue_up(p, RNG_BASE, 8, RING);
	harness_probe_desc(p, RING, 0, BUF, 64, 2 /* WRITE */, 0);
	harness_probe_kick(p, 0, RNG_BASE, RING, 0, 0, 1);
	usleep(100 * 1000);
	assert_int_equal(harness_probe_read(p, 32, RING + 0x2000) >> 16, 1); /* used idx */
	assert_int_equal(harness_probe_read(p, 32, RNG_BASE + 0x70) & 0x40, 0);

	/* Each bad ring marks the device needing reset; the probe and thaw go on. */
	struct {
		const char *what;
		uint64_t addr;
		uint32_t len;
		uint16_t flags, next;
	} bad[] = {
	    {"buffer outside RAM", 0x7fff0000ull, 64, 2, 0},
	    {"buffer straddling the end of RAM", (64ull << 20) - 16, 64, 2, 0},
	    {"length 0xffffffff", BUF, 0xffffffffu, 2, 0},
	    {"loop 0 -> 0", BUF, 64, 2 | 1, 0},
	    {"next past the queue", BUF, 64, 2 | 1, 9},
	    {"indirect descriptor never negotiated", 0x7fff0000ull, 32, 4, 0},
	};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		print_message("bad ring: %s\n", bad[i].what);
		harness_probe_queue_up(p, RNG_BASE, 8, RING);
		harness_probe_desc(p, RING, 0, bad[i].addr, bad[i].len, bad[i].flags, bad[i].next);
		harness_probe_kick(p, 0, RNG_BASE, RING, 0, 0, 1);
		usleep(100 * 1000);
		assert_int_equal(harness_probe_read(p, 32, RNG_BASE + 0x70) & 0x40, 0x40);
		assert_int_equal(
		    vmproc_ask(p, "ping", "PROBE pong", ASK_TIMEOUT_MS, ans, sizeof(ans)), 0);
	}
	/* Avail index far ahead of the used index. */
	harness_probe_queue_up(p, RNG_BASE, 8, RING);
	harness_probe_desc(p, RING, 0, BUF, 64, 2, 0);
	harness_probe_kick(p, 0, RNG_BASE, RING, 0, 0, 200);
	usleep(100 * 1000);
	assert_int_equal(harness_probe_read(p, 32, RNG_BASE + 0x70) & 0x40, 0x40);
	/* A queue size that is not a power of two, and one above the maximum. */
	harness_probe_queue_up(p, RNG_BASE, 12, RING);
	assert_int_equal(harness_probe_read(p, 32, RNG_BASE + 0x70) & 0x40, 0x40);
	harness_probe_queue_up(p, RNG_BASE, 4096, RING);
	assert_int_equal(harness_probe_read(p, 32, RNG_BASE + 0x70) & 0x40, 0x40);
	/* Rings in MMIO space. */
	harness_probe_queue_up(p, RNG_BASE, 8, 0xd0002000ull);
	assert_int_equal(harness_probe_read(p, 32, RNG_BASE + 0x70) & 0x40, 0x40);

	/* The other device is unaffected: the disk still identifies itself and sets up. */
	assert_int_equal(harness_probe_read(p, 32, DISK_BASE + 8), 2);
	harness_probe_queue_up(p, DISK_BASE, 8, RING + 0x10000);
	assert_int_equal(harness_probe_read(p, 32, DISK_BASE + 0x70) & 0x40, 0);
	/* And the rng recovers after a reset. */
	harness_probe_queue_up(p, RNG_BASE, 8, RING);
	harness_probe_cmd(p, "w32 %#llx 0", (unsigned long long)RING + 0x2000);
	harness_probe_desc(p, RING, 0, BUF, 64, 2, 0);
	harness_probe_kick(p, 0, RNG_BASE, RING, 0, 0, 1);
	usleep(100 * 1000);
	assert_int_equal(harness_probe_read(p, 32, RING + 0x2000) >> 16, 1);
	assert_int_equal(vmproc_ask(p, "ping", "PROBE pong", ASK_TIMEOUT_MS, ans, sizeof(ans)), 0);
	stop(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(probe_bad_rings_mark_device_and_vmm_keeps_running),
	    cmocka_unit_test(linux_blk_reads_host_data_and_writes_reach_the_file),
	    cmocka_unit_test(linux_blk_read_only_drive_refuses_writes),
	    cmocka_unit_test(linux_blk_on_qcow2_overlay_passes_qemu_img_check_and_compare),
	    cmocka_unit_test(linux_boots_busybox_from_virtio_blk_root),
	    cmocka_unit_test(linux_rng_gives_bytes),
	    cmocka_unit_test(linux_vsock_both_directions),
	    cmocka_unit_test(linux_figures_vsock_rtt_and_blk_throughput),
	    /* last: it moves the test process into its own network namespace */
	    cmocka_unit_test(linux_net_udp_both_ways_over_tap),
	};

	return cmocka_run_group_tests_name("devices", tests, group_setup, group_teardown);
}
