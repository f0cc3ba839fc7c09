/* Snapshots of real VMs: create, restore, clones, the prepared path, and corrupt files.
 * The probe guest plays the function; its checksums and its `compute` results are
 * compared with what the host computes independently (probesum). */
#include <dirent.h>
#include <errno.h>
#include <json-c/json.h>
#include <setjmp.h>
#include <signal.h>
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

#define TMO 60000

static char dir[] = "/tmp/thaw-snaptest-XXXXXX";

static void expect(struct vmproc *p, const char *needle, char *line, size_t len)
{
	if (vmproc_expect(p, needle, TMO, line, len)) {
		vmproc_dump(p, needle);
		fail();
	}
}

static void ask(struct vmproc *p, const char *req, const char *prefix, char *ans, size_t len)
{
	if (vmproc_ask(p, req, prefix, TMO, ans, len)) {
		vmproc_dump(p, req);
		fail();
	}
}

static void path_in_dir(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", dir, name);
}

/* Boots the probe and snapshots it once all its CPUs are up (it answers `info` after
 * starting them); the process then exits. */
static void make_ready_snapshot(const char *snap, unsigned vcpus, unsigned mem_mib)
{
	char v[8], m[16];
	const char *argv[] = {harness_env("THAW_BIN"),
			      "--kernel",
			      harness_env("THAW_PROBE"),
			      "--vcpus",
			      v,
			      "--mem-mib",
			      m,
			      "--snapshot",
			      snap,
			      "--snapshot-after",
			      "PROBE info",
			      "--snapshot-then",
			      "exit",
			      NULL};
	struct vmproc *p;
	int st;

	snprintf(v, sizeof(v), "%u", vcpus);
	snprintf(m, sizeof(m), "%u", mem_mib);
	p = harness_start(argv);
	expect(p, "THAW_PROBE_READY", NULL, 0);
	assert_int_equal(vmproc_send(p, "info"), 0);
	st = vmproc_wait(p, TMO);
	if (st != 0) {
		vmproc_dump(p, "snapshot create");
		fail();
	}
	harness_end(p);
}

static struct vmproc *restore(const char *snap, const char *extra1, const char *extra2)
{
	const char *argv[] = {harness_env("THAW_BIN"), "--restore", snap, extra1, extra2, NULL};

	return harness_start(argv);
}

/* Runs a host program and returns its first output line. */
static void run_capture(const char *cmd, char *out, size_t len)
{
	FILE *f = popen(cmd, "r");

	assert_non_null(f);
	assert_non_null(fgets(out, (int)len, f));
	out[strcspn(out, "\n")] = 0;
	pclose(f);
}

static void probesum(char *out, size_t len, const char *args)
{
	char cmd[1024], probe[512];

	snprintf(probe, sizeof(probe), "%s", harness_env("THAW_PROBE"));
	*strrchr(probe, '/') = 0;
	snprintf(cmd, sizeof(cmd), "%s/probesum %s", probe, args);
	run_capture(cmd, out, len);
}

static void ready_snapshot_restores_and_answers(void **state)
{
	char snap[256], line[256], ans[256], want[64];
	struct vmproc *p;

	path_in_dir(snap, sizeof(snap), "ready.snap");
	make_ready_snapshot(snap, 1, 64);
	p = restore(snap, NULL, NULL);
	ask(p, "ping", "PROBE pong", ans, sizeof(ans));
	ask(p, "touch 8 16 7", "PROBE touch", ans, sizeof(ans));
	probesum(want, sizeof(want), "touch 8 16 7");
	assert_non_null(strstr(ans, want));
	(void)line;
	harness_end(p);
}

/* A snapshot taken in the middle of `compute` resumes it: the answer equals what the
 * host computes for an uninterrupted run. */
