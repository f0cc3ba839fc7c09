/* Crash consistency: a writer (thaw-disk's hidden workload: stamped sector writes,
 * a flush every 8 writes, each completed flush logged) is killed with SIGKILL at a
 * random point, and then `qemu-img check` must find no corruption (leaks are allowed)
 * and every write acknowledged by a completed flush must be there (or overwritten by
 * a later write to the same sector).
 *
 * Four kinds of image take turns: 64 KiB clusters; 4 KiB clusters (more metadata per
 * write); 512-byte clusters (refcount blocks and a refcount table that grows); and an
 * image whose every cluster is shared with an internal snapshot (each write copies a
 * data cluster and its L2 table, and frees come after the flush).
 *
 * THAW_DISK_CRASH_N kills (default 24 here; 200 for the full run, docs/disk.md). */
#include "tests/unit/test_disk_harness.h"

#include <signal.h>
#include <time.h>

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* The last flush the workload logged, or -1 when none completed. */
static long long last_flush(const char *log)
{
	FILE *f = fopen(log, "r");
	long long n = -1, v;

	if (!f)
		return -1;
	while (fscanf(f, "%lld", &v) == 1)
		n = v;
	fclose(f);
	return n;
}

/* Returns 1 when flushed data was there to verify. */
static int one_kill(struct dfx *f, const char *bin, unsigned i, uint64_t *rs)
{
	const char *img = P(f, 0, "crash.qcow2"), *log = P(f, 1, "crash.log");
	static const char *const kinds[] = {"-o cluster_size=65536", "-o cluster_size=4096",
					    "-o cluster_size=512", "snapshot"};
	const char *kind = kinds[i % 4];
	char seed[32], out[8192];
	struct timespec ts;
	long long n;
	pid_t pid;
	int st, rc;

	sh("rm -f %s %s", img, log);
	if (!strcmp(kind, "snapshot"))
		rc = sh("qemu-img create -f qcow2 %s 16M && qemu-io -c 'write -P 0 0 16M' %s && "
			"qemu-img snapshot -c shared %s",
			img, img, img);
	else
		rc = sh("qemu-img create -f qcow2 %s %s 16M", kind, img);
	assert_int_equal(rc, 0);
	snprintf(seed, sizeof(seed), "%u", 1000 + i);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		execl(bin, bin, "_workload", img, seed, log, (char *)NULL);
		_exit(127);
	}
	/* 1..150 ms: somewhere in a write, a flush, or between them. */
	ts.tv_sec = 0;
	ts.tv_nsec = (long)(1 + rnd(rs) % 150) * 1000000L;
	nanosleep(&ts, NULL);
	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	if (!WIFSIGNALED(st)) /* it ended on its own: that is a failure of the writer */
		fail_msg("kill %u (%s): the workload exited with %d before the kill", i, kind,
			 WEXITSTATUS(st));
	rc = sh_out(out, sizeof(out), "qemu-img check %s", img);
	if (rc != 0 && rc != 3)
		fail_msg("kill %u (%s): qemu-img check exit %d:\n%s", i, kind, rc, out);
	n = last_flush(log);
	if (n >= 0) {
		rc = sh_out(out, sizeof(out), "%s _verify %s %s %lld", bin, img, seed, n);
		if (rc != 0)
			fail_msg("kill %u (%s): flushed writes 0..%lld not all present:\n%s", i,
				 kind, n, out);
	}
	/* The crashed image takes more writes and stays consistent. */
	if (i % 8 == 0) {
		rc = sh("qemu-io -c 'write -P 0x99 3M 200k' %s && qemu-img check %s", img, img);
		assert_true(rc == 0 || rc == 3);
	}
	return n >= 0;
}

static void test_sigkill_at_random_points_leaves_a_consistent_image(void **state)
{
	struct dfx *f = *state;
	const char *bin, *env = getenv("THAW_DISK_CRASH_N");
	unsigned n = env ? (unsigned)strtoul(env, NULL, 10) : 24;
	uint64_t rs = 0x2545f4914f6cdd1dull;
	unsigned verified = 0;

	REQUIRE_QEMU_IMG();
	bin = thaw_disk_bin();
	for (unsigned i = 0; i < n; i++)
		verified += (unsigned)one_kill(f, bin, i, &rs);
	fprintf(stderr,
		"crash: %u kills, qemu-img check clean of corruption each time; "
		"flushed writes present in all %u kills that came after a flush\n",
		n, verified);
	assert_true(verified > 0 || n == 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_sigkill_at_random_points_leaves_a_consistent_image,
					    dfx_setup, dfx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
