/* CPU templates: lookup by name, the features `pvm` hides, and the per-vCPU fields
 * every template sets. The input is a synthetic KVM_GET_SUPPORTED_CPUID answer with
 * every feature bit on, so a cleared bit can only come from the template. */
#include <cpuid.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/vmm.h"

#define BIT(n) (1u << (n))

/* Leaf 1 ECX */
#define PCID	BIT(17)
#define POPCNT	BIT(23)
#define XSAVE	BIT(26)
#define OSXSAVE BIT(27)
#define AVX	BIT(28)
#define HYPERV	BIT(31)
/* Leaf 7.0 EBX */
#define FSGSBASE   BIT(0)
#define AVX2	   BIT(5)
#define INVPCID	   BIT(10)
#define AVX512F	   BIT(16)
#define AVX512DQ   BIT(17)
#define SMAP	   BIT(20)
#define AVX512IFMA BIT(21)
#define CLFLUSHOPT BIT(23)
#define CLWB	   BIT(24)
#define AVX512PF   BIT(26)
#define AVX512ER   BIT(27)
#define AVX512CD   BIT(28)
#define AVX512BW   BIT(30)
#define AVX512VL   BIT(31)
#define AVX512_ALL                                                                                 \
	(AVX512F | AVX512DQ | AVX512IFMA | AVX512PF | AVX512ER | AVX512CD | AVX512BW | AVX512VL)
/* Leaf 7.0 ECX */
#define RDPID BIT(22)
/* Leaf 0x80000001 EDX */
#define RDTSCP BIT(27)

#define ALL 0xffffffffu

/* A supported-CPUID answer: leaves in KVM's order, feature registers all ones, APIC
 * and topology fields holding values the template must replace. */
static const struct kvm_cpuid_entry2 input[] = {
    {.function = 0, .eax = 0x1f, .ebx = 0x756e6547, .ecx = 0x6c65746e, .edx = 0x49656e69},
    {.function = 1, .eax = 0x000806f8, .ebx = 0xab3f0800, .ecx = ALL & ~HYPERV, .edx = ALL},
    {.function = 7,
     .index = 0,
     .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
     .eax = 1,
     .ebx = ALL,
     .ecx = ALL,
     .edx = ALL},
    {.function = 7,
     .index = 1,
     .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
     .eax = ALL,
     .ebx = ALL,
     .ecx = ALL,
     .edx = ALL},
    {.function = 0xb,
     .index = 0,
     .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
     .eax = 1,
     .ebx = 1,
     .ecx = 0x100,
     .edx = 0x77},
    {.function = 0xb,
     .index = 1,
     .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
     .eax = 7,
     .ebx = 2,
     .ecx = 0x201,
     .edx = 0x77},
    {.function = 0xd,
     .index = 0,
     .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
     .eax = 0x2e7,
     .ebx = 0x340,
     .ecx = 0x2440},
    {.function = 0xd, .index = 1, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX, .eax = 0xf},
    {.function = 0xd,
     .index = 2,
     .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
     .eax = 0x100,
     .ebx = 0x240},
    {.function = 0x1f,
     .index = 0,
     .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
     .eax = 1,
     .ebx = 1,
     .ecx = 0x100,
     .edx = 0x77},
    {.function = 0x40000000, .eax = 0x40000001, .ebx = 0x4b4d564b},
    {.function = 0x80000000, .eax = 0x80000008},
    {.function = 0x80000001, .eax = 0x806f8, .ecx = ALL, .edx = ALL},
    {.function = 0x80000008, .eax = 0x3030, .ebx = ALL},
};
#define N_INPUT (sizeof(input) / sizeof(input[0]))

struct applied {
	struct kvm_cpuid_entry2 e[N_INPUT];
	unsigned n;
};

static void apply(struct applied *a, const char *tmpl, unsigned index, unsigned nr_vcpus)
{
	const struct vmm_cpu_template *t = vmm_cpu_template_find(tmpl);

	assert_non_null(t);
	memcpy(a->e, input, sizeof(input));
	a->n = vmm_cpuid_apply(a->e, N_INPUT, t, index, nr_vcpus);
}

/* The entry for (function, index), or NULL when the template dropped it. */
static const struct kvm_cpuid_entry2 *find(const struct kvm_cpuid_entry2 *e, unsigned n,
					   uint32_t fn, uint32_t idx)
{
	for (unsigned i = 0; i < n; i++)
		if (e[i].function == fn && e[i].index == idx)
			return &e[i];
	return NULL;
}

