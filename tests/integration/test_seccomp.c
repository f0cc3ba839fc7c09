/* thaw's seccomp filters on a real VM: the probe guest boots, is snapshotted, restored
 * (plain, prepared, uffd) and driven over the API with the filters on and nothing
 * refused; each thread runs its own filter stack; a forbidden syscall (the
 * THAW_SECCOMP_SELFTEST hook) ends the process by SIGSYS with the syscall named;
 * --no-seccomp turns the filters off. */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/integration/harness.h"

#define TMO 60000

static char dir[] = "/tmp/thaw-sectest-XXXXXX";

static void expect(struct vmproc *p, const char *needle)
{
	if (vmproc_expect(p, needle, TMO, NULL, 0)) {
		vmproc_dump(p, needle);
		fail();
	}
}

static void ask(struct vmproc *p, const char *req, const char *prefix)
{
	char ans[256];

	if (vmproc_ask(p, req, prefix, TMO, ans, sizeof(ans))) {
		vmproc_dump(p, req);
		fail();
	}
}

/* Nothing was refused: a refusal would have ended the process, but say so clearly. */
static void no_refusal(struct vmproc *p)
{
	if (strstr(p->err, "seccomp")) {
		vmproc_dump(p, "seccomp message");
		fail_msg("thaw reported a seccomp problem");
	}
}

/* Ends thaw with SIGTERM (a normal stop) and checks it exited 0. */
static void stop_cleanly(struct vmproc *p)
{
	int st;

	kill(p->pid, SIGTERM);
	st = vmproc_wait(p, TMO);
	no_refusal(p);
	if (st != 0) {
		vmproc_dump(p, "stop");
		fail_msg("thaw exited with %d", st);
	}
}

/* The "Seccomp_filters:" count of each thread of `pid`, by thread name, into `out`. */
static void thread_filters(pid_t pid, char *out, size_t len)
{
	char path[320], line[256], name[32];
	struct dirent *de;
	DIR *d;
	size_t off = 0;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	assert_non_null(d);
	out[0] = 0;
	while ((de = readdir(d))) {
		FILE *f;
		int filters = -1, mode = -1;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/status", (int)pid, de->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		name[0] = 0;
		while (fgets(line, sizeof(line), f)) {
			sscanf(line, "Name: %31s", name);
			sscanf(line, "Seccomp: %d", &mode);
			sscanf(line, "Seccomp_filters: %d", &filters);
		}
		fclose(f);
		off += (size_t)snprintf(out + off, len - off, "%s=%d/%d ", name, mode, filters);
		assert_true(off < len);
	}
	closedir(d);
}

static void make_snapshot(const char *snap, const char *vcpus)
{
	const char *argv[] = {harness_env("THAW_BIN"),
			      "--kernel",
			      harness_env("THAW_PROBE"),
			      "--vcpus",
			      vcpus,
			      "--mem-mib",
			      "64",
			      "--snapshot",
			      snap,
			      "--snapshot-after",
			      "PROBE info",
			      "--snapshot-then",
			      "exit",
			      NULL};
	struct vmproc *p = harness_start(argv);
	int st;

	expect(p, "THAW_PROBE_READY");
	assert_int_equal(vmproc_send(p, "info"), 0);
	st = vmproc_wait(p, TMO);
	no_refusal(p);
	if (st != 0) {
		vmproc_dump(p, "snapshot create");
		fail();
	}
	harness_end(p);
}

/* Boot, a snapshot of the running guest by SIGUSR1 (pause, save, resume), a snapshot
 * at exit, and restores of it: plain, prepared, uffd; each with the filters on. */