static void snapshot_mid_computation_gives_the_uninterrupted_result(void **state)
{
	char snap[256], line[512], want[64], req[64];
	const unsigned long long n = 400000000ull;
	const char *argv[] = {harness_env("THAW_BIN"),
			      "--kernel",
			      harness_env("THAW_PROBE"),
			      "--vcpus",
			      "2",
			      "--mem-mib",
			      "64",
			      "--snapshot",
			      snap,
			      "--snapshot-then",
			      "exit",
			      NULL};
	struct vmproc *p;

	path_in_dir(snap, sizeof(snap), "mid.snap");
	p = harness_start(argv);
	expect(p, "THAW_PROBE_READY", line, sizeof(line));
	snprintf(req, sizeof(req), "compute %llu", n);
	assert_int_equal(vmproc_send(p, req), 0);
	usleep(300 * 1000);
	kill(p->pid, SIGUSR1);
	assert_int_equal(vmproc_wait(p, TMO), 0);
	/* the computation was still running when the snapshot was taken */
	if (strstr(p->out, "PROBE compute")) {
		print_error("compute %llu finished before the snapshot: raise n\n", n);
		fail();
	}
	harness_end(p);

	p = restore(snap, NULL, NULL);
	expect(p, "PROBE compute", line, sizeof(line));
	snprintf(req, sizeof(req), "compute %llu 0", n);
	probesum(want, sizeof(want), req);
	assert_non_null(strstr(line, want));
	harness_end(p);
}

static json_object *inspect(const char *snap)
{
	char cmd[1024];
	FILE *f;
	static char buf[8 << 20];
	size_t n;
	json_object *j;

	snprintf(cmd, sizeof(cmd), "%s/thaw-snap inspect %s", harness_env("THAW_BUILD"), snap);
	f = popen(cmd, "r");
	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	pclose(f);
	buf[n] = 0;
	j = json_tokener_parse(buf);
	assert_non_null(j);
	return j;
}

static json_object *section(json_object *snap, const char *name)
{
	json_object *secs = json_object_object_get(snap, "sections");

	for (size_t i = 0; i < json_object_array_length(secs); i++) {
		json_object *s = json_object_array_get_idx(secs, i);

		if (strcmp(json_object_get_string(json_object_object_get(s, "name")), name) == 0)
			return json_object_object_get(s, "fields");
	}
	fail_msg("no section %s", name);
	return NULL;
}

/* Whether KVM's PIT kernel thread of process `pid` exists ("kvm-pit/<pid>"): it is made
 * with the in-kernel PIT and only then. */
static bool pit_thread_of(pid_t pid)
{
	char want[32], path[300], comm[64];
	bool found = false;
	DIR *d = opendir("/proc");
	struct dirent *e;

	assert_non_null(d);
	snprintf(want, sizeof(want), "kvm-pit/%d", (int)pid);
	while (!found && (e = readdir(d))) {
		FILE *f;

		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/comm", e->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(comm, sizeof(comm), f)) {
			comm[strcspn(comm, "\n")] = 0;
			found = strcmp(comm, want) == 0;
		}
		fclose(f);
	}
	closedir(d);
	return found;
}

static long long pit_field(json_object *snap, const char *name)
{
	json_object *v = json_object_object_get(section(snap, "pit"), name);

	assert_non_null(v);
	return json_object_get_int64(v);
}

/* Restores `snap` with --snapshot `out` (taken at SIGUSR1, then exit); the process. */
static struct vmproc *restore_snapshot_to(const char *snap, const char *out)
{
	const char *argv[] = {harness_env("THAW_BIN"), "--restore", snap, "--snapshot", out,
			      "--snapshot-then",       "exit",	    NULL};

	return harness_start(argv);
}

static void snapshot_now(struct vmproc *p)
{
	kill(p->pid, SIGUSR1);
	if (vmproc_wait(p, TMO) != 0) {
		vmproc_dump(p, "snapshot at SIGUSR1");
		fail();
	}
	harness_end(p);
}

/* `pit T` on the probe: the two counts it read, after checking the timer counted down
 * between them (a PIT served the ports). */
static void ask_pit(struct vmproc *p, const char *req)
{
	char ans[256];
	unsigned t, p61, c1, c2;

	ask(p, req, "PROBE pit", ans, sizeof(ans));
	if (sscanf(ans, " timer=%u port61=%u count1=%u count2=%u", &t, &p61, &c1, &c2) != 4)
		fail_msg("unexpected answer: %s", ans);
	if (!(c1 < 0xffff && c2 < c1))
		fail_msg("timer %u did not count down: %s", t, ans);
}