/* The entry for (function, index), which must be there. */
static const struct kvm_cpuid_entry2 *must(const struct kvm_cpuid_entry2 *e, uint32_t fn,
					   uint32_t idx)
{
	static const struct kvm_cpuid_entry2 none;

	if (!e) {
		fail_msg("leaf %#x.%u is missing", fn, idx);
		return &none; /* not reached: fail_msg jumps out of the test */
	}
	return e;
}

static const struct kvm_cpuid_entry2 *leaf(const struct applied *a, uint32_t fn, uint32_t idx)
{
	return must(find(a->e, a->n, fn, idx), fn, idx);
}

static const struct kvm_cpuid_entry2 *in_leaf(uint32_t fn, uint32_t idx)
{
	return must(find(input, N_INPUT, fn, idx), fn, idx);
}

static const char *const all_templates[] = {"host", "pvm"};
#define N_TEMPLATES (sizeof(all_templates) / sizeof(all_templates[0]))

/* ---- lookup */

static void test_find_host_template(void **state)
{
	const struct vmm_cpu_template *t = vmm_cpu_template_find("host");

	assert_non_null(t);
	assert_string_equal(t->name, "host");
	assert_non_null(t->why);
}

static void test_find_pvm_template(void **state)
{
	const struct vmm_cpu_template *t = vmm_cpu_template_find("pvm");

	assert_non_null(t);
	assert_string_equal(t->name, "pvm");
	assert_true(t->hide_xsave_leaf);
}

static void test_find_unknown_template_is_null(void **state)
{
	assert_null(vmm_cpu_template_find("nosuch"));
	assert_null(vmm_cpu_template_find(""));
	assert_null(vmm_cpu_template_find("PVM")); /* names are exact */
}

static void test_names_list_every_template_once(void **state)
{
	const char *const *names = vmm_cpu_template_names();
	bool host = false, pvm = false;
	size_t n = 0;

	assert_non_null(names);
	for (; names[n]; n++) {
		const struct vmm_cpu_template *t = vmm_cpu_template_find(names[n]);

		assert_non_null(t); /* every listed name resolves */
		assert_string_equal(t->name, names[n]);
		host |= strcmp(names[n], "host") == 0;
		pvm |= strcmp(names[n], "pvm") == 0;
	}
	assert_int_equal(n, 2);
	assert_true(host);
	assert_true(pvm);
}

static void test_pick_by_name_and_unknown(void **state)
{
	assert_ptr_equal(vmm_pick_template("pvm"), vmm_cpu_template_find("pvm"));
	assert_ptr_equal(vmm_pick_template("host"), vmm_cpu_template_find("host"));
	assert_null(vmm_pick_template("bogus"));
}

/* A custom template's modifiers: (value & keep) | set on the matching leaf and register;
 * a subleaf that is significant picks one entry, else every entry of the leaf; a leaf
 * the entries lack is refused by name. */
static void test_custom_config_sets_clears_and_keeps_bits(void **state)
{
	struct kvm_cpuid_entry2 e[3] = {
	    {.function = 1, .eax = 0x000306c3, .ecx = 0xffffffff},
	    {.function = 7, .index = 0, .ebx = 0xffffffff},
	    {.function = 7, .index = 1, .ebx = 0xffffffff},
	};
	struct vmm_cpu_config c = {
	    .nr_cpuid = 2,
	    .cpuid = {{.leaf = 1, .reg = 2, .keep = 0xfffffffe, .set = 0},
		      {.leaf = 7,
		       .subleaf = 1,
		       .subleaf_significant = true,
		       .reg = 1,
		       .keep = 0,
		       .set = 0x5}},
	};
	char err[200] = "";

	assert_int_equal(vmm_cpuid_apply_config(e, 3, &c, err, sizeof(err)), 0);
	assert_int_equal(e[0].ecx, 0xfffffffe);
	assert_int_equal(e[0].eax, 0x000306c3);
	assert_int_equal(e[1].ebx, 0xffffffff); /* subleaf 0 untouched */
	assert_int_equal(e[2].ebx, 0x5);
	c.cpuid[0].leaf = 0x4000;
	assert_int_equal(vmm_cpuid_apply_config(e, 3, &c, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "leaf 0x4000"));
}

static void test_pick_default_follows_host_kind(void **state)
{
	const char *want = vmm_host_is_pvm() ? "pvm" : "host";

	assert_ptr_equal(vmm_pick_template(NULL), vmm_cpu_template_find(want));
}

