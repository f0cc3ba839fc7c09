/* CPU templates: named sets of CPUID features hidden from the guest, applied to what
 * KVM_GET_SUPPORTED_CPUID offers, plus the per-vCPU fields (APIC id, topology). */
#include "vmm/vmm.h"

#include <cpuid.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define BIT(n) (1u << (n))

/* leaf 1 ECX */
#define F1C_PCID    BIT(17)
#define F1C_POPCNT  BIT(23)
#define F1C_XSAVE   BIT(26)
#define F1C_OSXSAVE BIT(27)
#define F1C_AVX	    BIT(28)
#define F1C_F16C    BIT(29)
#define F1C_FMA	    BIT(12)
#define F1C_HYPERV  BIT(31)
/* leaf 7.0 EBX */
#define F7B_FSGSBASE   BIT(0)
#define F7B_AVX2       BIT(5)
#define F7B_INVPCID    BIT(10)
#define F7B_AVX512F    BIT(16)
#define F7B_AVX512DQ   BIT(17)
#define F7B_SMAP       BIT(20)
#define F7B_AVX512IFMA BIT(21)
#define F7B_CLFLUSHOPT BIT(23)
#define F7B_CLWB       BIT(24)
#define F7B_AVX512PF   BIT(26)
#define F7B_AVX512ER   BIT(27)
#define F7B_AVX512CD   BIT(28)
#define F7B_AVX512BW   BIT(30)
#define F7B_AVX512VL   BIT(31)
/* leaf 7.0 ECX */
#define F7C_AVX512VBMI	BIT(1)
#define F7C_AVX512VBMI2 BIT(6)
#define F7C_VAES	BIT(9)
#define F7C_VPCLMULQDQ	BIT(10)
#define F7C_AVX512VNNI	BIT(11)
#define F7C_AVX512BITAL BIT(12)
#define F7C_AVX512VPOPC BIT(14)
#define F7C_RDPID	BIT(22)
/* leaf 0x80000001 EDX */
#define FX1D_RDTSCP BIT(27)

#define AVX512_7B                                                                                  \
	(F7B_AVX512F | F7B_AVX512DQ | F7B_AVX512IFMA | F7B_AVX512PF | F7B_AVX512ER |               \
	 F7B_AVX512CD | F7B_AVX512BW | F7B_AVX512VL)
#define AVX512_7C                                                                                  \
	(F7C_AVX512VBMI | F7C_AVX512VBMI2 | F7C_AVX512VNNI | F7C_AVX512BITAL | F7C_AVX512VPOPC)

static const struct vmm_cpu_template templates[] = {
    {
	.name = "host",
	.why = "everything KVM offers",
    },
    {
	.name = "pvm",
	.why = "hides what PVM's instruction emulator cannot run in a guest kernel: "
	       "xsave/xrstor (and the AVX family that needs it), SMAP (clac/stac), "
	       "popcnt, and the rarely emulated fsgsbase, invpcid, pcid, rdpid, "
	       "clflushopt, clwb, rdtscp",
	.clear_1_ecx =
	    F1C_PCID | F1C_POPCNT | F1C_XSAVE | F1C_OSXSAVE | F1C_AVX | F1C_F16C | F1C_FMA,
	.clear_7_ebx = F7B_FSGSBASE | F7B_AVX2 | F7B_INVPCID | F7B_SMAP | F7B_CLFLUSHOPT |
		       F7B_CLWB | AVX512_7B,
	.clear_7_ecx = F7C_RDPID | F7C_VAES | F7C_VPCLMULQDQ | AVX512_7C,
	.clear_ext1_edx = FX1D_RDTSCP,
	.hide_xsave_leaf = true,
    },
};

static const char *const template_names[] = {"host", "pvm", NULL};

const struct vmm_cpu_template *vmm_cpu_template_find(const char *name)
{
	for (size_t i = 0; i < sizeof(templates) / sizeof(templates[0]); i++)
		if (strcmp(templates[i].name, name) == 0)
			return &templates[i];
	return NULL;
}

const char *const *vmm_cpu_template_names(void)
{
	return template_names;
}

bool vmm_cpuid_means_pvm(uint32_t leaf1_ecx, uint32_t ext1_ecx)
{
	return !(leaf1_ecx & CPUID_1_ECX_VMX) && !(ext1_ecx & CPUID_EXT1_ECX_SVM);
}