/* A restored probe never programmed its PIT, so thaw restores it without one (KVM's
 * kernel thread for it is a third of a fresh VM's cost on PVM): a snapshot of it saves
 * the PIT as it was restored; the first access to its ports makes it, with the access
 * run again against it (the timer counts); a snapshot then has what the guest
 * programmed; a snapshot whose timer 0 runs is restored with its PIT made at once. */
static void pit_is_made_when_the_guest_first_touches_it(void **state)
{
	char snap[256], s1[256], s2[256], s3[256], ans[64];
	json_object *j0, *j1, *j2;
	struct vmproc *p;

	path_in_dir(snap, sizeof(snap), "pit.snap");
	path_in_dir(s1, sizeof(s1), "pit-untouched.snap");
	path_in_dir(s2, sizeof(s2), "pit-timer2.snap");
	path_in_dir(s3, sizeof(s3), "pit-timer0.snap");
	make_ready_snapshot(snap, 1, 64);
	j0 = inspect(snap);
	assert_int_equal(pit_field(j0, "ch0.mode"), 0xff);

	p = restore_snapshot_to(snap, s1);
	ask(p, "ping", "PROBE pong", ans, sizeof(ans));
	assert_false(pit_thread_of(p->pid));
	snapshot_now(p);
	j1 = inspect(s1);
	assert_true(json_object_equal(section(j0, "pit"), section(j1, "pit")));

	p = restore_snapshot_to(snap, s2);
	ask(p, "ping", "PROBE pong", ans, sizeof(ans));
	assert_false(pit_thread_of(p->pid));
	ask_pit(p, "pit");
	assert_true(pit_thread_of(p->pid));
	ask_pit(p, "pit 0");
	snapshot_now(p);
	j2 = inspect(s2);
	assert_int_equal(pit_field(j2, "ch2.mode"), 0);
	assert_int_equal(pit_field(j2, "ch0.mode"), 2);

	/* Timer 0 programmed: the PIT is made with the VM, and goes on counting. */
	p = restore_snapshot_to(s2, s3);
	ask(p, "ping", "PROBE pong", ans, sizeof(ans));
	assert_true(pit_thread_of(p->pid));
	ask_pit(p, "pit 2");
	harness_end(p);

	/* A prepared VM has no PIT; restored into, it makes one only when it must. */
	p = restore(snap, "--prepare", "mem-mib=64,vcpus=1");
	ask(p, "ping", "PROBE pong", ans, sizeof(ans));
	assert_false(pit_thread_of(p->pid));
	ask_pit(p, "pit");
	assert_true(pit_thread_of(p->pid));
	harness_end(p);
	p = restore(s2, "--prepare", "mem-mib=64,vcpus=1");
	ask(p, "ping", "PROBE pong", ans, sizeof(ans));
	assert_true(pit_thread_of(p->pid));
	ask_pit(p, "pit 0");
	harness_end(p);

	json_object_put(j0);
	json_object_put(j1);
	json_object_put(j2);
}

/* The LAPIC register page (hex), but for the timer's current count (0x390), which
 * KVM computes from the running clock when the page is read. */
static bool lapic_equal(json_object *a, json_object *b)
{
	const char *x = json_object_get_string(a), *y = json_object_get_string(b);
	size_t n = strlen(x), skip = 0x390 * 2;

	if (strlen(y) != n || n < skip + 8)
		return false;
	return memcmp(x, y, skip) == 0 && strcmp(x + skip + 8, y + skip + 8) == 0;
}

/* Restore a snapshot paused, snapshot it again at once: every register, MSR (but the
 * running TSC) and the memory checksums must be what was saved. */
