/* The Linux guest, booted once per run and then restored from its snapshot for each
 * test (on PVM a Linux boot takes over a minute; a restore milliseconds). Its agent
 * lives in the kernel (guest/linux/AGENT.md) and answers on the serial console. The
 * snapshot is taken with every device in use: disk, RNG, vsock, and a network
 * interface that has exchanged datagrams with the host over a tap (in a private
 * network namespace, where the whole program runs). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/integration/harness.h"

#define BOOT_TMO 600000 /* 2 vCPUs on a loaded PVM host took over 300 s */
#define TMO	 120000 /* guest kernel work on a loaded PVM host: a 1 MiB fill took over 60 s */
/* clocksource=tsc: the guest keeps time by its TSC, as Linux does by itself on hardware
 * with an invariant TSC (and on PVM); under the nested host it would pick kvmclock, and
 * the TSC half of --clock-realtime would go untested. */
#define CMDLINE "console=ttyS0 thaw_agent.hold_init=1 quiet clocksource=tsc tsc=reliable"

static char dir[] = "/tmp/thaw-linuxtest-XXXXXX";
static char snap[128], disk[128], vsock[100];
static char boot_ping[256], boot_fill[256]; /* what the booted guest answered */
static char boot_genid[256], boot_random[2][256];
static long long boot_ms;
static long boot_requests; /* the agent's request counter when the snapshot was taken */
static bool have_netns;	   /* the program runs in a network namespace of its own */
static long long boot_clock_ms, boot_clock_slack_ms; /* the booted guest's wall clock
						      * against the host's */

#define HOST_IP	 "172.16.0.1"
#define GUEST_IP "172.16.0.2"

/* Gives tap `name` (created by thaw) the host's address and a fixed MAC, so the guest's
 * ARP entry for the host stays right across restores onto other taps. */
static int host_tap_up(const char *name)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd),
		 "ip link set %s address 06:00:ac:10:00:01 && ip addr add " HOST_IP
		 "/24 dev %s && ip link set %s up",
		 name, name, name);
	return system(cmd) == 0 ? 0 : -1;
}

static int ask(struct vmproc *p, const char *req, const char *prefix, char *ans, size_t len)
{
	int ret = vmproc_ask(p, req, prefix, TMO, ans, len);

	if (ret)
		vmproc_dump(p, req);
	return ret;
}

/* The guest's CLOCK_REALTIME (agent `time`) against the host's: the guest read its clock
 * between the host's readings just before the request and just after the answer, so its
 * offset is taken against their midpoint, into `off` (ms, negative: behind), give or take
 * half that window, into `slack` (ms). The agent's counter moves by 3. */
static int guest_clock_offset_ms(struct vmproc *p, long long *off, long long *slack)
{
	struct timespec a, b;
	unsigned long long g;
	long long before, after;
	char ans[128];

	/* the narrowest of three windows: on a loaded host one round trip can take 800 ms */
	*slack = -1;
	for (int k = 0; k < 3; k++) {
		clock_gettime(CLOCK_REALTIME, &a);
		if (ask(p, "time", "THAW_AGENT", ans, sizeof(ans)))
			return -1;
		clock_gettime(CLOCK_REALTIME, &b);
		if (sscanf(ans, "time realtime_ns=%llu", &g) != 1)
			return -1;
		before = a.tv_sec * 1000000000ll + a.tv_nsec;
		after = b.tv_sec * 1000000000ll + b.tv_nsec;
		if (*slack < 0 || (after - before) / 2000000 + 1 < *slack) {
			*off = ((long long)g - before / 2 - after / 2) / 1000000;
			*slack = (after - before) / 2000000 + 1;
		}
	}
	return 0;
}

/* Boots once with a disk, an RNG, vsock and (with a network namespace) a network
 * interface, warms the guest up, snapshots it. */
static int group_setup(void **state)
{
	char spec[300], vs[300];
	const char *argv[] = {harness_env("THAW_BIN"),
			      "--kernel",
			      harness_env("THAW_KERNEL"),
			      "--cmdline",
			      CMDLINE,
			      "--vcpus",
			      "2",
			      "--mem-mib",
			      "192",
			      "--drive",
			      spec,
			      "--rng",
			      "--vsock",
			      vs,
			      "--snapshot",
			      snap,
			      "--snapshot-then",
			      "exit",
			      have_netns ? "--net" : NULL,
			      "id=eth0,tap=thawsnap0,mac=06:00:ac:10:00:02",
			      NULL};
	char ans[256];
	struct vmproc *p;
	long long t0;
	int fd;

	if (!mkdtemp(dir))
		return -1;
	snprintf(snap, sizeof(snap), "%s/linux.snap", dir);
	snprintf(disk, sizeof(disk), "%s/disk.img", dir);
	snprintf(vsock, sizeof(vsock), "%s/v.sock", dir);
	snprintf(spec, sizeof(spec), "id=d0,path=%s,ro=off", disk);
	snprintf(vs, sizeof(vs), "cid=3,uds=%s", vsock);
	fd = open(disk, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || ftruncate(fd, 4 << 20) < 0)
		return -1;
	for (int s = 0; s < 64; s++) {
		char sector[512];

		memset(sector, 'a' + s % 26, sizeof(sector));
		if (pwrite(fd, sector, 512, s * 512) != 512)
			return -1;
	}
	close(fd);

	t0 = harness_ms();
	p = harness_start(argv);
	if (vmproc_expect(p, "THAW_GUEST_READY", BOOT_TMO, NULL, 0)) {
		vmproc_dump(p, "Linux did not become ready");
		return -1;
	}
	boot_ms = harness_ms() - t0;
	if (ask(p, "ping", "THAW_AGENT", boot_ping, sizeof(boot_ping)) ||
	    /* 1 MiB: filling guest memory runs guest kernel code, which PVM emulates; one
	     * PVM host (2026-12-07) took 14 s per MiB, and 8 MiB missed the timeout */
	    ask(p, "mem fill 1 7", "THAW_AGENT mem fill", boot_fill, sizeof(boot_fill)) ||
	    ask(p, "genid", "THAW_AGENT", boot_genid, sizeof(boot_genid)) ||
	    ask(p, "random", "THAW_AGENT", boot_random[0], sizeof(boot_random[0])) ||
	    ask(p, "random", "THAW_AGENT", boot_random[1], sizeof(boot_random[1])))
		return -1;
	if (have_netns &&
	    (host_tap_up("thawsnap0") ||
	     ask(p, "net up eth0 " GUEST_IP "/24", "THAW_AGENT net up", ans, sizeof(ans)) ||
	     ask(p, "net bind 7000", "THAW_AGENT net bound", ans, sizeof(ans)) ||
	     harness_udp_both_ways(p, HOST_IP, GUEST_IP, TMO)))
		return -1;
	if (guest_clock_offset_ms(p, &boot_clock_ms, &boot_clock_slack_ms))
		return -1;
	/* the last request before the snapshot: the restored counter goes on from here */
	if (ask(p, "count", "THAW_AGENT count", ans, sizeof(ans)) || !strstr(ans, "requests="))
		return -1;
	boot_requests = strtol(strstr(ans, "requests=") + 9, NULL, 10);
	kill(p->pid, SIGUSR1);
	if (vmproc_wait(p, TMO) != 0) {
		vmproc_dump(p, "snapshot of the Linux guest");
		return -1;
	}
	harness_end(p);
	fprintf(stderr, "linux: booted to THAW_GUEST_READY in %lld ms, snapshot taken\n", boot_ms);
	return 0;
}

