/* Cold boot of real VMs: the probe guest with 1 and 2 vCPUs, its memory checksums
 * against the host's own computation, and bad input that must end in a clear error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/integration/harness.h"

#define BOOT_TIMEOUT_MS 60000
#define ASK_TIMEOUT_MS	60000

static struct vmproc *vm_new(void)
{
	struct vmproc *p = calloc(1, sizeof(*p));

	assert_non_null(p);
	return p;
}

/* Starts the probe with the given vCPUs and memory and waits for its ready line. */
static struct vmproc *probe_start(unsigned vcpus, unsigned mem_mib, char *ready, size_t len)
{
	char v[16], m[16];
	const char *argv[] = {harness_env("THAW_BIN"),
			      "--kernel",
			      harness_env("THAW_PROBE"),
			      "--vcpus",
			      v,
			      "--mem-mib",
			      m,
			      NULL};
	struct vmproc *p = vm_new();

	snprintf(v, sizeof(v), "%u", vcpus);
	snprintf(m, sizeof(m), "%u", mem_mib);
	assert_int_equal(vmproc_start(p, argv), 0);
	if (vmproc_expect(p, "THAW_PROBE_READY", BOOT_TIMEOUT_MS, ready, len)) {
		vmproc_dump(p, "probe did not announce itself");
		fail();
	}
	return p;
}

static void probe_end(struct vmproc *p)
{
	vmproc_stop(p);
	free(p);
}

static void probe_boots_with_one_vcpu_and_answers(void **state)
{
	char line[256], ans[256];
	struct vmproc *p = probe_start(1, 64, line, sizeof(line));

	assert_non_null(strstr(line, "cpus=1"));
	assert_non_null(strstr(line, "mem_mib=64"));
	assert_int_equal(vmproc_ask(p, "ping", "PROBE pong", ASK_TIMEOUT_MS, ans, sizeof(ans)), 0);
	assert_int_equal(vmproc_ask(p, "count", "PROBE count", ASK_TIMEOUT_MS, ans, sizeof(ans)),
			 0);
	probe_end(p);
}

/* A guest that triple faults ends thaw with status 4 (vmm.h), and the log holds what a
 * user needs to tell why: the vCPU's registers and segments, its pending events, and its
 * last exits, the shutdown last. */
static void guest_triple_fault_ends_with_status_4_and_a_report(void **state)
{
	char line[256], ans[256];
	struct vmproc *p = probe_start(1, 64, line, sizeof(line));
	int status;

	assert_int_equal(vmproc_ask(p, "ping", "PROBE pong", ASK_TIMEOUT_MS, ans, sizeof(ans)), 0);
	assert_int_equal(vmproc_send(p, "triple"), 0);
	status = vmproc_wait(p, ASK_TIMEOUT_MS);
	if (status != 4 || !strstr(p->err, "vcpu0: triple fault (KVM_EXIT_SHUTDOWN)") ||
	    !strstr(p->err, "vcpu0 at the end: rip=") || !strstr(p->err, " cr3=") ||
	    !strstr(p->err, "vcpu0 events at the end: exception injected=") ||
	    !strstr(p->err, "ms shutdown 8]\n")) {
		vmproc_dump(p, "triple fault: wrong status or no report");
		fail_msg("exit status %d", status);
	}
	/* Exits before the shutdown: the console's, as the request was read. */
	assert_non_null(strstr(p->err, "the last, oldest first: [-"));
	assert_non_null(strstr(p->err, "ms io read 0x3f"));
	probe_end(p);
}

static void probe_boots_with_two_vcpus_and_both_work(void **state)
{
	char line[256], ans[512];
	struct vmproc *p = probe_start(2, 64, line, sizeof(line));

	assert_non_null(strstr(line, "cpus=2"));
	assert_int_equal(vmproc_ask(p, "info", "PROBE info", ASK_TIMEOUT_MS, ans, sizeof(ans)), 0);
	/* both CPUs came online and took part in the work */
	if (!strstr(ans, "online=2")) {
		print_error("info: %s\n", ans);
		vmproc_dump(p, "second vCPU not online");
		fail();
	}
	probe_end(p);
}

/* The probe's checksum (guest/probe/PROTOCOL.md): the sum over every 8-byte word w at
 * address a of mix(a, w), with touch writing pattern(seed, a). */
#define K1 0x9E3779B97F4A7C15ull
#define K2 0xD6E8FEB86659FD93ull

static uint64_t word_hash(uint64_t addr, uint64_t w)
{
	uint64_t x = (w ^ addr) * K1;

	return x ^ (x >> 32);
}

static uint64_t pattern(uint64_t seedk, uint64_t addr)
{
	uint64_t z = addr ^ seedk;

	z = (z ^ (z >> 32)) * K2;
	return z ^ (z >> 32);
}

