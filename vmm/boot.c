/* What a kernel finds in memory at its first instruction: command line, memory map,
 * PVH start_info or Linux boot_params, MP table, ACPI tables (vmm/acpi/), and (64-bit
 * protocol) a GDT and identity page tables. Layout constants are in vmm.h. */
#include "vmm/vmm.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ---- PVH (Xen's hvm_start_info, version 1) */
#define PVH_MAGIC 0x336ec578u

struct hvm_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
	uint64_t memmap_paddr;
	uint32_t memmap_entries;
	uint32_t reserved;
};

struct hvm_modlist_entry {
	uint64_t paddr, size, cmdline_paddr, reserved;
};

struct hvm_memmap_entry {
	uint64_t addr, size;
	uint32_t type, reserved;
};

#define PVH_MODLIST_ADDR (BOOT_START_INFO + 0x40)
#define PVH_MEMMAP_ADDR	 (BOOT_START_INFO + 0x80)
#define E820_MAX	 16

/* ---- Linux boot_params ("zero page") offsets, Documentation/arch/x86/zero-page.rst */
#define BP_ACPI_RSDP_ADDR    0x070
#define BP_EXT_RAMDISK_IMAGE 0x0c0
#define BP_EXT_RAMDISK_SIZE  0x0c4
#define BP_EXT_CMD_LINE_PTR  0x0c8
#define BP_E820_ENTRIES	     0x1e8
#define BP_BOOT_FLAG	     0x1fe
#define BP_HEADER	     0x202
#define BP_VERSION	     0x206
#define BP_TYPE_OF_LOADER    0x210
#define BP_LOADFLAGS	     0x211
#define BP_RAMDISK_IMAGE     0x218
#define BP_RAMDISK_SIZE	     0x21c
#define BP_CMD_LINE_PTR	     0x228
#define BP_INITRD_ADDR_MAX   0x22c
#define BP_KERNEL_ALIGNMENT  0x230
#define BP_CMDLINE_SIZE	     0x238
#define BP_E820_TABLE	     0x2d0
#define BP_E820_ENTRY_SIZE   20

/* Where an initrd may go: Linux without a setup header assumes below 896 MiB. */
#define INITRD_ADDR_MAX 0x38000000ull

/* Every refusal here has one cause, reported to the caller. */
#define fail(err, errlen, ...) errf(err, errlen, -EINVAL, __VA_ARGS__)

static void put16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, 2);
}

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static void put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

unsigned vmm_e820_build(const struct vmm_mem *mem, struct vmm_e820 *out, unsigned max)
{
	unsigned n = 0;
	uint64_t low_end = mem->regions[0].size;

	if (max < 4)
		return 0;
	/* Base memory up to the MP table, which sits in the last KiB below 640 KiB; the
	 * ACPI tables and the VMGenID page are in the reserved range above it. */
	out[n++] = (struct vmm_e820){0, BOOT_MPTABLE_ADDR, VMM_E820_RAM};
	out[n++] =
	    (struct vmm_e820){BOOT_MPTABLE_ADDR, 0x100000 - BOOT_MPTABLE_ADDR, VMM_E820_RESERVED};
	if (low_end > BOOT_HIMEM_START)
		out[n++] =
		    (struct vmm_e820){BOOT_HIMEM_START, low_end - BOOT_HIMEM_START, VMM_E820_RAM};
	if (mem->nr_regions > 1)
		out[n++] =
		    (struct vmm_e820){mem->regions[1].gpa, mem->regions[1].size, VMM_E820_RAM};
	return n;
}

_Static_assert(BOOT_ACPI_ADDR >= BOOT_MPTABLE_ADDR + 1024 &&
		   BOOT_ACPI_ADDR + BOOT_ACPI_SIZE <= BOOT_VMGENID_ADDR &&
		   BOOT_VMGENID_ADDR + 4096 <= BOOT_HIMEM_START,
	       "ACPI tables and the VMGenID page lie in the reserved range, apart");

/* ---- MP table (Intel MultiProcessor Specification 1.4) */

static uint8_t checksum8(const uint8_t *p, size_t len)
{
	uint8_t sum = 0;

	while (len--)
		sum += *p++;
	return (uint8_t)-sum;
}