static int group_teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd);
}

static struct vmproc *restore(void)
{
	/* The snapshot's own disk, socket and tap: they are this test's, in its directory. */
	const char *argv[] = {harness_env("THAW_BIN"), "--restore", snap,
			      "--snapshot-paths",      dir,	    NULL};

	return harness_start(argv);
}

static void linux_boots_to_ready_and_its_agent_answers(void **state)
{
	assert_string_equal(boot_ping, "pong");
	assert_non_null(strstr(boot_fill, "crc32="));
}

static void restored_linux_answers_and_kept_its_memory(void **state)
{
	char ans[256], want[64];
	struct vmproc *p = restore();

	assert_int_equal(ask(p, "ping", "THAW_AGENT", ans, sizeof(ans)), 0);
	assert_string_equal(ans, "pong");
	assert_int_equal(ask(p, "mem check", "THAW_AGENT mem check", ans, sizeof(ans)), 0);
	snprintf(want, sizeof(want), "%s", strstr(boot_fill, "crc32="));
	assert_non_null(strstr(ans, want));
	/* the request counter went on from where the snapshot left it: ping, mem check
	 * and this count since */
	assert_int_equal(ask(p, "count", "THAW_AGENT count", ans, sizeof(ans)), 0);
	snprintf(want, sizeof(want), "requests=%ld", boot_requests + 3);
	assert_non_null(strstr(ans, want));
	harness_end(p);
}

static void restored_linux_reads_and_writes_its_disk(void **state)
{
	char ans[256], sector[512];
	struct vmproc *p = restore();
	int fd;

	/* host-written data is read back */
	assert_int_equal(ask(p, "blk read 3 1", "THAW_AGENT blk read", ans, sizeof(ans)), 0);
	assert_non_null(strstr(ans, "head=64646464")); /* 'd' */
	/* guest-written, flushed data is in the host file */
	assert_int_equal(
	    ask(p, "blk write 100 RESTORED 1", "THAW_AGENT blk write", ans, sizeof(ans)), 0);
	assert_non_null(strstr(ans, "flushed"));
	fd = open(disk, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, sector, 512, 100 * 512), 512);
	close(fd);
	assert_memory_equal(sector, "RESTOREDRESTORED", 16);
	harness_end(p);
}

static void restored_linux_reads_the_rng(void **state)
{
	char ans[1024];
	struct vmproc *p = restore();

	assert_int_equal(ask(p, "rng 16", "THAW_AGENT rng", ans, sizeof(ans)), 0);
	assert_non_null(strstr(ans, "bytes=16"));
	harness_end(p);
}

/* Host-initiated vsock to the restored guest: CONNECT, OK, then bytes echo. */
static void restored_linux_talks_vsock(void **state)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char ans[256], buf[256];
	struct vmproc *p = restore();
	size_t got = 0;
	int fd;

	assert_int_equal(ask(p, "vsock listen 5000", "THAW_AGENT vsock", ans, sizeof(ans)), 0);
	memcpy(sa.sun_path, vsock, strlen(vsock) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(write(fd, "CONNECT 5000\n", 13), 13);
	while (got < sizeof(buf) - 1 && !memchr(buf, '\n', got)) {
		struct pollfd pfd = {fd, POLLIN, 0};
		ssize_t n;

		assert_true(poll(&pfd, 1, TMO) == 1);
		n = read(fd, buf + got, sizeof(buf) - 1 - got);
		assert_true(n > 0);
		got += (size_t)n;
	}
	buf[got] = 0;
	assert_memory_equal(buf, "OK ", 3);
	assert_int_equal(write(fd, "hello thaw\n", 11), 11);
	got = 0;
	while (got < 11) {
		struct pollfd pfd = {fd, POLLIN, 0};
		ssize_t n;

		assert_true(poll(&pfd, 1, TMO) == 1);
		n = read(fd, buf + got, sizeof(buf) - got);
		assert_true(n > 0);
		got += (size_t)n;
	}
	assert_memory_equal(buf, "hello thaw\n", 11);
	close(fd);
	harness_end(p);
}

/* A thaw waiting on an API socket `name` in the test directory (path into `sock`). */
static struct vmproc *api_thaw(const char *name, char *sock, size_t len)
{
	const char *argv[] = {harness_env("THAW_BIN"), "--api-sock", sock, NULL};
	struct vmproc *p;

