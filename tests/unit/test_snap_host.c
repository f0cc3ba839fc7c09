/* Host facts recorded in a snapshot's header (the CPU compatibility check that uses them
 * is tested in test_vmm_cpu_compat.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <cpuid.h>
#include <errno.h>
#include <string.h>
#include <sys/utsname.h>

#include "restore/snapshot.h"

static void test_host_facts_match_this_cpu(void **state)
{
	(void)state;
	struct snap_host_facts f, g;
	unsigned a, b, c, d;
	char vendor[13] = {0};
	struct utsname u;
	snap_host_facts_current(&f);
	__cpuid(0, a, b, c, d);
	memcpy(vendor, &b, 4);
	memcpy(vendor + 4, &d, 4);
	memcpy(vendor + 8, &c, 4);
	assert_string_equal(f.vendor, vendor);
	uname(&u);
	assert_string_equal(f.kernel, u.release);
	assert_true(f.family > 0);
	snap_host_facts_current(&g); /* stable across calls (and CPUs: APIC IDs masked) */
	assert_int_equal(f.cpuid_digest, g.cpuid_digest);
	assert_int_equal(f.model, g.model);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_host_facts_match_this_cpu),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