#define MP_IOAPIC_ADDR 0xfec00000u
#define MP_LAPIC_ADDR  0xfee00000u
#define MP_IRQS	       24 /* IOAPIC pins: ISA 0-15 and our devices above */

int vmm_mptable_write(struct vmm_mem *mem, unsigned vcpus)
{
	/* floating pointer (16) + header (44) + CPUs (20 each) + bus + IOAPIC + IRQs + LINTs */
	size_t size = 16 + 44 + 20 * vcpus + 8 + 8 + 8 * MP_IRQS + 8 * 2;
	uint8_t *base = vmm_gpa(mem, BOOT_MPTABLE_ADDR, 1024);
	uint8_t *p, *cfg;
	uint16_t entries = 0;
	unsigned i;

	if (!base || size > 1024 || vcpus == 0 || vcpus >= 255)
		return -EINVAL;
	memset(base, 0, 1024);

	/* Floating pointer, pointing at the configuration table right after it. */
	memcpy(base, "_MP_", 4);
	put32(base + 4, (uint32_t)BOOT_MPTABLE_ADDR + 16);
	base[8] = 1; /* length in 16-byte units */
	base[9] = 4; /* spec revision 1.4 */
	base[10] = checksum8(base, 16);

	cfg = base + 16;
	memcpy(cfg, "PCMP", 4);
	cfg[6] = 4;
	memcpy(cfg + 8, "THAW    ", 8);
	memcpy(cfg + 16, "MICROVM     ", 12);
	put32(cfg + 36, MP_LAPIC_ADDR);
	p = cfg + 44;

	for (i = 0; i < vcpus; i++, entries++, p += 20) {
		p[0] = 0;		     /* processor */
		p[1] = (uint8_t)i;	     /* local APIC id */
		p[2] = 0x14;		     /* local APIC version */
		p[3] = 1 | (i == 0 ? 2 : 0); /* enabled, BSP */
		put32(p + 4, 0x600);	     /* signature: family 6 */
		put32(p + 8, (1u << 9) | 1); /* APIC, FPU */
	}
	p[0] = 1; /* bus 0: ISA */
	memcpy(p + 2, "ISA   ", 6);
	p += 8, entries++;
	p[0] = 2; /* IOAPIC, id after the CPUs */
	p[1] = (uint8_t)vcpus;
	p[2] = 0x11;
	p[3] = 1;
	put32(p + 4, MP_IOAPIC_ADDR);
	p += 8, entries++;
	for (i = 0; i < MP_IRQS; i++, entries++, p += 8) {
		p[0] = 3;	   /* I/O interrupt, INT, conforming polarity and trigger */
		p[4] = 0;	   /* source bus */
		p[5] = (uint8_t)i; /* source IRQ */
		p[6] = (uint8_t)vcpus;
		p[7] = (uint8_t)i; /* IOAPIC pin */
	}
	/* LINT0 takes the PIC's ExtINT, LINT1 NMI, on every local APIC. */
	p[0] = 4, p[1] = 3, p[6] = 0xff, p[7] = 0;
	p += 8, entries++;
	p[0] = 4, p[1] = 1, p[6] = 0xff, p[7] = 1;
	p += 8, entries++;

	put16(cfg + 4, (uint16_t)(p - cfg));
	put16(cfg + 34, entries);
	cfg[7] = checksum8(cfg, (size_t)(p - cfg));
	return 0;
}

/* ---- the two protocols */

static int place_initrd(struct vmm_mem *mem, const struct vmm_elf_info *elf,
			struct vmm_boot_params *bp, const uint8_t *initrd, size_t len, char *err,
			size_t errlen)
{
	uint64_t top = mem->regions[0].size, addr;
	uint8_t *dst;

	if (top > INITRD_ADDR_MAX)
		top = INITRD_ADDR_MAX;
	if (len > top)
		return fail(err, errlen, "initrd of %zu bytes does not fit below %#llx", len,
			    (unsigned long long)top);
	addr = (top - len) & ~0xfffull;
	if (addr < elf->load_end || addr < BOOT_HIMEM_START)
		return fail(err, errlen,
			    "initrd of %zu KiB does not fit between the kernel (ends at %#llx) "
			    "and %#llx: give the guest more memory",
			    len >> 10, (unsigned long long)elf->load_end, (unsigned long long)top);
	dst = vmm_gpa(mem, addr, len);
	if (!dst)
		return fail(err, errlen, "initrd placement %#llx is outside guest memory",
			    (unsigned long long)addr);
	memcpy(dst, initrd, len);
	bp->initrd_gpa = addr;
	bp->initrd_size = len;
	return 0;
}

