/* ACPI tables as a guest reads them: found from the RSDP through the XSDT and the
 * FADT, checked by their checksums and by the field offsets of the ACPI 6.5 spec,
 * and given to ACPICA's own disassembler (iasl -d, Debian's acpica-tools), which must
 * read every table without an error and name the devices thaw declares. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "vmm/acpi/acpi_int.h"
#include "vmm/vmm.h"

#define MiB (1ull << 20)

/* ---- reading guest memory */

static const uint8_t *at(const struct vmm_mem *mem, uint64_t gpa, uint64_t len)
{
	const uint8_t *p = vmm_gpa(mem, gpa, len);

	if (!p)
		fail_msg("guest address %#llx+%#llx is not RAM", (unsigned long long)gpa,
			 (unsigned long long)len);
	return p;
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

static uint8_t sum8(const uint8_t *p, size_t len)
{
	uint8_t s = 0;

	while (len--)
		s += *p++;
	return s;
}

/* ---- a guest with tables */

struct tables {
	struct vmm_mem mem;
	struct vmm_acpi_cfg cfg;
	uint64_t rsdp, xsdt, fadt, madt, dsdt;
};

static void cfg_for(struct vmm_acpi_cfg *cfg, unsigned vcpus, unsigned nr_virtio, bool genid)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->vcpus = vcpus;
	cfg->nr_virtio = nr_virtio;
	for (unsigned k = 0; k < nr_virtio; k++)
		cfg->virtio[k] = (struct vmm_acpi_mmio){VIRTIO_MMIO_BASE + k * VIRTIO_MMIO_SIZE,
							VIRTIO_MMIO_SIZE, VIRTIO_IRQ_BASE + k};
	cfg->vmgenid_gpa = genid ? BOOT_VMGENID_ADDR : 0;
}

/* A table at `gpa` with signature `sig`: whole inside the ACPI range, bytes sum to 0. */
static uint32_t check_table(const struct vmm_mem *mem, uint64_t gpa, const char *sig)
{
	uint32_t len;

	assert_true(gpa >= BOOT_ACPI_ADDR && gpa < BOOT_ACPI_ADDR + BOOT_ACPI_SIZE);
	assert_memory_equal(at(mem, gpa, 4), sig, 4);
	len = get32(mem, gpa + 4);
	assert_true(len >= ACPI_HEADER_LEN);
	assert_true(gpa + len <= BOOT_ACPI_ADDR + BOOT_ACPI_SIZE);
	if (sum8(at(mem, gpa, len), len) != 0)
		fail_msg("%s checksum: bytes sum to %#x, not 0", sig, sum8(at(mem, gpa, len), len));
	return len;
}

/* Writes the tables and finds each the way a guest does: RSDP -> XSDT -> FADT, MADT;
 * FADT -> DSDT. */
static void tables_write(struct tables *t, unsigned vcpus, unsigned nr_virtio, bool genid)
{
	uint32_t xlen;

	memset(t, 0, sizeof(*t));
	if (vmm_mem_alloc(&t->mem, 64 * MiB))
		fail_msg("cannot map guest memory");
	cfg_for(&t->cfg, vcpus, nr_virtio, genid);
	assert_int_equal(vmm_acpi_write(&t->mem, &t->cfg, &t->rsdp), 0);
	t->xsdt = get64(&t->mem, t->rsdp + 24);
	xlen = check_table(&t->mem, t->xsdt, "XSDT");
	assert_int_equal(xlen, ACPI_HEADER_LEN + 2 * 8);
	for (uint32_t off = ACPI_HEADER_LEN; off < xlen; off += 8) {
		uint64_t p = get64(&t->mem, t->xsdt + off);

		if (!memcmp(at(&t->mem, p, 4), "FACP", 4))
			t->fadt = p;
		else if (!memcmp(at(&t->mem, p, 4), "APIC", 4))
			t->madt = p;
		else
			fail_msg("XSDT entry %#llx is neither FACP nor APIC",
				 (unsigned long long)p);
	}
	assert_true(t->fadt && t->madt);
	check_table(&t->mem, t->fadt, "FACP");
	check_table(&t->mem, t->madt, "APIC");
	t->dsdt = get64(&t->mem, t->fadt + 140); /* X_DSDT */
	check_table(&t->mem, t->dsdt, "DSDT");
}

