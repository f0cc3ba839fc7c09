/* Crash consistency: a writer (thaw-disk's hidden workload: stamped sector writes,
 * a flush every 8 writes, each completed flush logged) is stopped at a random point,
 * and then `qemu-img check` must find no corruption (leaks are allowed) and every
 * write acknowledged by a completed flush must be there (or overwritten by a later
 * write to the same sector).
 *
 * Two ways of stopping it:
 * - SIGKILL after 1..150 ms: what the process wrote stays (the page cache keeps it),
 *   so this tests the order of the writes;
 * - a power cut (tests/unit/crash_shim.c, preloaded): at a chosen write to the image,
 *   each write since the image's last fdatasync lands or not, at random, then SIGKILL;
 *   this tests the barriers (fdatasync) between them as well.
 *
 * Five kinds of image take turns: 64 KiB clusters; 4 KiB clusters (more metadata per
 * write); 512-byte clusters (refcount blocks and a refcount table that grows); an
 * image whose every cluster is shared with an internal snapshot (each write copies a
 * data cluster and its L2 table, and frees come after the flush); and a workload that
 * takes an internal snapshot instead of each flush and deletes the oldest beyond two
 * (a stop inside create or delete). For that last one the format has a window of its
 * own (docs/disk.md): a COPIED flag may disagree with the stored refcount of a
 * cluster the image references once (qemu-img check counts it as an error); that,
 * and only that, is accepted there, and `qemu-img check -r all` must then leave the
 * image clean.
 *
 * THAW_DISK_CRASH_N kills and as many power cuts (default 24 each here; 200 for the
 * full run, docs/disk.md). */
#include "tests/unit/test_disk_harness.h"

#include <inttypes.h>
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

/* Stops that left only the snapshot operations' COPIED window (repaired by -r all). */
static unsigned copied_window;

static const char *const kinds[] = {"-o cluster_size=65536", "-o cluster_size=4096",
				    "-o cluster_size=512", "snapshot", "snapshots"};

static void make_image(const char *img, const char *kind)
{
	int rc;

	if (!strcmp(kind, "snapshot"))
		rc = sh("qemu-img create -f qcow2 %s 16M && qemu-io -c 'write -P 0 0 16M' %s && "
			"qemu-img snapshot -c shared %s",
			img, img, img);
	else if (!strcmp(kind, "snapshots"))
		rc = sh("qemu-img create -f qcow2 %s 16M", img);
	else
		rc = sh("qemu-img create -f qcow2 %s %s 16M", kind, img);
	assert_int_equal(rc, 0);
}

/* Whether every error in qemu-img check's output `out` is a COPIED flag on a cluster
 * with one real reference: set where the stored refcount is above 1 but the check
 * found the extra count leaked (reference=1), or clear where the refcount is 1 (a
 * needless copy-on-write at most). Anything else is corruption. */
static bool only_harmless_copied_flags(const char *out, unsigned cluster_bits)
{
	const char *l = out;
	unsigned n = 0;

	for (; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
		unsigned long long e, rc, off;
		char want[96];
		int idx;

		if (strncmp(l, "ERROR", 5))
			continue;
		if (sscanf(l, "ERROR OFLAG_COPIED data cluster: l2_entry=%llx refcount=%llu", &e,
			   &rc) != 2 &&
		    sscanf(l,
			   "ERROR OFLAG_COPIED L2 cluster: l1_index=%d l1_entry=%llx refcount=%llu",
			   &idx, &e, &rc) != 3)
			return false;
		n++;
		if (!(e >> 63) && rc == 1)
			continue;
		off = e & 0x00fffffffffffe00ull;
		snprintf(want, sizeof(want), "Leaked cluster %llu refcount=%llu reference=1",
			 off >> cluster_bits, rc);
		if (!(e >> 63) || !strstr(out, want))
			return false;
	}
	return n > 0;
}

/* Judges a stopped writer's image: no corruption, the flushed writes present. */
static void judge(const char *bin, const char *img, const char *log, const char *seed,
		  const char *kind, const char *how, unsigned i)
{
	char out[16384];
	long long n;
	int rc;

	rc = sh_out(out, sizeof(out), "qemu-img check %s", img);
	if (rc == 2 && !strcmp(kind, "snapshots") && only_harmless_copied_flags(out, 16)) {
		char fixed[4096];

		rc = sh_out(fixed, sizeof(fixed),
			    "qemu-img check -r all %s >/dev/null; "
			    "qemu-img check %s",
			    img, img);
		if (rc != 0)
			fail_msg(
			    "%s %u (%s): after -r all, qemu-img check exit %d:\n%s\nbefore:\n%s",
			    how, i, kind, rc, fixed, out);
		copied_window++;
	} else if (rc != 0 && rc != 3) {
		fail_msg("%s %u (%s): qemu-img check exit %d:\n%s", how, i, kind, rc, out);
	}
	n = last_flush(log);
	if (n >= 0) {
		rc = sh_out(out, sizeof(out), "%s _verify %s %s %lld", bin, img, seed, n);
		if (rc != 0)
			fail_msg("%s %u (%s): flushed writes 0..%lld not all present:\n%s", how, i,
				 kind, n, out);
	}
	/* The crashed image takes more writes and stays consistent. */
	if (i % 8 == 0) {
		rc = sh("qemu-io -c 'write -P 0x99 3M 200k' %s && qemu-img check %s", img, img);
		assert_true(rc == 0 || rc == 3);
	}
}