static void test_pvm_is_a_cpu_without_vmx_or_svm(void **state)
{
	assert_true(vmm_cpuid_means_pvm(0, 0));
	assert_true(vmm_cpuid_means_pvm(~CPUID_1_ECX_VMX, ~CPUID_EXT1_ECX_SVM));
	assert_false(vmm_cpuid_means_pvm(CPUID_1_ECX_VMX, 0));	  /* Intel, kvm_intel */
	assert_false(vmm_cpuid_means_pvm(0, CPUID_EXT1_ECX_SVM)); /* AMD, kvm_amd */
	assert_false(vmm_cpuid_means_pvm(~0u, ~0u));
}

/* ---- pvm */

static void test_pvm_clears_leaf1_ecx_features(void **state)
{
	struct applied a;
	const struct kvm_cpuid_entry2 *e;

	apply(&a, "pvm", 0, 1);
	e = leaf(&a, 1, 0);
	assert_non_null(e);
	assert_int_equal(e->ecx & (XSAVE | OSXSAVE | AVX | POPCNT | PCID), 0);
	/* others stay: SSE3, SSSE3, SSE4.1/4.2, x2APIC, RDRAND */
	assert_int_equal(e->ecx & (BIT(0) | BIT(9) | BIT(19) | BIT(20) | BIT(21) | BIT(30)),
			 BIT(0) | BIT(9) | BIT(19) | BIT(20) | BIT(21) | BIT(30));
}

static void test_pvm_clears_leaf7_ebx_features(void **state)
{
	struct applied a;
	const struct kvm_cpuid_entry2 *e;

	apply(&a, "pvm", 0, 1);
	e = leaf(&a, 7, 0);
	assert_non_null(e);
	assert_int_equal(
	    e->ebx & (SMAP | FSGSBASE | INVPCID | AVX2 | AVX512_ALL | CLFLUSHOPT | CLWB), 0);
	/* others stay: BMI1, SMEP, BMI2, ERMS, RDSEED, ADX, SHA */
	assert_int_equal(e->ebx & (BIT(3) | BIT(7) | BIT(8) | BIT(9) | BIT(18) | BIT(19) | BIT(29)),
			 BIT(3) | BIT(7) | BIT(8) | BIT(9) | BIT(18) | BIT(19) | BIT(29));
}

static void test_pvm_clears_rdpid(void **state)
{
	struct applied a;
	const struct kvm_cpuid_entry2 *e;

	apply(&a, "pvm", 0, 1);
	e = leaf(&a, 7, 0);
	assert_non_null(e);
	assert_int_equal(e->ecx & RDPID, 0);
	assert_true(e->ecx & BIT(2)); /* UMIP stays */
}

static void test_pvm_clears_rdtscp(void **state)
{
	struct applied a;
	const struct kvm_cpuid_entry2 *e;

	apply(&a, "pvm", 0, 1);
	e = leaf(&a, 0x80000001, 0);
	assert_non_null(e);
	assert_int_equal(e->edx & RDTSCP, 0);
	assert_true(e->edx & BIT(29)); /* long mode stays */
	assert_true(e->edx & BIT(20)); /* NX stays */
}

static void test_pvm_drops_xsave_leaf(void **state)
{
	struct applied a;

	apply(&a, "pvm", 0, 1);
	assert_null(find(a.e, a.n, 0xd, 0));
	assert_null(find(a.e, a.n, 0xd, 1));
	assert_null(find(a.e, a.n, 0xd, 2));
	assert_int_equal(a.n, N_INPUT - 3);
}

/* Dropping entries closes the gap without reordering what remains. */
static void test_pvm_keeps_order_of_remaining_leaves(void **state)
{
	struct applied a;
	unsigned j = 0;

	apply(&a, "pvm", 0, 1);
	for (unsigned i = 0; i < N_INPUT; i++) {
		if (input[i].function == 0xd)
			continue;
		assert_int_equal(a.e[j].function, input[i].function);
		assert_int_equal(a.e[j].index, input[i].index);
		j++;
	}
	assert_int_equal(j, a.n);
}

static void test_pvm_leaves_leaf7_subleaf1_alone(void **state)
{
	struct applied a;

	apply(&a, "pvm", 0, 1);
	assert_memory_equal(leaf(&a, 7, 1), in_leaf(7, 1), sizeof(struct kvm_cpuid_entry2));
}

/* ---- host */

