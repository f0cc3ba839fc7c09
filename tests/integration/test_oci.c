/* thaw-oci with real VMs and the real engines: a probe snapshot run as an OCI container
 * by thaw-oci itself, by containerd (its stock runc shim, `ctr run --runc-binary`) and by
 * podman (conmon, `--runtime`). The guest's console is the container's stdio (or its
 * pty), exit statuses propagate, the cgroup limits land in the jail's cgroup, and after
 * every ending (kill, delete, kill -9 of the shim or of conmon) no VMM, state, jail,
 * cgroup, mount or socket is left. Bad bundles fail `create` with an error on stderr
 * and in the JSON log, and leave nothing. containerd and podman run with their own
 * root, state and sockets under a temporary directory. No timing is asserted. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <json-c/json.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>

#include <cmocka.h>

#include "tests/integration/harness.h"

#define TMO 60000

static char dir[] = "/tmp/thaw-ocitest-XXXXXX";
static char oci[256];	  /* build/thaw-oci */
static char root[256];	  /* thaw-oci --root of the direct tests */
static char rootfs[256];  /* holds base.snap */
static char ctr[512];	  /* "ctr -a SOCK" */
static char podman[2048]; /* "podman --root ... --runtime thaw-oci" */
static pid_t containerd_pid;
static bool have_containerd, have_podman;
/* What the running test used, so that test_end cleans only that engine up: in the nested
 * host (QEMU TCG) each podman or ctr command takes seconds. */
static bool used_containerd, used_podman;
#define NEED_CONTAINERD()                                                                          \
	do {                                                                                       \
		if (!have_containerd)                                                              \
			skip();                                                                    \
		used_containerd = true;                                                            \
	} while (0)
#define NEED_PODMAN()                                                                              \
	do {                                                                                       \
		if (!have_podman)                                                                  \
			skip();                                                                    \
		used_podman = true;                                                                \
	} while (0)

/* Inside the nested host (tests/kvmhost) containerd, podman, conmon and their Go
 * programs run under QEMU TCG, 20-50x slower than here, and every case there takes
 * minutes: the program timed out (20 minutes) after five cases, and again after ten of
 * its first thirteen with the engine variations skipped. So it runs the smallest set
 * that still crosses every layer once (thaw-oci alone, bad bundles, ctr, podman with
 * limits, the pool) and skips the rest, loudly; all of them run where /dev/kvm
 * exists (25 cases in 40 s on PVM). */
static void skip_in_nested_host(const char *what)
{
	if (!getenv("THAW_KVMHOST_INSIDE"))
		return;
	fprintf(stderr,
		"SKIPPED in the nested host (engines under QEMU TCG, 20-50x slower): %s; "
		"it runs where /dev/kvm exists\n",
		what);
	skip();
}
/* A jailed thaw-pool of base.snap's twin (the same snapshot, another file), outside dir
 * so its prepared VMMs are not mistaken for a container's leftovers. */
static char pdir[] = "/tmp/thaw-ocipool-XXXXXX";
static char pool_sock[256];
static pid_t pool_pid;