static uint64_t expected_sum(uint64_t start, uint64_t len, uint64_t seed)
{
	uint64_t s = 0;

	for (uint64_t a = start; a < start + len; a += 8)
		s += word_hash(a, pattern(seed * K2, a));
	return s;
}

static void probe_memory_checksums_match_the_host(void **state)
{
	char line[256], ans[256], want[32];
	struct vmproc *p = probe_start(2, 64, line, sizeof(line));
	const char *got;

	snprintf(want, sizeof(want), "sum=0x%016llx",
		 (unsigned long long)expected_sum(8ull << 20, 16ull << 20, 42));
	assert_int_equal(
	    vmproc_ask(p, "touch 8 16 42", "PROBE touch", ASK_TIMEOUT_MS, ans, sizeof(ans)), 0);
	got = strstr(ans, "sum=");
	assert_non_null(got);
	assert_memory_equal(got, want, strlen(want));
	assert_int_equal(vmproc_ask(p, "sum 8 16", "PROBE sum", ASK_TIMEOUT_MS, ans, sizeof(ans)),
			 0);
	got = strstr(ans, "sum=");
	assert_non_null(got);
	assert_memory_equal(got, want, strlen(want));
	probe_end(p);
}

/* ---- bad input: a one-line error and a non-zero status, never a crash */

static void expect_refusal(const char *const argv[], int status, const char *needle)
{
	struct vmproc *p = vm_new();
	int st;

	assert_int_equal(vmproc_start(p, argv), 0);
	st = vmproc_wait(p, 30000);
	if (st != status || !strstr(p->err, needle)) {
		print_error("want status %d and '%s'; got %d\n", status, needle, st);
		vmproc_dump(p, "refusal");
		fail();
	}
	probe_end(p);
}

static void missing_kernel_is_refused(void **state)
{
	const char *argv[] = {harness_env("THAW_BIN"), "--kernel", "/nonexistent/vmlinux", NULL};

	expect_refusal(argv, 1, "No such file");
}

static void corrupt_kernel_is_refused(void **state)
{
	char path[] = "/tmp/thaw-corrupt-XXXXXX";
	int fd = mkstemp(path);
	char junk[4096];
	const char *argv[] = {harness_env("THAW_BIN"), "--kernel", path, NULL};

	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (char)(i * 7 + 3);
	memcpy(junk, "\177ELF", 4); /* ELF magic, then garbage */
	assert_int_equal(write(fd, junk, sizeof(junk)), sizeof(junk));
	close(fd);
	expect_refusal(argv, 1, "kernel");
	unlink(path);
}

static void too_little_memory_is_refused(void **state)
{
	const char *argv[] = {
	    harness_env("THAW_BIN"), "--kernel", harness_env("THAW_PROBE"), "--mem-mib", "1", NULL};

	expect_refusal(argv, 1, "too small");
}

static void more_memory_than_the_host_has_is_refused(void **state)
{
	const char *argv[] = {harness_env("THAW_BIN"),
			      "--kernel",
			      harness_env("THAW_PROBE"),
			      "--mem-mib",
			      "100000000",
			      NULL};

	expect_refusal(argv, 1, "more than this host has");
}

static void zero_vcpus_are_refused(void **state)
{
	const char *argv[] = {
	    harness_env("THAW_BIN"), "--kernel", harness_env("THAW_PROBE"), "--vcpus", "0", NULL};

	expect_refusal(argv, 1, "vCPUs");
}

static void too_many_vcpus_are_refused(void **state)
{
	const char *argv[] = {
	    harness_env("THAW_BIN"), "--kernel", harness_env("THAW_PROBE"), "--vcpus", "500", NULL};

	expect_refusal(argv, 1, "vCPUs");
}

static void overlong_command_line_is_refused(void **state)
{
	static char cmdline[5000];
	const char *argv[] = {harness_env("THAW_BIN"),
			      "--kernel",
			      harness_env("THAW_PROBE"),
			      "--cmdline",
			      cmdline,
			      NULL};

	memset(cmdline, 'x', sizeof(cmdline) - 1);
	expect_refusal(argv, 1, "at most 2047");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(probe_boots_with_one_vcpu_and_answers),
	    cmocka_unit_test(probe_boots_with_two_vcpus_and_both_work),
	    cmocka_unit_test(guest_triple_fault_ends_with_status_4_and_a_report),
	    cmocka_unit_test(probe_memory_checksums_match_the_host),
	    cmocka_unit_test(missing_kernel_is_refused),
	    cmocka_unit_test(corrupt_kernel_is_refused),
	    cmocka_unit_test(too_little_memory_is_refused),
	    cmocka_unit_test(more_memory_than_the_host_has_is_refused),
	    cmocka_unit_test(zero_vcpus_are_refused),
	    cmocka_unit_test(too_many_vcpus_are_refused),
	    cmocka_unit_test(overlong_command_line_is_refused),
	};

	if (!harness_have_kvm())
		return 0;
	return cmocka_run_group_tests_name("boot", tests, NULL, NULL);
}
