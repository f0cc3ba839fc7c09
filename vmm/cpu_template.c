/* Firecracker's static CPU templates (C3, T2, T2S, T2CL, T2A), defined here by the features
 * each hides or shows, in the names the Intel SDM (vol. 2A, CPUID) and the AMD APM (vol. 3,
 * appendix E) give the bits. Each compiles into a custom template (struct vmm_cpu_config),
 * so a static template takes the very path PUT /cpu-config does: applied at boot, checked
 * with KVM_GET_CPUID2, its MSRs written on every vCPU, saved with the vCPU state.
 *
 * What the templates are for (Firecracker's docs/cpu_templates/cpu-templates.md): T2 and
 * C3 look like the AWS instance types of those names (Haswell and Ivy Bridge Xeons); T2S
 * is T2 that also pins IA32_ARCH_CAPABILITIES so a snapshot can move between Skylake and
 * Cascade Lake; T2CL (Intel Cascade Lake or newer) and T2A (AMD Milan) show the same
 * instruction sets so the two form one fleet. */
#include "vmm/vmm.h"

#include <cpuid.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#define B32(n) (1u << (n))
#define B64(n) (1ull << (n))

/* ---- leaf 1 EAX: the processor signature */
#define SIG_FIELDS 0x0fff3fffu /* stepping, model, family, type (0: OEM), ext. model, family */
#define SIGNATURE(family, model, stepping)                                                         \
	((uint32_t)(stepping) | (((model)&0xfu) << 4) | ((family) << 8) | (((model) >> 4) << 16))