/* The descriptors behind the segment registers vm_setup_boot_regs loads: __BOOT_CS
 * = 0x10 and __BOOT_DS = 0x18 as Linux's 64-bit entry expects; the PVH entry gets the
 * 32-bit code descriptor at 0x08. */
static void write_gdt(struct vmm_mem *mem)
{
	uint64_t *gdt = vmm_gpa(mem, BOOT_GDT_ADDR, 5 * 8);

	gdt[0] = 0;
	gdt[1] = 0x00cf9b000000ffffull; /* 32-bit code */
	gdt[2] = 0x00af9b000000ffffull; /* 64-bit code */
	gdt[3] = 0x00cf93000000ffffull; /* data */
	gdt[4] = 0x008f8b000000ffffull; /* busy 32-bit TSS */
}

static void setup_pvh(struct vmm_mem *mem, struct vmm_boot_params *bp)
{
	struct hvm_start_info *si = vmm_gpa(mem, BOOT_START_INFO, sizeof(*si));
	struct hvm_memmap_entry *mm = vmm_gpa(mem, PVH_MEMMAP_ADDR, sizeof(*mm) * E820_MAX);
	struct vmm_e820 e820[E820_MAX];
	unsigned n = vmm_e820_build(mem, e820, E820_MAX);

	memset(si, 0, sizeof(*si));
	si->magic = PVH_MAGIC;
	si->version = 1;
	si->cmdline_paddr = BOOT_CMDLINE_ADDR;
	si->memmap_paddr = PVH_MEMMAP_ADDR;
	si->memmap_entries = n;
	si->rsdp_paddr = bp->rsdp_gpa;
	for (unsigned i = 0; i < n; i++)
		mm[i] = (struct hvm_memmap_entry){e820[i].addr, e820[i].size, e820[i].type, 0};
	if (bp->initrd_size) {
		struct hvm_modlist_entry *mod = vmm_gpa(mem, PVH_MODLIST_ADDR, sizeof(*mod));

		*mod = (struct hvm_modlist_entry){bp->initrd_gpa, bp->initrd_size, 0, 0};
		si->nr_modules = 1;
		si->modlist_paddr = PVH_MODLIST_ADDR;
	}
}

