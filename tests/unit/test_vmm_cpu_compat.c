/* The CPU compatibility check a restore runs before creating the VM (vmm/cpu_compat.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <string.h>

#include "restore/snapshot.h"
#include "vmm/vmm.h"

static struct kvm_cpuid_entry2 ent(uint32_t fn, uint32_t idx, uint32_t ebx, uint32_t ecx,
				   uint32_t edx)
{
	struct kvm_cpuid_entry2 e = {
	    .function = fn, .index = idx, .ebx = ebx, .ecx = ecx, .edx = edx};
	if (fn == 7 || fn == 0xd)
		e.flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
	return e;
}

static void test_same_features_pass(void **state)
{
	(void)state;
	struct snap_host_facts h;
	char err[256] = "";
	snap_host_facts_current(&h);
	struct kvm_cpuid_entry2 guest[] = {ent(1, 0, 0, 0x1, 0x1), ent(7, 0, 0x20, 0, 0)};
	struct kvm_cpuid_entry2 host[] = {ent(1, 0, 0, 0x3, 0x3), ent(7, 0, 0x30, 0, 0)};
	assert_int_equal(vmm_cpu_compat_check(&h, guest, 2, &h, host, 2, err, sizeof(err)), 0);
}

static void test_other_vendor_is_refused(void **state)
{
	(void)state;
	struct snap_host_facts saved = {.vendor = "AuthenticAMD"},
			       host = {.vendor = "GenuineIntel"};
	char err[256] = "";
	assert_int_equal(vmm_cpu_compat_check(&saved, NULL, 0, &host, NULL, 0, err, sizeof(err)),
			 -ENOTSUP);
	assert_non_null(strstr(err, "AuthenticAMD"));
	assert_non_null(strstr(err, "other CPU vendor"));
}

static void test_missing_features_are_named(void **state)
{
	(void)state;
	struct snap_host_facts h = {.vendor = "GenuineIntel"};
	char err[512] = "";
	/* guest saw avx512f (7.0 ebx 16), avx512bw (ebx 30), xsave (1 ecx 26), a nameless
	 * bit (7.0 edx 0) and the hypervisor bit (1 ecx 31, set by the VMM: not compared) */
	struct kvm_cpuid_entry2 guest[] = {
	    ent(1, 0, 0, (1u << 26) | (1u << 31) | 1, 0),
	    ent(7, 0, (1u << 16) | (1u << 30) | (1u << 5), 0, 1),
	};
	struct kvm_cpuid_entry2 host[] = {ent(1, 0, 0, 1, 0), ent(7, 0, 1u << 5, 0, 0)};
	assert_int_equal(vmm_cpu_compat_check(&h, guest, 2, &h, host, 2, err, sizeof(err)),
			 -ENOTSUP);
	assert_non_null(strstr(err, "host lacks 4 CPU features"));
	assert_non_null(strstr(err, "xsave"));
	assert_non_null(strstr(err, "avx512f"));
	assert_non_null(strstr(err, "avx512bw"));
	assert_non_null(strstr(err, "cpuid 0x7.0 edx bit 0"));
	assert_null(strstr(err, "hypervisor"));
	assert_null(strstr(err, "avx2"));
}

static void test_subleaf_is_matched(void **state)
{
	(void)state;
	struct snap_host_facts h = {.vendor = "AuthenticAMD"};
	char err[256] = "";
	/* 0xD.1 eax bit 3 (xsaves): the host lists 0xD.0 and 0xD.1 separately */
	struct kvm_cpuid_entry2 guest[] = {{.function = 0xd, .index = 1, .flags = 1, .eax = 8}};
	struct kvm_cpuid_entry2 host[] = {{.function = 0xd, .index = 0, .flags = 1, .eax = 8},
					  {.function = 0xd, .index = 1, .flags = 1, .eax = 0}};
	assert_int_equal(vmm_cpu_compat_check(&h, guest, 1, &h, host, 2, err, sizeof(err)),
			 -ENOTSUP);
	assert_non_null(strstr(err, "xsaves"));
	host[1].eax = 8;
	assert_int_equal(vmm_cpu_compat_check(&h, guest, 1, &h, host, 2, err, sizeof(err)), 0);
}

static void test_null_host_reads_this_cpu_vendor(void **state)
{
	(void)state;
	struct snap_host_facts me, other = {.vendor = "NotThisVendr"};
	char err[256] = "";
	snap_host_facts_current(&me);
	assert_int_equal(vmm_cpu_compat_check(&me, NULL, 0, NULL, NULL, 0, err, sizeof(err)), 0);
	assert_int_equal(vmm_cpu_compat_check(&other, NULL, 0, NULL, NULL, 0, err, sizeof(err)),
			 -ENOTSUP);
	assert_non_null(strstr(err, me.vendor));
}

static void test_feature_names(void **state)
{
	(void)state;
	assert_string_equal(vmm_cpu_feature_name(7, 0, 1, 16), "avx512f");
	assert_string_equal(vmm_cpu_feature_name(1, 0, 2, 26), "xsave");
	assert_string_equal(vmm_cpu_feature_name(1, 0, 3, 25), "sse");
	assert_string_equal(vmm_cpu_feature_name(0x80000001, 0, 3, 29), "lm");
	assert_null(vmm_cpu_feature_name(7, 0, 3, 0));
	assert_null(vmm_cpu_feature_name(0x40000000, 0, 0, 0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_same_features_pass),
	    cmocka_unit_test(test_other_vendor_is_refused),
	    cmocka_unit_test(test_missing_features_are_named),
	    cmocka_unit_test(test_subleaf_is_matched),
	    cmocka_unit_test(test_null_host_reads_this_cpu_vendor),
	    cmocka_unit_test(test_feature_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
