/* Firecracker's static CPU templates (vmm/cpu_template.c) applied to two recorded hosts'
 * CPUID, the way a boot applies them: thaw's "host" template first, then the static
 * template as a custom one (vmm_cpuid_apply_config). Which host a template may run on,
 * and what a snapshot of a templated guest meets at a restore. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "restore/snapshot.h"
#include "vmm/vmm.h"

#define BIT(n) (1u << (n))
#define IDX    KVM_CPUID_FLAG_SIGNIFCANT_INDEX

/* An Intel Xeon Gold 6252 (Cascade Lake, family 6 model 0x55 stepping 7) as `cpuid -r`
 * shows it on bare metal (the dump published as test data of the rust-cpuid project):
 * the leaves the templates touch, plus leaf 0. */
static const struct kvm_cpuid_entry2 cascade_lake[] = {
    {.function = 0, .eax = 0x16, .ebx = 0x756e6547, .ecx = 0x6c65746e, .edx = 0x49656e69},
    {.function = 1, .eax = 0x00050657, .ebx = 0xc7400800, .ecx = 0x7ffefbff, .edx = 0xbfebfbff},
    {.function = 7, .flags = IDX, .ebx = 0xd39ff7eb, .ecx = 0x00000818, .edx = 0xbc000400},
    {.function = 0xd, .flags = IDX, .eax = 0x2ff, .ebx = 0xa88, .ecx = 0xa88},
    {.function = 0xd, .index = 1, .flags = IDX, .eax = 0xf, .ebx = 0xa08, .ecx = 0x100},
    {.function = 0x80000000, .eax = 0x80000008},
    {.function = 0x80000001, .ecx = 0x00000121, .edx = 0x2c100800},
    {.function = 0x80000008, .eax = 0x302e},
};

/* An AMD EPYC Milan (family 0x19 model 1 stepping 1) as a cloud VM sees it: recorded on
 * this project's development host with the CPUID instruction (so the hypervisor bit is
 * on). */
static const struct kvm_cpuid_entry2 milan[] = {
    {.function = 0, .eax = 0x10, .ebx = 0x68747541, .ecx = 0x444d4163, .edx = 0x69746e65},
    {.function = 1, .eax = 0x00a00f11, .ebx = 0x00020800, .ecx = 0xfffa3203, .edx = 0x178bfbff},
    {.function = 7, .flags = IDX, .ebx = 0x219c07ab, .ecx = 0x0040069c, .edx = 0x88000010},
    {.function = 0xd, .flags = IDX, .eax = 0x207, .ebx = 0x988, .ecx = 0x988},
    {.function = 0xd, .index = 1, .flags = IDX, .eax = 0xf, .ebx = 0x370, .ecx = 0x1800},
    {.function = 0x80000000, .eax = 0x80000022},
    {.function = 0x80000001,
     .eax = 0x00a00f11,
     .ebx = 0x40000000,
     .ecx = 0x004003f3,
     .edx = 0x2fd3fbff},
    {.function = 0x80000008, .eax = 0x00303030, .ebx = 0x131ad205, .ecx = 0x7001},
};

#define MAX_E 16
struct guest {
	struct kvm_cpuid_entry2 e[MAX_E];
	unsigned n;
	struct vmm_cpu_config cfg;
};

/* What vCPU 0 of a one-vCPU guest gets on `host` with template `name`. */
static void boot(struct guest *g, const struct kvm_cpuid_entry2 *host, unsigned n, const char *name)
{
	char err[200] = "";

	assert_true(n <= MAX_E);
	memcpy(g->e, host, n * sizeof(*host));
	g->n = vmm_cpuid_apply(g->e, n, vmm_cpu_template_find("host"), 0, 1);
	assert_int_equal(vmm_static_template_config(name, &g->cfg), 0);
	assert_int_equal(vmm_cpuid_apply_config(g->e, g->n, &g->cfg, err, sizeof(err)), 0);
}

static uint32_t reg(const struct guest *g, uint32_t leaf, uint32_t sub, unsigned r)
{
	for (unsigned i = 0; i < g->n; i++) {
		const struct kvm_cpuid_entry2 *e = &g->e[i];

		if (e->function == leaf && e->index == sub)
			return r == 0 ? e->eax : r == 1 ? e->ebx : r == 2 ? e->ecx : e->edx;
	}
	fail_msg("leaf %#x.%u missing", leaf, sub);
	return 0;
}