static void test_host_keeps_every_feature(void **state)
{
	struct applied a;

	apply(&a, "host", 0, 1);
	assert_int_equal(a.n, N_INPUT);
	assert_int_equal(leaf(&a, 1, 0)->ecx, ALL); /* the hypervisor bit joins the rest */
	assert_int_equal(leaf(&a, 1, 0)->edx, ALL);
	assert_int_equal(leaf(&a, 7, 0)->ebx, ALL);
	assert_int_equal(leaf(&a, 7, 0)->ecx, ALL);
	assert_int_equal(leaf(&a, 7, 0)->edx, ALL);
	assert_int_equal(leaf(&a, 0x80000001, 0)->ecx, ALL);
	assert_int_equal(leaf(&a, 0x80000001, 0)->edx, ALL);
	assert_non_null(leaf(&a, 0xd, 0));
	assert_memory_equal(leaf(&a, 0xd, 2), in_leaf(0xd, 2), sizeof(struct kvm_cpuid_entry2));
}

/* ---- what every template does */

static void test_every_template_sets_hypervisor_bit(void **state)
{
	for (size_t t = 0; t < N_TEMPLATES; t++) {
		struct applied a;

		apply(&a, all_templates[t], 0, 1);
		assert_true(leaf(&a, 1, 0)->ecx & HYPERV);
	}
}

static void test_every_template_sets_apic_id_per_vcpu(void **state)
{
	for (size_t t = 0; t < N_TEMPLATES; t++) {
		for (unsigned cpu = 0; cpu < 4; cpu++) {
			struct applied a;

			apply(&a, all_templates[t], cpu, 4);
			assert_int_equal(leaf(&a, 1, 0)->ebx >> 24, cpu);
			assert_int_equal(leaf(&a, 0xb, 0)->edx, cpu);
			assert_int_equal(leaf(&a, 0xb, 1)->edx, cpu);
			assert_int_equal(leaf(&a, 0x1f, 0)->edx, cpu);
		}
	}
}

static void test_apic_id_of_last_vcpu(void **state)
{
	struct applied a;

	apply(&a, "pvm", VMM_MAX_VCPUS - 1, VMM_MAX_VCPUS);
	assert_int_equal(leaf(&a, 1, 0)->ebx >> 24, VMM_MAX_VCPUS - 1);
	assert_int_equal(leaf(&a, 0xb, 0)->edx, VMM_MAX_VCPUS - 1);
}

/* Leaf 1 EBX: brand index and CLFLUSH size kept, logical CPU count set. */
static void test_leaf1_ebx_keeps_low_half_and_counts_cpus(void **state)
{
	struct applied a;

	apply(&a, "host", 1, 2);
	assert_int_equal(leaf(&a, 1, 0)->ebx & 0xffff, input[1].ebx & 0xffff);
	assert_int_equal((leaf(&a, 1, 0)->ebx >> 16) & 0xff, 2);
	assert_true(leaf(&a, 1, 0)->edx & BIT(28)); /* HTT: the count is valid */
}

static void test_other_leaves_unchanged(void **state)
{
	static const uint32_t untouched[] = {0, 0x40000000, 0x80000000, 0x80000008};

	for (size_t t = 0; t < N_TEMPLATES; t++) {
		struct applied a;

		apply(&a, all_templates[t], 3, 4);
		for (size_t i = 0; i < sizeof(untouched) / sizeof(untouched[0]); i++) {
			const struct kvm_cpuid_entry2 *e = leaf(&a, untouched[i], 0);

			assert_non_null(e);
			assert_memory_equal(e, in_leaf(untouched[i], 0), sizeof(*e));
		}
		/* the topology leaves keep everything but the x2APIC id */
		assert_int_equal(leaf(&a, 0xb, 1)->eax, in_leaf(0xb, 1)->eax);
		assert_int_equal(leaf(&a, 0xb, 1)->ebx, in_leaf(0xb, 1)->ebx);
		assert_int_equal(leaf(&a, 0xb, 1)->ecx, in_leaf(0xb, 1)->ecx);
		/* leaf 1 EAX (the CPU signature) is the host's */
		assert_int_equal(leaf(&a, 1, 0)->eax, in_leaf(1, 0)->eax);
	}
}

static void test_apply_on_no_entries(void **state)
{
	struct kvm_cpuid_entry2 e[1];

	assert_int_equal(vmm_cpuid_apply(e, 0, vmm_cpu_template_find("pvm"), 0, 1), 0);
}

/* The host's own feature bits are added to the feature leaves only; the signature,
 * APIC id, subleaf count and other leaves keep KVM's values. */
