/* Boot structures as a kernel reads them: e820 map, PVH start_info, Linux boot_params,
 * MP table, GDT and identity page tables. Fields are read back from guest memory at
 * their documented offsets (Xen's hvm_start_info, Linux's zero-page.rst, Intel's MP
 * spec 1.4), not through the VMM's own structs. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <cmocka.h>

#include "vmm/vmm.h"

#define KiB (1ull << 10)
#define MiB (1ull << 20)
#define GiB (1ull << 30)

/* e820 keeps [MP table, 1 MiB) reserved: the MP table, the VGA hole and the BIOS area. */
#define RESERVED_LOW (0x100000ull - BOOT_MPTABLE_ADDR)

/* ---- reading guest memory */

static const uint8_t *at(const struct vmm_mem *mem, uint64_t gpa, uint64_t len)
{
	const uint8_t *p = vmm_gpa(mem, gpa, len);

	if (!p)
		fail_msg("guest address %#llx+%#llx is not RAM", (unsigned long long)gpa,
			 (unsigned long long)len);
	return p;
}

static uint8_t get8(const struct vmm_mem *mem, uint64_t gpa)
{
	return *at(mem, gpa, 1);
}

static uint16_t get16(const struct vmm_mem *mem, uint64_t gpa)
{
	uint16_t v;

	memcpy(&v, at(mem, gpa, 2), 2);
	return v;
}

static uint32_t get32(const struct vmm_mem *mem, uint64_t gpa)
{
	uint32_t v;

	memcpy(&v, at(mem, gpa, 4), 4);
	return v;
}

static uint64_t get64(const struct vmm_mem *mem, uint64_t gpa)
{
	uint64_t v;

	memcpy(&v, at(mem, gpa, 8), 8);
	return v;
}

/* ---- a guest to boot */

struct guest {
	struct vmm_mem mem;
	struct vmm_elf_info elf;
	struct vmm_boot_params bp;
	char err[256];
};

static void guest_init(struct guest *g, uint64_t size, bool pvh)
{
	memset(g, 0, sizeof(*g));
	if (vmm_mem_alloc(&g->mem, size))
		fail_msg("cannot map %llu MiB of guest memory", (unsigned long long)(size >> 20));
	g->elf = (struct vmm_elf_info){.entry = BOOT_HIMEM_START,
				       .pvh_entry = BOOT_HIMEM_START + 0x40,
				       .has_pvh = pvh,
				       .load_start = BOOT_HIMEM_START,
				       .load_end = BOOT_HIMEM_START + 512 * KiB};
	g->bp = (struct vmm_boot_params){
	    .protocol = VMM_BOOT_AUTO, .cmdline = "console=ttyS0 reboot=k", .vcpus = 2};
}

static int guest_boot(struct guest *g, const uint8_t *initrd, size_t len)
{
	return vmm_boot_setup(&g->mem, &g->elf, &g->bp, initrd, len, g->err, sizeof(g->err));
}

static void guest_boot_ok(struct guest *g, const uint8_t *initrd, size_t len)
{
	if (guest_boot(g, initrd, len))
		fail_msg("vmm_boot_setup: %s", g->err);
}

/* ---- e820 */

/* The map is sorted, has no overlap, keeps the MP table reserved, puts RAM only where
 * the layout has RAM and never in the MMIO hole, and its RAM adds up to the guest's
 * size less the reserved low area. */
static void check_e820(const struct vmm_mem *mem, const struct vmm_e820 *e, unsigned n)
{
	uint64_t ram = 0;
	bool mp_reserved = false;

	assert_true(n > 0);
	assert_int_equal(e[0].addr, 0);
	for (unsigned i = 0; i < n; i++) {
		assert_true(e[i].size > 0);
		assert_true(e[i].addr + e[i].size > e[i].addr);
		if (i + 1 < n)
			assert_true(e[i].addr + e[i].size <= e[i + 1].addr);
		if (e[i].type == VMM_E820_RESERVED) {
			if (e[i].addr <= BOOT_MPTABLE_ADDR &&
			    e[i].addr + e[i].size >= BOOT_MPTABLE_ADDR + KiB)
				mp_reserved = true;
			continue;
		}
		assert_int_equal(e[i].type, VMM_E820_RAM);
		ram += e[i].size;
		bool inside = false;
		for (unsigned r = 0; r < mem->nr_regions; r++)
			if (e[i].addr >= mem->regions[r].gpa &&
			    e[i].addr + e[i].size <= mem->regions[r].gpa + mem->regions[r].size)
				inside = true;
		if (!inside)
			fail_msg("RAM entry %#llx+%#llx is outside guest memory",
				 (unsigned long long)e[i].addr, (unsigned long long)e[i].size);
		assert_false(e[i].addr < VMM_MMIO_HOLE_END &&
			     e[i].addr + e[i].size > VMM_MMIO_HOLE_START);
	}
	assert_true(mp_reserved);
	assert_int_equal(ram, mem->size - RESERVED_LOW);
}