/* PVM is the one KVM backend whose quirks we adapt to. Hardware KVM (kvm_intel,
 * kvm_amd) cannot load without VMX or SVM; PVM exists for hosts that have neither,
 * typically cloud VMs. So the host CPU's own CPUID answers, which works anywhere: a
 * jail has no /sys/module to look for kvm_pvm in. */
bool vmm_host_is_pvm(void)
{
	unsigned a, b, c1 = 0, c2 = 0, d;

	__cpuid(1, a, b, c1, d);
	__cpuid(0x80000000u, a, b, c2, d);
	if (a >= 0x80000001u)
		__cpuid(0x80000001u, a, b, c2, d);
	else
		c2 = 0;
	return vmm_cpuid_means_pvm(c1, c2);
}

unsigned vmm_cpuid_apply(struct kvm_cpuid_entry2 *e, unsigned n, const struct vmm_cpu_template *t,
			 unsigned index, unsigned nr_vcpus)
{
	unsigned i, out = 0;

	for (i = 0; i < n; i++) {
		struct kvm_cpuid_entry2 ent = e[i];

		switch (ent.function) {
		case 1:
			ent.ecx &= ~t->clear_1_ecx;
			ent.edx &= ~t->clear_1_edx;
			ent.ecx |= F1C_HYPERV;
			/* initial APIC id, and how many logical CPUs share the package */
			ent.ebx = (ent.ebx & 0x0000ffff) | (index << 24) |
				  ((nr_vcpus > 1 ? nr_vcpus : 1) << 16);
			if (nr_vcpus > 1)
				ent.edx |= BIT(28); /* HTT: the count above is valid */
			break;
		case 7:
			if (ent.index == 0) {
				ent.ebx &= ~t->clear_7_ebx;
				ent.ecx &= ~t->clear_7_ecx;
				ent.edx &= ~t->clear_7_edx;
			}
			break;
		case 0xb:
		case 0x1f:
			/* x2APIC topology: every vCPU its own core; EDX is the x2APIC id. */
			ent.edx = index;
			break;
		case 0xd:
			if (t->hide_xsave_leaf)
				continue;
			break;
		case 0x80000001:
			ent.ecx &= ~t->clear_ext1_ecx;
			ent.edx &= ~t->clear_ext1_edx;
			break;
		default:
			break;
		}
		e[out++] = ent;
	}
	return out;
}

int vmm_cpuid_apply_config(struct kvm_cpuid_entry2 *e, unsigned n, const struct vmm_cpu_config *c,
			   char *err, size_t errlen)
{
	static const char *const regs[] = {"eax", "ebx", "ecx", "edx"};

	for (unsigned m = 0; m < c->nr_cpuid; m++) {
		const struct vmm_cpuid_mod *mod = &c->cpuid[m];
		bool found = false;

		for (unsigned i = 0; i < n; i++) {
			uint32_t *r[] = {&e[i].eax, &e[i].ebx, &e[i].ecx, &e[i].edx};

			if (e[i].function != mod->leaf ||
			    (mod->subleaf_significant && e[i].index != mod->subleaf))
				continue;
			*r[mod->reg & 3] = (*r[mod->reg & 3] & mod->keep) | mod->set;
			found = true;
		}
		if (!found && !mod->optional) {
			snprintf(
			    err, errlen,
			    "cpu-config: CPUID leaf %#x subleaf %#x (%s) is not one this host's "
			    "KVM offers a guest",
			    mod->leaf, mod->subleaf, regs[mod->reg & 3]);
			return -ENOENT;
		}
	}
	return 0;
}

void vmm_cpuid_host_view(const struct kvm_cpuid_entry2 *like, unsigned n,
			 struct kvm_cpuid_entry2 *out)
{
	for (unsigned i = 0; i < n; i++)
		out[i] = (struct kvm_cpuid_entry2){
		    .function = like[i].function, .index = like[i].index, .flags = like[i].flags};
	vmm_cpuid_add_host_features(out, n);
}

void vmm_cpuid_add_host_features(struct kvm_cpuid_entry2 *e, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		unsigned f = e[i].function, r[4];

		if (f != 1 && f != 7 && !(f == 0xd && e[i].index == 1) && f != 0x80000001)
			continue;
		__cpuid_count(f, e[i].index, r[0], r[1], r[2], r[3]);
		if (f == 1) /* signature and APIC id, not features */
			r[0] = r[1] = 0;
		if (f == 7 && e[i].index == 0) /* the number of subleaves */
			r[0] = 0;
		e[i].eax |= r[0];
		e[i].ebx |= r[1];
		e[i].ecx |= r[2];
		e[i].edx |= r[3];
	}
}