static void restored_state_matches_the_saved_state_field_by_field(void **state)
{
	char a[256], b[256];
	/* The same machine, so the same generation ID: memory compares equal. */
	const char *argv[] = {harness_env("THAW_BIN"),
			      "--restore",
			      a,
			      "--paused",
			      "--keep-generation",
			      "--snapshot",
			      b,
			      "--snapshot-then",
			      "exit",
			      NULL};
	struct vmproc *p;
	json_object *ja, *jb, *fa, *fb;
	unsigned compared = 0;

	path_in_dir(a, sizeof(a), "a.snap");
	path_in_dir(b, sizeof(b), "b.snap");
	make_ready_snapshot(a, 2, 64);
	p = harness_start(argv);
	usleep(500 * 1000);
	kill(p->pid, SIGUSR1);
	if (vmproc_wait(p, TMO) != 0) {
		vmproc_dump(p, "re-snapshot");
		fail();
	}
	harness_end(p);

	ja = inspect(a);
	jb = inspect(b);
	for (unsigned cpu = 0; cpu < 2; cpu++) {
		char name[16];

		snprintf(name, sizeof(name), "vcpu.%u", cpu);
		fa = section(ja, name);
		fb = section(jb, name);
		json_object_object_foreach(fa, key, va)
		{
			json_object *vb = json_object_object_get(fb, key);

			if (strcmp(key, "msrs") == 0)
				continue;
			if (strcmp(key, "lapic") == 0 && lapic_equal(va, vb)) {
				compared++;
				continue;
			}
			if (!json_object_equal(va, vb))
				fail_msg("%s.%s: saved %s, restored %s", name, key,
					 json_object_to_json_string(va),
					 json_object_to_json_string(vb));
			compared++;
		}
		json_object *ma = json_object_object_get(fa, "msrs");
		json_object *mb = json_object_object_get(fb, "msrs");
		assert_int_equal(json_object_array_length(ma), json_object_array_length(mb));
		for (size_t i = 0; i < json_object_array_length(ma); i++) {
			json_object *ea = json_object_array_get_idx(ma, i);
			json_object *eb = json_object_array_get_idx(mb, i);
			const char *idx =
			    json_object_get_string(json_object_object_get(ea, "index"));

			assert_string_equal(
			    idx, json_object_get_string(json_object_object_get(eb, "index")));
			/* counters that keep running: the TSC, Hyper-V's VP runtime and
			 * reference time */
			if (strcmp(idx, "0x10") == 0 || strcmp(idx, "0x40000010") == 0 ||
			    strcmp(idx, "0x40000020") == 0)
				continue;
			if (!json_object_equal(json_object_object_get(ea, "value"),
					       json_object_object_get(eb, "value")))
				fail_msg("%s MSR %s: saved %s, restored %s", name, idx,
					 json_object_to_json_string(ea),
					 json_object_to_json_string(eb));
			compared++;
		}
	}
	/* memory: identical chunk checksums */
	assert_true(json_object_equal(section(ja, "memory.sums"), section(jb, "memory.sums")));
	assert_true(compared > 100);
	json_object_put(ja);
	json_object_put(jb);
}

/* Several clones from one file at once: each runs on its own, the page cache is
 * shared, and the file is unchanged afterwards. */
static void clones_run_independently_and_leave_the_file_unchanged(void **state)
{
	enum { N = 4 };
	char snap[256], before[128], after[128], cmd[512], ans[256], req[64], want[64];
	struct vmproc *p[N];

	path_in_dir(snap, sizeof(snap), "clone.snap");
	make_ready_snapshot(snap, 1, 64);
	snprintf(cmd, sizeof(cmd), "sha256sum %s", snap);
	run_capture(cmd, before, sizeof(before));
	for (int i = 0; i < N; i++)
		p[i] = restore(snap, NULL, NULL);
	for (int i = 0; i < N; i++) {
		snprintf(req, sizeof(req), "touch 8 8 %d", 100 + i);
		ask(p[i], req, "PROBE touch", ans, sizeof(ans));
		probesum(want, sizeof(want), req);
		assert_non_null(strstr(ans, want));
	}
	/* each clone kept its own writes */
	for (int i = 0; i < N; i++) {
		snprintf(req, sizeof(req), "touch 8 8 %d", 100 + i);
		probesum(want, sizeof(want), req);
		ask(p[i], "sum 8 8", "PROBE sum", ans, sizeof(ans));
		assert_non_null(strstr(ans, want));
		harness_end(p[i]);
	}
	run_capture(cmd, after, sizeof(after));
	assert_string_equal(before, after);
}