/* Runs a shell command (its stdout and stderr into out); returns its exit status. */
static int __attribute__((format(printf, 3, 4))) sh(char *out, size_t len, const char *fmt, ...)
{
	char cmd[8192], buf[4096];
	size_t used = 0;
	va_list ap;
	FILE *f;
	int st;

	memcpy(cmd, "( ", 2);
	va_start(ap, fmt);
	vsnprintf(cmd + 2, sizeof(cmd) - 16, fmt, ap);
	va_end(ap);
	strcat(cmd, " ) 2>&1");
	f = popen(cmd, "r");
	if (!f)
		return -1;
	while (fgets(buf, sizeof(buf), f)) {
		size_t n = strlen(buf);

		if (out && used + n < len) {
			memcpy(out + used, buf, n);
			used += n;
		}
	}
	if (out && len)
		out[used] = '\0';
	st = pclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static bool gone(pid_t pid)
{
	char path[64], buf[512], *p;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return true;
	p = fgets(buf, sizeof(buf), f);
	fclose(f);
	p = p ? strrchr(buf, ')') : NULL;
	return !p || p[2] == 'Z';
}

static void wait_gone(pid_t pid)
{
	for (int i = 0; i < TMO / 10 && !gone(pid); i++)
		usleep(10000);
	assert_true(gone(pid));
}

/* Nothing of a container is left under thaw-oci's root `r` (no state directory, no
 * jail), in the cgroup hierarchies below `cgparent`, or mounted under the test's
 * directory; and its VMM `pid` is gone. */
static void assert_nothing_left(const char *r, const char *cgparent, pid_t pid)
{
	char out[8192];

	if (pid > 0)
		wait_gone(pid);
	if (sh(out, sizeof(out), "ls -A %s 2>/dev/null | grep -v '^jails$'", r) != 1)
		fail_msg("state left under %s: %s", r, out);
	/* thaw-jailer's folder per exec file (Firecracker's layout): any jail left in one */
	if (sh(out, sizeof(out), "ls -A %s/jails/* 2>/dev/null | grep -v ':$' | grep .", r) != 1)
		fail_msg("a jail left under %s/jails: %s", r, out);
	if (cgparent && sh(out, sizeof(out),
			   "for c in memory pids cpu; do find /sys/fs/cgroup/$c/%s -mindepth 1 "
			   "-type d 2>/dev/null; done | grep -v /libpod_parent/conmon",
			   cgparent) != 1)
		fail_msg("a cgroup left: %s", out);
	if (sh(out, sizeof(out), "grep -F '%s/' /proc/self/mountinfo", dir) != 1)
		fail_msg("a mount left: %s", out);
	/* a VMM: jailed, its root is a jail under dir; unjailed, its cwd a state dir */
	if (sh(out, sizeof(out),
	       "for p in /proc/[0-9]*; do case \"$(readlink $p/root) $(readlink $p/cwd)\" in "
	       "*%s/*) grep -q '^State:.*Z' $p/status 2>/dev/null || echo $p;; esac; done | grep .",
	       dir) == 0)
		fail_msg("a VMM is left: %s", out);
}

/* A bundle `name` in the test directory: config.json is `config`, rootfs a symlink to
 * the shared one that holds base.snap. */
static void bundle(const char *name, const char *config)
{
	char path[PATH_MAX + 64];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/%s/rootfs", dir, name);
	unlink(path);
	assert_int_equal(symlink(rootfs, path), 0);
	snprintf(path, sizeof(path), "%s/%s/config.json", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(config, f);
	fclose(f);
}

#define CFG_HEAD                                                                                   \
	"{\"ociVersion\": \"1.0.2\", \"root\": {\"path\": \"rootfs\"}, \"process\": "              \
	"{\"terminal\": %s, \"user\": {\"uid\": 0, \"gid\": 0}, \"args\": [\"/fn\"], \"cwd\": "    \
	"\"/\"}, \"annotations\": {\"org.thaw.snapshot\": \"/base.snap\"}"

static void bundle_jailed(const char *name, bool terminal)
{
	char cfg[2048];

	snprintf(cfg, sizeof(cfg),
		 CFG_HEAD ", \"linux\": {\"cgroupsPath\": \"/thaw-ocitest/%s\", \"resources\": "
			  "{\"memory\": {\"limit\": 268435456}, \"pids\": {\"limit\": 64}, "
			  "\"cpu\": {\"shares\": 512}}, \"namespaces\": [{\"type\": \"pid\"}, "
			  "{\"type\": \"mount\"}]}}",
		 terminal ? "true" : "false", name);
	bundle(name, cfg);
}

static pid_t state_pid(const char *r, const char *id, char *status, size_t len)
{
	char out[4096], *p;

	if (sh(out, sizeof(out), "%s --root %s state %s", oci, r, id))
		return -1;
	p = strstr(out, "\"status\":\"");
	if (status && p)
		snprintf(status, len, "%.*s", (int)strcspn(p + 10, "\""), p + 10);
	p = strstr(out, "\"pid\":");
	return p ? atoi(p + 6) : -1;
}

/* ---- thaw-oci alone --------------------------------------------------------------------- */

/* create (jailed, limits) -> created; start -> running, the guest answers on the
 * container's stdin/stdout; pause/resume; kill; delete leaves nothing. */
static void lifecycle_create_start_kill_delete(void **state)
{
	char out[8192], status[32], path[PATH_MAX + 64];
	const char *argv[] = {"/bin/sh", "-c", NULL, NULL};
	char cmd[4096];
	struct vmproc *p;
	pid_t pid;

	bundle_jailed("life", false);
	snprintf(cmd, sizeof(cmd),
		 "%s --root %s --log %s/life.log --log-format json create --bundle %s/life "
		 "--pid-file %s/life.pid life && exec sleep 1000",
		 oci, root, dir, dir, dir);
	argv[2] = cmd;
	/* sh holds the pipes while the VMM inherits them: the container's stdio */
	p = harness_start(argv);
	for (int i = 0; i < 500 && state_pid(root, "life", status, sizeof(status)) <= 0; i++)
		usleep(10000);
	pid = state_pid(root, "life", status, sizeof(status));
	assert_true(pid > 0);
	assert_string_equal(status, "created");
	snprintf(path, sizeof(path), "%s/life.pid", dir);
	assert_int_equal(sh(out, sizeof(out), "cat %s", path), 0);
	assert_int_equal(atoi(out), pid);
	/* the limits are the jail's cgroup's */
	assert_int_equal(sh(out, sizeof(out), "grep -E '^[0-9]+:memory:' /proc/%d/cgroup", pid), 0);
	assert_non_null(strstr(out, ":/thaw-ocitest/life"));
	assert_int_equal(sh(out, sizeof(out),
			    "cat /sys/fs/cgroup/memory/thaw-ocitest/life/memory.limit_in_bytes "
			    "/sys/fs/cgroup/pids/thaw-ocitest/life/pids.max "
			    "/sys/fs/cgroup/cpu/thaw-ocitest/life/cpu.shares"),
			 0);
	assert_string_equal(out, "268435456\n64\n512\n");

	assert_int_equal(sh(out, sizeof(out), "%s --root %s list -q", oci, root), 0);
	assert_string_equal(out, "life\n");
	assert_int_equal(sh(out, sizeof(out), "%s --root %s list --format json", oci, root), 0);
	assert_non_null(strstr(out, "\"id\":\"life\""));
	assert_non_null(strstr(out, "\"status\":\"created\""));
	assert_int_equal(sh(out, sizeof(out), "%s --root %s start life", oci, root), 0);
	state_pid(root, "life", status, sizeof(status));
	assert_string_equal(status, "running");
	assert_int_equal(vmproc_ask(p, "ping", "PROBE pong", TMO, NULL, 0), 0);
	assert_int_equal(sh(out, sizeof(out), "%s --root %s pause life", oci, root), 0);
	state_pid(root, "life", status, sizeof(status));
	assert_string_equal(status, "paused");
	assert_int_equal(sh(out, sizeof(out), "%s --root %s resume life", oci, root), 0);
	assert_int_equal(vmproc_ask(p, "ping", "PROBE pong", TMO, NULL, 0), 0);
	assert_int_equal(sh(out, sizeof(out), "%s --root %s ps --format json life", oci, root), 0);
	snprintf(path, sizeof(path), "[%d]\n", (int)pid);
	assert_string_equal(out, path);
	/* a running container is not deleted without --force; exec is refused */
	assert_int_not_equal(sh(out, sizeof(out), "%s --root %s delete life", oci, root), 0);
	assert_non_null(strstr(out, "not stopped"));
	assert_int_not_equal(sh(out, sizeof(out), "%s --root %s exec life /bin/true", oci, root),
			     0);
	assert_non_null(strstr(out, "exec: not supported"));

	assert_int_equal(sh(out, sizeof(out), "%s --root %s kill life KILL", oci, root), 0);
	wait_gone(pid);
	state_pid(root, "life", status, sizeof(status));
	assert_string_equal(status, "stopped");
	assert_int_not_equal(sh(out, sizeof(out), "%s --root %s kill life TERM", oci, root), 0);
	assert_non_null(strstr(out, "container not running"));
	assert_int_equal(sh(out, sizeof(out), "%s --root %s delete life", oci, root), 0);
	assert_nothing_left(root, "thaw-ocitest", pid);
	harness_end(p);
}

/* `run` in the foreground: the guest is the container's stdio, SIGTERM to the VMM is a
 * clean stop (0), SIGKILL is 137, and run deletes the container. */
static void run_propagates_exit_status(void **state)
{
	char cmd[4096], out[4096];
	const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
	struct vmproc *p;
	const char *sigs[] = {"TERM", "KILL"};
	const int want[] = {0, 137};

	skip_in_nested_host("thaw-oci run and its exit status");
	bundle("plain", "{\"ociVersion\": \"1.0.2\", \"root\": {\"path\": \"rootfs\"}, "
			"\"process\": {\"args\": [\"/fn\"]}, \"annotations\": "
			"{\"org.thaw.snapshot\": \"base.snap\"}}");
	for (int i = 0; i < 2; i++) {
		pid_t pid;

		snprintf(cmd, sizeof(cmd), "cd %s/plain && exec %s --root %s run plain", dir, oci,
			 root);
		p = harness_start(argv);
		assert_int_equal(vmproc_ask(p, "ping", "PROBE pong", TMO, NULL, 0), 0);
		pid = state_pid(root, "plain", NULL, 0);
		assert_true(pid > 0);
		/* unjailed: no cgroup asked for */
		assert_int_equal(
		    sh(out, sizeof(out), "%s --root %s kill plain %s", oci, root, sigs[i]), 0);
		assert_int_equal(vmproc_wait(p, TMO), want[i]);
		harness_end(p);
		assert_nothing_left(root, NULL, pid);
	}
}

/* process.terminal: the pty's master arrives on the console socket, and the guest's
 * console is the pty. */
static void terminal_pty_goes_to_console_socket(void **state)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char cbuf[CMSG_SPACE(sizeof(int))], name[64] = "", out[4096], buf[4096];
	struct iovec iov = {.iov_base = name, .iov_len = sizeof(name) - 1};
	struct msghdr m = {
	    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
	struct cmsghdr *cm;
	size_t got = 0;
	int ls, cs, master = -1, rc;
	pid_t pid;

	skip_in_nested_host("the console socket pty");
	bundle_jailed("tty", true);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/console.sock", dir);
	ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(ls >= 0);
	assert_int_equal(bind(ls, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(ls, 1), 0);
	/* no console socket: refused */
	rc = sh(out, sizeof(out), "%s --root %s create --bundle %s/tty tty </dev/null", oci, root,
		dir);
	assert_int_not_equal(rc, 0);
	assert_non_null(strstr(out, "--console-socket is required"));
	rc = sh(out, sizeof(out),
		"%s --root %s create --bundle %s/tty --console-socket %s tty </dev/null >/dev/null",
		oci, root, dir, sa.sun_path);
	assert_int_equal(rc, 0);
	cs = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
	assert_true(cs >= 0);
	assert_true(recvmsg(cs, &m, 0) > 0);
	cm = CMSG_FIRSTHDR(&m);
	if (!cm) {
		fail_msg("no SCM_RIGHTS message on the console socket");
		return;
	}
	assert_int_equal(cm->cmsg_type, SCM_RIGHTS);
	memcpy(&master, CMSG_DATA(cm), sizeof(int));
	assert_non_null(strstr(name, "/dev/pts/"));
	close(cs);
	close(ls);
	assert_int_equal(sh(out, sizeof(out), "%s --root %s start tty", oci, root), 0);
	assert_int_equal(write(master, "ping\r", 5), 5);
	for (long long end = harness_ms() + TMO; harness_ms() < end;) {
		struct pollfd pf = {.fd = master, .events = POLLIN};
		ssize_t n;

		if (poll(&pf, 1, 100) <= 0)
			continue;
		n = read(master, buf + got, sizeof(buf) - 1 - got);
		if (n <= 0)
			break;
		got += (size_t)n;
		buf[got] = '\0';
		if (strstr(buf, "PROBE pong"))
			break;
	}
	buf[got] = '\0';
	assert_non_null(strstr(buf, "PROBE pong"));
	pid = state_pid(root, "tty", NULL, 0);
	assert_int_equal(sh(out, sizeof(out), "%s --root %s delete --force tty", oci, root), 0);
	close(master);
	assert_nothing_left(root, "thaw-ocitest", pid);
}

/* linux.namespaces' network path: the jailed VMM lives in that network namespace. */
static void network_namespace_path_is_the_vmms(void **state)
{
	char cfg[2048], out[4096];
	struct stat ns, vmm;
	char path[64];
	pid_t pid;

	skip_in_nested_host("the bundle netns as the VMM's");
	if (sh(out, sizeof(out), "ip netns add thaw-ocitest-ns"))
		fail_msg("ip netns add: %s", out);
	snprintf(cfg, sizeof(cfg),
		 CFG_HEAD ", \"linux\": {\"namespaces\": [{\"type\": \"network\", \"path\": "
			  "\"/var/run/netns/thaw-ocitest-ns\"}]}}",
		 "false");
	bundle("netns", cfg);
	if (sh(out, sizeof(out),
	       "%s --root %s create --bundle %s/netns netns </dev/null >/dev/null 2>&1", oci, root,
	       dir)) {
		sh(NULL, 0, "ip netns del thaw-ocitest-ns");
		fail_msg("create: %s", out);
	}
	pid = state_pid(root, "netns", NULL, 0);
	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
	assert_int_equal(stat("/var/run/netns/thaw-ocitest-ns", &ns), 0);
	assert_int_equal(stat(path, &vmm), 0);
	assert_true(ns.st_ino == vmm.st_ino && ns.st_dev == vmm.st_dev);
	assert_int_equal(sh(out, sizeof(out), "%s --root %s delete --force netns", oci, root), 0);
	assert_int_equal(sh(out, sizeof(out), "ip netns del thaw-ocitest-ns"), 0);
	assert_nothing_left(root, "thaw-oci", pid);
}

/* ---- snapshots with devices ---------------------------------------------------------------- */

#define DISK_BASE 0xd0000000ull /* virtio0: the drive (drives come first) */
#define NET_BASE  0xd0001000ull /* virtio1: the interface of net.snap */
#define RING	  0x400000ull	/* guest rings and buffers, above the probe's 2 MiB */
#define TXRING	  0x410000ull
#define BUF	  0x480000ull

/* A container started by create from a shell that keeps the pipes: its stdio is the
 * guest's console. Returns the console and the VMM's pid. */
static struct vmproc *create_attached(const char *r, const char *bundle_name, const char *id,
				      pid_t *pid)
{
	static char cmd[4096];
	const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
	char status[32];
	struct vmproc *p;

	snprintf(cmd, sizeof(cmd),
		 "%s --root %s --log %s/%s.log --log-format json create --bundle %s/%s %s && "
		 "exec sleep 1000",
		 oci, r, dir, id, dir, bundle_name, id);
	p = harness_start(argv);
	for (int i = 0; i < 1000 && state_pid(r, id, status, sizeof(status)) <= 0; i++)
		usleep(10000);
	*pid = state_pid(r, id, status, sizeof(status));
	if (*pid <= 0 || strcmp(status, "created")) {
		char out[4096];

		sh(out, sizeof(out), "cat %s/%s.log", dir, id);
		vmproc_dump(p, "create");
		fail_msg("create %s: %s", id, out);
	}
	return p;
}

/* Waits for the used index of the queue whose rings are at `ring` to reach `want`. */
static void wait_used(struct vmproc *p, uint64_t ring, unsigned want)
{
	for (int i = 0; i < 100; i++) {
		if (harness_probe_read(p, 16, ring + 0x2002) >= want)
			return;
		usleep(100000);
	}
	vmproc_dump(p, "used index");
	fail_msg("the device used nothing of the queue at %#llx", (unsigned long long)ring);
}

/* n bytes of guest memory at addr (the probe reads aligned 8-byte words). */
static void guest_bytes(struct vmproc *p, uint64_t addr, size_t n, uint8_t *out)
{
	uint64_t a = addr & ~7ull;

	for (; a < addr + n; a += 8) {
		uint64_t w = harness_probe_read(p, 64, a);

		for (unsigned k = 0; k < 8; k++)
			if (a + k >= addr && a + k < addr + n)
				out[a + k - addr] = ((uint8_t *)&w)[k];
	}
}

static void hex(char *out, const void *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", ((const uint8_t *)p)[i]);
}

/* The guest writes "THAWOCI1" to sector 5 of virtio-blk at DISK_BASE and flushes. */
static void guest_writes_sector_5(struct vmproc *p)
{
	const uint8_t out_hdr[16] = {1, 0, 0, 0, 0, 0, 0, 0, 5}; /* VIRTIO_BLK_T_OUT, sector 5 */
	const uint8_t flush_hdr[16] = {4};			 /* VIRTIO_BLK_T_FLUSH */
	char h[64];

	harness_probe_queue_up(p, DISK_BASE, 8, RING);
	hex(h, out_hdr, 16);
	harness_probe_cmd(p, "wbytes %#llx %s", BUF, h);
	hex(h, flush_hdr, 16);
	harness_probe_cmd(p, "wbytes %#llx %s", BUF + 0x100, h);
	hex(h, "THAWOCI1", 8);
	harness_probe_cmd(p, "wbytes %#llx %s", BUF + 0x1000, h);
	harness_probe_cmd(p, "w16 %#llx 255", BUF + 0x2000); /* both status bytes: not yet */
	harness_probe_desc(p, RING, 0, BUF, 16, 1, 1);
	harness_probe_desc(p, RING, 1, BUF + 0x1000, 512, 1, 2);
	harness_probe_desc(p, RING, 2, BUF + 0x2000, 1, 2, 0);
	harness_probe_desc(p, RING, 3, BUF + 0x100, 16, 1, 4);
	harness_probe_desc(p, RING, 4, BUF + 0x2001, 1, 2, 0);
	harness_probe_kick(p, 0, DISK_BASE, RING, 0, 0, 1);
	wait_used(p, RING, 1);
	harness_probe_kick(p, 0, DISK_BASE, RING, 1, 3, 2);
	wait_used(p, RING, 2);
	assert_int_equal(harness_probe_read(p, 16, BUF + 0x2000), 0); /* both VIRTIO_BLK_S_OK */
}

/* Sector 5 of the image `img` (through its backing chain), read by qemu-img. */
static void sector5(const char *img, char *out, size_t len)
{
	char raw[PATH_MAX + 64];
	FILE *f;

	snprintf(raw, sizeof(raw), "%s/sector5.raw", dir);
	assert_int_equal(sh(out, len, "qemu-img convert -U -O raw %s %s", img, raw), 0);
	f = fopen(raw, "r");
	assert_non_null(f);
	assert_int_equal(fseek(f, 5 * 512, SEEK_SET), 0);
	assert_int_equal(fread(out, 1, 8, f), 8);
	out[8] = '\0';
	fclose(f);
	unlink(raw);
}

/* The "oci" member of a clone's MMDS store (GET /mmds on its API socket), where create
 * puts process.args, env and cwd and the container's id; *store is the caller's to put. */
static json_object *mmds_oci(const char *api_sock, json_object **store)
{
	char body[8192];
	json_object *v;

	assert_int_equal(harness_http(api_sock, "GET", "/mmds", NULL, body, sizeof(body)), 200);
	*store = json_tokener_parse(body);
	assert_non_null(*store);
	assert_true(json_object_object_get_ex(*store, "oci", &v));
	return v;
}

/* Member `key` of `o` as compact JSON text ("" when absent). */
static const char *member(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v))
		return "";
	return json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN |
						     JSON_C_TO_STRING_NOSLASHESCAPE);
}

#define PROCESS_WITH_ARGS                                                                          \
	"\"process\": {\"user\": {\"uid\": 0, \"gid\": 0}, \"args\": [\"/fn\", \"--port\", "       \
	"\"8080\"], \"env\": [\"PATH=/bin\", \"GREETING=hello world\"], \"cwd\": \"/srv\"}"

/* Two containers of one image whose snapshot has a drive: each gets its own qcow2
 * overlay over the image's base (in its state directory), the guest's write lands in
 * its own overlay only, and delete removes it. The clone's MMDS store holds the
 * bundle's process args, env and cwd. */
