/* CPU compatibility policy: the pure check of a snapshot's guest CPUID against what this
 * host's KVM supports, naming every missing feature. Beside cpuid.c, which builds the
 * guest's CPUID: both decide what the guest may see. */
#include <cpuid.h>
#include <errno.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "restore/snapshot.h"
#include "vmm/vmm.h"

/* ---------------------------------------------------------------- feature names */

struct featreg {
	uint32_t leaf, sub;
	unsigned reg;	 /* 0 eax, 1 ebx, 2 ecx, 3 edx */
	uint32_t ignore; /* bits KVM emulates or the VMM sets itself: never compared */
	const char *names[32];
};

static const struct featreg feats[] = {
    {1,
     0,
     2,
     (1u << 24) | (1u << 27) | (1u << 31) | (1u << 21),
     {"sse3",	"pclmulqdq", "dtes64", "monitor",      "ds_cpl", "vmx",	   "smx",
      "est",	"tm2",	     "ssse3",  "cnxt_id",      "sdbg",	 "fma",	   "cx16",
      "xtpr",	"pdcm",	     NULL,     "pcid",	       "dca",	 "sse4_1", "sse4_2",
      "x2apic", "movbe",     "popcnt", "tsc_deadline", "aes",	 "xsave",  "osxsave",
      "avx",	"f16c",	     "rdrand", "hypervisor"}},
    /* ht: the VMM sets it to describe its vCPU topology (thaw does for SMP guests) */
    {1, 0, 3, (1u << 28), {"fpu",  "vme",   "de",   "pse",     "tsc",  "msr", "pae",  "mce",
			   "cx8",  "apic",  NULL,   "sep",     "mtrr", "pge", "mca",  "cmov",
			   "pat",  "pse36", "psn",  "clflush", NULL,   "ds",  "acpi", "mmx",
			   "fxsr", "sse",   "sse2", "ss",      "ht",   "tm",  "ia64", "pbe"}},
    {7, 0, 1, 0, {"fsgsbase",
		  "tsc_adjust",
		  "sgx",
		  "bmi1",
		  "hle",
		  "avx2",
		  "fdp_excptn_only",
		  "smep",
		  "bmi2",
		  "erms",
		  "invpcid",
		  "rtm",
		  "pqm",
		  "zero_fcs_fds",
		  "mpx",
		  "rdt_a",
		  "avx512f",
		  "avx512dq",
		  "rdseed",
		  "adx",
		  "smap",
		  "avx512ifma",
		  "pcommit",
		  "clflushopt",
		  "clwb",
		  "intel_pt",
		  "avx512pf",
		  "avx512er",
		  "avx512cd",
		  "sha_ni",
		  "avx512bw",
		  "avx512vl"}},
    {7,
     0,
     2,
     (1u << 4),
     {"prefetchwt1",
      "avx512vbmi",
      "umip",
      "pku",
      "ospke",
      "waitpkg",
      "avx512_vbmi2",
      "cet_ss",
      "gfni",
      "vaes",
      "vpclmulqdq",
      "avx512_vnni",
      "avx512_bitalg",
      "tme",
      "avx512_vpopcntdq",
      NULL,
      "la57",
      NULL,
      NULL,
      NULL,
      NULL,
      NULL,
      "rdpid",
      "key_locker",
      "bus_lock_detect",
      "cldemote",
      NULL,
      "movdiri",
      "movdir64b",
      "enqcmd",
      "sgx_lc",
      "pks"}},
    {7,
     0,
     3,
     0,
     {NULL,
      NULL,
      "avx512_4vnniw",
      "avx512_4fmaps",
      "fsrm",
      "uintr",
      NULL,
      NULL,
      "avx512_vp2intersect",
      "srbds_ctrl",
      "md_clear",
      "rtm_always_abort",
      NULL,
      "tsx_force_abort",
      "serialize",
      "hybrid",
      "tsxldtrk",
      NULL,
      "pconfig",
      "arch_lbr",
      "cet_ibt",
      NULL,
      "amx_bf16",
      "avx512_fp16",
      "amx_tile",
      "amx_int8",
      "spec_ctrl",
      "intel_stibp",
      "flush_l1d",
      "arch_capabilities",
      "core_capabilities",
      "spec_ctrl_ssbd"}},
    {0xd, 1, 0, 0, {"xsaveopt", "xsavec", "xgetbv1", "xsaves", "xfd"}},
    {0x80000001, 0, 2, 0, {"lahf_lm",	 "cmp_legacy",	"svm",
			   "extapic",	 "cr8_legacy",	"abm",
			   "sse4a",	 "misalignsse", "3dnowprefetch",
			   "osvw",	 "ibs",		"xop",
			   "skinit",	 "wdt",		NULL,
			   "lwp",	 "fma4",	"tce",
			   NULL,	 "nodeid_msr",	NULL,
			   "tbm",	 "topoext",	"perfctr_core",
			   "perfctr_nb", NULL,		"bpext",
			   "ptsc",	 "perfctr_llc", "mwaitx"}},
    {0x80000001, 0, 3, 0, {NULL, NULL,	   NULL,       NULL,   NULL,	   NULL,      NULL,
			   NULL, NULL,	   NULL,       NULL,   "syscall",  NULL,      NULL,
			   NULL, NULL,	   NULL,       NULL,   NULL,	   "mp",      "nx",
			   NULL, "mmxext", NULL,       NULL,   "fxsr_opt", "pdpe1gb", "rdtscp",
			   NULL, "lm",	   "3dnowext", "3dnow"}},
};