static void tables_free(struct tables *t)
{
	vmm_mem_free(&t->mem);
}

/* ---- RSDP and checksums */

static void test_rsdp_has_both_checksums_and_points_at_the_xsdt(void **state)
{
	struct tables t;
	const uint8_t *r;

	tables_write(&t, 1, 0, true);
	r = at(&t.mem, t.rsdp, 36);
	assert_int_equal(t.rsdp, BOOT_ACPI_ADDR);
	assert_memory_equal(r, "RSD PTR ", 8);
	assert_int_equal(r[15], 2);			  /* revision: ACPI 2.0+ */
	assert_int_equal(get32(&t.mem, t.rsdp + 20), 36); /* length */
	assert_int_equal(sum8(r, 20), 0);		  /* ACPI 1.0 checksum */
	assert_int_equal(sum8(r, 36), 0);		  /* extended checksum */
	tables_free(&t);
}

static void test_rsdp_checksum_catches_a_changed_byte(void **state)
{
	uint8_t r[36];

	acpi_build_rsdp(r, 0x12345678);
	assert_int_equal(sum8(r, 20), 0);
	r[24] ^= 1; /* the XSDT address: only the extended checksum covers it */
	assert_int_equal(sum8(r, 20), 0);
	assert_int_not_equal(sum8(r, 36), 0);
}

static void test_every_table_checksum_is_zero_with_many_devices(void **state)
{
	struct tables t;

	/* tables_write checks every table's signature, bounds and checksum */
	tables_write(&t, 8, VMM_ACPI_MAX_MMIO, true);
	assert_true(get32(&t.mem, t.dsdt + 4) > 64 * VMM_ACPI_MAX_MMIO);
	tables_free(&t);
}

static void test_tables_do_not_overlap(void **state)
{
	struct tables t;
	uint64_t start[5], end[5];

	tables_write(&t, 2, 3, true);
	start[0] = t.rsdp, end[0] = t.rsdp + 36;
	start[1] = t.xsdt, start[2] = t.fadt, start[3] = t.madt, start[4] = t.dsdt;
	for (int i = 1; i < 5; i++)
		end[i] = start[i] + get32(&t.mem, start[i] + 4);
	for (int i = 0; i < 5; i++)
		for (int j = i + 1; j < 5; j++)
			assert_true(end[i] <= start[j] || end[j] <= start[i]);
	tables_free(&t);
}

/* ---- FADT */

static void test_fadt_is_hardware_reduced_and_names_the_dsdt(void **state)
{
	struct tables t;

	tables_write(&t, 1, 0, true);
	assert_int_equal(get32(&t.mem, t.fadt + 4), 276); /* revision 6 length */
	assert_int_equal(*at(&t.mem, t.fadt + 8, 1), 6);
	assert_true(get32(&t.mem, t.fadt + 112) & (1u << 20)); /* HW_REDUCED_ACPI */
	/* no legacy blocks: SCI, SMI command, PM1a event/control, PM timer, GPE0 */
	assert_int_equal(get32(&t.mem, t.fadt + 46) & 0xffff, 0);
	assert_int_equal(get32(&t.mem, t.fadt + 48), 0);
	assert_int_equal(get32(&t.mem, t.fadt + 56), 0);
	assert_int_equal(get32(&t.mem, t.fadt + 64), 0);
	assert_int_equal(get32(&t.mem, t.fadt + 76), 0);
	assert_int_equal(get32(&t.mem, t.fadt + 80), 0);
	assert_int_equal(get64(&t.mem, t.fadt + 140), t.dsdt);
	tables_free(&t);
}

/* ---- MADT */