static void prepared_restore_runs_the_same_guest(void **state)
{
	char snap[256], ans[256], want[64];
	struct vmproc *p;

	path_in_dir(snap, sizeof(snap), "prep.snap");
	make_ready_snapshot(snap, 2, 64);
	p = restore(snap, "--prepare", "mem-mib=64,vcpus=2");
	ask(p, "info", "PROBE info", ans, sizeof(ans));
	assert_non_null(strstr(ans, "online=2"));
	ask(p, "touch 4 20 9", "PROBE touch", ans, sizeof(ans));
	probesum(want, sizeof(want), "touch 4 20 9");
	assert_non_null(strstr(ans, want));
	harness_end(p);
	/* a prepared VM of another shape falls back to the plain path */
	p = restore(snap, "--prepare", "mem-mib=128,vcpus=1");
	ask(p, "ping", "PROBE pong", ans, sizeof(ans));
	harness_end(p);
}

/* The restore path allocates nothing once its buffers exist: into a prepared VM, thaw's
 * own code makes no malloc, calloc or realloc from the start of vm_restore to its end
 * (thaw-alloc-count wraps them). A plain restore's count is printed; creating a VM may
 * allocate what it learns of the host once per process. */
static void prepared_restore_allocates_nothing(void **state)
{
	char snap[256], bin[512], ans[256];
	const char *argv[] = {bin, "--restore", snap, "--prepare", "mem-mib=64,vcpus=1", NULL};
	const char *plain[] = {bin, "--restore", snap, NULL};
	struct vmproc *p;

	snprintf(bin, sizeof(bin), "%s/tests/thaw-alloc-count", harness_env("THAW_BUILD"));
	path_in_dir(snap, sizeof(snap), "alloc.snap");
	make_ready_snapshot(snap, 1, 64);
	p = harness_start(argv);
	ask(p, "ping", "PROBE pong", ans, sizeof(ans));
	if (!strstr(p->err, "thaw: restore allocations: 0\n")) {
		vmproc_dump(p, "allocations of a prepared restore");
		fail();
	}
	harness_end(p);
	p = harness_start(plain);
	ask(p, "ping", "PROBE pong", ans, sizeof(ans));
	print_message("plain restore: %s", strstr(p->err, "restore allocations") ?: "?\n");
	harness_end(p);
}

/* A clone gets its new generation ID before its vCPUs first run: the restore's
 * `generation` phase comes before `running` (--timing prints both, from one clock). */
static void generation_id_is_written_before_the_first_run(void **state)
{
	char snap[256], ans[256];
	unsigned long long gen = 0, run = 0;
	struct vmproc *p;
	const char *g, *r;

	path_in_dir(snap, sizeof(snap), "genid.snap");
	make_ready_snapshot(snap, 1, 64);
	p = restore(snap, "--timing", NULL);
	ask(p, "ping", "PROBE pong", ans, sizeof(ans));
	g = strstr(p->err, "generation_us=");
	r = strstr(p->err, "running_us=");
	if (!g || !r || sscanf(g, "generation_us=%llu", &gen) != 1 ||
	    sscanf(r, "running_us=%llu", &run) != 1 || gen == 0 || gen > run) {
		vmproc_dump(p, "restore phases");
		fail_msg("generation_us=%llu running_us=%llu", gen, run);
	}
	harness_end(p);
}

/* A snapshot of a guest without VMGenID (--no-acpi, or from before thaw had one)
 * restores as before, and says that the clone's entropy is not renewed. */