static void e820_for(uint64_t size, unsigned expect_entries)
{
	struct vmm_mem mem = {0};
	struct vmm_e820 e[16];
	unsigned n;

	vmm_mem_layout(&mem, size);
	n = vmm_e820_build(&mem, e, 16);
	assert_int_equal(n, expect_entries);
	check_e820(&mem, e, n);
}

static void test_e820_small_guest(void **state)
{
	e820_for(2 * MiB, 3);
}

static void test_e820_medium_guest(void **state)
{
	e820_for(256 * MiB, 3);
}

static void test_e820_guest_up_to_hole(void **state)
{
	e820_for(VMM_MMIO_HOLE_START, 3);
}

static void test_e820_guest_above_3g_has_ram_above_4g(void **state)
{
	struct vmm_mem mem = {0};
	struct vmm_e820 e[16];
	unsigned n;

	vmm_mem_layout(&mem, 6 * GiB);
	n = vmm_e820_build(&mem, e, 16);
	assert_int_equal(n, 4);
	check_e820(&mem, e, n);
	assert_int_equal(e[3].addr, VMM_MMIO_HOLE_END);
	assert_int_equal(e[3].size, 6 * GiB - VMM_MMIO_HOLE_START);
	assert_int_equal(e[2].addr + e[2].size, VMM_MMIO_HOLE_START);
}

static void test_e820_too_small_array_gives_no_entries(void **state)
{
	struct vmm_mem mem = {0};
	struct vmm_e820 e[3];

	vmm_mem_layout(&mem, 6 * GiB);
	assert_int_equal(vmm_e820_build(&mem, e, 3), 0);
}

/* ---- PVH */

#define SI_MAGIC	  0
#define SI_VERSION	  4
#define SI_NR_MODULES	  12
#define SI_MODLIST_PADDR  16
#define SI_CMDLINE_PADDR  24
#define SI_RSDP_PADDR	  32
#define SI_MEMMAP_PADDR	  40
#define SI_MEMMAP_ENTRIES 48
#define PVH_MAGIC	  0x336ec578u

/* The memory map in start_info is the e820 map, entry for entry. */
static void check_pvh_memmap(const struct vmm_mem *mem)
{
	uint64_t mm = get64(mem, BOOT_START_INFO + SI_MEMMAP_PADDR);
	unsigned n = get32(mem, BOOT_START_INFO + SI_MEMMAP_ENTRIES);
	struct vmm_e820 want[16], got[16];
	unsigned nw = vmm_e820_build(mem, want, 16);

	assert_int_equal(n, nw);
	for (unsigned i = 0; i < n; i++) {
		got[i].addr = get64(mem, mm + 24 * i);
		got[i].size = get64(mem, mm + 24 * i + 8);
		got[i].type = get32(mem, mm + 24 * i + 16);
		assert_int_equal(got[i].addr, want[i].addr);
		assert_int_equal(got[i].size, want[i].size);
		assert_int_equal(got[i].type, want[i].type);
	}
	check_e820(mem, got, n);
}

static void test_pvh_start_info_fields(void **state)
{
	struct guest g;

	guest_init(&g, 256 * MiB, true);
	guest_boot_ok(&g, NULL, 0);
	assert_int_equal(g.bp.protocol, VMM_BOOT_PVH);
	assert_int_equal(get32(&g.mem, BOOT_START_INFO + SI_MAGIC), PVH_MAGIC);
	assert_int_equal(get32(&g.mem, BOOT_START_INFO + SI_VERSION), 1);
	assert_int_equal(get32(&g.mem, BOOT_START_INFO + SI_NR_MODULES), 0);
	assert_int_equal(get64(&g.mem, BOOT_START_INFO + SI_RSDP_PADDR), 0);
	assert_int_equal(get64(&g.mem, BOOT_START_INFO + SI_CMDLINE_PADDR), BOOT_CMDLINE_ADDR);
	assert_string_equal((const char *)at(&g.mem, BOOT_CMDLINE_ADDR, 1), g.bp.cmdline);
	check_pvh_memmap(&g.mem);
	vmm_mem_free(&g.mem);
}