	snprintf(sock, len, "%s/%s", dir, name);
	unlink(sock);
	p = harness_start(argv);
	assert_int_equal(harness_wait_socket(sock), 0);
	return p;
}

/* Restored through the API onto another tap (Firecracker's network_overrides), the
 * guest's interface, address and bound socket work as they did before the snapshot. */
static void restored_linux_has_network_on_an_overridden_tap(void **state)
{
	char sock[160], json[600], body[512];
	struct vmproc *p;
	int st;

	if (!have_netns) {
		print_message("SKIPPED: no network namespace of our own (needs root)\n");
		skip();
	}
	p = api_thaw("api.sock", sock, sizeof(sock));
	snprintf(json, sizeof(json),
		 "{\"snapshot_path\": \"%s\", \"resume_vm\": true, \"network_overrides\": "
		 "[{\"iface_id\": \"eth0\", \"host_dev_name\": \"thawrest0\"}], "
		 "\"snapshot_paths\": \"%s\"}",
		 snap, dir);
	st = harness_http(sock, "PUT", "/snapshot/load", json, body, sizeof(body));
	if (st != 204) {
		vmproc_dump(p, "snapshot load");
		fail_msg("PUT /snapshot/load: %d %s", st, body);
	}
	/* thaw opened the overriding tap, not the one the snapshot names */
	assert_int_equal(system("ip link show thawrest0 >/dev/null"), 0);
	assert_int_not_equal(system("ip link show thawsnap0 >/dev/null 2>&1"), 0);
	assert_int_equal(host_tap_up("thawrest0"), 0);
	if (harness_udp_both_ways(p, HOST_IP, GUEST_IP, TMO))
		fail();
	harness_end(p);
}

/* The command line's equivalent of the API's overrides: --drive, --net and --vsock
 * after --restore give the snapshot's devices new host backends. */
static void restore_takes_new_backends_on_the_command_line(void **state)
{
	char disk2[200], dspec[300], vs2[200], vspec[220], ans[512], cmd[500];
	const char *argv[] = {harness_env("THAW_BIN"),
			      "--restore",
			      snap,
			      "--drive",
			      dspec,
			      "--vsock",
			      vspec,
			      have_netns ? "--net" : NULL,
			      "id=eth0,tap=thawcli0",
			      NULL};
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct vmproc *p;
	int fd;

	snprintf(disk2, sizeof(disk2), "%s/disk2.img", dir);
	snprintf(cmd, sizeof(cmd), "cp %s %s", disk, disk2);
	assert_int_equal(system(cmd), 0);
	fd = open(disk2, O_WRONLY);
	assert_true(fd >= 0);
	memset(ans, 'Z', 512);
	assert_int_equal(pwrite(fd, ans, 512, 5 * 512), 512);
	close(fd);
	snprintf(dspec, sizeof(dspec), "id=d0,path=%s", disk2);
	snprintf(vs2, sizeof(vs2), "%s/v2.sock", dir);
	snprintf(vspec, sizeof(vspec), "uds=%s", vs2);

	p = harness_start(argv);
	/* the disk is the copy: its sector 5 is 'Z', the original's is 'f' */
	assert_int_equal(ask(p, "blk read 5 1", "THAW_AGENT blk read", ans, sizeof(ans)), 0);
	assert_non_null(strstr(ans, "head=5a5a5a5a"));
	/* vsock listens at the new path */
	assert_int_equal(ask(p, "vsock listen 5001", "THAW_AGENT vsock", ans, sizeof(ans)), 0);
	memcpy(sa.sun_path, vs2, strlen(vs2) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	/* the network runs over the new tap */
	if (have_netns) {
		assert_int_equal(system("ip link show thawcli0 >/dev/null"), 0);
		assert_int_equal(host_tap_up("thawcli0"), 0);
		if (harness_udp_both_ways(p, HOST_IP, GUEST_IP, TMO))
			fail();
	}
	harness_end(p);
}

static int api_ok(const char *sock, const char *method, const char *path, const char *json)
{
	char body[1024];
	int st = harness_http(sock, method, path, json, body, sizeof(body));

	if (st != 204)
		print_message("%s %s %s: %d %s\n", method, path, json ? json : "", st, body);
	return st;
}

/* Firecracker's clone sequence: load paused, point the drive at the clone's own file
 * (PATCH /drives), resume. The guest sees the media change (its new size and data),
 * and a bandwidth limit set the same way holds its reads back; a file that does not
 * open is refused and the drive keeps the one it has. */
static void patch_drive_swaps_the_disk_and_its_rate_limit_holds_reads_back(void **state)
{
	char sock[160], json[700], body[1024], ans[256], other[200];
	long long t0, unlimited, limited;
	struct vmproc *p;
	int fd, k;

	snprintf(other, sizeof(other), "%s/clone-disk.img", dir);
	fd = open(other, O_RDWR | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 8 << 20), 0);
	memset(body, 'Z', 512);
	assert_int_equal(pwrite(fd, body, 512, 3 * 512), 512);
	close(fd);

	p = api_thaw("api3.sock", sock, sizeof(sock));
	snprintf(json, sizeof(json),
		 "{\"snapshot_path\": \"%s\", \"resume_vm\": false, \"snapshot_paths\": \"%s\"}",
		 snap, dir);
	assert_int_equal(api_ok(sock, "PUT", "/snapshot/load", json), 204);
	snprintf(json, sizeof(json), "{\"drive_id\": \"d0\", \"path_on_host\": \"%s\"}", other);
	assert_int_equal(api_ok(sock, "PATCH", "/drives/d0", json), 204);
	assert_int_equal(api_ok(sock, "PATCH", "/vm", "{\"state\": \"Resumed\"}"), 204);

	/* The guest's driver takes the new capacity from its configuration interrupt (a
	 * work item: ask until it shows, within the agent's own timeout per request). */
	for (k = 0; k < 20; k++) {
		assert_int_equal(ask(p, "blk info", "THAW_AGENT blk info", ans, sizeof(ans)), 0);
		if (strstr(ans, "sectors=16384"))
			break;
		usleep(200 * 1000);
	}
	if (k == 20)
		fail_msg("the guest never saw the 8 MiB disk: %s", ans);
	assert_int_equal(ask(p, "blk read 3 1", "THAW_AGENT blk read", ans, sizeof(ans)), 0);
	assert_non_null(strstr(ans, "head=5a5a5a5a")); /* 'Z' */

	/* Four one-sector reads at full speed, then under one request per 2 s (the bucket
	 * starts full: three waits). Small reads, because the guest's agent checksums what
	 * it reads in kernel code, which PVM emulates slowly; the bandwidth bucket's rate is
	 * measured by bench/ (the ratelimit group). */
	t0 = harness_ms();
	for (k = 0; k < 4; k++) {
		snprintf(json, sizeof(json), "blk read %d 1", 100 + k);
		assert_int_equal(ask(p, json, "THAW_AGENT blk read", ans, sizeof(ans)), 0);
	}
	unlimited = harness_ms() - t0;
	assert_int_equal(api_ok(sock, "PATCH", "/drives/d0",
				"{\"drive_id\": \"d0\", \"rate_limiter\": {\"ops\": {\"size\": 1, "
				"\"refill_time\": 2000}}}"),
			 204);
	t0 = harness_ms();
	for (k = 0; k < 4; k++) {
		snprintf(json, sizeof(json), "blk read %d 1", 200 + k);
		assert_int_equal(ask(p, json, "THAW_AGENT blk read", ans, sizeof(ans)), 0);
	}
	limited = harness_ms() - t0;
	print_message("4 one-sector reads: %lld ms unlimited, %lld ms at one per 2 s\n", unlimited,
		      limited);
	/* A lower bound only: a limit can make I/O slower, never faster. */
	assert_true(limited >= 5500);

	/* A file that does not open: refused, and the guest still reads the clone's disk. */
	snprintf(json, sizeof(json), "{\"drive_id\": \"d0\", \"path_on_host\": \"%s/none.img\"}",
		 dir);
	assert_int_equal(harness_http(sock, "PATCH", "/drives/d0", json, body, sizeof(body)), 400);
	assert_non_null(strstr(body, "none.img"));
	assert_int_equal(harness_http(sock, "PATCH", "/drives/nope", "{\"drive_id\": \"nope\"}",
				      body, sizeof(body)),
			 400);
	assert_non_null(strstr(body, "no such device"));
	assert_int_equal(ask(p, "blk read 3 1", "THAW_AGENT blk read", ans, sizeof(ans)), 0);
	assert_non_null(strstr(ans, "head=5a5a5a5a"));
	harness_end(p);
}