/* `env`: NAME=VALUE strings (NULL-terminated, or NULL) set in the workload only. */
static pid_t start_workload(const char *bin, const char *img, const char *seed, const char *log,
			    const char *kind, char *const *env)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		for (unsigned i = 0; env && env[i]; i++)
			putenv(env[i]);
		if (!strcmp(kind, "snapshots"))
			execl(bin, bin, "_workload", img, seed, log, "snap", (char *)NULL);
		else
			execl(bin, bin, "_workload", img, seed, log, (char *)NULL);
		_exit(127);
	}
	return pid;
}

/* Returns 1 when flushed data was there to verify. */
static int one_kill(struct dfx *f, const char *bin, unsigned i, uint64_t *rs)
{
	const char *img = P(f, 0, "crash.qcow2"), *log = P(f, 1, "crash.log");
	const char *kind = kinds[i % 5];
	char seed[32];
	struct timespec ts;
	pid_t pid;
	int st;

	sh("rm -f %s %s", img, log);
	make_image(img, kind);
	snprintf(seed, sizeof(seed), "%u", 1000 + i);
	pid = start_workload(bin, img, seed, log, kind, NULL);
	/* 1..150 ms: somewhere in a write, a flush, or between them. */
	ts.tv_sec = 0;
	ts.tv_nsec = (long)(1 + rnd(rs) % 150) * 1000000L;
	nanosleep(&ts, NULL);
	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	if (!WIFSIGNALED(st)) /* it ended on its own: that is a failure of the writer */
		fail_msg("kill %u (%s): the workload exited with %d before the kill", i, kind,
			 WEXITSTATUS(st));
	judge(bin, img, log, seed, kind, "kill", i);
	return last_flush(log) >= 0;
}

static int one_power_cut(struct dfx *f, const char *bin, const char *shim, unsigned i, uint64_t *rs)
{
	const char *img = P(f, 0, "cut.qcow2"), *log = P(f, 1, "cut.log");
	const char *kind = kinds[i % 5];
	char seed[32], at[32], coin[32], e_pre[4300], e_img[700], e_at[64], e_coin[64];
	char e_asan[] = "ASAN_OPTIONS=verify_asan_link_order=0"; /* SAN=1 builds */
	char *env[] = {e_pre, e_img, e_at, e_coin, e_asan, NULL};
	pid_t pid;
	int st;

	sh("rm -f %s %s", img, log);
	make_image(img, kind);
	snprintf(seed, sizeof(seed), "%u", 5000 + i);
	/* 1..600 writes and syncs of the image: a few dozen flushes in (1..200 with
	 * snapshots: more of the stops land inside their steps). */
	snprintf(at, sizeof(at), "%" PRIu64, 1 + rnd(rs) % (strcmp(kind, "snapshots") ? 600 : 200));
	snprintf(coin, sizeof(coin), "%" PRIu64, rnd(rs));
	snprintf(e_pre, sizeof(e_pre), "LD_PRELOAD=%s", shim);
	snprintf(e_img, sizeof(e_img), "THAW_CRASH_IMAGE=%s", img);
	snprintf(e_at, sizeof(e_at), "THAW_CRASH_AT=%s", at);
	snprintf(e_coin, sizeof(e_coin), "THAW_CRASH_SEED=%s", coin);
	pid = start_workload(bin, img, seed, log, kind, env);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL)
		fail_msg("power cut %u (%s) at write %s: the workload ended %s %d, not by the cut",
			 i, kind, at, WIFSIGNALED(st) ? "by signal" : "with exit",
			 WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
	judge(bin, img, log, seed, kind, "power cut", i);
	return last_flush(log) >= 0;
}

static unsigned runs(void)
{
	const char *env = getenv("THAW_DISK_CRASH_N");

	return env ? (unsigned)strtoul(env, NULL, 10) : 24;
}

static void test_sigkill_at_random_points_leaves_a_consistent_image(void **state)
{
	struct dfx *f = *state;
	const char *bin;
	unsigned n = runs(), verified = 0;
	uint64_t rs = 0x2545f4914f6cdd1dull;

	REQUIRE_QEMU_IMG();
	bin = thaw_disk_bin();
	for (unsigned i = 0; i < n; i++)
		verified += (unsigned)one_kill(f, bin, i, &rs);
	fprintf(stderr,
		"crash: %u kills, qemu-img check clean of corruption each time (%u in a "
		"snapshot's COPIED window); "
		"flushed writes present in all %u kills that came after a flush\n",
		n, copied_window, verified);
	copied_window = 0;
	assert_true(verified > 0 || n == 0);
}

static void test_power_cut_at_random_writes_leaves_a_consistent_image(void **state)
{
	struct dfx *f = *state;
	const char *bin, *shim;
	unsigned n = runs(), verified = 0;
	uint64_t rs = 0x9e3779b97f4a7c15ull;

	REQUIRE_QEMU_IMG();
	bin = thaw_disk_bin();
	shim = build_file("tests/crash_shim.so", R_OK);
	for (unsigned i = 0; i < n; i++)
		verified += (unsigned)one_power_cut(f, bin, shim, i, &rs);
	fprintf(stderr,
		"crash: %u power cuts (unsynced writes lost at random), qemu-img check clean "
		"of corruption each time (%u in a snapshot's COPIED window); flushed writes "
		"present in all %u that came after a "
		"flush\n",
		n, copied_window, verified);
	copied_window = 0;
	assert_true(verified > 0 || n == 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_sigkill_at_random_points_leaves_a_consistent_image,
					    dfx_setup, dfx_teardown),
	    cmocka_unit_test_setup_teardown(
		test_power_cut_at_random_writes_leaves_a_consistent_image, dfx_setup, dfx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