static void test_pvh_initrd_is_module_zero(void **state)
{
	struct guest g;
	uint8_t initrd[3 * 4096 + 17];
	uint64_t mod, paddr, size;

	for (size_t i = 0; i < sizeof(initrd); i++)
		initrd[i] = (uint8_t)(i ^ (i >> 8));
	guest_init(&g, 256 * MiB, true);
	guest_boot_ok(&g, initrd, sizeof(initrd));
	assert_int_equal(get32(&g.mem, BOOT_START_INFO + SI_NR_MODULES), 1);
	mod = get64(&g.mem, BOOT_START_INFO + SI_MODLIST_PADDR);
	paddr = get64(&g.mem, mod);
	size = get64(&g.mem, mod + 8);
	assert_int_equal(size, sizeof(initrd));
	assert_int_equal(paddr, g.bp.initrd_gpa);
	assert_int_equal(get64(&g.mem, mod + 16), 0); /* no module command line */
	assert_memory_equal(at(&g.mem, paddr, size), initrd, sizeof(initrd));
	vmm_mem_free(&g.mem);
}

static void test_pvh_memmap_of_guest_above_3g(void **state)
{
	struct guest g;

	guest_init(&g, 4 * GiB, true);
	guest_boot_ok(&g, NULL, 0);
	assert_int_equal(get32(&g.mem, BOOT_START_INFO + SI_MEMMAP_ENTRIES), 4);
	check_pvh_memmap(&g.mem);
	vmm_mem_free(&g.mem);
}

/* ---- the 64-bit Linux boot protocol */

#define BP_EXT_RAMDISK_IMAGE 0x0c0
#define BP_EXT_RAMDISK_SIZE  0x0c4
#define BP_EXT_CMD_LINE_PTR  0x0c8
#define BP_E820_ENTRIES	     0x1e8
#define BP_BOOT_FLAG	     0x1fe
#define BP_HEADER	     0x202
#define BP_TYPE_OF_LOADER    0x210
#define BP_LOADFLAGS	     0x211
#define BP_RAMDISK_IMAGE     0x218
#define BP_RAMDISK_SIZE	     0x21c
#define BP_CMD_LINE_PTR	     0x228
#define BP_CMDLINE_SIZE	     0x238
#define BP_E820_TABLE	     0x2d0

static void test_linux_boot_params_header_fields(void **state)
{
	struct guest g;
	const uint64_t zp = BOOT_ZERO_PAGE;

	guest_init(&g, 256 * MiB, false);
	guest_boot_ok(&g, NULL, 0);
	assert_int_equal(g.bp.protocol, VMM_BOOT_LINUX64);
	assert_int_equal(get16(&g.mem, zp + BP_BOOT_FLAG), 0xaa55);
	assert_memory_equal(at(&g.mem, zp + BP_HEADER, 4), "HdrS", 4);
	assert_int_equal(get8(&g.mem, zp + BP_TYPE_OF_LOADER), 0xff);
	assert_true(get8(&g.mem, zp + BP_LOADFLAGS) & 1); /* LOADED_HIGH */
	assert_int_equal(get32(&g.mem, zp + BP_CMD_LINE_PTR), BOOT_CMDLINE_ADDR);
	assert_int_equal(get32(&g.mem, zp + BP_EXT_CMD_LINE_PTR), 0);
	assert_int_equal(get32(&g.mem, zp + BP_CMDLINE_SIZE), BOOT_CMDLINE_MAX - 1);
	assert_string_equal((const char *)at(&g.mem, BOOT_CMDLINE_ADDR, 1), g.bp.cmdline);
	assert_int_equal(get32(&g.mem, zp + BP_RAMDISK_IMAGE), 0);
	assert_int_equal(get32(&g.mem, zp + BP_RAMDISK_SIZE), 0);
	vmm_mem_free(&g.mem);
}