static void probe_boots_snapshots_and_restores_with_seccomp_on(void **state)
{
	char snap[256], snap2[256], filters[1024];
	struct vmproc *p;

	snprintf(snap, sizeof(snap), "%s/ready.snap", dir);
	snprintf(snap2, sizeof(snap2), "%s/running.snap", dir);

	/* a running VM snapshotted from the main loop, then resumed */
	{
		const char *argv[] = {harness_env("THAW_BIN"),
				      "--kernel",
				      harness_env("THAW_PROBE"),
				      "--vcpus",
				      "2",
				      "--mem-mib",
				      "64",
				      "--snapshot",
				      snap2,
				      NULL};

		p = harness_start(argv);
		expect(p, "THAW_PROBE_READY");
		ask(p, "info", "PROBE info");
		/* each thread has its own stack of filters: main 2 (its own, and the seal
		 * vm_launch stacks once the vCPUs go: no io_uring_setup/register any
		 * more), vCPUs 2 (main's, from before the seal, + their own, which allows
		 * neither io_uring call: tests/unit/test_seccomp.c) */
		thread_filters(p->pid, filters, sizeof(filters));
		print_message("threads (name=mode/filters): %s\n", filters);
		assert_non_null(strstr(filters, "thaw=2/2 "));
		assert_non_null(strstr(filters, "vcpu0=2/2 "));
		assert_non_null(strstr(filters, "vcpu1=2/2 "));
		kill(p->pid, SIGUSR1);
		for (int i = 0; i < 600 && !strstr(p->err, "snapshot:"); i++)
			ask(p, "ping", "PROBE pong");
		ask(p, "touch 8 8 3", "PROBE touch");
		stop_cleanly(p);
		harness_end(p);
	}

	make_snapshot(snap, "2");

	const char *plain[] = {harness_env("THAW_BIN"), "--restore", snap, NULL};
	const char *prepared[] = {harness_env("THAW_BIN"), "--restore", snap, "--prepare",
				  "mem-mib=64,vcpus=2",	   NULL};
	/* a prepared VM of another shape is discarded: the release thread's filter */
	const char *discarded[] = {harness_env("THAW_BIN"), "--restore", snap, "--prepare",
				   "mem-mib=128,vcpus=1",   NULL};
	const char *uffd[] = {harness_env("THAW_BIN"), "--restore", snap,
			      "--mem-backend",	       "uffd",	    NULL};
	const char *running[] = {harness_env("THAW_BIN"), "--restore", snap2, NULL};
	const char *const *runs[] = {plain, prepared, discarded, uffd, running};

	for (unsigned i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
		p = harness_start(runs[i]);
		ask(p, "ping", "PROBE pong");
		ask(p, "touch 8 8 5", "PROBE touch");
		ask(p, "sum 8 8", "PROBE sum");
		stop_cleanly(p);
		harness_end(p);
	}
}

static struct vmproc *thaw_api(const char *sock)
{
	const char *argv[] = {harness_env("THAW_BIN"), "--api-sock", sock, NULL};
	struct vmproc *p;

	unlink(sock);
	p = harness_start(argv);
	assert_int_equal(harness_wait_socket(sock), 0);
	return p;
}

/* The API builds the VM, starts vCPUs, snapshots and loads long after the main
 * filter went on: all of it must be in the main allowlist. */
static void api_flow_works_with_seccomp_on(void **state)
{
	char s1[256], s2[256], snap[256], mem[256], json[1024], metrics[256];
	struct vmproc *a, *b;

	snprintf(s1, sizeof(s1), "%s/a.sock", dir);
	snprintf(s2, sizeof(s2), "%s/b.sock", dir);
	snprintf(snap, sizeof(snap), "%s/api.snap", dir);
	snprintf(mem, sizeof(mem), "%s/api.mem", dir);
	snprintf(metrics, sizeof(metrics), "%s/metrics.json", dir);

	a = thaw_api(s1);
	assert_int_equal(harness_http(s1, "PUT", "/machine-config",
				      "{\"vcpu_count\": 2, \"mem_size_mib\": 64}", NULL, 0),
			 204);
	snprintf(json, sizeof(json), "{\"kernel_image_path\": \"%s\"}", harness_env("THAW_PROBE"));
	assert_int_equal(harness_http(s1, "PUT", "/boot-source", json, NULL, 0), 204);
	snprintf(json, sizeof(json), "{\"metrics_path\": \"%s\"}", metrics);
	assert_int_equal(harness_http(s1, "PUT", "/metrics", json, NULL, 0), 204);
	assert_int_equal(
	    harness_http(s1, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}", NULL, 0),
	    204);
	expect(a, "THAW_PROBE_READY");
	ask(a, "touch 8 8 5", "PROBE touch");
	assert_int_equal(harness_http(s1, "PATCH", "/vm", "{\"state\": \"Paused\"}", NULL, 0), 204);
	snprintf(json, sizeof(json),
		 "{\"snapshot_type\": \"Full\", \"snapshot_path\": \"%s\", \"mem_file_path\": "
		 "\"%s\"}",
		 snap, mem);
	assert_int_equal(harness_http(s1, "PUT", "/snapshot/create", json, NULL, 0), 204);
	assert_int_equal(harness_http(s1, "PATCH", "/vm", "{\"state\": \"Resumed\"}", NULL, 0),
			 204);
	ask(a, "ping", "PROBE pong");
	assert_int_equal(
	    harness_http(s1, "PUT", "/actions", "{\"action_type\": \"FlushMetrics\"}", NULL, 0),
	    204);
	assert_int_equal(harness_http(s1, "GET", "/", NULL, NULL, 0), 200);
	stop_cleanly(a);
	harness_end(a);

	b = thaw_api(s2);
	assert_int_equal(harness_http(s2, "PUT", "/snapshot/load",
				      "{\"snapshot_path\": \"/etc/passwd\"}", NULL, 0),
			 400);
	snprintf(json, sizeof(json),
		 "{\"snapshot_path\": \"%s\", \"mem_backend\": {\"backend_path\": \"%s\", "
		 "\"backend_type\": \"File\"}, \"resume_vm\": true}",
		 snap, mem);
	assert_int_equal(harness_http(s2, "PUT", "/snapshot/load", json, NULL, 0), 204);
	ask(b, "sum 8 8", "PROBE sum");
	ask(b, "info", "PROBE info");
	stop_cleanly(b);
	harness_end(b);
}

