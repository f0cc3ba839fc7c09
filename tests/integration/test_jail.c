/* thaw through thaw-jailer, the way a function runtime runs it: the probe guest boots
 * in a jail and is snapshotted there; the snapshot, linked read-only into another
 * jail, restores and answers while thaw holds no capability, runs as the jail's
 * uid/gid and sees only the jail's root; thaw serves its API socket from the jail;
 * a memory cgroup limit below what the guest
 * touches stops thaw; --cleanup leaves nothing behind, mounted or on disk. The jailer's
 * own steps are tested without KVM in tests/unit/test_jailer.c. Needs root. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/integration/harness.h"

#define TMO   60000
#define UID   "10000"
#define GID   "10001"
#define SNAP  "/ready.snap" /* where the snapshot sits inside a jail */
#define PROBE "/probe.elf"

static char base[] = "/tmp/thaw-jailtest-XXXXXX";
static char thaw[PATH_MAX], jailer[PATH_MAX], snap[PATH_MAX + 16], probe[PATH_MAX + 16];
static bool ready; /* the first test made the snapshot the others restore */

static void jail_path(char *buf, size_t len, const char *id, const char *rel)
{
	/* Firecracker's layout: <base>/<exec file name>/<id>. */
	snprintf(buf, len, "%s/thaw-static/%s%s", base, id, rel);
}

/* thaw-jailer --cleanup, then nothing of the jail is left: no directory, no mount. */
static void cleanup_leaves_nothing(const char *id)
{
	char cmd[PATH_MAX * 4], dir[PATH_MAX];

	snprintf(cmd, sizeof(cmd), "%s --cleanup --id %s --chroot-base %s --exec-file %s", jailer,
		 id, base, thaw);
	assert_int_equal(system(cmd), 0);
	jail_path(dir, sizeof(dir), id, "");
	assert_int_equal(access(dir, F_OK), -1);
	snprintf(cmd, sizeof(cmd), "grep -q ' %s ' /proc/self/mountinfo", dir);
	assert_int_not_equal(system(cmd), 0);
}

/* Starts thaw-jailer with the common options, the jail-side links, and thaw's args. */
static struct vmproc *jailed(const char *id, const char *const *jail_extra,
			     const char *const *thaw_args)
{
	const char *argv[64] = {jailer,	 "--id",     id,	   "--exec-file", thaw,
				"--uid", UID,	     "--gid",	   GID,		  "--chroot-base",
				base,	 "--cgroup", "pids.max=64"};
	size_t n = 13;

	for (; jail_extra && *jail_extra; jail_extra++)
		argv[n++] = *jail_extra;
	argv[n++] = "--";
	for (; *thaw_args; thaw_args++)
		argv[n++] = *thaw_args;
	assert_true(n < sizeof(argv) / sizeof(argv[0]));
	return harness_start(argv);
}

static void jailed_thaw_boots_and_snapshots(void **state)
{
	char link[PATH_MAX + 32], in_jail[PATH_MAX];
	const char *jx[] = {"--link", link, NULL};
	const char *tx[] = {"--kernel",
			    PROBE,
			    "--mem-mib",
			    "64",
			    "--snapshot",
			    SNAP,
			    "--snapshot-after",
			    "THAW_PROBE_READY",
			    "--snapshot-then",
			    "exit",
			    NULL};
	char cmd[PATH_MAX * 4];
	struct vmproc *p;
	int st;

	snprintf(link, sizeof(link), "%s:" PROBE ":ro", probe);
	p = jailed("jt-boot", jx, tx);
	st = vmproc_wait(p, TMO);
	if (st != 0) {
		vmproc_dump(p, "jailed boot and snapshot");
		fail_msg("exit status %d", st);
	}
	harness_end(p);
	/* thaw wrote it in the jail's root, as the jailed user */
	jail_path(in_jail, sizeof(in_jail), "jt-boot", "/root" SNAP);
	struct stat sb;
	assert_int_equal(stat(in_jail, &sb), 0);
	assert_int_equal(sb.st_uid, atoi(UID));
	snprintf(cmd, sizeof(cmd), "cp --sparse=always %s %s && chmod 444 %s", in_jail, snap, snap);
	assert_int_equal(system(cmd), 0);
	cleanup_leaves_nothing("jt-boot");
	ready = true;
}