static void test_linux_boot_params_ramdisk(void **state)
{
	struct guest g;
	const uint64_t zp = BOOT_ZERO_PAGE;
	uint8_t initrd[5000];

	memset(initrd, 0x5a, sizeof(initrd));
	guest_init(&g, 256 * MiB, false);
	guest_boot_ok(&g, initrd, sizeof(initrd));
	assert_int_equal(get32(&g.mem, zp + BP_RAMDISK_IMAGE), g.bp.initrd_gpa);
	assert_int_equal(get32(&g.mem, zp + BP_RAMDISK_SIZE), sizeof(initrd));
	assert_int_equal(get32(&g.mem, zp + BP_EXT_RAMDISK_IMAGE), 0);
	assert_int_equal(get32(&g.mem, zp + BP_EXT_RAMDISK_SIZE), 0);
	assert_memory_equal(at(&g.mem, g.bp.initrd_gpa, sizeof(initrd)), initrd, sizeof(initrd));
	vmm_mem_free(&g.mem);
}

static void check_zero_page_e820(const struct vmm_mem *mem)
{
	const uint64_t zp = BOOT_ZERO_PAGE;
	unsigned n = get8(mem, zp + BP_E820_ENTRIES);
	struct vmm_e820 want[16], got[16];

	assert_int_equal(n, vmm_e820_build(mem, want, 16));
	for (unsigned i = 0; i < n; i++) {
		uint64_t e = zp + BP_E820_TABLE + 20 * i;

		got[i] = (struct vmm_e820){get64(mem, e), get64(mem, e + 8), get32(mem, e + 16)};
		assert_int_equal(got[i].addr, want[i].addr);
		assert_int_equal(got[i].size, want[i].size);
		assert_int_equal(got[i].type, want[i].type);
	}
	check_e820(mem, got, n);
}

static void test_linux_boot_params_e820(void **state)
{
	struct guest g;

	guest_init(&g, 256 * MiB, false);
	guest_boot_ok(&g, NULL, 0);
	check_zero_page_e820(&g.mem);
	vmm_mem_free(&g.mem);
}

static void test_linux_boot_params_e820_above_3g(void **state)
{
	struct guest g;

	guest_init(&g, 4 * GiB, false);
	guest_boot_ok(&g, NULL, 0);
	assert_int_equal(get8(&g.mem, BOOT_ZERO_PAGE + BP_E820_ENTRIES), 4);
	check_zero_page_e820(&g.mem);
	vmm_mem_free(&g.mem);
}

/* A PVH-capable kernel can still be booted through the 64-bit protocol on request. */
static void test_linux64_forced_on_pvh_kernel_writes_zero_page(void **state)
{
	struct guest g;

	guest_init(&g, 64 * MiB, true);
	g.bp.protocol = VMM_BOOT_LINUX64;
	guest_boot_ok(&g, NULL, 0);
	assert_int_equal(g.bp.protocol, VMM_BOOT_LINUX64);
	assert_int_equal(get16(&g.mem, BOOT_ZERO_PAGE + BP_BOOT_FLAG), 0xaa55);
	vmm_mem_free(&g.mem);
}

static void test_pvh_forced_without_note_refused(void **state)
{
	struct guest g;

	guest_init(&g, 64 * MiB, false);
	g.bp.protocol = VMM_BOOT_PVH;
	assert_int_equal(guest_boot(&g, NULL, 0), -EINVAL);
	assert_non_null(strstr(g.err, "no PVH entry note"));
	vmm_mem_free(&g.mem);
}

/* Walks the identity page tables the way the MMU would. */
static uint64_t translate(const struct vmm_mem *mem, uint64_t va)
{
	uint64_t pml4e = get64(mem, BOOT_PML4_ADDR + 8 * ((va >> 39) & 511));
	uint64_t pdpte, pde;

	if ((pml4e & 3) != 3)
		return UINT64_MAX;
	pdpte = get64(mem, (pml4e & 0xffffffffff000ull) + 8 * ((va >> 30) & 511));
	if ((pdpte & 3) != 3)
		return UINT64_MAX;
	if (pdpte & 0x80)
		return (pdpte & 0xfffffc0000000ull) | (va & (GiB - 1));
	pde = get64(mem, (pdpte & 0xffffffffff000ull) + 8 * ((va >> 21) & 511));
	if ((pde & 3) != 3)
		return UINT64_MAX;
	if (!(pde & 0x80))
		fail_msg("4 KiB page tables under %#llx: not expected", (unsigned long long)va);
	return (pde & 0xfffffffe00000ull) | (va & (2 * MiB - 1));
}