static void madt_for(unsigned vcpus)
{
	struct tables t;
	uint32_t len, off;
	unsigned lapics = 0, ioapics = 0, nmis = 0;

	tables_write(&t, vcpus, 1, true);
	len = get32(&t.mem, t.madt + 4);
	assert_int_equal(get32(&t.mem, t.madt + 36), 0xfee00000u);
	for (off = 44; off < len;) {
		const uint8_t *e = at(&t.mem, t.madt + off, 2);

		assert_true(e[1] >= 2 && off + e[1] <= len);
		switch (e[0]) {
		case 0: /* Processor Local APIC: UID, APIC id, enabled */
			assert_int_equal(e[2], lapics);
			assert_int_equal(e[3], lapics);
			assert_int_equal(get32(&t.mem, t.madt + off + 4) & 1, 1);
			lapics++;
			break;
		case 1: /* I/O APIC */
			assert_int_equal(e[2], vcpus);
			assert_int_equal(get32(&t.mem, t.madt + off + 4), 0xfec00000u);
			assert_int_equal(get32(&t.mem, t.madt + off + 8), 0);
			ioapics++;
			break;
		case 4: /* Local APIC NMI on LINT1 of all processors */
			assert_int_equal(e[2], 0xff);
			assert_int_equal(e[5], 1);
			nmis++;
			break;
		default:
			fail_msg("unexpected MADT entry type %u", e[0]);
		}
		off += e[1];
	}
	assert_int_equal(off, len);
	assert_int_equal(lapics, vcpus);
	assert_int_equal(ioapics, 1);
	assert_int_equal(nmis, 1);
	tables_free(&t);
}

static void test_madt_one_local_apic_for_one_vcpu(void **state)
{
	madt_for(1);
}

static void test_madt_local_apics_for_two_vcpus(void **state)
{
	madt_for(2);
}

static void test_madt_local_apics_for_eight_vcpus(void **state)
{
	madt_for(8);
}

/* ---- DSDT contents, byte level */

static unsigned count_in(const uint8_t *p, size_t len, const char *s)
{
	size_t n = strlen(s);
	unsigned c = 0;

	for (size_t i = 0; i + n <= len; i++)
		if (!memcmp(p + i, s, n))
			c++;
	return c;
}

static void test_dsdt_declares_one_lnro0005_per_virtio_device(void **state)
{
	struct tables t;
	uint32_t len;

	tables_write(&t, 1, 5, true);
	len = get32(&t.mem, t.dsdt + 4);
	assert_int_equal(count_in(at(&t.mem, t.dsdt, len), len, "LNRO0005"), 5);
	tables_free(&t);
}

static void test_dsdt_without_generation_id_has_no_vmgenid_or_ged(void **state)
{
	struct tables t;
	const uint8_t *d;
	uint32_t len;

	tables_write(&t, 1, 2, false);
	len = get32(&t.mem, t.dsdt + 4);
	d = at(&t.mem, t.dsdt, len);
	assert_int_equal(count_in(d, len, "QEMUVGID"), 0);
	assert_int_equal(count_in(d, len, "ACPI0013"), 0);
	assert_int_equal(count_in(d, len, "LNRO0005"), 2);
	tables_free(&t);
}

/* PkgLength: one byte up to 63, then a lead byte with the count of extra bytes. */
static void test_aml_pkglength_encodings(void **state)
{
	static uint8_t buf[8192];
	uint8_t filler[5000];
	struct aml a;
	size_t mark;

	memset(filler, 0xaa, sizeof(filler));
	aml_init(&a, buf, sizeof(buf));
	mark = aml_if_open(&a);
	aml_bytes(&a, filler, 62);
	aml_close(&a, mark);
	assert_int_equal(a.len, 1 + 1 + 62);
	assert_int_equal(buf[1], 63);

	aml_init(&a, buf, sizeof(buf));
	mark = aml_if_open(&a);
	aml_bytes(&a, filler, 100);
	aml_close(&a, mark);
	assert_int_equal(a.len, 1 + 2 + 100);
	assert_int_equal(buf[1], 0x40 | (102 & 0xf));
	assert_int_equal(buf[2], 102 >> 4);
	assert_int_equal(buf[3], 0xaa);

	aml_init(&a, buf, sizeof(buf));
	mark = aml_if_open(&a);
	aml_bytes(&a, filler, 5000);
	aml_close(&a, mark);
	assert_int_equal(a.len, 1 + 3 + 5000);
	assert_int_equal(buf[1], 0x80 | (5003 & 0xf));
	assert_int_equal(buf[2], (5003 >> 4) & 0xff);
	assert_int_equal(buf[3], 5003 >> 12);
	assert_false(a.overflow);
}