/* The agent's `http` to MMDS: the status, and the body into `body`. */
static int mmds_http(struct vmproc *p, const char *args, char *body, size_t cap)
{
	char req[400], ans[1200];
	const char *b;
	int status = -1;

	snprintf(req, sizeof(req), "http 169.254.169.254 %s", args);
	if (ask(p, req, "THAW_AGENT http", ans, sizeof(ans)) ||
	    sscanf(ans, "status=%d", &status) != 1 || !(b = strstr(ans, " body=")))
		fail_msg("%s: answered '%s'", req, ans);
	snprintf(body, cap, "%s", b + 6);
	return status;
}

/* A V2 session token, then GET `path` with it: the status, the body into `body`. */
static int mmds_get_v2(struct vmproc *p, const char *path, char *body, size_t cap)
{
	char token[200], args[400];

	assert_int_equal(mmds_http(p, "PUT /latest/api/token X-metadata-token-ttl-seconds:300",
				   token, sizeof(token)),
			 200);
	assert_int_equal(strlen(token), 64);
	snprintf(args, sizeof(args), "GET %s X-metadata-token:%s", path, token);
	return mmds_http(p, args, body, cap);
}

/* MMDS end to end: a guest configured through the API fetches its metadata over TCP
 * (V2: not without a session token), and a clone of its snapshot keeps the configuration
 * but not the data: it answers with what the clone's own PUT /mmds gave it. */
static void mmds_answers_the_guest_and_each_clone_gets_its_own_data(void **state)
{
	char sock[160], json[700], body[600], snap2[200];
	struct vmproc *p;

	if (!have_netns) {
		print_message("SKIPPED: no network namespace of our own (needs root)\n");
		skip();
	}
	snprintf(snap2, sizeof(snap2), "%s/mmds.snap", dir);
	p = api_thaw("mm1.sock", sock, sizeof(sock));
	snprintf(json, sizeof(json), "{\"kernel_image_path\": \"%s\", \"boot_args\": \"%s\"}",
		 harness_env("THAW_KERNEL"), CMDLINE);
	assert_int_equal(api_ok(sock, "PUT", "/boot-source", json), 204);
	assert_int_equal(
	    api_ok(sock, "PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 128}"),
	    204);
	assert_int_equal(api_ok(sock, "PUT", "/network-interfaces/eth0",
				"{\"iface_id\": \"eth0\", \"host_dev_name\": \"thawmm0\", "
				"\"guest_mac\": \"06:00:ac:10:00:07\"}"),
			 204);
	assert_int_equal(api_ok(sock, "PUT", "/mmds/config",
				"{\"network_interfaces\": [\"eth0\"], \"version\": \"V2\"}"),
			 204);
	assert_int_equal(
	    api_ok(sock, "PUT", "/mmds", "{\"latest\": {\"meta-data\": {\"id\": \"base-vm\"}}}"),
	    204);
	assert_int_equal(api_ok(sock, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}"),
			 204);
	if (vmproc_expect(p, "THAW_GUEST_READY", BOOT_TMO, NULL, 0)) {
		vmproc_dump(p, "Linux with MMDS did not become ready");
		fail();
	}
	assert_int_equal(
	    ask(p, "net up eth0 169.254.0.2/16", "THAW_AGENT net up", body, sizeof(body)), 0);
	assert_int_equal(mmds_http(p, "GET /latest/meta-data/id", body, sizeof(body)), 401);
	assert_int_equal(mmds_get_v2(p, "/latest/meta-data/id", body, sizeof(body)), 200);
	assert_string_equal(body, "base-vm");
	assert_int_equal(mmds_get_v2(p, "/latest/meta-data/", body, sizeof(body)), 200);
	assert_string_equal(body, "id");
	assert_int_equal(mmds_get_v2(p, "/latest/nothing", body, sizeof(body)), 404);
	assert_int_equal(api_ok(sock, "PATCH", "/vm", "{\"state\": \"Paused\"}"), 204);
	snprintf(json, sizeof(json), "{\"snapshot_type\": \"Full\", \"snapshot_path\": \"%s\"}",
		 snap2);
	assert_int_equal(api_ok(sock, "PUT", "/snapshot/create", json), 204);
	harness_end(p);

	/* The clone: its own data, the base's configuration (V2 through eth0). */
	p = api_thaw("mm2.sock", sock, sizeof(sock));
	snprintf(json, sizeof(json),
		 "{\"snapshot_path\": \"%s\", \"resume_vm\": false, \"network_overrides\": "
		 "[{\"iface_id\": \"eth0\", \"host_dev_name\": \"thawmm1\"}]}",
		 snap2);
	assert_int_equal(api_ok(sock, "PUT", "/snapshot/load", json), 204);
	assert_int_equal(
	    api_ok(sock, "PUT", "/mmds", "{\"latest\": {\"meta-data\": {\"id\": \"clone-1\"}}}"),
	    204);
	assert_int_equal(api_ok(sock, "PATCH", "/vm", "{\"state\": \"Resumed\"}"), 204);
	assert_int_equal(mmds_http(p, "GET /latest/meta-data/id", body, sizeof(body)), 401);
	assert_int_equal(mmds_get_v2(p, "/latest/meta-data/id", body, sizeof(body)), 200);
	assert_string_equal(body, "clone-1");
	harness_end(p);
}