static void test_identity_page_tables_map_first_4g(void **state)
{
	static const uint64_t probes[] = {0,
					  0xfff,
					  2 * MiB - 1,
					  2 * MiB,
					  16 * MiB + 0x1234,
					  GiB - 1,
					  GiB,
					  3 * GiB + 0x5678,
					  VMM_MMIO_HOLE_START,
					  4 * GiB - 1};
	struct guest g;

	guest_init(&g, 64 * MiB, false);
	guest_boot_ok(&g, NULL, 0);
	for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++)
		if (translate(&g.mem, probes[i]) != probes[i])
			fail_msg("%#llx maps to %#llx", (unsigned long long)probes[i],
				 (unsigned long long)translate(&g.mem, probes[i]));
	/* every 2 MiB page, not only the probes */
	for (uint64_t a = 0; a < 4 * GiB; a += 2 * MiB)
		assert_int_equal(translate(&g.mem, a + 0x1000), a + 0x1000);
	assert_int_equal(translate(&g.mem, 4 * GiB), UINT64_MAX);
	assert_int_equal(translate(&g.mem, 1ull << 39), UINT64_MAX);
	vmm_mem_free(&g.mem);
}

/* Selectors Linux's 64-bit entry and the PVH entry load: 0x08 32-bit code, 0x10
 * 64-bit code, 0x18 data. */
static void test_gdt_has_boot_selectors(void **state)
{
	struct guest g;
	uint64_t code32, code64, data;

	guest_init(&g, 64 * MiB, false);
	guest_boot_ok(&g, NULL, 0);
	assert_int_equal(get64(&g.mem, BOOT_GDT_ADDR), 0);
	code32 = get64(&g.mem, BOOT_GDT_ADDR + 0x08);
	code64 = get64(&g.mem, BOOT_GDT_ADDR + 0x10);
	data = get64(&g.mem, BOOT_GDT_ADDR + 0x18);
	assert_true(code32 & (1ull << 47)); /* present */
	assert_true(code32 & (1ull << 43)); /* code */
	assert_true(code32 & (1ull << 54)); /* 32-bit */
	assert_true(code64 & (1ull << 47));
	assert_true(code64 & (1ull << 43));
	assert_true(code64 & (1ull << 53));  /* long mode */
	assert_false(code64 & (1ull << 54)); /* L and D never both */
	assert_true(data & (1ull << 47));
	assert_false(data & (1ull << 43)); /* data */
	assert_true(data & (1ull << 41));  /* writable */
	vmm_mem_free(&g.mem);
}

/* ---- MP table */

struct mp_summary {
	unsigned cpus, bsps, ioapics, irqs, lints;
	uint8_t ioapic_id, isa_bus;
	bool apic_id_seen[256];
	bool isa_irq_seen[16];
};