/* ---- leaf 1 ECX */
#define L1C_DTES64	B32(2)
#define L1C_MONITOR	B32(3)
#define L1C_DS_CPL	B32(4)
#define L1C_VMX		B32(5)
#define L1C_SMX		B32(6)
#define L1C_EIST	B32(7)
#define L1C_TM2		B32(8)
#define L1C_CNXT_ID	B32(10)
#define L1C_SDBG	B32(11)
#define L1C_FMA		B32(12)
#define L1C_XTPR_UPDATE B32(14)
#define L1C_PDCM	B32(15)
#define L1C_DCA		B32(18)
#define L1C_MOVBE	B32(22)
/* ---- leaf 1 EDX */
#define L1D_MCE	 B32(7)
#define L1D_MTRR B32(12)
#define L1D_PSN	 B32(18)
#define L1D_DS	 B32(21)
#define L1D_ACPI B32(22)
#define L1D_SS	 B32(27)
#define L1D_TM	 B32(29)
#define L1D_IA64 B32(30)
#define L1D_PBE	 B32(31)
/* ---- leaf 7.0 EBX */
#define L7B_SGX		    B32(2)
#define L7B_BMI1	    B32(3)
#define L7B_HLE		    B32(4)
#define L7B_AVX2	    B32(5)
#define L7B_FDP_EXCPTN_ONLY B32(6)
#define L7B_BMI2	    B32(8)
#define L7B_ERMS	    B32(9) /* enhanced REP MOVSB/STOSB */
#define L7B_INVPCID	    B32(10)
#define L7B_RTM		    B32(11)
#define L7B_RDT_M	    B32(12) /* AMD: PQM */
#define L7B_ZERO_FCS_FDS    B32(13)
#define L7B_MPX		    B32(14)
#define L7B_RDT_A	    B32(15) /* AMD: PQE */
#define L7B_AVX512F	    B32(16)
#define L7B_AVX512DQ	    B32(17)
#define L7B_RDSEED	    B32(18)
#define L7B_ADX		    B32(19)
#define L7B_AVX512_IFMA	    B32(21)
#define L7B_PCOMMIT	    B32(22) /* deprecated by Intel; the AMD APM lists RDPID here */
#define L7B_CLFLUSHOPT	    B32(23)
#define L7B_CLWB	    B32(24)
#define L7B_INTEL_PT	    B32(25)
#define L7B_AVX512PF	    B32(26)
#define L7B_AVX512ER	    B32(27)
#define L7B_AVX512CD	    B32(28)
#define L7B_SHA		    B32(29)
#define L7B_AVX512BW	    B32(30)
#define L7B_AVX512VL	    B32(31)
/* ---- leaf 7.0 ECX */
#define L7C_AVX512_VBMI	     B32(1)
#define L7C_UMIP	     B32(2)
#define L7C_PKU		     B32(3)
#define L7C_OSPKE	     B32(4)
#define L7C_AVX512_VBMI2     B32(6)
#define L7C_GFNI	     B32(8)
#define L7C_VAES	     B32(9)
#define L7C_VPCLMULQDQ	     B32(10)
#define L7C_AVX512_VNNI	     B32(11)
#define L7C_AVX512_BITALG    B32(12)
#define L7C_AVX512_VPOPCNTDQ B32(14)
#define L7C_LA57	     B32(16)
#define L7C_RDPID	     B32(22)
#define L7C_SGX_LC	     B32(30)
/* ---- leaf 7.0 EDX */
#define L7D_AVX512_4VNNIW	B32(2)
#define L7D_AVX512_4FMAPS	B32(3)
#define L7D_FSRM		B32(4) /* fast short REP MOV */
#define L7D_AVX512_VP2INTERSECT B32(8)
/* ---- leaf 0xD.0 EAX: XCR0 state components the guest may enable */
#define LD0A_BNDREGS   B32(3)
#define LD0A_BNDCSR    B32(4)
#define LD0A_OPMASK    B32(5)
#define LD0A_ZMM_HI256 B32(6)
#define LD0A_HI16_ZMM  B32(7)
#define LD0A_PKRU      B32(9)
/* ---- leaf 0xD.1 EAX */
#define LD1A_XSAVEC  B32(1)
#define LD1A_XGETBV1 B32(2)
#define LD1A_XSAVES  B32(3)
/* ---- leaf 0x80000001 ECX */
#define LX1C_ABM	 B32(5) /* LZCNT */
#define LX1C_SSE4A	 B32(6)
#define LX1C_MISALIGNSSE B32(7)
#define LX1C_PREFETCHW	 B32(8) /* AMD: 3DNowPrefetch */
#define LX1C_MWAITX	 B32(29)
/* ---- leaf 0x80000001 EDX (22-25 are AMD's; Intel reserves them) */
#define LX1D_MMXEXT  B32(22)
#define LX1D_MMX     B32(23)
#define LX1D_FXSR    B32(24)
#define LX1D_FFXSR   B32(25)
#define LX1D_PAGE1GB B32(26)
/* ---- leaf 0x80000008 EBX */
#define LX8B_CLZERO	      B32(0)
#define LX8B_RSTR_FP_ERR_PTRS B32(2)
#define LX8B_WBNOINVD	      B32(9)
#define LX8B_IBRS_PREFERRED   B32(18)
#define LX8B_IBRS_SAME_MODE   B32(19)
/* ---- IA32_ARCH_CAPABILITIES (MSR 0x10a) */
#define MSR_ARCH_CAPABILITIES	0x10au
#define AC_RDCL_NO		B64(0)
#define AC_IBRS_ALL		B64(1)
#define AC_RSBA			B64(2)
#define AC_SKIP_L1DFL_VMENTRY	B64(3)
#define AC_SSB_NO		B64(4)
#define AC_MDS_NO		B64(5)
#define AC_IF_PSCHANGE_MC_NO	B64(6)
#define AC_TSX_CTRL		B64(7)
#define AC_TAA_NO		B64(8)
#define AC_MISC_PACKAGE_CTLS	B64(10)
#define AC_ENERGY_FILTERING_CTL B64(11)
#define AC_SBDR_SSDP_NO		B64(13)
#define AC_FBSDP_NO		B64(14)
#define AC_PSDP_NO		B64(15)
#define AC_FB_CLEAR		B64(17)
#define AC_RRSBA		B64(19)
#define AC_PBRSB_NO		B64(24)
#define AC_GDS_NO		B64(26)
#define AC_RFDS_NO		B64(27)

/* One CPUID register a template changes: bits forced to 0, bits forced to 1; the others
 * stay what KVM offers on the host. */
struct reg_rule {
	uint32_t leaf, subleaf;
	bool indexed; /* the leaf has subleaves (7, 0xD) */
	uint8_t reg;  /* 0 eax, 1 ebx, 2 ecx, 3 edx */
	uint32_t clear, set;
};

enum { EAX, EBX, ECX, EDX };
#define MAX_RULES 14

struct static_template {
	const char *name;
	const char *vendor; /* CPUID leaf 0's vendor string the template is for */
	struct reg_rule rules[MAX_RULES];
	/* IA32_ARCH_CAPABILITIES: `msr_keep` bits are the host's, `msr_set` bits forced on,
	 * the rest 0; not touched when has_msr is false. */
	bool has_msr;
	uint64_t msr_keep, msr_set;
};