static void snapshot_without_vmgenid_restores_and_says_so(void **state)
{
	char snap[256], ans[256];
	const char *argv[] = {harness_env("THAW_BIN"),
			      "--kernel",
			      harness_env("THAW_PROBE"),
			      "--no-acpi",
			      "--mem-mib",
			      "64",
			      "--snapshot",
			      snap,
			      "--snapshot-after",
			      "THAW_PROBE_READY",
			      "--snapshot-then",
			      "exit",
			      NULL};
	struct vmproc *p;

	path_in_dir(snap, sizeof(snap), "noacpi.snap");
	p = harness_start(argv);
	assert_int_equal(vmproc_wait(p, TMO), 0);
	harness_end(p);
	p = restore(snap, NULL, NULL);
	ask(p, "ping", "PROBE pong", ans, sizeof(ans));
	if (!strstr(p->err, "the clone's entropy is not renewed")) {
		vmproc_dump(p, "restore without VMGenID");
		fail();
	}
	harness_end(p);
}

/* ---- damaged files: refused with exit status 6 and a message naming the cause */

static void copy_file(const char *from, const char *to)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "cp --sparse=always %s %s", from, to);
	assert_int_equal(system(cmd), 0);
}

static void expect_restore_refused(const char *snap, const char *needle)
{
	struct vmproc *p = restore(snap, NULL, NULL);
	int st = vmproc_wait(p, TMO);

	if (st != 6 || !strstr(p->err, needle)) {
		print_error("want status 6 and '%s', got %d\n", needle, st);
		vmproc_dump(p, "damaged snapshot");
		fail();
	}
	harness_end(p);
}

static void damaged_snapshots_are_refused_naming_the_cause(void **state)
{
	char good[256], bad[256];
	json_object *j, *secs;
	FILE *f;

	path_in_dir(good, sizeof(good), "good.snap");
	path_in_dir(bad, sizeof(bad), "bad.snap");
	make_ready_snapshot(good, 1, 64);

	/* a flipped bit in each state section */
	j = inspect(good);
	secs = json_object_object_get(j, "sections");
	for (size_t i = 0; i < json_object_array_length(secs); i++) {
		json_object *s = json_object_array_get_idx(secs, i);
		const char *name = json_object_get_string(json_object_object_get(s, "name"));
		long off = json_object_get_int64(json_object_object_get(s, "offset"));
		long size = json_object_get_int64(json_object_object_get(s, "size"));
		int c;

		if (strncmp(name, "memory", 6) == 0 || size == 0)
			continue;
		copy_file(good, bad);
		f = fopen(bad, "r+");
		assert_non_null(f);
		fseek(f, off + size / 2, SEEK_SET);
		c = fgetc(f);
		fseek(f, off + size / 2, SEEK_SET);
		fputc(c ^ 0x10, f);
		fclose(f);
		expect_restore_refused(bad, name);
	}
	json_object_put(j);

	/* truncated: the memory section runs past the end */
	copy_file(good, bad);
	assert_int_equal(truncate(bad, 3 << 20), 0);
	expect_restore_refused(bad, "truncated");

	/* wrong magic */
	copy_file(good, bad);
	f = fopen(bad, "r+");
	fputs("NOTTHAW!", f);
	fclose(f);
	expect_restore_refused(bad, "magic");

	/* not there at all */
	expect_restore_refused("/nonexistent.snap", "No such file");
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
	    cmocka_unit_test(ready_snapshot_restores_and_answers),
	    cmocka_unit_test(snapshot_mid_computation_gives_the_uninterrupted_result),
	    cmocka_unit_test(restored_state_matches_the_saved_state_field_by_field),
	    cmocka_unit_test(clones_run_independently_and_leave_the_file_unchanged),
	    cmocka_unit_test(prepared_restore_runs_the_same_guest),
	    cmocka_unit_test(pit_is_made_when_the_guest_first_touches_it),
	    cmocka_unit_test(prepared_restore_allocates_nothing),
	    cmocka_unit_test(generation_id_is_written_before_the_first_run),
	    cmocka_unit_test(snapshot_without_vmgenid_restores_and_says_so),
	    cmocka_unit_test(damaged_snapshots_are_refused_naming_the_cause),
	};

	if (!harness_have_kvm())
		return 0;
	return cmocka_run_group_tests_name("snapshot", tests, setup, teardown);
}