/* Clones on thin qcow2 overlays of the disk the base VM ran on (a raw file): the first
 * made by thaw-disk and given with --drive, the second made by thaw itself at restore
 * (--drive ...,overlay-of=BASE), one after the other (each takes the
 * snapshot's own socket and tap): each reads the base's data and sees only its own
 * writes, and the base file is not changed; each overlay passes `qemu-img check`
 * (when installed). */
static void clones_on_qcow2_overlays_see_only_their_own_writes(void **state)
{
	static const char *const writes[2] = {"blk write 300 CLONEAAA 2",
					      "blk write 300 CLONEBBB 1"};
	/* sector 301 afterwards: "CLON" from the first clone's two-sector write; the
	 * second wrote one sector and must not see the first's */
	static const char *const heads[2] = {"head=434c4f4e", "head=00000000"};
	char ovl[2][200], dspec[2][640], cmd[900], ans[512], copy[200];

	snprintf(copy, sizeof(copy), "%s/disk.before-clones", dir);
	snprintf(cmd, sizeof(cmd), "cp %s %s", disk, copy);
	assert_int_equal(system(cmd), 0);
	for (int i = 0; i < 2; i++) {
		const char *argv[] = {harness_env("THAW_BIN"),
				      "--restore",
				      snap,
				      "--snapshot-paths",
				      dir,
				      "--drive",
				      dspec[i],
				      NULL};
		struct vmproc *p;

		snprintf(ovl[i], sizeof(ovl[i]), "%s/clone%d.qcow2", dir, i);
		if (i == 0) {
			snprintf(cmd, sizeof(cmd), "%s/thaw-disk overlay %s disk.img",
				 harness_env("THAW_BUILD"), ovl[i]);
			assert_int_equal(system(cmd), 0);
			snprintf(dspec[i], sizeof(dspec[i]), "id=d0,path=%s", ovl[i]);
		} else {
			snprintf(dspec[i], sizeof(dspec[i]), "id=d0,path=%s,overlay-of=disk.img",
				 ovl[i]);
		}
		p = harness_start(argv);
		/* the base's data through the overlay ('d' at sector 3) */
		assert_int_equal(ask(p, "blk read 3 1", "THAW_AGENT blk read", ans, sizeof(ans)),
				 0);
		assert_non_null(strstr(ans, "head=64646464"));
		assert_int_equal(ask(p, writes[i], "THAW_AGENT blk write", ans, sizeof(ans)), 0);
		assert_non_null(strstr(ans, "flushed"));
		assert_int_equal(ask(p, "blk read 301 1", "THAW_AGENT blk read", ans, sizeof(ans)),
				 0);
		assert_non_null(strstr(ans, heads[i]));
		harness_end(p);
		snprintf(cmd, sizeof(cmd),
			 "! command -v qemu-img >/dev/null || qemu-img check -q %s", ovl[i]);
		assert_int_equal(system(cmd), 0);
	}
	snprintf(cmd, sizeof(cmd), "cmp %s %s", disk, copy);
	assert_int_equal(system(cmd), 0); /* the base is unchanged */
}

/* A load that fails after the VM exists (here: the vsock override's directory does not
 * exist, found when the device is rebuilt) must not leave a half-restored VM running:
 * the process refuses every further action and says why. */