/* What the T2 family (T2, T2S, T2CL, T2A) shares: a Haswell-E signature (family 6, model
 * 0x3F, stepping 2), none of the monitoring, power, debug-store or virtualisation features
 * a guest has no use for, MCE and MTRR always shown, and no instruction set newer than
 * Haswell's (AVX-512 in all its parts, SHA, ADX/RDSEED, the Ice Lake vector extensions,
 * TSX, MPX, SGX, PKU, 5-level paging, 1 GiB pages, XSAVEC/XSAVES) except the enhanced
 * REP MOVSB it always shows. */
/* clang-format off */
#define T2_LEAF7_EBX_CLEAR                                                                         \
	(L7B_SGX | L7B_HLE | L7B_RTM | L7B_RDT_M | L7B_MPX | L7B_RDT_A | L7B_AVX512F |             \
	 L7B_AVX512DQ | L7B_RDSEED | L7B_ADX | L7B_AVX512_IFMA | L7B_PCOMMIT | L7B_CLFLUSHOPT |    \
	 L7B_CLWB | L7B_INTEL_PT | L7B_AVX512PF | L7B_AVX512ER | L7B_AVX512CD | L7B_SHA |          \
	 L7B_AVX512BW | L7B_AVX512VL)
/* MPX and AVX-512 state and PKRU go with the features above. */
#define NO_MPX_AVX512_PKRU_STATE                                                                   \
	{0xd, 0, true, EAX,                                                                        \
	 LD0A_BNDREGS | LD0A_BNDCSR | LD0A_OPMASK | LD0A_ZMM_HI256 | LD0A_HI16_ZMM | LD0A_PKRU, 0}
#define NO_COMPACT_XSAVE {0xd, 1, true, EAX, LD1A_XSAVEC | LD1A_XGETBV1 | LD1A_XSAVES, 0}
/* The T2 family's rules; the members differ in what else leaf 7.0 EBX hides and in the
 * extended leaf 0x80000001. */
#define T2_FAMILY(leaf7_ebx_also, ext1_ecx, ext1_edx)                                              \
	{1, 0, false, EAX, SIG_FIELDS, SIGNATURE(6, 0x3f, 2)},                                     \
	{1, 0, false, ECX,                                                                         \
	 L1C_DTES64 | L1C_MONITOR | L1C_DS_CPL | L1C_VMX | L1C_SMX | L1C_EIST | L1C_TM2 |          \
	 L1C_CNXT_ID | L1C_SDBG | L1C_XTPR_UPDATE | L1C_PDCM | L1C_DCA, 0},                        \
	{1, 0, false, EDX, L1D_PSN | L1D_DS | L1D_ACPI | L1D_SS | L1D_TM | L1D_IA64 | L1D_PBE,     \
	 L1D_MCE | L1D_MTRR},                                                                      \
	{7, 0, true, EBX, T2_LEAF7_EBX_CLEAR | (leaf7_ebx_also), L7B_ERMS},                         \
	{7, 0, true, ECX,                                                                          \
	 L7C_AVX512_VBMI | L7C_UMIP | L7C_PKU | L7C_OSPKE | L7C_AVX512_VBMI2 | L7C_GFNI |          \
	 L7C_VAES | L7C_VPCLMULQDQ | L7C_AVX512_VNNI | L7C_AVX512_BITALG |                         \
	 L7C_AVX512_VPOPCNTDQ | L7C_LA57 | L7C_RDPID | L7C_SGX_LC, 0},                             \
	{7, 0, true, EDX,                                                                          \
	 L7D_AVX512_4VNNIW | L7D_AVX512_4FMAPS | L7D_FSRM | L7D_AVX512_VP2INTERSECT, 0},           \
	NO_MPX_AVX512_PKRU_STATE, NO_COMPACT_XSAVE,                                                \
	{0x80000001, 0, false, ECX, (ext1_ecx), 0},                                                \
	{0x80000001, 0, false, EDX, (ext1_edx), 0}
/* T2CL and T2A: T2S's CPUID, and neither shows what only one vendor has in the extended
 * leaves, so Cascade Lake and Milan guests see the same instruction sets. */
#define T2CL_T2A_COMMON                                                                            \
	T2_FAMILY(0, LX1C_SSE4A | LX1C_MISALIGNSSE | LX1C_PREFETCHW | LX1C_MWAITX,                 \
		  LX1D_MMXEXT | LX1D_MMX | LX1D_FXSR | LX1D_FFXSR | LX1D_PAGE1GB)
#define NO_WBNOINVD {0x80000008, 0, false, EBX, LX8B_WBNOINVD, 0}
/* clang-format on */

#define INTEL "GenuineIntel"
#define AMD   "AuthenticAMD"