static uint32_t host_reg(const struct kvm_cpuid_entry2 *h, unsigned n, uint32_t leaf, uint32_t sub,
			 unsigned r)
{
	for (unsigned i = 0; i < n; i++)
		if (h[i].function == leaf && h[i].index == sub)
			return r == 0 ? h[i].eax : r == 1 ? h[i].ebx : r == 2 ? h[i].ecx : h[i].edx;
	return 0;
}

#define N(a) (unsigned)(sizeof(a) / sizeof((a)[0]))

static void test_every_name_compiles_and_runs_on_its_vendor(void **state)
{
	const char *const *names = vmm_static_template_names();
	char err[256];
	unsigned count = 0;

	for (; *names; names++, count++) {
		struct vmm_cpu_config c;
		bool amd = strcmp(*names, "T2A") == 0;

		assert_int_equal(vmm_static_template_config(*names, &c), 0);
		assert_true(c.nr_cpuid > 0);
		assert_int_equal(vmm_static_template_check(*names,
							   amd ? "AuthenticAMD" : "GenuineIntel",
							   false, err, sizeof(err)),
				 0);
		assert_string_equal(vmm_static_template_name(*names), *names);
	}
	assert_int_equal(count, 5);
}

static void test_unknown_name_is_refused(void **state)
{
	struct vmm_cpu_config c;
	char err[256];

	assert_int_equal(vmm_static_template_config("T3", &c), -ENOENT);
	assert_int_equal(vmm_static_template_check("T3", "GenuineIntel", false, err, sizeof(err)),
			 -ENOENT);
	assert_non_null(strstr(err, "'T3'"));
	assert_null(vmm_static_template_name("t2"));
	assert_null(vmm_static_template_name(""));
}

static void test_intel_template_on_amd_names_the_vendors(void **state)
{
	char vendor[13], err[256];

	vmm_cpuid_vendor(milan, N(milan), vendor);
	assert_string_equal(vendor, "AuthenticAMD");
	assert_int_equal(vmm_static_template_check("T2CL", vendor, false, err, sizeof(err)),
			 -EOPNOTSUPP);
	assert_non_null(strstr(err, "Intel"));
	assert_non_null(strstr(err, "AuthenticAMD"));
}

static void test_t2a_on_intel_names_the_vendors(void **state)
{
	char vendor[13], err[256];

	vmm_cpuid_vendor(cascade_lake, N(cascade_lake), vendor);
	assert_string_equal(vendor, "GenuineIntel");
	assert_int_equal(vmm_static_template_check("T2A", vendor, false, err, sizeof(err)),
			 -EOPNOTSUPP);
	assert_non_null(strstr(err, "AMD"));
	assert_non_null(strstr(err, "GenuineIntel"));
}

static void test_any_template_on_pvm_is_refused(void **state)
{
	char err[256];

	assert_int_equal(vmm_static_template_check("T2A", "AuthenticAMD", true, err, sizeof(err)),
			 -EOPNOTSUPP);
	assert_non_null(strstr(err, "PVM"));
	assert_int_equal(vmm_static_template_check("C3", "GenuineIntel", true, err, sizeof(err)),
			 -EOPNOTSUPP);
	assert_non_null(strstr(err, "PVM"));
}