static void setup_linux64(struct vmm_mem *mem, struct vmm_boot_params *bp)
{
	uint8_t *zp = vmm_gpa(mem, BOOT_ZERO_PAGE, 4096);
	uint64_t *pml4 = vmm_gpa(mem, BOOT_PML4_ADDR, 6 * 4096);
	uint64_t *pdpt = pml4 + 512, *pd = pml4 + 1024;
	struct vmm_e820 e820[E820_MAX];
	unsigned n = vmm_e820_build(mem, e820, E820_MAX), i;

	memset(zp, 0, 4096);
	put16(zp + BP_BOOT_FLAG, 0xaa55);
	put32(zp + BP_HEADER, 0x53726448); /* "HdrS" */
	put16(zp + BP_VERSION, 0x020f);
	zp[BP_TYPE_OF_LOADER] = 0xff; /* undefined loader */
	zp[BP_LOADFLAGS] = 1;	      /* LOADED_HIGH */
	put32(zp + BP_CMD_LINE_PTR, (uint32_t)BOOT_CMDLINE_ADDR);
	put32(zp + BP_CMDLINE_SIZE, BOOT_CMDLINE_MAX - 1);
	put32(zp + BP_INITRD_ADDR_MAX, (uint32_t)INITRD_ADDR_MAX - 1);
	put32(zp + BP_KERNEL_ALIGNMENT, 0x1000000);
	put32(zp + BP_RAMDISK_IMAGE, (uint32_t)bp->initrd_gpa);
	put32(zp + BP_RAMDISK_SIZE, (uint32_t)bp->initrd_size);
	put32(zp + BP_EXT_RAMDISK_IMAGE, (uint32_t)(bp->initrd_gpa >> 32));
	put32(zp + BP_EXT_RAMDISK_SIZE, (uint32_t)(bp->initrd_size >> 32));
	put32(zp + BP_EXT_CMD_LINE_PTR, 0);
	put64(zp + BP_ACPI_RSDP_ADDR, bp->rsdp_gpa); /* boot protocol 2.14 */
	zp[BP_E820_ENTRIES] = (uint8_t)n;
	for (i = 0; i < n; i++) {
		uint8_t *e = zp + BP_E820_TABLE + i * BP_E820_ENTRY_SIZE;

		put64(e, e820[i].addr);
		put64(e + 8, e820[i].size);
		put32(e + 16, e820[i].type);
	}

	/* Identity map of the first 4 GiB with 2 MiB pages. */
	memset(pml4, 0, 6 * 4096);
	pml4[0] = (BOOT_PML4_ADDR + 0x1000) | 3;
	for (i = 0; i < 4; i++)
		pdpt[i] = (BOOT_PML4_ADDR + 0x2000 + i * 0x1000) | 3;
	for (i = 0; i < 4 * 512; i++)
		pd[i] = ((uint64_t)i << 21) | 0x83; /* present, writable, 2 MiB */
}

int vmm_boot_setup(struct vmm_mem *mem, const struct vmm_elf_info *elf, struct vmm_boot_params *bp,
		   const uint8_t *initrd, size_t initrd_len, char *err, size_t errlen)
{
	const char *cmdline = bp->cmdline ? bp->cmdline : "";
	size_t cl = strlen(cmdline);
	char *dst;
	int ret;

	if (mem->regions[0].size < 2 * BOOT_HIMEM_START)
		return fail(err, errlen, "guest memory of %llu KiB is too small to boot",
			    (unsigned long long)(mem->size >> 10));
	if (cl >= BOOT_CMDLINE_MAX)
		return fail(err, errlen, "kernel command line is %zu bytes, at most %d allowed", cl,
			    BOOT_CMDLINE_MAX - 1);
	if (bp->protocol == VMM_BOOT_AUTO)
		bp->protocol = elf->has_pvh ? VMM_BOOT_PVH : VMM_BOOT_LINUX64;
	if (bp->protocol == VMM_BOOT_PVH && !elf->has_pvh)
		return fail(err, errlen,
			    "PVH boot asked for, but the kernel has no PVH entry note");
	dst = vmm_gpa(mem, BOOT_CMDLINE_ADDR, BOOT_CMDLINE_MAX);
	memset(dst, 0, BOOT_CMDLINE_MAX);
	memcpy(dst, cmdline, cl);

	bp->initrd_gpa = bp->initrd_size = 0;
	if (initrd && initrd_len) {
		ret = place_initrd(mem, elf, bp, initrd, initrd_len, err, errlen);
		if (ret)
			return ret;
	}
	/* The MP table is written with ACPI too: it costs nothing and keeps a kernel
	 * without ACPI (or booted with acpi=off) finding its CPUs. */
	if (vmm_mptable_write(mem, bp->vcpus))
		return fail(err, errlen, "MP table for %u vCPUs does not fit", bp->vcpus);
	bp->rsdp_gpa = 0;
	if (bp->acpi) {
		ret = vmm_acpi_write(mem, bp->acpi, &bp->rsdp_gpa);
		if (ret)
			return fail(err, errlen,
				    "ACPI tables for %u vCPUs and %u virtio devices: %s",
				    bp->acpi->vcpus, bp->acpi->nr_virtio, strerror(-ret));
	}
	write_gdt(mem);
	if (bp->protocol == VMM_BOOT_PVH)
		setup_pvh(mem, bp);
	else
		setup_linux64(mem, bp);
	return 0;
}