static void test_aml_overflow_is_reported_not_written_past(void **state)
{
	uint8_t buf[40];
	struct aml a;

	memset(buf, 0x55, sizeof(buf));
	aml_init(&a, buf, 38);
	acpi_header(&a, "TEST", 1);
	aml_u32(&a, 0); /* 40 bytes wanted, 38 given */
	assert_true(a.overflow);
	assert_int_equal(acpi_finish(&a), -ENOSPC);
	assert_int_equal(buf[38], 0x55);
	assert_int_equal(buf[39], 0x55);
}

/* ---- bad configurations */

static void test_bad_config_refused(void **state)
{
	struct vmm_mem mem = {0};
	struct vmm_acpi_cfg cfg;
	uint64_t rsdp = 0;

	if (vmm_mem_alloc(&mem, 16 * MiB))
		fail_msg("cannot map guest memory");
	cfg_for(&cfg, 0, 0, true);
	assert_int_equal(vmm_acpi_write(&mem, &cfg, &rsdp), -EINVAL);
	cfg_for(&cfg, 256, 0, true);
	assert_int_equal(vmm_acpi_write(&mem, &cfg, &rsdp), -EINVAL);
	cfg_for(&cfg, 1, 0, true);
	cfg.vmgenid_gpa += 4;
	assert_int_equal(vmm_acpi_write(&mem, &cfg, &rsdp), -EINVAL);
	cfg_for(&cfg, 1, 1, true);
	cfg.virtio[0].base = 0xfffff000ull + 0x1000;
	assert_int_equal(vmm_acpi_write(&mem, &cfg, &rsdp), -EINVAL);
	assert_int_equal(rsdp, 0);
	vmm_mem_free(&mem);
}

/* ---- the generation ID */

static void test_vmgenid_write_lands_at_its_address(void **state)
{
	struct vmm_mem mem = {0};
	uint8_t id[VMM_VMGENID_LEN];

	if (vmm_mem_alloc(&mem, 16 * MiB))
		fail_msg("cannot map guest memory");
	assert_int_equal(vmm_vmgenid_generate(id), 0);
	assert_int_equal(vmm_vmgenid_write(&mem, BOOT_VMGENID_ADDR, id), 0);
	assert_memory_equal(at(&mem, BOOT_VMGENID_ADDR, VMM_VMGENID_LEN), id, VMM_VMGENID_LEN);
	vmm_mem_free(&mem);
}

static void test_vmgenid_generate_gives_different_ids(void **state)
{
	uint8_t a[VMM_VMGENID_LEN], b[VMM_VMGENID_LEN];

	assert_int_equal(vmm_vmgenid_generate(a), 0);
	assert_int_equal(vmm_vmgenid_generate(b), 0);
	assert_memory_not_equal(a, b, VMM_VMGENID_LEN);
}

/* A snapshot's saved address must point into reserved memory, whole, in one page. */
static void test_vmgenid_address_outside_reserved_memory_refused(void **state)
{
	struct vmm_mem mem = {0};
	uint8_t id[VMM_VMGENID_LEN] = {1};

	if (vmm_mem_alloc(&mem, 16 * MiB))
		fail_msg("cannot map guest memory");
	assert_int_equal(vmm_vmgenid_check(&mem, BOOT_VMGENID_ADDR), 0);
	assert_int_equal(vmm_vmgenid_check(&mem, 0x1000), -EINVAL);		   /* RAM */
	assert_int_equal(vmm_vmgenid_check(&mem, 2 * MiB), -EINVAL);		   /* RAM */
	assert_int_equal(vmm_vmgenid_check(&mem, BOOT_MPTABLE_ADDR - 8), -EINVAL); /* straddles */
	assert_int_equal(vmm_vmgenid_check(&mem, BOOT_VMGENID_ADDR + 0xff8), -EINVAL); /* 2 pages */
	assert_int_equal(vmm_vmgenid_check(&mem, 64 * MiB), -EINVAL); /* not guest memory */
	assert_int_equal(vmm_vmgenid_check(&mem, UINT64_MAX - 4), -EINVAL);
	assert_int_equal(vmm_vmgenid_write(&mem, 0x1000, id), -EINVAL);
	assert_int_equal(*at(&mem, 0x1000, 1), 0);
	vmm_mem_free(&mem);
}

/* ---- boot: where the guest learns the RSDP's address */