/* Checks signatures, checksums and lengths, and counts the entries. */
static void parse_mptable(const struct vmm_mem *mem, struct mp_summary *s)
{
	const uint8_t *fp = at(mem, BOOT_MPTABLE_ADDR, 16), *cfg, *p;
	uint8_t sum = 0;
	uint32_t cfg_addr;
	uint16_t len, count;

	memset(s, 0, sizeof(*s));
	s->isa_bus = 0xff;
	assert_memory_equal(fp, "_MP_", 4);
	assert_int_equal(fp[8], 1);  /* 16 bytes */
	assert_int_equal(fp[9], 4);  /* spec 1.4 */
	assert_int_equal(fp[11], 0); /* a configuration table follows, no default config */
	for (int i = 0; i < 16; i++)
		sum += fp[i];
	assert_int_equal(sum, 0);

	memcpy(&cfg_addr, fp + 4, 4);
	cfg = at(mem, cfg_addr, 44);
	assert_memory_equal(cfg, "PCMP", 4);
	memcpy(&len, cfg + 4, 2);
	memcpy(&count, cfg + 34, 2);
	assert_int_equal(cfg[6], 4);
	/* the whole thing stays inside the reserved KiB */
	assert_true(cfg_addr >= BOOT_MPTABLE_ADDR);
	assert_true(cfg_addr + len <= BOOT_MPTABLE_ADDR + KiB);
	cfg = at(mem, cfg_addr, len);
	sum = 0;
	for (unsigned i = 0; i < len; i++)
		sum += cfg[i];
	assert_int_equal(sum, 0);
	assert_int_equal(get32(mem, cfg_addr + 36), 0xfee00000u); /* local APIC */

	p = cfg + 44;
	for (unsigned i = 0; i < count; i++) {
		size_t size = p[0] == 0 ? 20 : 8;

		assert_true(p + size <= cfg + len);
		switch (p[0]) {
		case 0: /* processor */
			s->cpus++;
			assert_true(p[3] & 1); /* enabled */
			assert_false(s->apic_id_seen[p[1]]);
			s->apic_id_seen[p[1]] = true;
			if (p[3] & 2) {
				s->bsps++;
				assert_int_equal(s->cpus, 1); /* the BSP is CPU 0 */
				assert_int_equal(p[1], 0);
			}
			break;
		case 1: /* bus */
			if (memcmp(p + 2, "ISA   ", 6) == 0)
				s->isa_bus = p[1];
			break;
		case 2: /* IOAPIC */
			s->ioapics++;
			s->ioapic_id = p[1];
			assert_true(p[3] & 1);
			assert_int_equal(get32(mem, cfg_addr + (uint64_t)(p - cfg) + 4),
					 0xfec00000u);
			break;
		case 3: /* I/O interrupt */
			s->irqs++;
			assert_int_equal(p[4], s->isa_bus);
			assert_int_equal(p[6], s->ioapic_id);
			assert_true(p[7] < 24);
			if (p[1] == 0 && p[5] < 16)
				s->isa_irq_seen[p[5]] = true;
			break;
		case 4: /* local interrupt */
			s->lints++;
			break;
		default:
			fail_msg("unknown MP entry type %u", p[0]);
		}
		p += size;
	}
	assert_ptr_equal(p, cfg + len);
}

static void check_mptable(unsigned vcpus)
{
	struct vmm_mem mem;
	struct mp_summary s;

	assert_int_equal(vmm_mem_alloc(&mem, 2 * MiB), 0);
	assert_int_equal(vmm_mptable_write(&mem, vcpus), 0);
	parse_mptable(&mem, &s);
	assert_int_equal(s.cpus, vcpus);
	assert_int_equal(s.bsps, 1);
	for (unsigned i = 0; i < vcpus; i++)
		assert_true(s.apic_id_seen[i]);
	assert_int_equal(s.ioapics, 1);
	assert_false(s.apic_id_seen[s.ioapic_id]); /* no clash with a CPU */
	assert_true(s.irqs >= 16);
	for (unsigned i = 0; i < 16; i++)
		if (!s.isa_irq_seen[i])
			fail_msg("ISA IRQ %u has no I/O interrupt entry", i);
	assert_int_equal(s.lints, 2);
	vmm_mem_free(&mem);
}

static void test_mptable_one_cpu(void **state)
{
	check_mptable(1);
}

static void test_mptable_two_cpus(void **state)
{
	check_mptable(2);
}

static void test_mptable_max_cpus(void **state)
{
	check_mptable(VMM_MAX_VCPUS);
}

static void test_mptable_lint_entries(void **state)
{
	struct vmm_mem mem;
	struct mp_summary s;
	uint32_t cfg;
	uint16_t count;
	const uint8_t *p;
	bool extint = false, nmi = false;

	assert_int_equal(vmm_mem_alloc(&mem, 2 * MiB), 0);
	assert_int_equal(vmm_mptable_write(&mem, 2), 0);
	parse_mptable(&mem, &s);
	cfg = get32(&mem, BOOT_MPTABLE_ADDR + 4);
	count = get16(&mem, cfg + 34);
	p = at(&mem, cfg + 44, 1);
	for (unsigned i = 0; i < count; p += p[0] == 0 ? 20 : 8, i++) {
		if (p[0] != 4)
			continue;
		assert_int_equal(p[6], 0xff); /* every local APIC */
		if (p[1] == 3 && p[7] == 0)
			extint = true; /* LINT0: the PIC's ExtINT */
		if (p[1] == 1 && p[7] == 1)
			nmi = true; /* LINT1: NMI */
	}
	assert_true(extint);
	assert_true(nmi);
	vmm_mem_free(&mem);
}