static const struct static_template static_templates[] = {
    {
	/* An Ivy Bridge-EP Xeon (family 6, model 0x3E, stepping 4): no FMA, MOVBE, AVX2,
	 * BMI1/2, LZCNT, INVPCID or anything newer. */
	.name = "C3",
	.vendor = INTEL,
	.rules =
	    {
		{1, 0, false, EAX, SIG_FIELDS, SIGNATURE(6, 0x3e, 4)},
		{1, 0, false, ECX,
		 L1C_DTES64 | L1C_MONITOR | L1C_DS_CPL | L1C_VMX | L1C_TM2 | L1C_CNXT_ID |
		     L1C_SDBG | L1C_FMA | L1C_XTPR_UPDATE | L1C_PDCM | L1C_MOVBE,
		 0},
		{1, 0, false, EDX, L1D_PSN | L1D_DS | L1D_ACPI | L1D_SS | L1D_TM | L1D_PBE,
		 L1D_MCE | L1D_MTRR},
		{7, 0, true, EBX,
		 L7B_SGX | L7B_BMI1 | L7B_HLE | L7B_AVX2 | L7B_BMI2 | L7B_INVPCID | L7B_RTM |
		     L7B_RDT_M | L7B_MPX | L7B_RDT_A | L7B_AVX512F | L7B_AVX512DQ | L7B_RDSEED |
		     L7B_ADX | L7B_AVX512_IFMA | L7B_CLFLUSHOPT | L7B_CLWB | L7B_INTEL_PT |
		     L7B_AVX512PF | L7B_AVX512ER | L7B_AVX512CD | L7B_SHA | L7B_AVX512BW |
		     L7B_AVX512VL,
		 0},
		{7, 0, true, ECX,
		 L7C_AVX512_VBMI | L7C_UMIP | L7C_PKU | L7C_OSPKE | L7C_AVX512_VNNI |
		     L7C_AVX512_VPOPCNTDQ | L7C_LA57 | L7C_RDPID | L7C_SGX_LC,
		 0},
		{7, 0, true, EDX, L7D_AVX512_4VNNIW | L7D_AVX512_4FMAPS, 0},
		NO_MPX_AVX512_PKRU_STATE,
		NO_COMPACT_XSAVE,
		{0x80000001, 0, false, ECX, LX1C_ABM | LX1C_PREFETCHW, 0},
		{0x80000001, 0, false, EDX, LX1D_PAGE1GB, 0},
	    },
    },
    {
	/* T2 also hides the two x87 pointer behaviours (FDP_EXCPTN_ONLY, deprecated FPU
	 * CS/DS) a Haswell lacks. */
	.name = "T2",
	.vendor = INTEL,
	.rules = {T2_FAMILY(L7B_FDP_EXCPTN_ONLY | L7B_ZERO_FCS_FDS, LX1C_PREFETCHW | LX1C_MWAITX,
			    LX1D_PAGE1GB),
		  NO_WBNOINVD},
    },
    {
	/* T2S: the guest is told it runs on the most exposed of Skylake and Cascade Lake
	 * (of the *_NO immunity bits only IF_PSCHANGE_MC_NO, RSBA and RRSBA set), so a
	 * snapshot taken on either is safe on the other. */
	.name = "T2S",
	.vendor = INTEL,
	.rules = {T2_FAMILY(0, LX1C_PREFETCHW | LX1C_MWAITX, LX1D_PAGE1GB), NO_WBNOINVD},
	.has_msr = true,
	.msr_keep = 0,
	.msr_set = AC_RSBA | AC_SKIP_L1DFL_VMENTRY | AC_IF_PSCHANGE_MC_NO | AC_MISC_PACKAGE_CTLS |
		   AC_ENERGY_FILTERING_CTL | AC_RRSBA,
    },
    {
	/* T2CL is not for moving snapshots between CPU models, so the guest keeps the
	 * host's vulnerability and mitigation bits KVM passes through (and may use the
	 * cheaper mitigations they allow); every other bit is 0. */
	.name = "T2CL",
	.vendor = INTEL,
	.rules = {T2CL_T2A_COMMON, NO_WBNOINVD},
	.has_msr = true,
	.msr_keep = AC_RDCL_NO | AC_IBRS_ALL | AC_RSBA | AC_SKIP_L1DFL_VMENTRY | AC_SSB_NO |
		    AC_MDS_NO | AC_IF_PSCHANGE_MC_NO | AC_TSX_CTRL | AC_TAA_NO | AC_SBDR_SSDP_NO |
		    AC_FBSDP_NO | AC_PSDP_NO | AC_FB_CLEAR | AC_RRSBA | AC_PBRSB_NO | AC_GDS_NO |
		    AC_RFDS_NO,
	.msr_set = 0,
    },
    {
	/* T2A: T2CL's view on a Milan, also hiding AMD's own CLZERO and FP error pointer
	 * behaviour, and saying IBRS is the preferred mitigation and works across modes
	 * as Intel's enhanced IBRS does. */
	.name = "T2A",
	.vendor = AMD,
	.rules = {T2CL_T2A_COMMON,
		  {0x80000008, 0, false, EBX,
		   LX8B_CLZERO | LX8B_RSTR_FP_ERR_PTRS | LX8B_WBNOINVD | LX8B_IBRS_PREFERRED |
		       LX8B_IBRS_SAME_MODE,
		   LX8B_IBRS_PREFERRED | LX8B_IBRS_SAME_MODE}},
    },
};