static void test_t2cl_on_cascade_lake(void **state)
{
	struct guest g;

	boot(&g, cascade_lake, N(cascade_lake), "T2CL");
	/* Haswell-E signature, processor type 0 (an original OEM processor) */
	assert_int_equal(reg(&g, 1, 0, 0), 0x000306f2);
	/* VMX, SMX, EIST, monitor, DCA, PDCM hidden; SSE4.2, AVX, AES, MOVBE shown */
	assert_int_equal(reg(&g, 1, 0, 2) & (BIT(3) | BIT(5) | BIT(6) | BIT(7) | BIT(15) | BIT(18)),
			 0);
	assert_int_equal(reg(&g, 1, 0, 2) & (BIT(20) | BIT(28) | BIT(25) | BIT(22)),
			 BIT(20) | BIT(28) | BIT(25) | BIT(22));
	/* DS, ACPI, TM, PBE hidden; MCE, MTRR shown */
	assert_int_equal(reg(&g, 1, 0, 3) & (BIT(21) | BIT(22) | BIT(29) | BIT(31)), 0);
	assert_int_equal(reg(&g, 1, 0, 3) & (BIT(7) | BIT(12)), BIT(7) | BIT(12));
	/* every AVX-512 part, MPX, RDSEED, ADX, CLFLUSHOPT, CLWB, PT hidden; AVX2, BMI1/2,
	 * ERMS, SMAP kept */
	assert_int_equal(reg(&g, 7, 0, 1) & 0xffef4000u, 0);
	assert_int_equal(reg(&g, 7, 0, 1) & (BIT(5) | BIT(3) | BIT(8) | BIT(9) | BIT(20)),
			 BIT(5) | BIT(3) | BIT(8) | BIT(9) | BIT(20));
	/* PKU, OSPKE, AVX512_VNNI hidden: nothing of 7.0 ECX is left on this CPU */
	assert_int_equal(reg(&g, 7, 0, 2), 0);
	/* MD_CLEAR, SPEC_CTRL, STIBP, L1D_FLUSH, ARCH_CAPABILITIES, SSBD pass */
	assert_int_equal(reg(&g, 7, 0, 3), 0xbc000400);
	/* XCR0: x87, SSE, AVX only; XSAVEOPT only */
	assert_int_equal(reg(&g, 0xd, 0, 0), 0x7);
	assert_int_equal(reg(&g, 0xd, 1, 0), 0x1);
	/* LAHF and LZCNT stay, PREFETCHW goes; 1 GiB pages go */
	assert_int_equal(reg(&g, 0x80000001, 0, 2), 0x21);
	assert_int_equal(reg(&g, 0x80000001, 0, 3) & BIT(26), 0);
	/* IA32_ARCH_CAPABILITIES: the mitigation bits pass, the rest is 0 */
	assert_int_equal(g.cfg.nr_msr, 1);
	assert_int_equal(g.cfg.msr[0].addr, 0x10a);
	assert_int_equal(g.cfg.msr[0].set, 0);
	assert_true(g.cfg.msr[0].keep & 1);				/* RDCL_NO */
	assert_int_equal(g.cfg.msr[0].keep & (1ull << 12), 0);		/* DOITM */
	assert_int_equal(g.cfg.msr[0].keep & 0xfffffff000000000ull, 0); /* reserved */
}

static void test_t2a_on_milan(void **state)
{
	struct guest g;

	boot(&g, milan, N(milan), "T2A");
	assert_int_equal(reg(&g, 1, 0, 0), 0x000306f2);
	/* SHA, RDSEED, ADX, CLFLUSHOPT, CLWB hidden; AVX2, BMI2, ERMS, SMEP kept */
	assert_int_equal(reg(&g, 7, 0, 1) & (BIT(29) | BIT(18) | BIT(19) | BIT(23) | BIT(24)), 0);
	assert_int_equal(reg(&g, 7, 0, 1) & (BIT(5) | BIT(8) | BIT(9) | BIT(7)),
			 BIT(5) | BIT(8) | BIT(9) | BIT(7));
	/* VAES, VPCLMULQDQ, RDPID, UMIP, PKU hidden */
	assert_int_equal(reg(&g, 7, 0, 2) & (BIT(9) | BIT(10) | BIT(22) | BIT(2) | BIT(3)), 0);
	/* SSE4A, MisAlignSse, 3DNowPrefetch hidden; LAHF, LZCNT kept */
	assert_int_equal(reg(&g, 0x80000001, 0, 2) & (BIT(6) | BIT(7) | BIT(8)), 0);
	assert_int_equal(reg(&g, 0x80000001, 0, 2) & (BIT(0) | BIT(5)), BIT(0) | BIT(5));
	/* MmxExt, FFXSR, 1 GiB pages hidden */
	assert_int_equal(reg(&g, 0x80000001, 0, 3) & (BIT(22) | BIT(25) | BIT(26)), 0);
	/* CLZERO, the error pointers, WBNOINVD hidden; IBRS preferred and same-mode shown */
	assert_int_equal(reg(&g, 0x80000008, 0, 1) & (BIT(0) | BIT(2) | BIT(9)), 0);
	assert_int_equal(reg(&g, 0x80000008, 0, 1) & (BIT(18) | BIT(19)), BIT(18) | BIT(19));
	/* IBPB and the rest of 0x80000008 EBX stay the host's */
	assert_int_equal(reg(&g, 0x80000008, 0, 1) & BIT(12),
			 host_reg(milan, N(milan), 0x80000008, 0, 1) & BIT(12));
	assert_int_equal(reg(&g, 0xd, 0, 0), 0x7);
	assert_int_equal(g.cfg.nr_msr, 0); /* IA32_ARCH_CAPABILITIES is Intel's */
}