static void drives_get_an_overlay_per_container_removed_at_delete(void **state)
{
	char out[8192], base[PATH_MAX], img[PATH_MAX + 64], sock[PATH_MAX + 64];
	json_object *mroot, *mo;
	struct vmproc *p1, *p2;
	pid_t pid1, pid2;

	skip_in_nested_host("drive overlays per container");
	if (sh(NULL, 0, "command -v qemu-img")) {
		print_message("SKIPPED: qemu-img missing; `make deps` installs qemu-utils\n");
		skip();
	}
	bundle("drv",
	       "{\"ociVersion\": \"1.0.2\", \"root\": {\"path\": \"rootfs\"}, " PROCESS_WITH_ARGS
	       ", \"annotations\": {\"org.thaw.snapshot\": \"/drive.snap\", "
	       "\"org.thaw.drive.d0\": \"/disk.raw\"}}");
	p1 = create_attached(root, "drv", "drv1", &pid1);
	p2 = create_attached(root, "drv", "drv2", &pid2);
	snprintf(base, sizeof(base), "%s/disk.raw", rootfs);
	for (int i = 1; i <= 2; i++) {
		snprintf(img, sizeof(img), "%s/drv%d/drive-d0.qcow2", root, i);
		assert_int_equal(sh(out, sizeof(out), "qemu-img info -U --output=json %s", img), 0);
		assert_non_null(strstr(out, "\"format\": \"qcow2\""));
		if (!strstr(out, base))
			fail_msg("overlay %s is not over %s: %s", img, base, out);
	}
	snprintf(sock, sizeof(sock), "%s/drv1/api.sock", root);
	mo = mmds_oci(sock, &mroot);
	assert_string_equal(member(mo, "args"), "[\"/fn\",\"--port\",\"8080\"]");
	assert_string_equal(member(mo, "env"), "{\"PATH\":\"/bin\",\"GREETING\":\"hello world\"}");
	assert_string_equal(member(mo, "cwd"), "\"/srv\"");
	assert_string_equal(member(mo, "id"), "\"drv1\"");
	json_object_put(mroot);

	assert_int_equal(sh(out, sizeof(out), "%s --root %s start drv1", oci, root), 0);
	assert_int_equal(vmproc_ask(p1, "ping", "PROBE pong", TMO, NULL, 0), 0);
	guest_writes_sector_5(p1);
	snprintf(img, sizeof(img), "%s/drv1/drive-d0.qcow2", root);
	sector5(img, out, sizeof(out));
	assert_string_equal(out, "THAWOCI1");
	/* the other container's disk and the image's base are untouched */
	snprintf(img, sizeof(img), "%s/drv2/drive-d0.qcow2", root);
	sector5(img, out, sizeof(out));
	assert_memory_equal(out, "\0\0\0\0\0\0\0\0", 8);
	sector5(base, out, sizeof(out));
	assert_memory_equal(out, "\0\0\0\0\0\0\0\0", 8);

	assert_int_equal(sh(out, sizeof(out), "%s --root %s delete --force drv1", oci, root), 0);
	assert_int_equal(sh(out, sizeof(out), "%s --root %s delete drv2", oci, root), 0);
	assert_nothing_left(root, NULL, pid1);
	assert_nothing_left(root, NULL, pid2);
	harness_end(p1);
	harness_end(p2);
}

static int packet_socket(const char *ifname)
{
	struct sockaddr_ll sa = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL)};
	int s = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));

	assert_true(s >= 0);
	sa.sll_ifindex = (int)if_nametoindex(ifname);
	assert_true(sa.sll_ifindex > 0);
	assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return s;
}

/* An Ethernet frame: broadcast, ether type 0x88b5 (local experimental), `text`. */
static size_t frame(uint8_t *f, const uint8_t src[6], const char *text)
{
	memset(f, 0, 60);
	memset(f, 0xff, 6);
	memcpy(f + 6, src, 6);
	f[12] = 0x88;
	f[13] = 0xb5;
	memcpy(f + 14, text, strlen(text));
	return 60;
}

#define POD_NS "thaw-ocitest-pod"

/* A pod's network namespace with an eth0 whose peer is on the host (as CNI's bridge
 * plugin leaves it), IPv6 off so no stray frame comes first. */
static void pod_netns(void)
{
	char out[4096];

	if (sh(out, sizeof(out),
	       "ip netns add " POD_NS " && ip netns exec " POD_NS " sysctl -qw "
	       "net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 && "
	       "ip link add thawoci-h type veth peer name thawoci-p && "
	       "sysctl -qw net.ipv6.conf.thawoci-h.disable_ipv6=1 && "
	       "ip link set thawoci-p netns " POD_NS " && "
	       "ip -n " POD_NS " link set thawoci-p name eth0 && ip -n " POD_NS
	       " link set eth0 up && ip link set thawoci-h up"))
		fail_msg("making the pod's namespace: %s", out);
}

/* No tap and no redirect of ours is left in the pod's namespace; then it is removed. */
static void pod_netns_clean_and_gone(void)
{
	char out[4096];

	assert_int_not_equal(sh(out, sizeof(out), "ip -n " POD_NS " -o link show | grep thaw-"), 0);
	assert_int_not_equal(
	    sh(out, sizeof(out), "tc -n " POD_NS " qdisc show dev eth0 | grep ingress"), 0);
	assert_int_equal(sh(out, sizeof(out), "ip netns del " POD_NS), 0);
}

/* The guest (the probe on console p) drives net.snap's virtio-net queues: a broadcast
 * frame sent on the host's interface `host_if` (the pod's eth0 is on its other side)
 * arrives in the guest's receive queue, and a frame the guest transmits arrives there. */
static void guest_frames_both_ways(struct vmproc *p, const char *host_if)
{
	const uint8_t host_mac[6] = {0x02, 0, 0, 0, 0, 0x01}, guest_mac[6] = {0x06, 0, 0, 0, 0, 2};
	uint8_t f[12 + 60], buf[2048];
	bool got = false;
	unsigned used;
	char h[256];
	int s;

	/* receive queue 0: eight 2 KiB buffers (a stray frame of the host's, an IPv6
	 * neighbour or multicast message, may take some first); transmit queue 1 */
	harness_probe_virtio_start(p, NET_BASE);
	harness_probe_queue(p, NET_BASE, 0, 8, RING);
	harness_probe_queue(p, NET_BASE, 1, 8, TXRING);
	harness_probe_driver_ok(p, NET_BASE);
	for (unsigned i = 0; i < 8; i++) {
		harness_probe_desc(p, RING, i, BUF + 0x800 * i, 0x800, 2, 0);
		harness_probe_kick(p, 0, NET_BASE, RING, i, i, i + 1);
	}

	/* host side -> pod's eth0 -> tap -> the guest */
	s = packet_socket(host_if);
	assert_int_equal(send(s, f, frame(f, host_mac, "THAW-OCI-TO-GUEST"), 0), 60);
	used = 0;
	for (long long end = harness_ms() + TMO; !got && used < 8 && harness_ms() < end;) {
		unsigned now = (unsigned)harness_probe_read(p, 16, RING + 0x2002);

		for (; used < now && used < 8 && !got; used++) {
			uint64_t id = harness_probe_read(p, 32, RING + 0x2004 + 8 * used);
			uint8_t rx[12 + 14 + 17];

			/* the 12-byte virtio-net header, then the frame */
			guest_bytes(p, BUF + 0x800 * (id & 7), sizeof(rx), rx);
			got = !memcmp(rx + 12 + 6, host_mac, 6) &&
			      !memcmp(rx + 12 + 14, "THAW-OCI-TO-GUEST", 17);
		}
		if (!got)
			usleep(20000);
	}
	if (!got)
		fail_msg("the frame sent into the pod did not reach the guest (%u used)", used);

	/* the guest -> tap -> the pod's eth0 -> host side */
	memset(f, 0, 12); /* the virtio-net header: nothing asked of the device */
	frame(f + 12, guest_mac, "THAW-OCI-TO-HOST");
	hex(h, f, 12 + 14 + 16);
	harness_probe_cmd(p, "wbytes %#llx %s", BUF + 0x8000, h);
	harness_probe_desc(p, TXRING, 0, BUF + 0x8000, 12 + 60, 0, 0);
	harness_probe_kick(p, 1, NET_BASE, TXRING, 0, 0, 1);
	got = false;
	for (long long end = harness_ms() + TMO; !got && harness_ms() < end;) {
		struct pollfd pf = {.fd = s, .events = POLLIN};
		ssize_t n;

		if (poll(&pf, 1, 200) <= 0)
			continue;
		n = recv(s, buf, sizeof(buf), 0);
		got = n >= 14 + 16 && !memcmp(buf + 6, guest_mac, 6) &&
		      !memcmp(buf + 14, "THAW-OCI-TO-HOST", 16);
	}
	close(s);
	if (!got)
		fail_msg("the guest's frame did not leave the pod");
}

/* A snapshot with a drive, an interface and vsock in a bundle with the pod's network
 * namespace: the tap is made in that namespace, tied to its eth0; a frame sent to the
 * pod from the host side arrives in the guest's receive queue, and one the guest
 * transmits leaves the pod on the host side; the vsock socket is beside the API socket;
 * delete removes the tap and the redirect. */
static void tap_in_pod_netns_carries_frames_both_ways(void **state)
{
	char out[8192], cfg[2048];
	struct vmproc *p;
	pid_t pid;

	skip_in_nested_host("the tap in a pod namespace");
	pod_netns();
	snprintf(cfg, sizeof(cfg),
		 "{\"ociVersion\": \"1.0.2\", \"root\": {\"path\": \"rootfs\"}, " PROCESS_WITH_ARGS
		 ", \"annotations\": {\"org.thaw.snapshot\": \"/net.snap\", \"org.thaw.drive.d0\": "
		 "\"/disk.raw\"}, \"linux\": {\"namespaces\": [{\"type\": \"network\", \"path\": "
		 "\"/var/run/netns/" POD_NS "\"}]}}");
	bundle("pod", cfg);
	p = create_attached(root, "pod", "pod1", &pid);
	assert_int_equal(sh(out, sizeof(out), "ip -n " POD_NS " -o link show"), 0);
	assert_non_null(strstr(out, "thaw-"));
	assert_int_equal(sh(out, sizeof(out), "tc -n " POD_NS " filter show dev eth0 ingress"), 0);
	assert_non_null(strstr(out, "mirred (Egress Redirect to device thaw-"));
	/* the vsock device's socket, beside the API socket in the jail */
	assert_int_equal(
	    sh(out, sizeof(out), "test -S %s/jails/thaw-static/oci-pod1/root/vsock.sock", root), 0);
	assert_int_equal(sh(out, sizeof(out), "%s --root %s start pod1", oci, root), 0);
	assert_int_equal(vmproc_ask(p, "ping", "PROBE pong", TMO, NULL, 0), 0);

	guest_frames_both_ways(p, "thawoci-h");

	assert_int_equal(sh(out, sizeof(out), "%s --root %s delete --force pod1", oci, root), 0);
	assert_nothing_left(root, "thaw-oci", pid);
	harness_end(p);
	pod_netns_clean_and_gone();
}

/* Bad bundles: create exits non-zero, says why on stderr and in the JSON log, and leaves
 * nothing; so do --systemd-cgroup and a bad id. */