static const char *const static_names[] = {"C3", "T2", "T2S", "T2CL", "T2A", NULL};

static const struct static_template *find_static(const char *name)
{
	for (size_t i = 0; i < sizeof(static_templates) / sizeof(static_templates[0]); i++)
		if (name && strcmp(static_templates[i].name, name) == 0)
			return &static_templates[i];
	return NULL;
}

const char *const *vmm_static_template_names(void)
{
	return static_names;
}

const char *vmm_static_template_name(const char *name)
{
	const struct static_template *t = find_static(name);

	return t ? t->name : NULL;
}

int vmm_static_template_config(const char *name, struct vmm_cpu_config *out)
{
	const struct static_template *t = find_static(name);

	if (!t)
		return -ENOENT;
	memset(out, 0, sizeof(*out));
	for (unsigned i = 0; i < MAX_RULES && i < VMM_CPUID_MODS_MAX; i++) {
		const struct reg_rule *r = &t->rules[i];

		if (!r->clear && !r->set)
			break;
		out->cpuid[out->nr_cpuid++] = (struct vmm_cpuid_mod){
		    .leaf = r->leaf,
		    .subleaf = r->subleaf,
		    .subleaf_significant = r->indexed,
		    .reg = r->reg,
		    .keep = ~(r->clear | r->set),
		    .set = r->set,
		    /* A leaf the host lacks has nothing to hide; the leaves with bits to
		     * set (1, 7.0, 0x80000008) are in every KVM's answer. */
		    .optional = true,
		};
	}
	if (t->has_msr)
		out->msr[out->nr_msr++] = (struct vmm_msr_mod){
		    .addr = MSR_ARCH_CAPABILITIES, .keep = t->msr_keep, .set = t->msr_set};
	return 0;
}

void vmm_cpuid_vendor(const struct kvm_cpuid_entry2 *e, unsigned n, char vendor[13])
{
	memset(vendor, 0, 13);
	for (unsigned i = 0; i < n; i++) {
		if (e[i].function != 0)
			continue;
		memcpy(vendor, &e[i].ebx, 4);
		memcpy(vendor + 4, &e[i].edx, 4);
		memcpy(vendor + 8, &e[i].ecx, 4);
		return;
	}
}

void vmm_host_cpu_vendor(char vendor[13])
{
	struct kvm_cpuid_entry2 leaf0 = {.function = 0};

	__cpuid(0, leaf0.eax, leaf0.ebx, leaf0.ecx, leaf0.edx);
	vmm_cpuid_vendor(&leaf0, 1, vendor);
}

int vmm_static_template_check(const char *name, const char *vendor, bool pvm, char *err,
			      size_t errlen)
{
	const struct static_template *t = find_static(name);

	if (!t) {
		snprintf(err, errlen,
			 "cpu_template: '%s' is not a static template thaw offers (C3, T2, T2S, "
			 "T2CL, T2A)",
			 name ? name : "");
		return -ENOENT;
	}
	if (strcmp(vendor, t->vendor) != 0) {
		snprintf(err, errlen,
			 "cpu_template: %s is a template for %s CPUs (%s) and this host's CPU is "
			 "%s; Firecracker's templates never present one vendor as another",
			 t->name, strcmp(t->vendor, INTEL) == 0 ? "Intel" : "AMD", t->vendor,
			 vendor[0] ? vendor : "of an unknown vendor");
		return -EOPNOTSUPP;
	}
	if (pvm) {
		snprintf(err, errlen,
			 "cpu_template: this host is a PVM guest, and PVM replaces the CPUID a "
			 "VMM sets: the %s template cannot be honoured here",
			 t->name);
		return -EOPNOTSUPP;
	}
	return 0;
}
