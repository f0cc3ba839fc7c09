/* The ACPI tables thaw gives an x86 guest, laid out from BOOT_ACPI_ADDR:
 *
 *   RSDP (36 bytes, revision 2) -> XSDT -> FADT -> DSDT
 *                                       -> MADT
 *
 * Each table starts 16-byte aligned. No RSDT: a revision-2 RSDP may leave its
 * RsdtAddress zero, and every guest that reads ACPI 2.0 or later uses the XSDT.
 */
#include "vmm/acpi/acpi_int.h"

#include <errno.h>
#include <string.h>

_Static_assert(VMM_ACPI_MAX_MMIO >= VIRTIO_MAX_DEVS, "every virtio device fits the DSDT");

uint8_t acpi_checksum(const uint8_t *p, size_t len)
{
	uint8_t sum = 0;

	while (len--)
		sum += *p++;
	return (uint8_t)-sum;
}

void acpi_header(struct aml *a, const char sig[4], uint8_t revision)
{
	aml_bytes(a, sig, 4);
	aml_u32(a, 0); /* Length, set by acpi_finish */
	aml_byte(a, revision);
	aml_byte(a, 0); /* Checksum, set by acpi_finish */
	aml_bytes(a, ACPI_OEM_ID, 6);
	aml_bytes(a, ACPI_OEM_TABLE, 8);
	aml_u32(a, 1);		 /* OEM revision */
	aml_bytes(a, "THAW", 4); /* creator id */
	aml_u32(a, 1);		 /* creator revision */
}

int acpi_finish(struct aml *a)
{
	uint32_t len = (uint32_t)a->len;

	if (a->overflow || a->len < ACPI_HEADER_LEN)
		return -ENOSPC;
	memcpy(a->buf + 4, &len, 4);
	a->buf[9] = 0;
	a->buf[9] = acpi_checksum(a->buf, a->len);
	return 0;
}

int acpi_build_xsdt(struct aml *a, const uint64_t *tables, unsigned n)
{
	acpi_header(a, "XSDT", 1);
	for (unsigned i = 0; i < n; i++)
		aml_u64(a, tables[i]);
	return acpi_finish(a);
}

void acpi_build_rsdp(uint8_t out[36], uint64_t xsdt_gpa)
{
	uint32_t len = 36;

	memset(out, 0, 36);
	memcpy(out, "RSD PTR ", 8);
	memcpy(out + 9, ACPI_OEM_ID, 6);
	out[15] = 2; /* ACPI 2.0 and later: the XSDT address and length follow */
	memcpy(out + 20, &len, 4);
	memcpy(out + 24, &xsdt_gpa, 8);
	out[8] = acpi_checksum(out, 20);  /* the ACPI 1.0 part */
	out[32] = acpi_checksum(out, 36); /* the whole structure */
}

/* The next table's place: 16-byte aligned after `len` bytes used from the base. */
static size_t align16(size_t len)
{
	return (len + 15) & ~(size_t)15;
}

int vmm_acpi_write(struct vmm_mem *mem, const struct vmm_acpi_cfg *cfg, uint64_t *rsdp_gpa)
{
	uint8_t *base = vmm_gpa(mem, BOOT_ACPI_ADDR, BOOT_ACPI_SIZE);
	uint64_t at[2]; /* FADT, MADT: the XSDT's entries */
	uint64_t xsdt, dsdt;
	size_t off;
	struct aml a;
	int ret;

	if (!base)
		return -EFAULT;
	if (cfg->vcpus == 0 || cfg->vcpus > 255 || cfg->nr_virtio > VMM_ACPI_MAX_MMIO ||
	    (cfg->vmgenid_gpa & 7))
		return -EINVAL;
	for (unsigned k = 0; k < cfg->nr_virtio; k++)
		if (cfg->virtio[k].base + cfg->virtio[k].size > 0x100000000ull)
			return -EINVAL; /* Memory32Fixed */
	memset(base, 0, BOOT_ACPI_SIZE);

	/* DSDT first (its size varies most), then FADT pointing at it, then MADT, then
	 * the XSDT listing those two; the RSDP sits at the very start. */
	off = align16(36);
	dsdt = BOOT_ACPI_ADDR + off;
	aml_init(&a, base + off, BOOT_ACPI_SIZE - off);
	ret = acpi_build_dsdt(&a, cfg);
	if (ret)
		return ret;

	off = align16(off + a.len);
	at[0] = BOOT_ACPI_ADDR + off;
	aml_init(&a, base + off, BOOT_ACPI_SIZE - off);
	ret = acpi_build_fadt(&a, dsdt);
	if (ret)
		return ret;

	off = align16(off + a.len);
	at[1] = BOOT_ACPI_ADDR + off;
	aml_init(&a, base + off, BOOT_ACPI_SIZE - off);
	ret = acpi_build_madt(&a, cfg->vcpus);
	if (ret)
		return ret;

	off = align16(off + a.len);
	xsdt = BOOT_ACPI_ADDR + off;
	aml_init(&a, base + off, BOOT_ACPI_SIZE - off);
	ret = acpi_build_xsdt(&a, at, 2);
	if (ret)
		return ret;

	acpi_build_rsdp(base, xsdt);
	*rsdp_gpa = BOOT_ACPI_ADDR;
	return 0;
}