static void bad_bundles_fail_create_and_leave_nothing(void **state)
{
	static const struct {
		const char *config; /* "" for no config.json at all */
		const char *why;
	} cases[] = {
	    {"{\"ociVersion\": \"1.0.2\", \"root\": {\"path\": \"rootfs\"}}", "no snapshot"},
	    {"{\"ociVersion\": \"1.0.2\", \"root\": {\"path\": \"rootfs\"}, \"annotations\": "
	     "{\"org.thaw.snapshot\": \"/missing.snap\"}}",
	     "No such file"},
	    {"{\"ociVersion\": \"1.0.2\", \"root\": {\"path\": \"rootfs\"}, \"annotations\": "
	     "{\"org.thaw.snapshot\": \"/escape.snap\"}}",
	     "outside the root"},
	    {"{\"ociVersion\": \"1.0.2\", \"root\": {\"path\": \"rootfs\"}, \"annotations\": "
	     "{\"org.thaw.snapshot\": \"/junk.snap\"}}",
	     "loading the snapshot"},
	    /* jailed: refused before the jail and its cgroup exist */
	    {"{\"ociVersion\": \"1.0.2\", \"root\": {\"path\": \"rootfs\"}, \"annotations\": "
	     "{\"org.thaw.snapshot\": \"/junk.snap\"}, \"linux\": {\"cgroupsPath\": "
	     "\"/thaw-ocitest/bad\", \"resources\": {\"pids\": {\"limit\": 10}}}}",
	     "loading the snapshot"},
	    {"{\"ociVersion\": \"1.0.2\", \"root\": {\"path\": \"rootfs\"}, \"annotations\": "
	     "{\"org.thaw.snapshot\": \"/base.snap\"}, \"linux\": {\"namespaces\": [{\"type\": "
	     "\"user\"}], \"uidMappings\": [{\"containerID\": 0, \"hostID\": 1000, \"size\": "
	     "1}]}}",
	     "not supported by thaw-oci"},
	    {"{\"ociVersion\": \"1.0.2\", \"root\": {\"path\": \"rootfs\"}, \"annotations\": "
	     "{\"org.thaw.snapshot\": \"/base.snap\"}, \"hooks\": {\"prestart\": [{\"path\": "
	     "\"/bin/true\"}]}}",
	     "hooks.prestart: not supported"},
	    {"{\"ociVersion\": \"1.0.2\", \"root\": {\"path\": \"rootfs\"}, \"annotations\": "
	     "{\"org.thaw.snapshot\": \"/base.snap\", \"org.thaw.snapshott\": \"x\"}}",
	     "not known to thaw-oci"},
	    {"{\"ociVersion\": \"1.0.2\", \"root\": {\"path\": \"rootfs\"}, \"annotations\": "
	     "{\"org.thaw.snapshot\": \"/base.snap\"}, \"linux\": {\"cgroupsPath\": "
	     "\"/thaw-ocitest/bad\", \"resources\": {\"memory\": {\"limit\": 268435456}, "
	     "\"hugepageLimits\": [{\"pageSize\": \"2MB\", \"limit\": 1}]}}}",
	     "hugepageLimits: not supported"},
	    /* snapshots with devices the bundle does not give */
	    {"{\"ociVersion\": \"1.0.2\", \"root\": {\"path\": \"rootfs\"}, \"annotations\": "
	     "{\"org.thaw.snapshot\": \"/drive.snap\"}}",
	     "the snapshot has drive 'd0': annotation org.thaw.drive.d0 must name"},
	    {"{\"ociVersion\": \"1.0.2\", \"root\": {\"path\": \"rootfs\"}, \"annotations\": "
	     "{\"org.thaw.snapshot\": \"/net.snap\", \"org.thaw.drive.d0\": \"/disk.raw\"}}",
	     "network interface 'eth0': the bundle must give a network namespace path"},
	    {"{\"ociVersion\": \"1.0.2\", \"root\": {\"path\": \"rootfs\"}, \"annotations\": "
	     "{\"org.thaw.snapshot\": \"/drive.snap\", \"org.thaw.drive.d0\": \"/nothere\"}}",
	     "drive 'd0' (annotation org.thaw.drive.d0): "},
	    {"not json", "not a JSON object"},
	    {"", "config.json"},
	};
	char out[8192], log[PATH_MAX + 16], path[PATH_MAX + 64];

	/* what the cases name: a snapshot that escapes its root, and one that is not a
	 * snapshot (create reads its device list first and refuses it) */
	snprintf(path, sizeof(path), "%s/escape.snap", rootfs);
	unlink(path);
	assert_int_equal(symlink("/etc/hostname", path), 0);
	snprintf(path, sizeof(path), "%s/junk.snap", rootfs);
	assert_int_equal(sh(NULL, 0, "head -c 65536 /dev/urandom > %s", path), 0);
	snprintf(log, sizeof(log), "%s/bad.log", dir);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char cfg[2048];

		snprintf(cfg, sizeof(cfg), "%s", cases[i].config);
		bundle("bad", cfg);
		if (!cases[i].config[0]) {
			snprintf(path, sizeof(path), "%s/bad/config.json", dir);
			unlink(path);
		}
		unlink(log);
		assert_int_not_equal(sh(out, sizeof(out),
					"%s --root %s --log %s --log-format json create --bundle "
					"%s/bad bad </dev/null 2>&1 >/dev/null",
					oci, root, log, dir),
				     0);
		if (!strstr(out, cases[i].why) || !strstr(out, "thaw-oci: "))
			fail_msg("case %zu: stderr '%s' does not say '%s'", i, out, cases[i].why);
		assert_int_equal(sh(out, sizeof(out), "cat %s", log), 0);
		if (!strstr(out, "{\"level\":\"error\",\"msg\":\"") || !strstr(out, cases[i].why))
			fail_msg("case %zu: log '%s' does not say '%s'", i, out, cases[i].why);
		assert_nothing_left(root, "thaw-ocitest", 0);
	}
	bundle_jailed("bad", false);
	assert_int_not_equal(sh(out, sizeof(out),
				"%s --root %s --systemd-cgroup create --bundle %s/bad bad", oci,
				root, dir),
			     0);
	assert_non_null(strstr(out, "--systemd-cgroup: not supported"));
	assert_int_not_equal(
	    sh(out, sizeof(out), "%s --root %s create --bundle %s/bad ../x", oci, root, dir), 0);
	assert_non_null(strstr(out, "invalid container id"));
	/* a second create of the same id is refused, and leaves the first alone */
	assert_int_equal(sh(out, sizeof(out),
			    "%s --root %s create --bundle %s/bad dup </dev/null >/dev/null 2>&1",
			    oci, root, dir),
			 0);
	assert_int_not_equal(sh(out, sizeof(out),
				"%s --root %s create --bundle %s/bad dup </dev/null", oci, root,
				dir),
			     0);
	assert_non_null(strstr(out, "container with id exists"));
	assert_int_equal(sh(out, sizeof(out), "%s --root %s state dup", oci, root), 0);
	assert_non_null(strstr(out, "\"status\":\"created\""));
	/* a created container is deleted without --force, as runc does */
	assert_int_equal(sh(out, sizeof(out), "%s --root %s delete dup", oci, root), 0);
	assert_nothing_left(root, "thaw-ocitest", 0);
	/* delete --force of what does not exist succeeds; without --force it fails */
	assert_int_equal(sh(out, sizeof(out), "%s --root %s delete --force nope", oci, root), 0);
	assert_int_not_equal(sh(out, sizeof(out), "%s --root %s delete nope", oci, root), 0);
	assert_int_equal(sh(out, sizeof(out), "%s features", oci), 0);
	assert_non_null(strstr(out, "\"ociVersionMax\""));
}

/* ---- containerd ------------------------------------------------------------------------- */

