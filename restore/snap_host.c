/* Host facts recorded in the header. The check of a snapshot's guest CPUID against what
 * this host's KVM supports is the VMM's (vmm/cpu_compat.c). */
#include <cpuid.h>
#include <errno.h>
#include <string.h>
#include <sys/utsname.h>

#include "restore/snap_internal.h"

static void cpuid_raw(uint32_t leaf, uint32_t sub, uint32_t r[4])
{
	__cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
}

/* CRC32C over (leaf, subleaf, eax, ebx, ecx, edx) as little-endian u32s for leaves 0..max
 * (at most 0x20) subleaf 0, leaf 7 subleaves 1..2, and extended leaves 0x80000000..max
 * (at most 0x80000008). Per-CPU fields are masked so every CPU of a host agrees: leaf 1
 * EBX[31:24] (initial APIC ID), leaves 0xB and 0x1F EDX (x2APIC ID). */
uint32_t snap_cpuid_digest(void)
{
	uint32_t r[4], crc = 0, max, emax;
	cpuid_raw(0, 0, r);
	max = r[0] < 0x20 ? r[0] : 0x20;
	cpuid_raw(0x80000000, 0, r);
	emax = r[0] < 0x80000008 ? r[0] : 0x80000008;
	for (uint64_t leaf = 0; leaf <= max; leaf++) {
		for (uint32_t sub = 0; sub < (leaf == 7 ? 3u : 1u); sub++) {
			uint32_t rec[6] = {(uint32_t)leaf, sub};
			cpuid_raw((uint32_t)leaf, sub, rec + 2);
			if (leaf == 1)
				rec[3] &= 0x00ffffffu;
			if (leaf == 0xb || leaf == 0x1f)
				rec[5] = 0;
			crc = snap_crc32c(crc, rec, sizeof(rec));
		}
	}
	if (emax >= 0x80000000) {
		for (uint64_t leaf = 0x80000000; leaf <= emax; leaf++) {
			uint32_t rec[6] = {(uint32_t)leaf, 0};
			cpuid_raw((uint32_t)leaf, 0, rec + 2);
			crc = snap_crc32c(crc, rec, sizeof(rec));
		}
	}
	return crc;
}

void snap_host_facts_current(struct snap_host_facts *f)
{
	uint32_t r[4];
	struct utsname u;
	memset(f, 0, sizeof(*f));
	cpuid_raw(0, 0, r);
	memcpy(f->vendor, &r[1], 4);
	memcpy(f->vendor + 4, &r[3], 4);
	memcpy(f->vendor + 8, &r[2], 4);
	cpuid_raw(1, 0, r);
	uint32_t fam = (r[0] >> 8) & 0xf, model = (r[0] >> 4) & 0xf;
	if (fam == 0xf)
		fam += (r[0] >> 20) & 0xff;
	if (fam == 0x6 || fam >= 0xf)
		model |= ((r[0] >> 16) & 0xf) << 4;
	f->family = fam;
	f->model = model;
	f->stepping = r[0] & 0xf;
	f->cpuid_digest = snap_cpuid_digest();
	if (uname(&u) == 0)
		snprintf(f->kernel, sizeof(f->kernel), "%s", u.release);
}