static void boot_with_acpi(enum vmm_boot_protocol proto, struct vmm_mem *mem,
			   struct vmm_boot_params *bp, struct vmm_acpi_cfg *cfg, bool acpi)
{
	struct vmm_elf_info elf = {.entry = BOOT_HIMEM_START,
				   .pvh_entry = BOOT_HIMEM_START + 0x40,
				   .has_pvh = true,
				   .load_start = BOOT_HIMEM_START,
				   .load_end = BOOT_HIMEM_START + 512 * 1024};
	char err[256];

	if (vmm_mem_alloc(mem, 64 * MiB))
		fail_msg("cannot map guest memory");
	cfg_for(cfg, 2, 1, true);
	*bp = (struct vmm_boot_params){
	    .protocol = proto, .cmdline = "console=ttyS0", .vcpus = 2, .acpi = acpi ? cfg : NULL};
	if (vmm_boot_setup(mem, &elf, bp, NULL, 0, err, sizeof(err)))
		fail_msg("vmm_boot_setup: %s", err);
}

static void test_pvh_start_info_carries_the_rsdp(void **state)
{
	struct vmm_mem mem = {0};
	struct vmm_boot_params bp;
	struct vmm_acpi_cfg cfg;

	boot_with_acpi(VMM_BOOT_PVH, &mem, &bp, &cfg, true);
	assert_int_equal(bp.rsdp_gpa, BOOT_ACPI_ADDR);
	assert_int_equal(get64(&mem, BOOT_START_INFO + 32), BOOT_ACPI_ADDR); /* rsdp_paddr */
	assert_memory_equal(at(&mem, BOOT_ACPI_ADDR, 8), "RSD PTR ", 8);
	vmm_mem_free(&mem);
}

static void test_linux_boot_params_carry_the_rsdp(void **state)
{
	struct vmm_mem mem = {0};
	struct vmm_boot_params bp;
	struct vmm_acpi_cfg cfg;

	boot_with_acpi(VMM_BOOT_LINUX64, &mem, &bp, &cfg, true);
	assert_int_equal(get64(&mem, BOOT_ZERO_PAGE + 0x70), BOOT_ACPI_ADDR); /* acpi_rsdp_addr */
	vmm_mem_free(&mem);
}

static void test_without_acpi_no_rsdp_and_the_mp_table_stays(void **state)
{
	struct vmm_mem mem = {0};
	struct vmm_boot_params bp;
	struct vmm_acpi_cfg cfg;

	boot_with_acpi(VMM_BOOT_PVH, &mem, &bp, &cfg, false);
	assert_int_equal(bp.rsdp_gpa, 0);
	assert_int_equal(get64(&mem, BOOT_START_INFO + 32), 0);
	assert_memory_not_equal(at(&mem, BOOT_ACPI_ADDR, 8), "RSD PTR ", 8);
	assert_memory_equal(at(&mem, BOOT_MPTABLE_ADDR, 4), "_MP_", 4);
	vmm_mem_free(&mem);

	boot_with_acpi(VMM_BOOT_LINUX64, &mem, &bp, &cfg, true);
	assert_memory_equal(at(&mem, BOOT_MPTABLE_ADDR, 4), "_MP_", 4);
	vmm_mem_free(&mem);
}

/* The tables and the generation ID are in memory the e820 map reserves. */
static void test_tables_and_generation_id_are_e820_reserved(void **state)
{
	struct vmm_mem mem = {0};
	struct vmm_e820 e[16];
	unsigned n;
	bool tables = false, genid = false;

	vmm_mem_layout(&mem, 256 * MiB);
	n = vmm_e820_build(&mem, e, 16);
	for (unsigned i = 0; i < n; i++) {
		if (e[i].type != VMM_E820_RESERVED)
			continue;
		if (e[i].addr <= BOOT_ACPI_ADDR &&
		    BOOT_ACPI_ADDR + BOOT_ACPI_SIZE <= e[i].addr + e[i].size)
			tables = true;
		if (e[i].addr <= BOOT_VMGENID_ADDR &&
		    BOOT_VMGENID_ADDR + 4096 <= e[i].addr + e[i].size)
			genid = true;
	}
	assert_true(tables);
	assert_true(genid);
}

/* ---- iasl */

struct tmpdir {
	char path[64];
};

static bool have_iasl(void)
{
	return system("command -v iasl >/dev/null 2>&1") == 0;
}