/* The test hook calls socket(AF_PACKET) right after a thread of the named kind
 * installed its filter. */
static void expect_killed_naming(const char *kind, const char *const argv[])
{
	char want[128];
	struct vmproc *p;
	int st;

	setenv("THAW_SECCOMP_SELFTEST", kind, 1);
	p = harness_start(argv);
	unsetenv("THAW_SECCOMP_SELFTEST");
	st = vmproc_wait(p, TMO);
	snprintf(want, sizeof(want), "thaw: seccomp: refused syscall 41 (socket) on a %s thread",
		 kind);
	if (st != 128 + SIGSYS || !strstr(p->err, want)) {
		vmproc_dump(p, want);
		fail_msg("status %d", st);
	}
	/* the refused call never ran: the arguments show AF_PACKET (0x11) */
	assert_non_null(strstr(p->err, "args 0x11 "));
	harness_end(p);
}

static void violation_on_main_thread_kills_naming_the_syscall(void **state)
{
	char snap[256];

	snprintf(snap, sizeof(snap), "%s/ready.snap", dir);
	const char *boot[] = {harness_env("THAW_BIN"), "--kernel", harness_env("THAW_PROBE"), NULL};
	const char *rest[] = {harness_env("THAW_BIN"), "--restore", snap, NULL};

	expect_killed_naming("main", boot);
	if (access(snap, F_OK) == 0)
		expect_killed_naming("main", rest);
}

static void violation_on_vcpu_thread_kills_naming_the_syscall(void **state)
{
	const char *boot[] = {
	    harness_env("THAW_BIN"), "--kernel", harness_env("THAW_PROBE"), "--vcpus", "2", NULL};

	expect_killed_naming("vcpu", boot);
}

static void no_seccomp_turns_the_filters_off(void **state)
{
	const char *argv[] = {harness_env("THAW_BIN"), "--kernel", harness_env("THAW_PROBE"),
			      "--no-seccomp", NULL};
	char filters[1024];
	struct vmproc *p;

	/* with the hook armed: nothing installs a filter, so nothing is refused */
	setenv("THAW_SECCOMP_SELFTEST", "main", 1);
	p = harness_start(argv);
	unsetenv("THAW_SECCOMP_SELFTEST");
	expect(p, "THAW_PROBE_READY");
	ask(p, "ping", "PROBE pong");
	thread_filters(p->pid, filters, sizeof(filters));
	assert_non_null(strstr(filters, "thaw=0/0 "));
	assert_non_null(strstr(filters, "vcpu0=0/0 "));
	stop_cleanly(p);
	harness_end(p);
}

static int setup(void **state)
{
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(probe_boots_snapshots_and_restores_with_seccomp_on),
	    cmocka_unit_test(api_flow_works_with_seccomp_on),
	    cmocka_unit_test(violation_on_main_thread_kills_naming_the_syscall),
	    cmocka_unit_test(violation_on_vcpu_thread_kills_naming_the_syscall),
	    cmocka_unit_test(no_seccomp_turns_the_filters_off),
	};

	if (!harness_have_kvm())
		return 0;
	return cmocka_run_group_tests(tests, setup, teardown);
}