static void load_failing_halfway_leaves_the_api_refusing(void **state)
{
	char sock[160], json[600], body[1024];
	struct vmproc *p;
	int st;

	p = api_thaw("api2.sock", sock, sizeof(sock));
	snprintf(json, sizeof(json),
		 "{\"snapshot_path\": \"%s\", \"resume_vm\": true, \"vsock_override\": "
		 "{\"uds_path\": \"%s/no/such/dir/v.sock\"}, \"snapshot_paths\": \"%s\"}",
		 snap, dir, dir);
	st = harness_http(sock, "PUT", "/snapshot/load", json, body, sizeof(body));
	if (st != 400 || !strstr(body, "fault_message")) {
		vmproc_dump(p, "half-failed load");
		fail_msg("PUT /snapshot/load with a bad vsock path: %d %s", st, body);
	}
	/* a good load is refused now, naming the earlier failure */
	snprintf(json, sizeof(json), "{\"snapshot_path\": \"%s\", \"resume_vm\": true}", snap);
	st = harness_http(sock, "PUT", "/snapshot/load", json, body, sizeof(body));
	assert_int_equal(st, 400);
	assert_non_null(strstr(body, "failed state"));
	assert_non_null(strstr(body, "Snapshot load failed"));
	st = harness_http(sock, "PATCH", "/vm", "{\"state\": \"Resumed\"}", body, sizeof(body));
	assert_int_equal(st, 400);
	assert_non_null(strstr(body, "failed state"));
	/* the server itself still answers, and no guest ever ran */
	assert_int_equal(harness_http(sock, "GET", "/", NULL, body, sizeof(body)), 200);
	assert_null(strstr(p->out, "THAW_AGENT"));
	harness_end(p);
}

/* ---- ACPI and the generation ID (booted with ACPI, thaw's default) */

static bool is_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!strchr("0123456789abcdef", s[i]))
			return false;
	return true;
}

/* "genid id=<32 hex> mem=<32 hex>": copies the id, checks both are the same non-zero
 * ID (the driver took what thaw wrote). */
static void check_genid(const char *ans, char id[33])
{
	const char *i = strstr(ans, "id="), *m = strstr(ans, "mem=");

	if (strncmp(ans, "genid ", 6) || !i || !m || !is_hex(i + 3, 32) || !is_hex(m + 4, 32))
		fail_msg("genid answered '%s'", ans);
	memcpy(id, i + 3, 32);
	id[32] = 0;
	assert_memory_equal(i + 3, m + 4, 32);
	assert_string_not_equal(id, "00000000000000000000000000000000");
}

static void booted_linux_binds_vmgenid_to_the_generation_id_thaw_wrote(void **state)
{
	char id[33];

	check_genid(boot_genid, id);
}

static void random_gives_fresh_bytes_on_every_call(void **state)
{
	for (int i = 0; i < 2; i++)
		if (strncmp(boot_random[i], "random hex=", 11) ||
		    !is_hex(boot_random[i] + 11, 32) || strlen(boot_random[i]) != 11 + 32)
			fail_msg("random answered '%s'", boot_random[i]);
	assert_string_not_equal(boot_random[0], boot_random[1]);
}

/* thaw has --no-acpi once vmm/main.c parses it; until then say so loudly. */
static bool thaw_has_no_acpi(void)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "%s --help 2>&1 | grep -q -- --no-acpi",
		 harness_env("THAW_BIN"));
	if (system(cmd) == 0)
		return true;
	fprintf(stderr, "\n*** SKIPPED: this thaw has no --no-acpi option ***\n\n");
	return false;
}

/* Without ACPI the same kernel finds its CPUs in the MP table and its virtio devices
 * on the command line, and has no VMGenID device. */
static void linux_without_acpi_finds_devices_on_the_command_line(void **state)
{
	const char *argv[] = {harness_env("THAW_BIN"),
			      "--kernel",
			      harness_env("THAW_KERNEL"),
			      "--no-acpi",
			      "--cmdline",
			      CMDLINE,
			      "--vcpus",
			      "2",
			      "--mem-mib",
			      "128",
			      "--rng",
			      NULL};
	char ans[1024];
	struct vmproc *p;

	if (!thaw_has_no_acpi())
		skip();
	p = harness_start(argv);
	if (vmproc_expect(p, "THAW_GUEST_READY", BOOT_TMO, ans, sizeof(ans))) {
		vmproc_dump(p, "boot without ACPI");
		fail();
	}
	assert_non_null(strstr(ans, "cpus=2"));
	assert_int_equal(ask(p, "rng 16", "THAW_AGENT", ans, sizeof(ans)), 0);
	assert_non_null(strstr(ans, "rng bytes=16"));
	assert_int_equal(ask(p, "genid", "THAW_AGENT", ans, sizeof(ans)), 0);
	assert_string_equal(ans, "error genid -ENODEV");
	harness_end(p);
}

/* Also the RSDP's way through boot_params (acpi_rsdp_addr), and a new ID per boot. */
static void linux_boots_through_the_64bit_boot_protocol(void **state)
{
	const char *argv[] = {harness_env("THAW_BIN"),
			      "--kernel",
			      harness_env("THAW_KERNEL"),
			      "--boot",
			      "linux64",
			      "--cmdline",
			      CMDLINE,
			      "--mem-mib",
			      "128",
			      NULL};
	char ans[256], id[33], first[33];
	struct vmproc *p = harness_start(argv);

	if (vmproc_expect(p, "THAW_GUEST_READY", BOOT_TMO, NULL, 0)) {
		vmproc_dump(p, "64-bit boot protocol");
		fail();
	}
	assert_int_equal(ask(p, "ping", "THAW_AGENT", ans, sizeof(ans)), 0);
	assert_int_equal(ask(p, "genid", "THAW_AGENT", ans, sizeof(ans)), 0);
	check_genid(ans, id);
	check_genid(boot_genid, first);
	assert_string_not_equal(id, first);
	harness_end(p);
}

/* Clone `k` of the snapshot, with host backends of its own (so clones can run at once):
 * the disk is shared read-only in use here, the socket and tap are the clone's. */
static struct vmproc *clone_of(const char *snapshot, unsigned k, const char *extra1,
			       const char *extra2, const char *extra3)
{
	static char dspec[8][300], vspec[8][300], nspec[8][64];
	const char *argv[] = {harness_env("THAW_BIN"),
			      "--restore",
			      snapshot,
			      "--drive",
			      dspec[k],
			      "--vsock",
			      vspec[k],
			      have_netns ? "--net" : extra1,
			      have_netns ? nspec[k] : extra2,
			      have_netns ? extra1 : extra3,
			      have_netns ? extra2 : NULL,
			      have_netns ? extra3 : NULL,
			      NULL};

	snprintf(dspec[k], sizeof(dspec[k]), "id=d0,path=%s", disk);
	snprintf(vspec[k], sizeof(vspec[k]), "uds=%s/clone%u.sock", dir, k);
	snprintf(nspec[k], sizeof(nspec[k]), "id=eth0,tap=thawcl%u", k);
	return harness_start(argv);
}