static void skip_without_iasl(void)
{
	if (have_iasl())
		return;
	fprintf(stderr, "\n*** SKIPPED: iasl not found; install Debian's acpica-tools "
			"(scripts/deps.sh) to validate the ACPI tables ***\n\n");
	skip();
}

static void write_file(const char *dir, const char *name, const void *p, size_t len)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(p, 1, len, f) != len || fclose(f) != 0)
		fail_msg("writing %s failed", path);
}

static char *read_file(const char *dir, const char *name)
{
	char path[128], *buf;
	long len;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "rb");
	if (!f)
		fail_msg("%s was not written", path);
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	rewind(f);
	buf = calloc(1, (size_t)len + 1);
	if (!buf || fread(buf, 1, (size_t)len, f) != (size_t)len)
		fail_msg("reading %s failed", path);
	fclose(f);
	return buf;
}

/* Runs `iasl args` in `dir`, its output in dir/log; returns its exit status. */
static int run_iasl(const char *dir, const char *args)
{
	char cmd[512];
	int st;

	snprintf(cmd, sizeof(cmd), "cd %s && iasl %s >>log 2>&1", dir, args);
	st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void dump_tables(struct tables *t, const char *dir)
{
	write_file(dir, "xsdt.dat", at(&t->mem, t->xsdt, 36), get32(&t->mem, t->xsdt + 4));
	write_file(dir, "facp.dat", at(&t->mem, t->fadt, 36), get32(&t->mem, t->fadt + 4));
	write_file(dir, "apic.dat", at(&t->mem, t->madt, 36), get32(&t->mem, t->madt + 4));
	write_file(dir, "dsdt.dat", at(&t->mem, t->dsdt, 36), get32(&t->mem, t->dsdt + 4));
}

static void tmpdir_make(struct tmpdir *d)
{
	snprintf(d->path, sizeof(d->path), "/tmp/thaw-acpi-XXXXXX");
	if (!mkdtemp(d->path))
		fail_msg("mkdtemp: %s", strerror(errno));
}

static void tmpdir_remove(struct tmpdir *d)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", d->path);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", d->path);
}

/* iasl says "Error" or "Warning" for what it cannot read or finds wrong. */
static void assert_log_clean(const char *dir)
{
	char *log = read_file(dir, "log");

	if (strstr(log, "Error") || strstr(log, "Warning") || strstr(log, "Invalid"))
		fail_msg("iasl complained:\n%s", log);
	free(log);
}

static void test_iasl_disassembles_every_table_and_names_the_devices(void **state)
{
	/* Not the RSDP: iasl reads only tables with a standard header (its length field
	 * would be "PTR "); the RSDP's checksums are checked above. */
	static const char *const names[] = {"xsdt", "facp", "apic", "dsdt"};
	struct tables t;
	struct tmpdir d;
	char args[64], *dsl;

	skip_without_iasl();
	tables_write(&t, 2, 3, true);
	tmpdir_make(&d);
	dump_tables(&t, d.path);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(args, sizeof(args), "-d %s.dat", names[i]);
		if (run_iasl(d.path, args) != 0)
			fail_msg("iasl %s failed:\n%s", args, read_file(d.path, "log"));
	}
	assert_log_clean(d.path);

	dsl = read_file(d.path, "dsdt.dsl");
	assert_non_null(strstr(dsl, "\"QEMUVGID\""));
	assert_non_null(strstr(dsl, "\"VM_Gen_Counter\""));
	assert_non_null(strstr(dsl, "Method (ADDR, 0"));
	assert_non_null(strstr(dsl, "0x000F0000"));
	assert_non_null(strstr(dsl, "\"ACPI0013\""));
	assert_non_null(strstr(dsl, "Method (_EVT, 1, Serialized)"));
	assert_non_null(strstr(dsl, "Notify (\\_SB.VGEN, 0x80)"));
	assert_non_null(strstr(dsl, "\"LNRO0005\""));
	assert_non_null(strstr(dsl, "0xD0002000"));
	assert_non_null(strstr(dsl, "EisaId (\"PNP0501\")"));
	assert_non_null(strstr(dsl, "IO (Decode16"));
	free(dsl);

	dsl = read_file(d.path, "facp.dsl");
	assert_non_null(strstr(dsl, "Hardware Reduced (V5) : 1"));
	free(dsl);
	dsl = read_file(d.path, "apic.dsl");
	assert_non_null(strstr(dsl, "Local Apic ID : 01"));
	free(dsl);

	tmpdir_remove(&d);
	tables_free(&t);
}