static void test_mptable_zero_cpus_refused(void **state)
{
	struct vmm_mem mem;

	assert_int_equal(vmm_mem_alloc(&mem, 2 * MiB), 0);
	assert_int_equal(vmm_mptable_write(&mem, 0), -EINVAL);
	vmm_mem_free(&mem);
}

static void test_mptable_too_many_cpus_refused(void **state)
{
	struct vmm_mem mem;

	assert_int_equal(vmm_mem_alloc(&mem, 2 * MiB), 0);
	assert_int_equal(vmm_mptable_write(&mem, 255), -EINVAL);
	assert_int_equal(vmm_mptable_write(&mem, 1000), -EINVAL);
	vmm_mem_free(&mem);
}

static void test_boot_setup_writes_mptable_for_vcpus(void **state)
{
	struct guest g;
	struct mp_summary s;

	guest_init(&g, 64 * MiB, true);
	g.bp.vcpus = 4;
	guest_boot_ok(&g, NULL, 0);
	parse_mptable(&g.mem, &s);
	assert_int_equal(s.cpus, 4);
	vmm_mem_free(&g.mem);
}

static void test_boot_setup_zero_vcpus_refused(void **state)
{
	struct guest g;

	guest_init(&g, 64 * MiB, true);
	g.bp.vcpus = 0;
	assert_int_equal(guest_boot(&g, NULL, 0), -EINVAL);
	assert_non_null(strstr(g.err, "0 vCPUs"));
	vmm_mem_free(&g.mem);
}

/* ---- command line, initrd, size limits */

static void test_cmdline_of_max_length_accepted(void **state)
{
	struct guest g;
	char *cl = malloc(BOOT_CMDLINE_MAX);

	assert_non_null(cl);
	memset(cl, 'a', BOOT_CMDLINE_MAX - 1);
	cl[BOOT_CMDLINE_MAX - 1] = 0;
	guest_init(&g, 64 * MiB, true);
	g.bp.cmdline = cl;
	guest_boot_ok(&g, NULL, 0);
	assert_memory_equal(at(&g.mem, BOOT_CMDLINE_ADDR, BOOT_CMDLINE_MAX), cl,
			    BOOT_CMDLINE_MAX); /* including its NUL */
	free(cl);
	vmm_mem_free(&g.mem);
}

static void test_cmdline_too_long_refused_naming_length(void **state)
{
	struct guest g;
	char *cl = malloc(BOOT_CMDLINE_MAX + 1);

	assert_non_null(cl);
	memset(cl, 'a', BOOT_CMDLINE_MAX);
	cl[BOOT_CMDLINE_MAX] = 0;
	guest_init(&g, 64 * MiB, true);
	g.bp.cmdline = cl;
	assert_int_equal(guest_boot(&g, NULL, 0), -EINVAL);
	assert_non_null(strstr(g.err, "2048"));
	assert_non_null(strstr(g.err, "command line"));
	free(cl);
	vmm_mem_free(&g.mem);
}

static void test_null_cmdline_is_empty(void **state)
{
	struct guest g;

	guest_init(&g, 64 * MiB, true);
	memset(vmm_gpa(&g.mem, BOOT_CMDLINE_ADDR, 16), 'x', 16);
	g.bp.cmdline = NULL;
	guest_boot_ok(&g, NULL, 0);
	assert_int_equal(get8(&g.mem, BOOT_CMDLINE_ADDR), 0);
	vmm_mem_free(&g.mem);
}

/* The initrd goes page aligned as high as Linux accepts, above the kernel. */
static void test_initrd_placed_high_and_aligned(void **state)
{
	struct guest g;
	uint8_t initrd[10000];

	memset(initrd, 0xc3, sizeof(initrd));
	guest_init(&g, 4 * GiB, false);
	guest_boot_ok(&g, initrd, sizeof(initrd));
	assert_int_equal(g.bp.initrd_gpa & 0xfff, 0);
	assert_int_equal(g.bp.initrd_size, sizeof(initrd));
	assert_true(g.bp.initrd_gpa >= g.elf.load_end);
	assert_true(g.bp.initrd_gpa + sizeof(initrd) <= 896 * MiB); /* Linux's default max */
	assert_true(g.bp.initrd_gpa + sizeof(initrd) > 896 * MiB - 8 * KiB - sizeof(initrd));
	vmm_mem_free(&g.mem);
}