/* The guest's generation ID once its vmgenid driver took a new one (the GED's
 * notification is handled on a kernel workqueue, so it may come a moment after the
 * vCPUs start): polls `genid` until the ID differs from `old`. */
static void new_genid(struct vmproc *p, const char *old, char id[33])
{
	char ans[256];
	const char *i, *m;
	long long t0 = harness_ms();

	for (;;) {
		assert_int_equal(ask(p, "genid", "THAW_AGENT", ans, sizeof(ans)), 0);
		i = strstr(ans, "id=");
		m = strstr(ans, "mem=");
		/* the driver has taken the ID in memory, and it is not the old one */
		if (i && m && !memcmp(i + 3, m + 4, 32) && memcmp(i + 3, old, 32))
			break;
		if (harness_ms() - t0 > TMO) {
			vmproc_dump(p, ans);
			fail_msg("the guest's driver did not take a new generation ID: %s", ans);
		}
		usleep(200 * 1000);
	}
	check_genid(ans, id);
}

/* Two clones of one snapshot restored at the same moment are two machines: each has a
 * generation ID of its own, unlike the base's, and their first random bytes differ. */
static void clones_get_their_own_generation_id_and_random_bytes(void **state)
{
	struct vmproc *a = clone_of(snap, 0, NULL, NULL, NULL),
		      *b = clone_of(snap, 1, NULL, NULL, NULL);
	char base[33], ida[33], idb[33], ra[256], rb[256];

	check_genid(boot_genid, base);
	new_genid(a, base, ida);
	new_genid(b, base, idb);
	assert_string_not_equal(ida, idb);
	assert_int_equal(ask(a, "random", "THAW_AGENT", ra, sizeof(ra)), 0);
	assert_int_equal(ask(b, "random", "THAW_AGENT", rb, sizeof(rb)), 0);
	assert_string_not_equal(ra, rb);
	harness_end(a);
	harness_end(b);
}

/* The control: restored with --keep-generation, two clones resume the same machine and
 * their guests keep the base's generation ID, so the test above can fail. (Their random
 * bytes are not compared: a guest that booted slowly reseeds its CRNG on a short early
 * interval, with fresh RDRAND and interrupt timing, so two clones' bytes differ a
 * moment after a restore even without a new ID.) */
static void clones_keeping_the_generation_keep_the_base_id(void **state)
{
	struct vmproc *a = clone_of(snap, 2, "--keep-generation", NULL, NULL),
		      *b = clone_of(snap, 3, "--keep-generation", NULL, NULL);
	char base[33], id[33], ans[256];
	struct vmproc *both[] = {a, b};

	check_genid(boot_genid, base);
	for (int k = 0; k < 2; k++) {
		assert_int_equal(ask(both[k], "genid", "THAW_AGENT", ans, sizeof(ans)), 0);
		check_genid(ans, id);
		assert_string_equal(id, base);
	}
	harness_end(a);
	harness_end(b);
}

/* A clone's own snapshot restores to a third machine: base, clone and its clone each
 * have a generation ID of their own. */
static void a_clone_of_a_clone_gets_a_third_generation_id(void **state)
{
	char snap2[200], base[33], first[33], second[33];
	struct vmproc *a, *b;

	snprintf(snap2, sizeof(snap2), "%s/clone.snap", dir);
	a = clone_of(snap, 4, "--snapshot", snap2, NULL);
	check_genid(boot_genid, base);
	new_genid(a, base, first);
	kill(a->pid, SIGUSR1); /* snapshot, then go on */
	for (long long t0 = harness_ms(); !strstr(a->err, "thaw: snapshot:");) {
		if (harness_ms() - t0 > TMO) {
			vmproc_dump(a, "snapshot of a clone");
			fail();
		}
		vmproc_expect(a, "never printed", 100, NULL, 0); /* collects stderr */
	}
	harness_end(a);
	b = clone_of(snap2, 5, NULL, NULL, NULL);
	new_genid(b, first, second);
	assert_string_not_equal(second, base);
	harness_end(b);
}

/* How far the clone's clock moved against the host's since the snapshot: its offset
 * now minus the booted guest's (which is not 0: a guest without an RTC or NTP keeps the
 * wall clock kvmclock gave it at boot, and a slow boot on emulated timer ticks falls
 * seconds behind before the guest switches to a real clocksource). `slack`: how much of
 * it the measurement cannot tell from nothing (both readings' half windows). */
static long long clock_moved_ms(struct vmproc *p, long long *slack)
{
	long long off;

	assert_int_equal(guest_clock_offset_ms(p, &off, slack), 0);
	*slack += boot_clock_slack_ms;
	return off - boot_clock_ms;
}

static long long snapshot_age_ms(void)
{
	struct stat st;
	struct timespec now;

	assert_int_equal(stat(snap, &st), 0);
	clock_gettime(CLOCK_REALTIME, &now);
	return (now.tv_sec - st.st_mtim.tv_sec) * 1000 +
	       (now.tv_nsec - st.st_mtim.tv_nsec) / 1000000;
}

/* --clock-realtime (and the API's clock_realtime) moves the guest's wall clock on by the
 * snapshot's age: right after the restore the guest is where it was against the host
 * when the snapshot was taken, within 50 ms. Without it the guest resumes the moment it
 * stopped and is behind by the snapshot's age, except on a host that cannot rewind a
 * guest's TSC (PVM), where a guest keeping time by its TSC moves on regardless
 * (docs/clones.md). Last in the list: the snapshot is then minutes old. */