static const char *const reg_names[] = {"eax", "ebx", "ecx", "edx"};

const char *vmm_cpu_feature_name(uint32_t leaf, uint32_t subleaf, unsigned reg, unsigned bit)
{
	for (size_t i = 0; i < sizeof(feats) / sizeof(feats[0]); i++)
		if (feats[i].leaf == leaf && feats[i].sub == subleaf && feats[i].reg == reg &&
		    bit < 32)
			return feats[i].names[bit];
	return NULL;
}

static const struct kvm_cpuid_entry2 *find_entry(const struct kvm_cpuid_entry2 *e, size_t n,
						 uint32_t leaf, uint32_t sub)
{
	for (size_t i = 0; i < n; i++) {
		if (e[i].function != leaf)
			continue;
		if ((e[i].flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) && e[i].index != sub)
			continue;
		return &e[i];
	}
	return NULL;
}

static uint32_t reg_of(const struct kvm_cpuid_entry2 *e, unsigned reg)
{
	switch (reg) {
	case 0:
		return e->eax;
	case 1:
		return e->ebx;
	case 2:
		return e->ecx;
	default:
		return e->edx;
	}
}

int vmm_cpu_compat_check(const struct snap_host_facts *saved, const struct kvm_cpuid_entry2 *guest,
			 size_t nguest, const struct snap_host_facts *host,
			 const struct kvm_cpuid_entry2 *supported, size_t nsupported, char *err,
			 size_t errlen)
{
	struct snap_host_facts here;
	if (!host) {
		/* The restore path needs only the vendor: one CPUID (each traps to the
		 * hypervisor, ~6 us under PVM) instead of the ~35 of the full facts. */
		uint32_t r[4];
		memset(&here, 0, sizeof(here));
		__cpuid_count(0, 0, r[0], r[1], r[2], r[3]);
		memcpy(here.vendor, &r[1], 4);
		memcpy(here.vendor + 4, &r[3], 4);
		memcpy(here.vendor + 8, &r[2], 4);
		host = &here;
	}
	if (saved && strncmp(saved->vendor, host->vendor, sizeof(saved->vendor))) {
		errf(err, errlen, 0,
		     "snapshot was taken on a %.12s CPU, this host is %.12s: other CPU "
		     "vendor",
		     saved->vendor, host->vendor);
		return -ENOTSUP;
	}
	char list[512];
	size_t used = 0, missing = 0;
	list[0] = 0;
	for (size_t i = 0; i < sizeof(feats) / sizeof(feats[0]); i++) {
		const struct featreg *fr = &feats[i];
		const struct kvm_cpuid_entry2 *g = find_entry(guest, nguest, fr->leaf, fr->sub);
		if (!g)
			continue;
		const struct kvm_cpuid_entry2 *h =
		    find_entry(supported, nsupported, fr->leaf, fr->sub);
		uint32_t have = h ? reg_of(h, fr->reg) : 0;
		uint32_t lack = reg_of(g, fr->reg) & ~have & ~fr->ignore;
		for (unsigned b = 0; b < 32; b++) {
			if (!(lack & (1u << b)))
				continue;
			char one[64];
			if (fr->names[b])
				snprintf(one, sizeof(one), "%s", fr->names[b]);
			else
				snprintf(one, sizeof(one), "cpuid 0x%x.%u %s bit %u", fr->leaf,
					 fr->sub, reg_names[fr->reg], b);
			int w = snprintf(list + used, sizeof(list) - used, "%s%s",
					 missing ? ", " : "", one);
			if (w > 0 && (size_t)w < sizeof(list) - used)
				used += (size_t)w;
			missing++;
		}
	}
	if (missing) {
		errf(err, errlen, 0, "host lacks %zu CPU feature%s the snapshot's guest uses: %s",
		     missing, missing == 1 ? "" : "s", list);
		return -ENOTSUP;
	}
	return 0;
}