/* The disassembly compiled again gives the same AML: what thaw wrote is what ASL
 * means, byte for byte (the header's checksum and compiler fields aside). iasl's
 * compiler refuses one thing on the way, which is forced past (-f): QEMU's _HID
 * "QEMUVGID" (its suffix is not hex), kept because that is the id QEMU and guests
 * know; Linux matches the _CID. Four virtio devices make the \\_SB scope's
 * PkgLength two bytes long. */
static void test_iasl_recompiles_the_dsdt_to_the_same_bytes(void **state)
{
	struct tables t;
	struct tmpdir d;
	uint8_t *ours, *theirs;
	uint32_t len;
	char path[128], *log;
	FILE *f;
	long tlen;

	skip_without_iasl();
	tables_write(&t, 1, 4, true);
	tmpdir_make(&d);
	dump_tables(&t, d.path);
	if (run_iasl(d.path, "-d dsdt.dat") != 0)
		fail_msg("iasl failed:\n%s", read_file(d.path, "log"));
	/* -on: keep name paths as written (iasl would shorten \\_SB_ at the root) */
	run_iasl(d.path, "-on -f -p re dsdt.dsl");
	log = read_file(d.path, "log");
	if (!strstr(log, "1 Errors, 0 Warnings") || !strstr(log, "must be all hex digits (VGID)"))
		fail_msg("iasl found more than the _HID suffix to complain about:\n%s", log);
	free(log);
	len = get32(&t.mem, t.dsdt + 4);
	ours = malloc(len);
	memcpy(ours, at(&t.mem, t.dsdt, len), len);
	snprintf(path, sizeof(path), "%s/re.aml", d.path);
	f = fopen(path, "rb");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	tlen = ftell(f);
	rewind(f);
	theirs = malloc((size_t)tlen);
	assert_int_equal(fread(theirs, 1, (size_t)tlen, f), (size_t)tlen);
	fclose(f);
	if ((uint32_t)tlen != len)
		fail_msg("iasl's AML is %ld bytes, ours %u", tlen, len);
	assert_memory_equal(ours + 36, theirs + 36, len - 36);
	assert_memory_equal(ours, theirs, 9); /* signature, length, revision */
	free(ours);
	free(theirs);
	tmpdir_remove(&d);
	tables_free(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rsdp_has_both_checksums_and_points_at_the_xsdt),
	    cmocka_unit_test(test_rsdp_checksum_catches_a_changed_byte),
	    cmocka_unit_test(test_every_table_checksum_is_zero_with_many_devices),
	    cmocka_unit_test(test_tables_do_not_overlap),
	    cmocka_unit_test(test_fadt_is_hardware_reduced_and_names_the_dsdt),
	    cmocka_unit_test(test_madt_one_local_apic_for_one_vcpu),
	    cmocka_unit_test(test_madt_local_apics_for_two_vcpus),
	    cmocka_unit_test(test_madt_local_apics_for_eight_vcpus),
	    cmocka_unit_test(test_dsdt_declares_one_lnro0005_per_virtio_device),
	    cmocka_unit_test(test_dsdt_without_generation_id_has_no_vmgenid_or_ged),
	    cmocka_unit_test(test_aml_pkglength_encodings),
	    cmocka_unit_test(test_aml_overflow_is_reported_not_written_past),
	    cmocka_unit_test(test_bad_config_refused),
	    cmocka_unit_test(test_vmgenid_write_lands_at_its_address),
	    cmocka_unit_test(test_vmgenid_generate_gives_different_ids),
	    cmocka_unit_test(test_vmgenid_address_outside_reserved_memory_refused),
	    cmocka_unit_test(test_pvh_start_info_carries_the_rsdp),
	    cmocka_unit_test(test_linux_boot_params_carry_the_rsdp),
	    cmocka_unit_test(test_without_acpi_no_rsdp_and_the_mp_table_stays),
	    cmocka_unit_test(test_tables_and_generation_id_are_e820_reserved),
	    cmocka_unit_test(test_iasl_disassembles_every_table_and_names_the_devices),
	    cmocka_unit_test(test_iasl_recompiles_the_dsdt_to_the_same_bytes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