static void test_add_host_features_touches_only_feature_registers(void **state)
{
	struct kvm_cpuid_entry2 e[] = {
	    {.function = 1, .eax = 0x11, .ebx = 0x22, .ecx = 0x100, .edx = 0},
	    {.function = 7, .index = 0, .eax = 2, .ebx = 0, .ecx = 0, .edx = 0},
	    {.function = 0xd, .index = 0, .eax = 0x7, .ebx = 0x240},
	    {.function = 0x80000001, .ecx = 0, .edx = 0},
	    {.function = 0x80000008, .eax = 0x3030},
	};
	unsigned a, b, c, d;

	vmm_cpuid_add_host_features(e, sizeof(e) / sizeof(e[0]));
	__cpuid_count(1, 0, a, b, c, d);
	assert_int_equal(e[0].eax, 0x11);
	assert_int_equal(e[0].ebx, 0x22);
	assert_int_equal(e[0].ecx, c | 0x100);
	assert_int_equal(e[0].edx, d);
	__cpuid_count(7, 0, a, b, c, d);
	assert_int_equal(e[1].eax, 2);
	assert_int_equal(e[1].ebx, b);
	assert_int_equal(e[1].ecx, c);
	assert_int_equal(e[1].edx, d);
	assert_int_equal(e[2].eax, 0x7); /* 0xD.0 describes sizes, not features */
	assert_int_equal(e[2].ebx, 0x240);
	__cpuid_count(0x80000001, 0, a, b, c, d);
	assert_int_equal(e[3].ecx, c);
	assert_int_equal(e[3].edx, d);
	assert_int_equal(e[4].eax, 0x3030);
}

/* What check_host does on PVM: the guest's leaves against the host CPU's own. A guest
 * with exactly the host's features passes; one with a feature bit the host CPU lacks
 * is refused, naming it. */
static void test_host_view_refuses_a_feature_the_cpu_lacks(void **state)
{
	struct kvm_cpuid_entry2 guest[2] = {{.function = 1}, {.function = 7, .flags = 1}};
	struct kvm_cpuid_entry2 have[2];
	unsigned a, b, c, d, bit;
	char err[512];

	__cpuid_count(1, 0, a, b, c, d);
	guest[0].ecx = c;
	guest[0].edx = d;
	__cpuid_count(7, 0, a, b, c, d);
	guest[1].ebx = b;
	guest[1].ecx = c;
	guest[1].edx = d;
	vmm_cpuid_host_view(guest, 2, have);
	assert_int_equal(have[0].eax, 0);
	assert_int_equal(vmm_cpu_compat_check(NULL, guest, 2, NULL, have, 2, err, sizeof(err)), 0);

	/* the first named leaf 7 EBX feature this CPU lacks */
	for (bit = 0; bit < 32 && ((b >> bit & 1) || !vmm_cpu_feature_name(7, 0, 1, bit)); bit++)
		;
	if (bit == 32)
		skip();
	guest[1].ebx |= 1u << bit;
	assert_int_equal(vmm_cpu_compat_check(NULL, guest, 2, NULL, have, 2, err, sizeof(err)),
			 -ENOTSUP);
	assert_non_null(strstr(err, vmm_cpu_feature_name(7, 0, 1, bit)));
	assert_non_null(strstr(err, "host lacks 1 CPU feature"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_find_host_template),
	    cmocka_unit_test(test_find_pvm_template),
	    cmocka_unit_test(test_find_unknown_template_is_null),
	    cmocka_unit_test(test_names_list_every_template_once),
	    cmocka_unit_test(test_pick_by_name_and_unknown),
	    cmocka_unit_test(test_custom_config_sets_clears_and_keeps_bits),
	    cmocka_unit_test(test_pick_default_follows_host_kind),
	    cmocka_unit_test(test_pvm_is_a_cpu_without_vmx_or_svm),
	    cmocka_unit_test(test_pvm_clears_leaf1_ecx_features),
	    cmocka_unit_test(test_pvm_clears_leaf7_ebx_features),
	    cmocka_unit_test(test_pvm_clears_rdpid),
	    cmocka_unit_test(test_pvm_clears_rdtscp),
	    cmocka_unit_test(test_pvm_drops_xsave_leaf),
	    cmocka_unit_test(test_pvm_keeps_order_of_remaining_leaves),
	    cmocka_unit_test(test_pvm_leaves_leaf7_subleaf1_alone),
	    cmocka_unit_test(test_host_keeps_every_feature),
	    cmocka_unit_test(test_every_template_sets_hypervisor_bit),
	    cmocka_unit_test(test_every_template_sets_apic_id_per_vcpu),
	    cmocka_unit_test(test_apic_id_of_last_vcpu),
	    cmocka_unit_test(test_leaf1_ebx_keeps_low_half_and_counts_cpus),
	    cmocka_unit_test(test_other_leaves_unchanged),
	    cmocka_unit_test(test_apply_on_no_entries),
	    cmocka_unit_test(test_add_host_features_touches_only_feature_registers),
	    cmocka_unit_test(test_host_view_refuses_a_feature_the_cpu_lacks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