static int containerd_setup(void)
{
	char path[PATH_MAX + 64], out[4096];
	FILE *f;

	if (sh(NULL, 0, "command -v containerd && command -v ctr && command -v umoci") != 0) {
		fprintf(stderr, "SKIPPED (containerd): containerd, ctr or umoci is not installed "
				"(make deps)\n");
		return 0;
	}
	snprintf(path, sizeof(path), "%s/containerd.toml", dir);
	f = fopen(path, "w");
	if (!f)
		return -1;
	/* Its own root, state and sockets; only what these tests use. */
	fprintf(
	    f,
	    "version = 2\nroot = \"%s/cd/root\"\nstate = \"%s/cd/state\"\n"
	    "disabled_plugins = [\"io.containerd.grpc.v1.cri\", "
	    "\"io.containerd.snapshotter.v1.btrfs\", \"io.containerd.snapshotter.v1.zfs\", "
	    "\"io.containerd.snapshotter.v1.devmapper\", \"io.containerd.snapshotter.v1.aufs\"]\n"
	    "[grpc]\n  address = \"%s/cd/c.sock\"\n[ttrpc]\n  address = \"%s/cd/c.sock.ttrpc\"\n",
	    dir, dir, dir, dir);
	fclose(f);
	snprintf(ctr, sizeof(ctr), "ctr -a %s/cd/c.sock", dir);
	snprintf(path, sizeof(path),
		 "mkdir -p %s/cd && exec containerd --config %s/containerd.toml "
		 ">%s/cd/log 2>&1",
		 dir, dir, dir);
	containerd_pid = fork();
	if (containerd_pid == 0) {
		setpgid(0, 0);
		execl("/bin/sh", "sh", "-c", path, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 1000 && sh(NULL, 0, "%s version >/dev/null 2>&1", ctr); i++)
		usleep(10000);
	/* the image: one layer holding the snapshot, made with umoci, no registry */
	if (sh(out, sizeof(out),
	       "set -e; cd %s; umoci init --layout img; umoci new --image img:snap; "
	       "umoci unpack --image img:snap ub; cp %s/base.snap ub/rootfs/base.snap; "
	       "umoci repack --image img:snap ub; "
	       "umoci config --image img:snap --config.cmd /fn "
	       "--config.label org.thaw.snapshot=/base.snap; "
	       "tar -C img -cf snap-oci.tar .; "
	       "%s images import --base-name thaw/probe --index-name thaw/probe:1 snap-oci.tar; "
	       /* and one whose snapshot has a drive (its base beside it), a NIC and vsock */
	       "umoci init --layout img2; umoci new --image img2:dev; "
	       "umoci unpack --image img2:dev ud; cp %s/net.snap %s/disk.raw ud/rootfs/; "
	       "umoci repack --image img2:dev ud; umoci config --image img2:dev --config.cmd /fn; "
	       "tar -C img2 -cf dev-oci.tar .; "
	       "%s images import --base-name thaw/dev --index-name thaw/dev:1 dev-oci.tar",
	       dir, rootfs, ctr, rootfs, rootfs, ctr)) {
		fprintf(stderr, "containerd setup: %s\n", out);
		return -1;
	}
	have_containerd = true;
	return 0;
}

#define CTR_RUN                                                                                    \
	"%s run --snapshotter native --runc-binary %s --runc-root %s/cd/runc "                     \
	"--annotation org.thaw.snapshot=/base.snap"

static pid_t task_pid(const char *id)
{
	char out[4096], *p;

	if (sh(out, sizeof(out), "%s task ls | grep '^%s '", ctr, id))
		return -1;
	p = out + strlen(id);
	return atoi(p);
}

static void cd_nothing_left(pid_t pid)
{
	char r[PATH_MAX + 32], out[4096];

	snprintf(r, sizeof(r), "%s/cd/runc/default", dir);
	assert_nothing_left(r, "default", pid);
	assert_int_equal(sh(out, sizeof(out), "%s task ls -q | grep .", ctr), 1);
	assert_int_equal(sh(out, sizeof(out), "%s containers ls -q | grep .", ctr), 1);
	/* the shims' sockets and bundles */
	assert_int_equal(sh(out, sizeof(out),
			    "find %s/cd/state/io.containerd.runtime.v2.task -mindepth 2 | grep .",
			    dir),
			 1);
}

/* ctr task kill -s SIGKILL, then task delete (which reports the VMM's 137) and container
 * delete: nothing of the container `id` (VMM `pid`) is left. */
static void cd_kill_delete(const char *id, pid_t pid)
{
	char out[4096];

	assert_int_equal(sh(out, sizeof(out), "%s task kill -s SIGKILL %s", ctr, id), 0);
	wait_gone(pid);
	for (int i = 0; i < 500; i++) {
		sh(out, sizeof(out), "%s task ls | grep '^%s '", ctr, id);
		if (strstr(out, "STOPPED"))
			break;
		usleep(10000);
	}
	assert_int_equal(sh(out, sizeof(out), "%s task delete %s", ctr, id), 0);
	assert_non_null(strstr(out, "137"));
	assert_int_equal(sh(out, sizeof(out), "%s container delete %s", ctr, id), 0);
	cd_nothing_left(pid);
}

/* The test's pool (its tests are below). */
static pid_t pool_state(const char *r, const char *id, pid_t *vmm, char *clone, size_t len);
static void pool_stocked(void);
static void pool_forgot(const char *clone);

/* ctr run of container `id` in the foreground (with `pool`, through the test's pool,
 * whose keeper is then the task): the guest answers on the task's stdio, the VMM is in
 * the cgroup containerd asked for with its limit, `ctr task kill` ends it with the VM's
 * status (SIGTERM 0, SIGKILL 137), --rm leaves nothing, in the pool either. */
static void ctr_run_foreground(const char *id, bool pool)
{
	char cmd[4096], out[4096], clone[128] = "", r[PATH_MAX + 32];
	const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
	const char *sigs[] = {"SIGTERM", "SIGKILL"};
	const int want[] = {0, 137};

	snprintf(r, sizeof(r), "%s/cd/runc/default", dir);
	for (int i = 0; i < 2; i++) {
		struct vmproc *p;
		pid_t pid, vmm;

		if (pool)
			pool_stocked();
		snprintf(cmd, sizeof(cmd),
			 "exec " CTR_RUN "%s%s --rm --cgroup /default/%s --memory-limit 268435456 "
			 "thaw/probe:1 %s",
			 ctr, oci, dir, pool ? " --annotation org.thaw.pool=" : "",
			 pool ? pool_sock : "", id, id);
		p = harness_start(argv);
		if (vmproc_ask(p, "ping", "PROBE pong", TMO, NULL, 0)) {
			vmproc_dump(p, "ctr run");
			fail();
		}
		pid = vmm = task_pid(id);
		assert_true(pid > 0);
		if (pool) {
			assert_int_equal(pool_state(r, id, &vmm, clone, sizeof(clone)), pid);
			assert_true(vmm > 0 && vmm != pid);
		}
		/* the VMM is in the cgroup containerd asked for */
		assert_int_equal(sh(out, sizeof(out), "grep ':pids:' /proc/%d/cgroup", vmm), 0);
		snprintf(cmd, sizeof(cmd), ":pids:/default/%s\n", id);
		if (!strstr(out, cmd))
			fail_msg("the VMM's cgroup: %s", out);
		assert_int_equal(sh(out, sizeof(out),
				    "cat /sys/fs/cgroup/memory/default/%s/memory.limit_in_bytes",
				    id),
				 0);
		assert_string_equal(out, "268435456\n");
		assert_int_equal(sh(out, sizeof(out), "%s task kill -s %s %s", ctr, sigs[i], id),
				 0);
		assert_int_equal(vmproc_wait(p, TMO), want[i]);
		harness_end(p);
		cd_nothing_left(vmm);
		if (pool)
			pool_forgot(clone);
	}
}

/* ctr run in the foreground: the guest answers on the task's stdio, `ctr task kill`
 * ends it with the VMM's status, --rm leaves nothing. */
static void containerd_ctr_run_answers_and_exit_status_propagates(void **state)
{
	NEED_CONTAINERD();
	ctr_run_foreground("fg", false);
}

/* ctr run -d, pause/resume through the shim, kill, the exit status in task delete,
 * container delete: nothing left. */
static void containerd_detached_task_life_cycle(void **state)
{
	char out[4096];
	pid_t pid;

	skip_in_nested_host("ctr run -d with pause/resume");

	NEED_CONTAINERD();
	assert_int_equal(
	    sh(out, sizeof(out), CTR_RUN " -d --null-io thaw/probe:1 det", ctr, oci, dir), 0);
	pid = task_pid("det");
	assert_true(pid > 0);
	assert_int_equal(sh(out, sizeof(out), "%s task ls | grep '^det '", ctr), 0);
	assert_non_null(strstr(out, "RUNNING"));
	assert_int_equal(sh(out, sizeof(out), "%s task pause det && %s task ls", ctr, ctr), 0);
	assert_non_null(strstr(out, "PAUSED"));
	assert_int_equal(sh(out, sizeof(out), "%s task resume det && %s task ls", ctr, ctr), 0);
	assert_non_null(strstr(out, "RUNNING"));
	assert_int_equal(sh(out, sizeof(out), "%s task ps det", ctr), 0);
	{
		char want[32];

		snprintf(want, sizeof(want), "%d", (int)pid);
		assert_non_null(strstr(out, want));
	}
	cd_kill_delete("det", pid);
}

/* A snapshot with devices through containerd: `ctr run -d` of an image holding the
 * snapshot and its drive's base, with the device annotations, the pod's network
 * namespace (`--with-ns`), the run's arguments and an env variable: the tap is in the
 * pod's namespace tied to its eth0, the drive's overlay in the jail, the clone's MMDS
 * holds what ctr made of the image's Cmd, the run's args and env; kill and delete
 * through the shim leave no jail, tap or redirect. */
static void containerd_runs_a_snapshot_with_devices_in_a_pod_netns(void **state)
{
	char out[8192], sock[PATH_MAX + 64];
	json_object *o, *v;
	pid_t pid;

	skip_in_nested_host("ctr with a drive, a tap and vsock");

	NEED_CONTAINERD();
	pod_netns();
	if (sh(out, sizeof(out),
	       "%s run --snapshotter native --runc-binary %s --runc-root %s/cd/runc -d --null-io "
	       "--annotation org.thaw.snapshot=/net.snap --annotation org.thaw.drive.d0=/disk.raw "
	       "--with-ns network:/var/run/netns/" POD_NS " --env GREETING=hi thaw/dev:1 devc "
	       "/fn --port 8080",
	       ctr, oci, dir))
		fail_msg("ctr run: %s", out);
	pid = task_pid("devc");
	assert_true(pid > 0);
	assert_int_equal(sh(out, sizeof(out), "ip -n " POD_NS " -o link show | grep -c thaw-"), 0);
	assert_string_equal(out, "1\n");
	assert_int_equal(sh(out, sizeof(out), "tc -n " POD_NS " filter show dev eth0 ingress"), 0);
	assert_non_null(strstr(out, "mirred (Egress Redirect to device thaw-"));
	/* the jail: its API socket, the drive's overlay and base, the vsock socket */
	assert_int_equal(sh(out, sizeof(out), "find %s/cd/runc/default/jails -name api.sock", dir),
			 0);
	out[strcspn(out, "\n")] = '\0';
	snprintf(sock, sizeof(sock), "%.*s", (int)(sizeof(sock) - 1), out);
	assert_int_equal(sh(out, sizeof(out), "cd $(dirname %s) && ls", sock), 0);
	assert_non_null(strstr(out, "drive-d0.qcow2"));
	assert_non_null(strstr(out, "drive-d0.base"));
	assert_non_null(strstr(out, "vsock.sock"));
	/* what containerd made of the process reached the clone */
	v = mmds_oci(sock, &o);
	assert_string_equal(member(v, "args"), "[\"/fn\",\"--port\",\"8080\"]");
	assert_true(json_object_object_get_ex(v, "env", &v));
	assert_string_equal(member(v, "GREETING"), "\"hi\"");
	json_object_put(o);

	cd_kill_delete("devc", pid);
	pod_netns_clean_and_gone();
}

/* ctr run -d of container `id` (with `pool`, through the test's pool), then kill -9 of
 * its shim: containerd's own clean-up (the shim's `delete`, which runs `thaw-oci delete
 * --force`) plus ours end the VMM (and the keeper) and leave nothing, in the pool
 * either. */
static void ctr_shim_killed(const char *id, bool pool)
{
	char out[4096], clone[128] = "", r[PATH_MAX + 32], path[64];
	pid_t pid, vmm, shim;
	FILE *f;

	if (pool)
		pool_stocked();
	snprintf(r, sizeof(r), "%s/cd/runc/default", dir);
	assert_int_equal(sh(out, sizeof(out), CTR_RUN "%s%s -d --null-io thaw/probe:1 %s", ctr, oci,
			    dir, pool ? " --annotation org.thaw.pool=" : "", pool ? pool_sock : "",
			    id),
			 0);
	pid = vmm = task_pid(id);
	assert_true(pid > 0);
	if (pool)
		assert_int_equal(pool_state(r, id, &vmm, clone, sizeof(clone)), pid);
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_int_equal(fscanf(f, "%*d %*s %*c %d", &shim), 1);
	fclose(f);
	assert_int_equal(sh(out, sizeof(out), "ps -o comm= -p %d", (int)shim), 0);
	assert_non_null(strstr(out, "containerd-shim"));
	assert_int_equal(kill(shim, SIGKILL), 0);
	/* containerd notices the shim's end and cleans up through the runtime */
	for (int i = 0; i < 1000 && !gone(vmm); i++)
		usleep(10000);
	sh(out, sizeof(out), "%s task delete -f %s", ctr, id);
	assert_int_equal(sh(out, sizeof(out), "%s container delete %s", ctr, id), 0);
	assert_int_equal(sh(out, sizeof(out), "%s --root %s delete --force %s", oci, r, id), 0);
	wait_gone(pid);
	cd_nothing_left(vmm);
	if (pool)
		pool_forgot(clone);
}

/* kill -9 of the shim mid-run: nothing is left. */
static void containerd_shim_killed_cleanup_leaves_nothing(void **state)
{
	skip_in_nested_host("ctr with the shim killed");
	NEED_CONTAINERD();
	ctr_shim_killed("k9", false);
}

/* ---- podman ----------------------------------------------------------------------------- */

static int podman_setup(void)
{
	if (sh(NULL, 0, "command -v podman && command -v conmon") != 0) {
		fprintf(stderr,
			"SKIPPED (podman): podman or conmon is not installed (make deps)\n");
		return 0;
	}
	/* Its own storage, run and temporary directories. thaw-oci keeps its default root
	 * (/run/thaw-oci): podman 4.3 does not pass --runtime-flag on to the clean-up it
	 * runs when a container ends (`podman container cleanup`, conmon's exit command),
	 * whose `delete` would then look in the default root. */
	snprintf(podman, sizeof(podman),
		 "podman --root %s/pm/root --runroot %s/pm/run --tmpdir %s/pm/tmp "
		 "--storage-driver vfs --cgroup-manager cgroupfs --events-backend file "
		 "--runtime %s",
		 dir, dir, dir, oci);
	have_podman = true;
	return 0;
}

/* --rootfs takes the first argument after the options as the root file system */
#define PM_RUN(opts)                                                                               \
	"%s run --network none --annotation org.thaw.snapshot=/base.snap " opts " --rootfs %s /fn"

static void podman_nothing_left(pid_t pid)
{
	char r[PATH_MAX + 32], out[4096];

	snprintf(r, sizeof(r), "/run/thaw-oci");
	assert_nothing_left(r, "libpod_parent", pid);
	assert_int_equal(sh(out, sizeof(out), "%s ps -aq | grep .", podman), 1);
}

/* podman run -d with --memory and --pids-limit: the limits are the jail's cgroup's,
 * podman stop ends the VM (status 0), podman rm leaves nothing. */
static void podman_run_limits_in_jail_cgroup(void **state)
{
	char out[4096], id[128];
	pid_t pid;

	/* In the nested host's make test run 2 the VM lost its heartbeat for 60 s here
	 * (tests/kvmhost/README.md, E12), and podman's start alone is minutes under TCG. */
	skip_in_nested_host("podman with limits in the jail's cgroup");
	NEED_PODMAN();
	assert_int_equal(
	    sh(id, sizeof(id), PM_RUN("-d --memory 256m --pids-limit 50"), podman, rootfs), 0);
	id[strcspn(id, "\n")] = '\0';
	assert_int_equal(sh(out, sizeof(out), "%s inspect -f '{{.State.Pid}}' %s", podman, id), 0);
	pid = atoi(out);
	assert_true(pid > 0);
	assert_int_equal(sh(out, sizeof(out),
			    "p=$(sed -n 's/^[0-9]*:memory://p' /proc/%d/cgroup); "
			    "q=$(sed -n 's/^[0-9]*:pids://p' /proc/%d/cgroup); "
			    "cat /sys/fs/cgroup/memory$p/memory.limit_in_bytes "
			    "/sys/fs/cgroup/pids$q/pids.max",
			    (int)pid, (int)pid),
			 0);
	assert_string_equal(out, "268435456\n50\n");
	assert_int_equal(sh(out, sizeof(out), "%s ps --format '{{.Status}}' -f id=%s", podman, id),
			 0);
	assert_non_null(strstr(out, "Up"));
	assert_int_not_equal(sh(out, sizeof(out), "%s exec %s /bin/true", podman, id), 0);
	assert_int_equal(sh(out, sizeof(out), "%s stop -t 10 %s", podman, id), 0);
	assert_int_equal(sh(out, sizeof(out), "%s inspect -f '{{.State.ExitCode}}' %s", podman, id),
			 0);
	assert_string_equal(out, "0\n");
	assert_int_equal(sh(out, sizeof(out), "%s rm %s", podman, id), 0);
	podman_nothing_left(pid);
}

/* An attached `podman run` (name `name`, options `opts`) as argv[0..1] + the command:
 * the guest answers `ping`, podman kill ends it with 137 from podman run, nothing left. */
static void podman_attached(const char *opts, const char *name, const char *wrap0,
			    const char *wrap1, const char *wrap3)
{
	char cmd[8192], run[1024], out[4096];
	const char *argv[] = {wrap0, wrap1, cmd, wrap3, NULL};
	struct vmproc *p;
	pid_t pid;

	snprintf(run, sizeof(run), "%s --rm --name %s", opts, name);
	snprintf(cmd, sizeof(cmd),
		 "exec %s run --network none --annotation "
		 "org.thaw.snapshot=/base.snap %s --rootfs %s /fn",
		 podman, run, rootfs);
	p = harness_start(argv);
	if (vmproc_ask(p, "ping", "PROBE pong", TMO, NULL, 0)) {
		vmproc_dump(p, "podman run");
		fail();
	}
	assert_int_equal(sh(out, sizeof(out), "%s inspect -f '{{.State.Pid}}' %s", podman, name),
			 0);
	pid = atoi(out);
	assert_int_equal(sh(out, sizeof(out), "%s kill -s KILL %s", podman, name), 0);
	assert_int_equal(vmproc_wait(p, TMO), 137);
	harness_end(p);
	podman_nothing_left(pid);
}

/* podman run -i: the guest answers on the container's stdio. */
static void podman_run_interactive_answers(void **state)
{
	skip_in_nested_host("podman run -i");
	NEED_PODMAN();
	podman_attached("-i", "pmi", "/bin/sh", "-c", NULL);
}

/* podman run -it (under script(1) for a terminal): conmon's console socket gets the pty
 * master and the guest answers on the terminal. */
static void podman_run_terminal_through_conmon(void **state)
{
	skip_in_nested_host("podman run -it through conmon");
	NEED_PODMAN();
	podman_attached("-it", "pmt", "/usr/bin/script", "-qfec", "/dev/null");
}

/* kill -9 of conmon mid-run: podman rm -f and thaw-oci delete --force leave nothing. */
/* podman run -d (with `pool`, through the test's pool), kill -9 of conmon, then podman
 * rm -f and thaw-oci delete --force: the VMM (and the keeper) end, nothing is left, in
 * the pool either. */
static void podman_conmon_killed(bool pool)
{
	char out[4096], id[128], clone[128] = "";
	pid_t pid, vmm, conmon;

	if (pool)
		pool_stocked();
	assert_int_equal(
	    sh(id, sizeof(id),
	       "%s run --network none --annotation org.thaw.snapshot=/base.snap%s%s -d "
	       "--rootfs %s /fn",
	       podman, pool ? " --annotation org.thaw.pool=" : "", pool ? pool_sock : "", rootfs),
	    0);
	id[strcspn(id, "\n")] = '\0';
	assert_int_equal(sh(out, sizeof(out),
			    "%s inspect -f '{{.State.Pid}} {{.State.ConmonPid}}' %s", podman, id),
			 0);
	assert_int_equal(sscanf(out, "%d %d", &pid, &conmon), 2);
	vmm = pid;
	if (pool) {
		assert_int_equal(pool_state("/run/thaw-oci", id, &vmm, clone, sizeof(clone)), pid);
		assert_true(vmm > 0 && vmm != pid);
	}
	assert_int_equal(kill(conmon, SIGKILL), 0);
	wait_gone(conmon);
	sh(out, sizeof(out), "%s rm -f %s", podman, id);
	assert_int_equal(sh(out, sizeof(out), "%s delete --force %s", oci, id), 0);
	wait_gone(pid);
	podman_nothing_left(vmm);
	if (pool)
		pool_forgot(clone);
}

/* kill -9 of conmon mid-run: podman rm -f and thaw-oci delete --force leave nothing. */
static void podman_conmon_killed_cleanup_leaves_nothing(void **state)
{
	skip_in_nested_host("podman with conmon killed");
	NEED_PODMAN();
	podman_conmon_killed(false);
}

/* ---- a real CNI plugin in front of the tap ------------------------------------------------ */

#define CNI_NS "thaw-ocitest-cni"
#define CNI_BR "thawcni0"

/* Runs Debian's CNI `bridge` plugin (with `host-local` IPAM) as a CNI runtime does:
 * CNI_COMMAND `cmd` on the pod namespace CNI_NS's eth0, the network configuration on
 * stdin; out gets its result. The plugin's exit status. */
static int cni(const char *cmd, char *out, size_t len)
{
	return sh(out, len,
		  "echo '{\"cniVersion\": \"1.0.0\", \"name\": \"thawtest\", \"type\": \"bridge\", "
		  "\"bridge\": \"" CNI_BR "\", \"isGateway\": true, \"ipam\": {\"type\": "
		  "\"host-local\", \"subnet\": \"10.88.77.0/24\", \"routes\": [{\"dst\": "
		  "\"0.0.0.0/0\"}], \"dataDir\": \"%s/cni-ipam\"}}' | "
		  "CNI_COMMAND=%s CNI_CONTAINERID=thawcni CNI_NETNS=/var/run/netns/" CNI_NS
		  " CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni 2>/dev/null /usr/lib/cni/bridge",
		  dir, cmd);
}

/* The pod's network made by the CNI bridge plugin (a veth pair, its host end on a
 * bridge, an address from host-local), then `ctr run --with-ns network:<the pod's
 * namespace>` of the snapshot with an interface: the tap is tied to CNI's eth0, a frame
 * crosses between the CNI bridge on the host and the guest's virtio-net queues both
 * ways; kill and delete leave nothing of ours; CNI DEL releases the address. */
static void containerd_runs_a_snapshot_in_a_cni_bridge_network(void **state)
{
	char out[8192], addr[64] = "", hostveth[32] = "";
	const char *argv[] = {"/bin/sh", "-c", NULL, NULL};
	char cmd[4096];
	json_object *o, *a, *e, *v;
	struct vmproc *p;
	pid_t pid;

	skip_in_nested_host("ctr in a CNI bridge network");

	NEED_CONTAINERD();
	if (access("/usr/lib/cni/bridge", X_OK) || access("/usr/lib/cni/host-local", X_OK)) {
		fprintf(stderr, "SKIPPED: no CNI plugins in /usr/lib/cni (make deps)\n");
		skip();
	}
	/* The namespace and the bridge beforehand, IPv6 off (the plugin takes an existing
	 * bridge): no router solicitation or MLD frame reaches the guest's queue first. */
	if (sh(out, sizeof(out),
	       "ip netns add " CNI_NS " && ip netns exec " CNI_NS " sysctl -qw "
	       "net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 && "
	       "ip link add " CNI_BR " type bridge && sysctl -qw net.ipv6.conf." CNI_BR
	       ".disable_ipv6=1"))
		fail_msg("the pod's namespace and bridge: %s", out);
	if (cni("ADD", out, sizeof(out)))
		fail_msg("CNI ADD: %s", out);
	o = json_tokener_parse(out);
	assert_non_null(o);
	assert_true(json_object_object_get_ex(o, "ips", &a));
	e = json_object_array_get_idx(a, 0);
	assert_true(e && json_object_object_get_ex(e, "address", &v));
	snprintf(addr, sizeof(addr), "%s", json_object_get_string(v));
	assert_true(json_object_object_get_ex(o, "interfaces", &a));
	for (size_t i = 0; i < json_object_array_length(a); i++) {
		e = json_object_array_get_idx(a, i);
		if (!json_object_object_get_ex(e, "sandbox", &v) &&
		    json_object_object_get_ex(e, "name", &v) &&
		    strcmp(json_object_get_string(v), CNI_BR))
			snprintf(hostveth, sizeof(hostveth), "%s", json_object_get_string(v));
	}
	json_object_put(o);
	assert_true(!strncmp(addr, "10.88.77.", 9));
	assert_true(hostveth[0]);
	assert_int_equal(
	    sh(out, sizeof(out), "sysctl -qw net.ipv6.conf.%s.disable_ipv6=1", hostveth), 0);
	assert_int_equal(sh(out, sizeof(out), "ip -n " CNI_NS " -o addr show dev eth0"), 0);
	assert_non_null(strstr(out, addr));

	snprintf(
	    cmd, sizeof(cmd),
	    "exec %s run --rm --snapshotter native --runc-binary %s --runc-root %s/cd/runc "
	    "--annotation org.thaw.snapshot=/net.snap --annotation org.thaw.drive.d0=/disk.raw "
	    "--with-ns network:/var/run/netns/" CNI_NS " thaw/dev:1 cni1",
	    ctr, oci, dir);
	argv[2] = cmd;
	p = harness_start(argv);
	if (vmproc_ask(p, "ping", "PROBE pong", TMO, NULL, 0)) {
		vmproc_dump(p, "ctr run");
		fail();
	}
	pid = task_pid("cni1");
	assert_true(pid > 0);
	assert_int_equal(sh(out, sizeof(out), "tc -n " CNI_NS " filter show dev eth0 ingress"), 0);
	assert_non_null(strstr(out, "mirred (Egress Redirect to device thaw-"));
	/* the clone's MMDS holds what CNI gave the pod: its address, gateway and MAC */
	{
		char sock[PATH_MAX + 64], want[128], mac[32];

		assert_int_equal(
		    sh(out, sizeof(out), "find %s/cd/runc/default/jails -name api.sock", dir), 0);
		out[strcspn(out, "\n")] = '\0';
		snprintf(sock, sizeof(sock), "%.*s", (int)(sizeof(sock) - 1), out);
		assert_int_equal(sh(mac, sizeof(mac),
				    "ip netns exec " CNI_NS " cat /sys/class/net/eth0/address"),
				 0);
		v = mmds_oci(sock, &o);
		assert_true(json_object_object_get_ex(v, "net", &v));
		assert_true(json_object_object_get_ex(v, "eth0", &v));
		snprintf(want, sizeof(want), "[\"%s\"]", addr);
		assert_string_equal(member(v, "addresses"), want);
		assert_string_equal(member(v, "gateway"), "\"10.88.77.1\"");
		assert_string_equal(member(v, "link"), "\"eth0\"");
		snprintf(want, sizeof(want), "\"%.17s\"", mac);
		assert_string_equal(member(v, "mac"), want);
		json_object_put(o);
	}
	guest_frames_both_ways(p, CNI_BR);

	assert_int_equal(sh(out, sizeof(out), "%s task kill -s SIGKILL cni1", ctr), 0);
	assert_int_equal(vmproc_wait(p, TMO), 137);
	harness_end(p);
	cd_nothing_left(pid);
	assert_int_not_equal(sh(out, sizeof(out), "ip -n " CNI_NS " -o link show | grep thaw-"), 0);
	assert_int_not_equal(
	    sh(out, sizeof(out), "tc -n " CNI_NS " qdisc show dev eth0 | grep ingress"), 0);
	/* CNI DEL: the pair goes, host-local forgets the address */
	if (cni("DEL", out, sizeof(out)))
		fail_msg("CNI DEL: %s", out);
	assert_int_not_equal(sh(out, sizeof(out), "ip -o link show %s", hostveth), 0);
	assert_int_not_equal(sh(out, sizeof(out), "ls %s/cni-ipam/thawtest | grep '^10\\.'", dir),
			     0);
	assert_int_equal(sh(out, sizeof(out), "ip netns del " CNI_NS " && ip link del " CNI_BR), 0);
}

#define PM_BR "thawpm0"

/* podman run --network <a podman network> (netavark: a bridge, a veth pair, host-local
 * addresses) of the snapshot with an interface: the tap is tied to netavark's eth0 in
 * the pod's namespace, frames cross between netavark's bridge and the guest's queues
 * both ways, the clone's MMDS holds the address netavark gave; podman kill is 137 and
 * nothing is left of ours, nor the pod's veth. The network is written by hand into a
 * configuration directory of the test's (an internal bridge: no firewall rule), with
 * its bridge made beforehand, IPv6 off. */
static void podman_runs_a_snapshot_in_a_netavark_network(void **state)
{
	char cmd[8192], out[8192], pm[4096], ns[256], sock[PATH_MAX + 64], addr[64];
	const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
	json_object *o, *v;
	struct vmproc *p;
	pid_t pid;
	FILE *f;

	skip_in_nested_host("podman in a netavark network");

	NEED_PODMAN();
	if (sh(out, sizeof(out), "command -v netavark || test -x /usr/lib/podman/netavark")) {
		fprintf(stderr, "SKIPPED: no netavark (make deps)\n");
		skip();
	}
	snprintf(cmd, sizeof(cmd), "%s/pmnet", dir);
	mkdir(cmd, 0755);
	snprintf(cmd, sizeof(cmd), "%s/pmnet/thawnet.json", dir);
	f = fopen(cmd, "w");
	assert_non_null(f);
	fprintf(f, "{\"name\": \"thawnet\", \"id\": "
		   "\"7ba3c0ffee000000000000000000000000000000000000000000000000000001\", "
		   "\"driver\": \"bridge\", \"network_interface\": \"" PM_BR "\", "
		   "\"subnets\": [{\"subnet\": \"10.89.77.0/24\", \"gateway\": \"10.89.77.1\"}], "
		   "\"ipv6_enabled\": false, \"internal\": true, \"dns_enabled\": false, "
		   "\"ipam_options\": {\"driver\": \"host-local\"}}\n");
	fclose(f);
	assert_int_equal(sh(out, sizeof(out),
			    "ip link add " PM_BR " type bridge && sysctl -qw net.ipv6.conf." PM_BR
			    ".disable_ipv6=1 && ip link set " PM_BR " up"),
			 0);
	snprintf(pm, sizeof(pm), "%s --network-config-dir %s/pmnet", podman, dir);
	snprintf(cmd, sizeof(cmd),
		 "exec %s run -i --rm --name pmn --network thawnet --annotation "
		 "org.thaw.snapshot=/net.snap --annotation org.thaw.drive.d0=/disk.raw --rootfs %s "
		 "/fn",
		 pm, rootfs);
	p = harness_start(argv);
	if (vmproc_ask(p, "ping", "PROBE pong", TMO, NULL, 0)) {
		vmproc_dump(p, "podman run");
		fail();
	}
	assert_int_equal(sh(out, sizeof(out),
			    "%s inspect -f '{{.State.Pid}} {{.NetworkSettings.SandboxKey}} "
			    "{{.NetworkSettings.Networks.thawnet.IPAddress}}' pmn",
			    pm),
			 0);
	assert_int_equal(sscanf(out, "%d %255s %63s", &pid, ns, addr), 3);
	assert_true(!strncmp(addr, "10.89.77.", 9));
	assert_int_equal(sh(out, sizeof(out), "ip netns exec %s tc filter show dev eth0 ingress",
			    strrchr(ns, '/') + 1),
			 0);
	assert_non_null(strstr(out, "mirred (Egress Redirect to device thaw-"));
	/* netavark's address, in the clone's MMDS */
	if (sh(out, sizeof(out), "find /run/thaw-oci/jails -name api.sock | grep ."))
		fail_msg("no API socket under /run/thaw-oci/jails: %s", out);
	out[strcspn(out, "\n")] = '\0';
	/* podman's jail id is long: the socket's path passes sun_path, a link does not */
	snprintf(sock, sizeof(sock), "%s/pmn.sock", dir);
	assert_int_equal(symlink(out, sock), 0);
	v = mmds_oci(sock, &o);
	unlink(sock);
	assert_true(json_object_object_get_ex(v, "net", &v));
	assert_true(json_object_object_get_ex(v, "eth0", &v));
	snprintf(out, sizeof(out), "[\"%s/24\"]", addr);
	assert_string_equal(member(v, "addresses"), out);
	/* an internal network has no default route: no gateway to give */
	assert_string_equal(member(v, "gateway"), "");
	json_object_put(o);
	guest_frames_both_ways(p, PM_BR);

	assert_int_equal(sh(out, sizeof(out), "%s kill -s KILL pmn", pm), 0);
	assert_int_equal(vmproc_wait(p, TMO), 137);
	harness_end(p);
	podman_nothing_left(pid);
	/* podman's clean-up tore the pod's network down: no port left on the bridge */
	for (int i = 0;
	     i < 500 && !sh(out, sizeof(out), "ip -o link show master " PM_BR " | grep ."); i++)
		usleep(20000);
	if (!sh(out, sizeof(out), "ip -o link show master " PM_BR " | grep ."))
		fail_msg("a port left on %s: %s", PM_BR, out);
	/* netavark removes the bridge with its last container; ours if it did not */
	sh(out, sizeof(out), "ip link del " PM_BR " 2>/dev/null");
}

/* ---- prepared VMMs from a thaw-pool --------------------------------------------------- */

static int pool_setup(void)
{
	char cmd[4096], out[4096];

	if (!mkdtemp(pdir))
		return -1;
	chmod(pdir, 0755);
	snprintf(pool_sock, sizeof(pool_sock), "%s/pool.sock", pdir);
	snprintf(cmd, sizeof(cmd),
		 "exec %s/thaw-pool --state-dir %s/state --api-sock %s >%s/pool.log 2>&1",
		 harness_env("THAW_BUILD"), pdir, pool_sock, pdir);
	pool_pid = fork();
	if (pool_pid == 0) {
		setpgid(0, 0);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 1000 && access(pool_sock, F_OK); i++)
		usleep(10000);
	/* its own copy of the snapshot: the same snapshot as the image's and the rootfs' */
	if (sh(out, sizeof(out),
	       "cp %s/base.snap %s/pool.snap && curl -sf --unix-socket %s -X PUT "
	       "http://l/pools/probe -d '{\"snapshot_path\": \"%s/pool.snap\", \"prepared\": 2, "
	       "\"jail\": {\"uid\": 10000, \"gid\": 10001}}'",
	       rootfs, pdir, pool_sock, pdir)) {
		fprintf(stderr, "pool setup: %s\n", out);
		return -1;
	}
	return 0;
}

static json_object *pool_get(const char *path)
{
	char out[65536];

	if (sh(out, sizeof(out), "curl -sf --unix-socket %s http://l%s", pool_sock, path))
		return NULL;
	return json_tokener_parse(out);
}

/* Waits for the pool's stock to be full again (so the next create takes from it). */
static void pool_stocked(void)
{
	for (int i = 0; i < 3000; i++) {
		json_object *o = pool_get("/pools/probe"), *v;
		int n =
		    o && json_object_object_get_ex(o, "prepared", &v) ? json_object_get_int(v) : -1;

		json_object_put(o);
		if (n == 2)
			return;
		usleep(20000);
	}
	fail_msg("the pool did not refill its stock");
}

/* The clones the pool served from its stock so far. */
static int pool_hits(void)
{
	json_object *o = pool_get("/pools/probe"), *v;
	int n = o && json_object_object_get_ex(o, "hits", &v) ? json_object_get_int(v) : -1;

	json_object_put(o);
	return n;
}

/* The pool keeps no record of a clone of ours (delete forgot it), and clone `id`'s
 * jail and run directory are gone. */
static void pool_forgot(const char *clone)
{
	char out[4096];
	json_object *o = pool_get("/pools/probe/clones"), *a;

	assert_non_null(o);
	a = json_object_object_get_ex(o, "clones", &a) ? a : o;
	if (json_object_array_length(a))
		fail_msg("the pool still has clones: %s", json_object_to_json_string(o));
	json_object_put(o);
	if (clone && clone[0] &&
	    sh(out, sizeof(out), "ls -d %s/state/run/%s %s/state/jail/*/%s 2>/dev/null", pdir,
	       clone, pdir, clone) != 2)
		fail_msg("clone %s left: %s", clone, out);
}

/* From <root>/<id>/state.json: the keeper's and the VMM's pids and the pool's clone. */
static pid_t pool_state(const char *r, const char *id, pid_t *vmm, char *clone, size_t len)
{
	char path[PATH_MAX + 64];
	json_object *o, *v;
	pid_t keeper;

	snprintf(path, sizeof(path), "%s/%s/state.json", r, id);
	o = json_object_from_file(path);
	if (!o)
		return -1;
	keeper = json_object_object_get_ex(o, "pid", &v) ? json_object_get_int(v) : -1;
	*vmm = json_object_object_get_ex(o, "vmm_pid", &v) ? json_object_get_int(v) : -1;
	if (clone)
		snprintf(clone, len, "%s",
			 json_object_object_get_ex(o, "pool_clone", &v) ? json_object_get_string(v)
									: "");
	json_object_put(o);
	return keeper;
}

/* A bundle taking its VMM from the test's pool, with the cgroup and limits of
 * bundle_jailed. */
static void bundle_pooled(const char *name, const char *pool)
{
	char cfg[4096];

	snprintf(cfg, sizeof(cfg),
		 "{\"ociVersion\": \"1.0.2\", \"root\": {\"path\": \"rootfs\"}, \"process\": "
		 "{\"args\": [\"/fn\"], \"env\": [\"A=b\"]}, \"annotations\": "
		 "{\"org.thaw.snapshot\": \"/base.snap\", \"org.thaw.pool\": \"%s\"}, \"linux\": "
		 "{\"cgroupsPath\": \"/thaw-ocitest/%s\", \"resources\": {\"memory\": "
		 "{\"limit\": 268435456}, \"pids\": {\"limit\": 64}}}}",
		 pool, name);
	bundle(name, cfg);
}

/* create takes a prepared VMM from the pool: the pid file and state name the keeper
 * (create's child), the VMM and the keeper are in the bundle's cgroup with its limits,
 * the clone is paused until start, the guest answers through the keeper's stdio, the
 * MMDS holds the process, pause/resume act on the pool's VMM, kill ends both, and
 * delete leaves no state, cgroup, pool clone record, jail or socket. */
static void pool_create_start_kill_delete(void **state)
{
	char cmd[4096], out[8192], status[32], clone[128], want[64];
	const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
	struct vmproc *p;
	json_object *o, *v;
	pid_t keeper, vmm;

	pool_stocked();
	bundle_pooled("pl", pool_sock);
	snprintf(cmd, sizeof(cmd),
		 "%s --root %s --log %s/pl.log create --bundle %s/pl --pid-file %s/pl.pid pl "
		 "&& exec sleep 1000",
		 oci, root, dir, dir, dir);
	p = harness_start(argv);
	for (int i = 0; i < 1000 && state_pid(root, "pl", status, sizeof(status)) <= 0; i++)
		usleep(10000);
	keeper = pool_state(root, "pl", &vmm, clone, sizeof(clone));
	assert_true(keeper > 0 && vmm > 0 && keeper != vmm);
	assert_true(clone[0]);
	assert_int_equal(state_pid(root, "pl", status, sizeof(status)), keeper);
	assert_string_equal(status, "created");
	assert_int_equal(sh(out, sizeof(out), "cat %s/pl.pid", dir), 0);
	assert_int_equal(atoi(out), keeper);
	assert_int_equal(sh(out, sizeof(out), "grep -c 'prepared by pool' %s/pl.log", dir), 0);
	/* the keeper is ours (create's child, then the shell's), the VMM the pool's */
	assert_int_equal(sh(out, sizeof(out), "ps -o ppid= -p %d", (int)vmm), 0);
	assert_int_equal(atoi(out), pool_pid);
	/* both are in the bundle's cgroup, which has its limits */
	assert_int_equal(sh(out, sizeof(out),
			    "grep -h ':memory:' /proc/%d/cgroup /proc/%d/cgroup; cat "
			    "/sys/fs/cgroup/memory/thaw-ocitest/pl/memory.limit_in_bytes "
			    "/sys/fs/cgroup/pids/thaw-ocitest/pl/pids.max",
			    (int)vmm, (int)keeper),
			 0);
	snprintf(want, sizeof(want), "memory:/thaw-ocitest/pl\n");
	assert_non_null(strstr(out, want));
	assert_non_null(strstr(strstr(out, want) + 1, want));
	assert_non_null(strstr(out, "268435456\n64\n"));
	/* the clone is paused until start; its MMDS holds the process */
	snprintf(cmd, sizeof(cmd), "/clones/%s", clone);
	o = pool_get(cmd);
	assert_non_null(o);
	assert_true(json_object_object_get_ex(o, "api_sock", &v));
	{
		char api[PATH_MAX];
		json_object *st;

		snprintf(api, sizeof(api), "%s", json_object_get_string(v));
		st = mmds_oci(api, &v);
		assert_string_equal(member(st, "args"), "[\"/fn\"]");
		json_object_put(v);
		assert_int_equal(sh(out, sizeof(out), "curl -sf --unix-socket %s http://l/", api),
				 0);
		assert_non_null(strstr(out, "Paused"));
	}
	json_object_put(o);
	assert_int_equal(sh(out, sizeof(out), "%s --root %s start pl", oci, root), 0);
	assert_int_equal(vmproc_ask(p, "ping", "PROBE pong", TMO, NULL, 0), 0);
	assert_int_equal(sh(out, sizeof(out), "%s --root %s pause pl", oci, root), 0);
	state_pid(root, "pl", status, sizeof(status));
	assert_string_equal(status, "paused");
	assert_int_equal(sh(out, sizeof(out), "%s --root %s resume pl", oci, root), 0);
	assert_int_equal(vmproc_ask(p, "ping", "PROBE pong", TMO, NULL, 0), 0);
	assert_int_equal(sh(out, sizeof(out), "%s --root %s ps --format json pl", oci, root), 0);
	snprintf(want, sizeof(want), "[%d,%d]\n", (int)keeper, (int)vmm);
	assert_string_equal(out, want);
	/* SIGKILL to the VMM: the keeper dies of it too (the engine reads 137) */
	assert_int_equal(sh(out, sizeof(out), "%s --root %s kill pl KILL", oci, root), 0);
	wait_gone(vmm);
	wait_gone(keeper);
	state_pid(root, "pl", status, sizeof(status));
	assert_string_equal(status, "stopped");
	assert_int_equal(sh(out, sizeof(out), "%s --root %s delete pl", oci, root), 0);
	assert_nothing_left(root, "thaw-ocitest", vmm);
	pool_forgot(clone);
	harness_end(p);
}

/* `run` in the foreground through a pool's VMM: the keeper's exit status is the VM's
 * (SIGTERM 0, SIGKILL 137), and run's delete leaves nothing, in the pool either. */
static void pool_run_exit_status_propagates(void **state)
{
	char cmd[4096], out[4096], clone[128];
	const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
	const char *sigs[] = {"TERM", "KILL"};
	const int want[] = {0, 137};

	skip_in_nested_host("thaw-oci run through the pool");
	bundle_pooled("pr", pool_sock);
	for (int i = 0; i < 2; i++) {
		struct vmproc *p;
		pid_t keeper, vmm = -1;

		pool_stocked();
		snprintf(cmd, sizeof(cmd), "exec %s --root %s run --bundle %s/pr pr", oci, root,
			 dir);
		p = harness_start(argv);
		assert_int_equal(vmproc_ask(p, "ping", "PROBE pong", TMO, NULL, 0), 0);
		keeper = pool_state(root, "pr", &vmm, clone, sizeof(clone));
		assert_true(keeper > 0 && vmm > 0);
		/* kill's signal goes to the VMM, whose end the keeper reports */
		assert_int_equal(
		    sh(out, sizeof(out), "%s --root %s kill pr %s", oci, root, sigs[i]), 0);
		assert_int_equal(vmproc_wait(p, TMO), want[i]);
		harness_end(p);
		assert_nothing_left(root, "thaw-ocitest", vmm);
		pool_forgot(clone);
	}
}

/* No prepared VMM to take (no pool answers on the socket named, or the snapshot has a
 * drive): create starts its own VMM, and says why in the state and the log. */
static void pool_absent_falls_back_to_starting_the_vmm(void **state)
{
	char cmd[4096], out[8192], path[PATH_MAX + 64];
	const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
	struct vmproc *p;
	pid_t pid, vmm = -1;

	skip_in_nested_host("the pool fallback");
	bundle_pooled("pf", "/nonexistent/pool.sock");
	snprintf(cmd, sizeof(cmd), "exec %s --root %s --log %s/pf.log run --bundle %s/pf pf", oci,
		 root, dir, dir);
	p = harness_start(argv);
	assert_int_equal(vmproc_ask(p, "ping", "PROBE pong", TMO, NULL, 0), 0);
	pid = pool_state(root, "pf", &vmm, NULL, 0);
	assert_true(pid > 0);
	assert_int_equal(vmm, 0);
	snprintf(path, sizeof(path), "%s/pf/state.json", root);
	assert_int_equal(sh(out, sizeof(out), "cat %s", path), 0);
	assert_non_null(strstr(out, "\"pool_note\":\"the pool's socket /nonexistent/pool.sock"));
	assert_int_equal(sh(out, sizeof(out), "grep -c 'no prepared VMM' %s/pf.log", dir), 0);
	assert_int_equal(sh(out, sizeof(out), "ps -o comm= -p %d", (int)pid), 0);
	assert_non_null(strstr(out, "thaw"));
	assert_null(strstr(out, "thaw-oci"));
	assert_int_equal(sh(out, sizeof(out), "%s --root %s kill pf KILL", oci, root), 0);
	assert_int_equal(vmproc_wait(p, TMO), 137);
	harness_end(p);
	assert_nothing_left(root, "thaw-ocitest", pid);
}

/* ctr run through a pool's VMM: the guest answers on the task's stdio, the task's pid
 * is the keeper, the VMM is in the cgroup containerd asked for; ctr task kill ends it
 * with the VM's status; --rm leaves nothing, in the pool either. */
static void containerd_ctr_run_through_pool(void **state)
{
	skip_in_nested_host("ctr through the pool");
	NEED_CONTAINERD();
	ctr_run_foreground("pc", true);
}

/* kill -9 of the shim of a pool-backed task: containerd's clean-up and ours end the
 * keeper and the pool's VMM and leave nothing, in the pool either. */
static void containerd_pool_shim_killed_cleanup_leaves_nothing(void **state)
{
	skip_in_nested_host("ctr through the pool with the shim killed");
	NEED_CONTAINERD();
	ctr_shim_killed("pk9", true);
}

/* podman run -i through a pool's VMM: the guest answers, podman kill is 137 for podman
 * run, and nothing is left, in the pool either. */
static void podman_run_through_pool(void **state)
{
	char cmd[8192], out[4096], clone[128];
	const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
	struct vmproc *p;
	pid_t keeper, vmm = -1;

	skip_in_nested_host("podman through the pool");

	NEED_PODMAN();
	pool_stocked();
	snprintf(cmd, sizeof(cmd),
		 "exec %s run --network none --annotation org.thaw.snapshot=/base.snap "
		 "--annotation org.thaw.pool=%s -i --rm --name pmp --memory 256m --rootfs %s /fn",
		 podman, pool_sock, rootfs);
	p = harness_start(argv);
	if (vmproc_ask(p, "ping", "PROBE pong", TMO, NULL, 0)) {
		vmproc_dump(p, "podman run");
		fail();
	}
	assert_int_equal(sh(out, sizeof(out), "%s inspect -f '{{.State.Pid}} {{.Id}}' pmp", podman),
			 0);
	{
		char id[128];

		assert_int_equal(sscanf(out, "%d %127s", &keeper, id), 2);
		assert_int_equal(pool_state("/run/thaw-oci", id, &vmm, clone, sizeof(clone)),
				 keeper);
	}
	assert_true(vmm > 0);
	assert_int_equal(sh(out, sizeof(out),
			    "p=$(sed -n 's/^[0-9]*:memory://p' /proc/%d/cgroup); "
			    "cat /sys/fs/cgroup/memory$p/memory.limit_in_bytes",
			    (int)vmm),
			 0);
	assert_string_equal(out, "268435456\n");
	assert_int_equal(sh(out, sizeof(out), "%s kill -s KILL pmp", podman), 0);
	assert_int_equal(vmproc_wait(p, TMO), 137);
	harness_end(p);
	podman_nothing_left(vmm);
	pool_forgot(clone);
}

/* kill -9 of conmon of a pool-backed container: podman's clean-up and ours end the
 * keeper and the pool's VMM, nothing is left, in the pool either. */
static void podman_pool_conmon_killed_cleanup_leaves_nothing(void **state)
{
	skip_in_nested_host("podman through the pool with conmon killed");
	NEED_PODMAN();
	podman_conmon_killed(true);
}

/* podman run -it through a pool's VMM: the keeper's stdio is the pty whose master went
 * to conmon's console socket, and the guest answers on the terminal; nothing is left,
 * in the pool either. */
static void podman_run_terminal_through_pool(void **state)
{
	char opts[512];
	int hits;

	skip_in_nested_host("podman -it through the pool");

	NEED_PODMAN();
	pool_stocked();
	hits = pool_hits();
	snprintf(opts, sizeof(opts), "-it --annotation org.thaw.pool=%s", pool_sock);
	podman_attached(opts, "pmpt", "/usr/bin/script", "-qfec", "/dev/null");
	assert_int_equal(pool_hits(), hits + 1); /* the container's VMM was the pool's */
	pool_forgot(NULL);
}

/* ---- set-up ----------------------------------------------------------------------------- */

static int setup(void **state)
{
	char path[PATH_MAX + 32];

	if (!mkdtemp(dir))
		return -1;
	chmod(dir, 0755);
	snprintf(oci, sizeof(oci), "%s/thaw-oci", harness_env("THAW_BUILD"));
	snprintf(root, sizeof(root), "%s/oci", dir);
	snprintf(rootfs, sizeof(rootfs), "%s/rootfs", dir);
	mkdir(rootfs, 0755);
	snprintf(path, sizeof(path), "%s/base.snap", rootfs);
	if (harness_probe_snapshot(path, 64, NULL))
		return -1;
	/* snapshots with devices: a drive; a drive, an interface and vsock (its tap made
	 * by thaw for the snapshot's run, gone with it) */
	{
		char disk[PATH_MAX + 32], drive[PATH_MAX + 64], vsock[PATH_MAX + 64];
		const char *one[] = {"--drive", drive, NULL};
		const char *three[] = {"--drive", drive, "--net", "id=eth0,tap=thawocisnap0",
				       "--vsock", vsock, NULL};

		snprintf(disk, sizeof(disk), "%s/disk.raw", rootfs);
		int fd = open(disk, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);

		if (fd < 0 || ftruncate(fd, 4 << 20)) /* 4 MiB of zeros: the drive's base */
			return -1;
		close(fd);
		snprintf(drive, sizeof(drive), "id=d0,path=%s,ro=off", disk);
		snprintf(vsock, sizeof(vsock), "cid=3,uds=%s/snap.vsock", dir);
		snprintf(path, sizeof(path), "%s/drive.snap", rootfs);
		if (harness_probe_snapshot(path, 64, one))
			return -1;
		snprintf(path, sizeof(path), "%s/net.snap", rootfs);
		if (harness_probe_snapshot(path, 64, three))
			return -1;
	}
	if (containerd_setup() || podman_setup() || pool_setup())
		return -1;
	return 0;
}

/* Whatever a failed test left in the roots of thaw-oci, containerd and podman. */
static int test_end(void **state)
{
	char out[4096];

	if (used_podman)
		sh(out, sizeof(out),
		   "%s rm -af -t 0; test -d %s/pmnet && %s --network-config-dir %s/pmnet rm -af -t "
		   "0",
		   podman, dir, podman, dir);
	if (used_containerd)
		sh(out, sizeof(out),
		   "for t in $(%s task ls -q); do %s task kill -s SIGKILL $t; sleep 0.2; "
		   "%s task delete -f $t; done; for c in $(%s containers ls -q); do "
		   "%s container delete $c; done",
		   ctr, ctr, ctr, ctr, ctr);
	sh(out, sizeof(out),
	   "for r in %s/oci %s/cd/runc/default /run/thaw-oci; do for c in $(ls $r 2>/dev/null); do "
	   "[ $c = jails ] || %s --root $r delete --force $c; done; done",
	   dir, dir, oci);
	/* the pod namespace of the device tests (its veth pair goes with it) */
	sh(out, sizeof(out), "ip netns del " POD_NS " 2>/dev/null");
	/* the CNI test's network: DEL as its runtime would, then namespace and bridge */
	if (!access("/var/run/netns/" CNI_NS, F_OK))
		cni("DEL", out, sizeof(out));
	sh(out, sizeof(out), "ip netns del " CNI_NS "; ip link del " CNI_BR "; true");
	sh(out, sizeof(out), "ip link del " PM_BR " 2>/dev/null");
	used_containerd = used_podman = false;
	return 0;
}

static int teardown(void **state)
{
	char out[4096];

	/* what a failed test left: containers of every engine, then the engines */
	used_containerd = have_containerd;
	used_podman = have_podman;
	test_end(state);
	if (have_containerd) {
		kill(-containerd_pid, SIGTERM);
		waitpid(containerd_pid, NULL, 0);
	}
	if (pool_pid > 0) {
		kill(-pool_pid, SIGTERM);
		waitpid(pool_pid, NULL, 0);
		sh(out, sizeof(out), "%s/thaw-pool --cleanup --state-dir %s/state; rm -rf %s",
		   harness_env("THAW_BUILD"), pdir, pdir);
	}
	sh(out, sizeof(out),
	   "grep -o ' %s/[^ ]*' /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l; rm -rf %s",
	   dir, dir);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(lifecycle_create_start_kill_delete, test_end),
	    cmocka_unit_test_teardown(run_propagates_exit_status, test_end),
	    cmocka_unit_test_teardown(terminal_pty_goes_to_console_socket, test_end),
	    cmocka_unit_test_teardown(network_namespace_path_is_the_vmms, test_end),
	    cmocka_unit_test_teardown(bad_bundles_fail_create_and_leave_nothing, test_end),
	    cmocka_unit_test_teardown(drives_get_an_overlay_per_container_removed_at_delete,
				      test_end),
	    cmocka_unit_test_teardown(tap_in_pod_netns_carries_frames_both_ways, test_end),
	    cmocka_unit_test_teardown(containerd_ctr_run_answers_and_exit_status_propagates,
				      test_end),
	    cmocka_unit_test_teardown(containerd_detached_task_life_cycle, test_end),
	    cmocka_unit_test_teardown(containerd_shim_killed_cleanup_leaves_nothing, test_end),
	    cmocka_unit_test_teardown(containerd_runs_a_snapshot_with_devices_in_a_pod_netns,
				      test_end),
	    cmocka_unit_test_teardown(podman_run_limits_in_jail_cgroup, test_end),
	    cmocka_unit_test_teardown(podman_run_interactive_answers, test_end),
	    cmocka_unit_test_teardown(podman_run_terminal_through_conmon, test_end),
	    cmocka_unit_test_teardown(podman_conmon_killed_cleanup_leaves_nothing, test_end),
	    cmocka_unit_test_teardown(containerd_runs_a_snapshot_in_a_cni_bridge_network, test_end),
	    cmocka_unit_test_teardown(podman_runs_a_snapshot_in_a_netavark_network, test_end),
	    cmocka_unit_test_teardown(pool_create_start_kill_delete, test_end),
	    cmocka_unit_test_teardown(pool_run_exit_status_propagates, test_end),
	    cmocka_unit_test_teardown(pool_absent_falls_back_to_starting_the_vmm, test_end),
	    cmocka_unit_test_teardown(containerd_ctr_run_through_pool, test_end),
	    cmocka_unit_test_teardown(containerd_pool_shim_killed_cleanup_leaves_nothing, test_end),
	    cmocka_unit_test_teardown(podman_run_through_pool, test_end),
	    cmocka_unit_test_teardown(podman_run_terminal_through_pool, test_end),
	    cmocka_unit_test_teardown(podman_pool_conmon_killed_cleanup_leaves_nothing, test_end),
	};

	if (getuid() != 0) {
		fprintf(stderr, "SKIPPED: thaw-oci's tests need root (jails, cgroups, engines)\n");
		return 0;
	}
	if (!harness_have_kvm())
		return 0;
	return cmocka_run_group_tests_name("oci", tests, setup, teardown);
}