static void test_initrd_larger_than_memory_refused(void **state)
{
	struct guest g;
	size_t len = 80 * MiB;
	uint8_t *initrd = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	assert_true(initrd != MAP_FAILED);
	guest_init(&g, 64 * MiB, false);
	assert_int_equal(guest_boot(&g, initrd, len), -EINVAL);
	assert_non_null(strstr(g.err, "initrd"));
	assert_non_null(strstr(g.err, "does not fit"));
	munmap(initrd, len);
	vmm_mem_free(&g.mem);
}

static void test_initrd_overlapping_kernel_refused(void **state)
{
	struct guest g;
	size_t len = 40 * MiB;
	uint8_t *initrd = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	assert_true(initrd != MAP_FAILED);
	guest_init(&g, 64 * MiB, true);
	g.elf.load_end = 32 * MiB; /* 64 - 40 < 32: no room above the kernel */
	assert_int_equal(guest_boot(&g, initrd, len), -EINVAL);
	assert_non_null(strstr(g.err, "does not fit"));
	assert_non_null(strstr(g.err, "kernel"));
	munmap(initrd, len);
	vmm_mem_free(&g.mem);
}

static void test_guest_too_small_refused(void **state)
{
	struct guest g;

	guest_init(&g, 1 * MiB, true);
	assert_int_equal(guest_boot(&g, NULL, 0), -EINVAL);
	assert_non_null(strstr(g.err, "too small"));
	assert_non_null(strstr(g.err, "1024 KiB"));
	vmm_mem_free(&g.mem);
}

static void test_smallest_guest_boots(void **state)
{
	struct guest g;

	guest_init(&g, 2 * MiB, true);
	guest_boot_ok(&g, NULL, 0);
	check_pvh_memmap(&g.mem);
	vmm_mem_free(&g.mem);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_e820_small_guest),
	    cmocka_unit_test(test_e820_medium_guest),
	    cmocka_unit_test(test_e820_guest_up_to_hole),
	    cmocka_unit_test(test_e820_guest_above_3g_has_ram_above_4g),
	    cmocka_unit_test(test_e820_too_small_array_gives_no_entries),
	    cmocka_unit_test(test_pvh_start_info_fields),
	    cmocka_unit_test(test_pvh_initrd_is_module_zero),
	    cmocka_unit_test(test_pvh_memmap_of_guest_above_3g),
	    cmocka_unit_test(test_linux_boot_params_header_fields),
	    cmocka_unit_test(test_linux_boot_params_ramdisk),
	    cmocka_unit_test(test_linux_boot_params_e820),
	    cmocka_unit_test(test_linux_boot_params_e820_above_3g),
	    cmocka_unit_test(test_linux64_forced_on_pvh_kernel_writes_zero_page),
	    cmocka_unit_test(test_pvh_forced_without_note_refused),
	    cmocka_unit_test(test_identity_page_tables_map_first_4g),
	    cmocka_unit_test(test_gdt_has_boot_selectors),
	    cmocka_unit_test(test_mptable_one_cpu),
	    cmocka_unit_test(test_mptable_two_cpus),
	    cmocka_unit_test(test_mptable_max_cpus),
	    cmocka_unit_test(test_mptable_lint_entries),
	    cmocka_unit_test(test_mptable_zero_cpus_refused),
	    cmocka_unit_test(test_mptable_too_many_cpus_refused),
	    cmocka_unit_test(test_boot_setup_writes_mptable_for_vcpus),
	    cmocka_unit_test(test_boot_setup_zero_vcpus_refused),
	    cmocka_unit_test(test_cmdline_of_max_length_accepted),
	    cmocka_unit_test(test_cmdline_too_long_refused_naming_length),
	    cmocka_unit_test(test_null_cmdline_is_empty),
	    cmocka_unit_test(test_initrd_placed_high_and_aligned),
	    cmocka_unit_test(test_initrd_larger_than_memory_refused),
	    cmocka_unit_test(test_initrd_overlapping_kernel_refused),
	    cmocka_unit_test(test_guest_too_small_refused),
	    cmocka_unit_test(test_smallest_guest_boots),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