/* The point of T2CL and T2A: on Cascade Lake and on Milan the guest sees the same
 * instruction sets, so an application picks the same code paths on either. */
static void test_t2cl_and_t2a_show_the_same_instruction_sets(void **state)
{
	static const struct {
		uint32_t leaf;
		unsigned reg, bit;
	} isa[] = {
	    {1, 2, 0},		{1, 2, 1},	    {1, 2, 9},		{1, 2, 12},
	    {1, 2, 13},		{1, 2, 19},	    {1, 2, 20},		{1, 2, 22},
	    {1, 2, 23},		{1, 2, 25},	    {1, 2, 26},		{1, 2, 28},
	    {1, 2, 29},		{1, 2, 30},	    {1, 3, 23},		{1, 3, 25},
	    {1, 3, 26},		{7, 1, 3},	    {7, 1, 5},		{7, 1, 8},
	    {7, 1, 9},		{7, 1, 16},	    {7, 1, 18},		{7, 1, 19},
	    {7, 1, 23},		{7, 1, 24},	    {7, 1, 29},		{7, 1, 30},
	    {7, 2, 1},		{7, 2, 8},	    {7, 2, 9},		{7, 2, 10},
	    {7, 2, 11},		{7, 2, 22},	    {7, 3, 4},		{0x80000001, 2, 0},
	    {0x80000001, 2, 5}, {0x80000001, 2, 6}, {0x80000001, 2, 8}, {0x80000001, 3, 22},
	};
	struct guest intel, amd;

	boot(&intel, cascade_lake, N(cascade_lake), "T2CL");
	boot(&amd, milan, N(milan), "T2A");
	for (unsigned i = 0; i < N(isa); i++) {
		uint32_t a = reg(&intel, isa[i].leaf, 0, isa[i].reg) & BIT(isa[i].bit);
		uint32_t b = reg(&amd, isa[i].leaf, 0, isa[i].reg) & BIT(isa[i].bit);

		if (a != b)
			fail_msg("leaf %#x reg %u bit %u: T2CL %s, T2A %s", isa[i].leaf, isa[i].reg,
				 isa[i].bit, a ? "on" : "off", b ? "on" : "off");
	}
}

static void test_c3_looks_like_ivy_bridge(void **state)
{
	struct guest g;

	boot(&g, cascade_lake, N(cascade_lake), "C3");
	assert_int_equal(reg(&g, 1, 0, 0), 0x000306e4);
	/* no FMA, MOVBE; AVX, AES, F16C, RDRAND kept */
	assert_int_equal(reg(&g, 1, 0, 2) & (BIT(12) | BIT(22)), 0);
	assert_int_equal(reg(&g, 1, 0, 2) & (BIT(28) | BIT(25) | BIT(29) | BIT(30)),
			 BIT(28) | BIT(25) | BIT(29) | BIT(30));
	/* no AVX2, BMI1/2, INVPCID; FSGSBASE, SMEP, ERMS, SMAP kept (Ivy Bridge has them,
	 * or KVM emulates them) */
	assert_int_equal(reg(&g, 7, 0, 1) & (BIT(5) | BIT(3) | BIT(8) | BIT(10)), 0);
	assert_int_equal(reg(&g, 7, 0, 1) & (BIT(0) | BIT(7) | BIT(9) | BIT(20)),
			 BIT(0) | BIT(7) | BIT(9) | BIT(20));
	/* no LZCNT */
	assert_int_equal(reg(&g, 0x80000001, 0, 2) & BIT(5), 0);
	assert_int_equal(g.cfg.nr_msr, 0);
}