/* The value of `key:` in /proc/PID/status, whitespace squeezed. */
static void proc_status(pid_t pid, const char *key, char *out, size_t len)
{
	char path[64], line[256];
	size_t kl = strlen(key);
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	assert_non_null(f);
	out[0] = 0;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, key, kl) || line[kl] != ':')
			continue;
		char *v = line + kl + 1, *w = out;
		while (*v && (size_t)(w - out) + 1 < len) {
			if (*v == '\t' || *v == ' ') {
				if (w > out && w[-1] != ' ')
					*w++ = ' ';
			} else if (*v != '\n') {
				*w++ = *v;
			}
			v++;
		}
		while (w > out && w[-1] == ' ')
			w--;
		*w = 0;
		break;
	}
	fclose(f);
}

static void jailed_restore_answers_with_no_power(void **state)
{
	char link[PATH_MAX + 32], v[256], root[PATH_MAX], want[PATH_MAX], ans[256];
	const char *jx[] = {"--link", link, NULL};
	const char *tx[] = {"--restore", SNAP, NULL};
	const char *caps[] = {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"};
	struct vmproc *p;

	if (!ready)
		skip();
	snprintf(link, sizeof(link), "%s:" SNAP ":ro", snap);
	p = jailed("jt-restore", jx, tx);
	if (vmproc_ask(p, "ping", "PROBE pong", TMO, ans, sizeof(ans))) {
		vmproc_dump(p, "jailed restore");
		fail();
	}
	/* Without --new-pid-ns the jailer execs thaw in its own process. */
	for (unsigned i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
		proc_status(p->pid, caps[i], v, sizeof(v));
		if (strcmp(v, "0000000000000000"))
			fail_msg("%s is %s, wanted no capability", caps[i], v);
	}
	proc_status(p->pid, "NoNewPrivs", v, sizeof(v));
	assert_string_equal(v, "1");
	proc_status(p->pid, "Uid", v, sizeof(v));
	assert_string_equal(v, UID " " UID " " UID " " UID);
	proc_status(p->pid, "Gid", v, sizeof(v));
	assert_string_equal(v, GID " " GID " " GID " " GID);
	proc_status(p->pid, "Groups", v, sizeof(v));
	assert_string_equal(v, "");
	/* its / is the jail's root directory (the same inode; its name depends on the
	 * reader's own root, so the name is not compared) */
	struct stat in, out;
	snprintf(root, sizeof(root), "/proc/%d/root/", (int)p->pid);
	jail_path(want, sizeof(want), "jt-restore", "/root");
	assert_int_equal(stat(root, &in), 0);
	assert_int_equal(stat(want, &out), 0);
	assert_true(in.st_dev == out.st_dev && in.st_ino == out.st_ino);
	/* the guest still works after all that */
	assert_int_equal(vmproc_ask(p, "sum 2 1", "PROBE sum", TMO, ans, sizeof(ans)), 0);
	harness_end(p);
	cleanup_leaves_nothing("jt-restore");
}

/* The function runtime's path: thaw waits jailed on its API socket (in the jail's
 * root) and the runtime loads the snapshot through it. */
static void jailed_api_socket_loads_the_snapshot(void **state)
{
	char link[PATH_MAX + 32], sock[PATH_MAX], body[512], ans[256];
	const char *jx[] = {"--link", link, NULL};
	const char *tx[] = {"--api-sock", "/api.sock", NULL};
	struct vmproc *p;
	int st;

	if (!ready)
		skip();
	snprintf(link, sizeof(link), "%s:" SNAP ":ro", snap);
	jail_path(sock, sizeof(sock), "jt-api", "/root/api.sock");
	p = jailed("jt-api", jx, tx);
	if (harness_wait_socket(sock)) {
		vmproc_wait(p, 100); /* collects what it said, if it ended */
		vmproc_dump(p, "waiting for the jailed API socket");
		fail_msg("no API socket at %s", sock);
	}
	st = harness_http(sock, "PUT", "/snapshot/load",
			  "{\"snapshot_path\": \"" SNAP "\", \"resume_vm\": true}", body,
			  sizeof(body));
	if (st != 204) {
		vmproc_dump(p, "load through the jailed API socket");
		fail_msg("PUT /snapshot/load: %d %s", st, body);
	}
	if (vmproc_ask(p, "ping", "PROBE pong", TMO, ans, sizeof(ans))) {
		vmproc_dump(p, "after the load");
		fail();
	}
	harness_end(p);
	cleanup_leaves_nothing("jt-api");
}

/* The memory controller's key for the hierarchy the jailer will pick (v2 when the
 * unified tree offers the controller, as thaw-jailer decides). */
static const char *memory_limit_key(void)
{
	char buf[512] = "";
	FILE *f = fopen("/sys/fs/cgroup/cgroup.controllers", "r");

	if (f) {
		if (!fgets(buf, sizeof(buf), f))
			buf[0] = 0;
		fclose(f);
	}
	return strstr(buf, "memory") ? "memory.max" : "memory.limit_in_bytes";
}

static void memory_limit_below_the_guests_need_stops_thaw(void **state)
{
	char link[PATH_MAX + 32], limit[64], ans[256], path[PATH_MAX], cmd[PATH_MAX + 64];
	const char *key = memory_limit_key();
	const char *jx[] = {"--link", link, "--cgroup", limit, NULL};
	const char *tx[] = {"--restore", SNAP, NULL};
	struct vmproc *p;
	int st;

	if (!ready)
		skip();
	snprintf(link, sizeof(link), "%s:" SNAP ":ro", snap);
	snprintf(limit, sizeof(limit), "%s=%d", key, 24 << 20);
	p = jailed("jt-oom", jx, tx);
	if (vmproc_ask(p, "ping", "PROBE pong", TMO, ans, sizeof(ans))) {
		vmproc_dump(p, "restore under a memory limit");
		fail();
	}
	/* 48 MiB of guest writes, each page a private copy charged to the jail */
	vmproc_send(p, "touch 4 48 1");
	st = vmproc_wait(p, TMO);
	if (st == -1) {
		vmproc_dump(p, "over its memory limit");
		fail_msg("thaw still runs after touching twice its memory limit");
	}
	/* the cgroup's OOM killer ended it, not something else */
	if (strcmp(key, "memory.max") == 0) {
		snprintf(path, sizeof(path), "/sys/fs/cgroup/thaw/jt-oom/memory.events");
		snprintf(cmd, sizeof(cmd), "grep -Eq '^oom_kill [1-9]' %s", path);
	} else {
		snprintf(path, sizeof(path),
			 "/sys/fs/cgroup/memory/thaw/jt-oom/memory.oom_control");
		snprintf(cmd, sizeof(cmd), "grep -Eq '^oom_kill [1-9]' %s", path);
	}
	if (st != 128 + 9 || system(cmd) != 0) {
		vmproc_dump(p, "over its memory limit");
		fail_msg("exit status %d; wanted death by SIGKILL from the cgroup's OOM killer "
			 "(%s)",
			 st, path);
	}
	harness_end(p);
	cleanup_leaves_nothing("jt-oom");
}

/* thaw-jailer --cleanup for every jail of ours: already clean, a failed test's
 * leftovers, or (at setup) an interrupted earlier run's cgroups: all fine here. */
static void cleanup_all(void)
{
	char cmd[PATH_MAX * 4];
	const char *ids[] = {"jt-boot", "jt-restore", "jt-api", "jt-oom"};

	for (unsigned i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		snprintf(cmd, sizeof(cmd),
			 "%s --cleanup --id %s --chroot-base %s --exec-file %s 2>/dev/null", jailer,
			 ids[i], base, thaw);
		(void)!system(cmd);
	}
}

static int setup(void **state)
{
	const char *b = harness_env("THAW_BUILD");
	char cmd[PATH_MAX * 2];

	if (!mkdtemp(base) || chmod(base, 0755))
		return -1;
	snprintf(thaw, sizeof(thaw), "%s/thaw-static", b);
	snprintf(jailer, sizeof(jailer), "%s/thaw-jailer", b);
	snprintf(snap, sizeof(snap), "%s/ready.snap", base);
	/* the jailed user must be able to read the kernel it is linked */
	snprintf(probe, sizeof(probe), "%s/probe.elf", base);
	snprintf(cmd, sizeof(cmd), "install -m 444 %s %s", harness_env("THAW_PROBE"), probe);
	cleanup_all();
	return system(cmd) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[PATH_MAX * 2];

	cleanup_all();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", base);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(jailed_thaw_boots_and_snapshots),
	    cmocka_unit_test(jailed_restore_answers_with_no_power),
	    cmocka_unit_test(jailed_api_socket_loads_the_snapshot),
	    cmocka_unit_test(memory_limit_below_the_guests_need_stops_thaw),
	};
	char path[PATH_MAX];

	if (!harness_have_kvm())
		return 0;
	if (geteuid() != 0) {
		fprintf(stderr, "SKIPPED: the jail tests need root\n");
		return 0;
	}
	snprintf(path, sizeof(path), "%s/thaw-static", harness_env("THAW_BUILD"));
	if (access(path, X_OK)) {
		/* sanitizer builds: their runtime needs /proc and libraries a jail lacks */
		fprintf(stderr, "SKIPPED: no %s (make builds it; SAN=1 builds cannot)\n", path);
		return 0;
	}
	return cmocka_run_group_tests_name("jail", tests, setup, teardown);
}