static void clock_realtime_moves_the_guest_clock_on_by_the_snapshot_age(void **state)
{
	char sock[160], json[700], body[512];
	long long age_ms = snapshot_age_ms(), moved, slack;
	struct vmproc *p;
	int st;

	print_message("the booted guest's clock was %lld ms (+-%lld) off the host's; the "
		      "snapshot is %lld ms old\n",
		      boot_clock_ms, boot_clock_slack_ms, age_ms);
	p = clone_of(snap, 6, "--clock-realtime", NULL, NULL);
	moved = clock_moved_ms(p, &slack);
	harness_end(p);
	print_message("with --clock-realtime the clone's clock moved %lld ms (+-%lld)\n", moved,
		      slack);
	if (llabs(moved) > 50 + slack)
		fail_msg("with --clock-realtime the clone's clock is %lld ms (+-%lld) off where "
			 "the base's was against the host",
			 moved, slack);

	p = api_thaw("clock.sock", sock, sizeof(sock));
	snprintf(json, sizeof(json),
		 "{\"snapshot_path\": \"%s\", \"resume_vm\": true, \"clock_realtime\": true, "
		 "\"vsock_override\": {\"uds_path\": \"%s/clock-v.sock\"}%s, "
		 "\"snapshot_paths\": \"%s\"}",
		 snap, dir,
		 have_netns ? ", \"network_overrides\": [{\"iface_id\": \"eth0\", "
			      "\"host_dev_name\": \"thawclk0\"}]"
			    : "",
		 dir);
	st = harness_http(sock, "PUT", "/snapshot/load", json, body, sizeof(body));
	if (st != 204) {
		vmproc_dump(p, "snapshot load");
		fail_msg("PUT /snapshot/load: %d %s", st, body);
	}
	moved = clock_moved_ms(p, &slack);
	harness_end(p);
	print_message("with the API's clock_realtime: %lld ms (+-%lld)\n", moved, slack);
	if (llabs(moved) > 50 + slack)
		fail_msg("with the API's clock_realtime the clone's clock is %lld ms (+-%lld) off "
			 "where the base's was against the host",
			 moved, slack);

	age_ms = snapshot_age_ms();
	p = clone_of(snap, 7, NULL, NULL, NULL);
	moved = clock_moved_ms(p, &slack);
	harness_end(p);
	print_message("without --clock-realtime the clone's clock moved %lld ms against the "
		      "host's (snapshot %lld ms old)\n",
		      moved, age_ms);
	if (moved > -age_ms / 2 && access("/sys/module/kvm_pvm", F_OK) == 0) {
		print_message("NOTE: this PVM host does not rewind a guest's TSC, so a clone "
			      "keeping time by it does not fall behind; the control cannot fail "
			      "here\n");
		return;
	}
	if (moved > -age_ms / 2)
		fail_msg("without --clock-realtime the clone's clock is only %lld ms behind, "
			 "the snapshot is %lld ms old",
			 -moved, age_ms);
}

/* The guest's reboot ends thaw with status 0 (the i8042 reset). On PVM this used to end
 * in an emulation failure: the exiting tasks' fwait (guest/linux/patches/0007). */
static void guest_reboot_ends_thaw_with_status_0(void **state)
{
	char ans[256];
	struct vmproc *p = restore();

	assert_int_equal(ask(p, "reboot", "THAW_AGENT", ans, sizeof(ans)), 0);
	assert_int_equal(vmproc_wait(p, TMO), 0);
	harness_end(p);
}

static void guest_panic_ends_thaw_with_status_3(void **state)
{
	char ans[256];
	struct vmproc *p = restore();

	assert_int_equal(ask(p, "panic", "THAW_AGENT", ans, sizeof(ans)), 0);
	if (vmproc_wait(p, TMO) != 3) {
		vmproc_dump(p, "panic");
		fail();
	}
	assert_non_null(strstr(p->err, "panic"));
	harness_end(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(linux_boots_to_ready_and_its_agent_answers),
	    cmocka_unit_test(restored_linux_answers_and_kept_its_memory),
	    cmocka_unit_test(restored_linux_reads_and_writes_its_disk),
	    cmocka_unit_test(restored_linux_reads_the_rng),
	    cmocka_unit_test(restored_linux_talks_vsock),
	    cmocka_unit_test(restored_linux_has_network_on_an_overridden_tap),
	    cmocka_unit_test(restore_takes_new_backends_on_the_command_line),
	    cmocka_unit_test(clones_on_qcow2_overlays_see_only_their_own_writes),
	    cmocka_unit_test(load_failing_halfway_leaves_the_api_refusing),
	    cmocka_unit_test(patch_drive_swaps_the_disk_and_its_rate_limit_holds_reads_back),
	    cmocka_unit_test(mmds_answers_the_guest_and_each_clone_gets_its_own_data),
	    cmocka_unit_test(guest_reboot_ends_thaw_with_status_0),
	    cmocka_unit_test(guest_panic_ends_thaw_with_status_3),
	    cmocka_unit_test(linux_boots_through_the_64bit_boot_protocol),
	    cmocka_unit_test(booted_linux_binds_vmgenid_to_the_generation_id_thaw_wrote),
	    cmocka_unit_test(random_gives_fresh_bytes_on_every_call),
	    cmocka_unit_test(clones_get_their_own_generation_id_and_random_bytes),
	    cmocka_unit_test(clones_keeping_the_generation_keep_the_base_id),
	    cmocka_unit_test(a_clone_of_a_clone_gets_a_third_generation_id),
	    cmocka_unit_test(linux_without_acpi_finds_devices_on_the_command_line),
	    cmocka_unit_test(clock_realtime_moves_the_guest_clock_on_by_the_snapshot_age),
	};

	if (!harness_have_kvm())
		return 0;
	/* Taps and addresses made here vanish with the program. */
	have_netns = unshare(CLONE_NEWNET) == 0 && system("ip link set lo up") == 0;
	if (!have_netns)
		fprintf(stderr, "linux: no network namespace (%s): the network is left out\n",
			strerror(errno));
	return cmocka_run_group_tests_name("linux", tests, group_setup, group_teardown);
}