static void test_t2_and_t2s_differ_in_x87_pointers_and_msr(void **state)
{
	struct guest t2, t2s;

	boot(&t2, cascade_lake, N(cascade_lake), "T2");
	boot(&t2s, cascade_lake, N(cascade_lake), "T2S");
	assert_int_equal(reg(&t2, 7, 0, 1) & (BIT(6) | BIT(13)), 0);
	assert_int_equal(reg(&t2s, 7, 0, 1) & (BIT(6) | BIT(13)), BIT(6) | BIT(13));
	assert_int_equal(reg(&t2, 7, 0, 1) & ~(BIT(6) | BIT(13)),
			 reg(&t2s, 7, 0, 1) & ~(BIT(6) | BIT(13)));
	assert_int_equal(t2.cfg.nr_msr, 0);
	/* T2S: every bit fixed, none of the *_NO immunities, RSBA and RRSBA claimed */
	assert_int_equal(t2s.cfg.nr_msr, 1);
	assert_int_equal(t2s.cfg.msr[0].keep, 0);
	assert_int_equal(t2s.cfg.msr[0].set & 1, 0);			 /* RDCL_NO */
	assert_int_equal(t2s.cfg.msr[0].set & (1ull << 5), 0);		 /* MDS_NO */
	assert_int_equal(t2s.cfg.msr[0].set & (1ull << 2), 1ull << 2);	 /* RSBA */
	assert_int_equal(t2s.cfg.msr[0].set & (1ull << 19), 1ull << 19); /* RRSBA */
}

/* A host whose KVM lacks leaf 0xD (no XSAVE) has no state to hide: the template still
 * applies, where a custom template naming that leaf is refused. */
static void test_missing_xsave_leaf_is_not_an_error(void **state)
{
	struct kvm_cpuid_entry2 e[N(cascade_lake)];
	struct vmm_cpu_config c;
	unsigned n = 0;
	char err[200];

	for (unsigned i = 0; i < N(cascade_lake); i++)
		if (cascade_lake[i].function != 0xd)
			e[n++] = cascade_lake[i];
	assert_int_equal(vmm_static_template_config("T2", &c), 0);
	assert_int_equal(vmm_cpuid_apply_config(e, n, &c, err, sizeof(err)), 0);
	c.cpuid[0].optional = false;
	c.cpuid[0].leaf = 0xd;
	assert_int_equal(vmm_cpuid_apply_config(e, n, &c, err, sizeof(err)), -ENOENT);
}

/* A snapshot keeps the templated CPUID; the restore's CPU check meets it as any other:
 * the same host takes it back, a host of the other vendor refuses, naming both. */
static void test_restore_check_takes_templated_guest_and_refuses_other_vendor(void **state)
{
	struct snap_host_facts intel = {.vendor = "GenuineIntel"}, amd = {.vendor = "AuthenticAMD"};
	struct guest g;
	char err[512];

	boot(&g, cascade_lake, N(cascade_lake), "T2CL");
	assert_int_equal(vmm_cpu_compat_check(&intel, g.e, g.n, &intel, cascade_lake,
					      N(cascade_lake), err, sizeof(err)),
			 0);
	assert_int_equal(
	    vmm_cpu_compat_check(&intel, g.e, g.n, &amd, milan, N(milan), err, sizeof(err)),
	    -ENOTSUP);
	assert_non_null(strstr(err, "GenuineIntel"));
	assert_non_null(strstr(err, "AuthenticAMD"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_name_compiles_and_runs_on_its_vendor),
	    cmocka_unit_test(test_unknown_name_is_refused),
	    cmocka_unit_test(test_intel_template_on_amd_names_the_vendors),
	    cmocka_unit_test(test_t2a_on_intel_names_the_vendors),
	    cmocka_unit_test(test_any_template_on_pvm_is_refused),
	    cmocka_unit_test(test_t2cl_on_cascade_lake),
	    cmocka_unit_test(test_t2a_on_milan),
	    cmocka_unit_test(test_t2cl_and_t2a_show_the_same_instruction_sets),
	    cmocka_unit_test(test_c3_looks_like_ivy_bridge),
	    cmocka_unit_test(test_t2_and_t2s_differ_in_x87_pointers_and_msr),
	    cmocka_unit_test(test_missing_xsave_leaf_is_not_an_error),
	    cmocka_unit_test(test_restore_check_takes_templated_guest_and_refuses_other_vendor),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
