/* vmm/acpi/ private interface: a small AML writer and the table builders.
 *
 * Every builder writes into a caller's byte buffer through `struct aml`, which never
 * writes past its capacity: an overflow is remembered and reported once at the end
 * (acpi_finish), so the builders themselves stay free of error paths.
 */
#ifndef THAW_VMM_ACPI_INT_H
#define THAW_VMM_ACPI_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/vmm.h"

struct aml {
	uint8_t *buf;
	size_t cap, len;
	bool overflow; /* something did not fit; buf holds a truncated table */
};

void aml_init(struct aml *a, uint8_t *buf, size_t cap);
void aml_byte(struct aml *a, uint8_t b);
void aml_bytes(struct aml *a, const void *p, size_t n);
void aml_u16(struct aml *a, uint16_t v);
void aml_u32(struct aml *a, uint32_t v);
void aml_u64(struct aml *a, uint64_t v);

/* ---- AML terms (ACPI 6.5, section 20.2) */

/* A NameString: "\\_SB_.VGEN", "VGEN", "_HID"; segments shorter than four characters
 * are padded with '_' as ASL does. */
void aml_namestring(struct aml *a, const char *path);
/* The shortest encoding of an integer constant (ZeroOp, OneOp, Byte/Word/DWord/QWord). */
void aml_integer(struct aml *a, uint64_t v);
void aml_string(struct aml *a, const char *s);
/* A 7-character PNP id ("PNP0501") compressed into its 32-bit EISA form. */
void aml_eisaid(struct aml *a, const char *id);
/* Name (name, ...): the value is the next term written. */
void aml_name(struct aml *a, const char *name);
/* Buffer (n) { bytes }. */
void aml_buffer(struct aml *a, const uint8_t *bytes, size_t n);
void aml_arg(struct aml *a, unsigned n); /* Arg0 .. Arg6 */
void aml_return(struct aml *a);		 /* Return (the next term) */
void aml_lequal(struct aml *a);		 /* LEqual (the next two terms) */
void aml_notify(struct aml *a, const char *path, uint8_t value);

/* Terms with a PkgLength: *_open returns a mark for aml_close, which goes back and
 * fills in the length once the contents are written. */
size_t aml_scope_open(struct aml *a, const char *path);
size_t aml_device_open(struct aml *a, const char *name);
size_t aml_method_open(struct aml *a, const char *name, unsigned nargs, bool serialized);
size_t aml_if_open(struct aml *a); /* the predicate is the next term, then the body */
size_t aml_package_open(struct aml *a, uint8_t nelems);
void aml_close(struct aml *a, size_t mark);

/* ---- resource descriptors, for a ResourceTemplate's bytes (section 6.4) */
void res_io(struct aml *r, uint16_t base, uint8_t len);
void res_irq_noflags(struct aml *r, unsigned irq); /* IRQNoFlags () {irq}, irq < 16 */
void res_mem32_fixed(struct aml *r, uint32_t base, uint32_t len);
/* Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive) {gsi} */
void res_interrupt_edge(struct aml *r, uint32_t gsi);
void res_end(struct aml *r);

/* ---- tables */

#define ACPI_HEADER_LEN 36
#define ACPI_OEM_ID	"THAW  "
#define ACPI_OEM_TABLE	"MICROVM "

/* Writes a System Description Table header with a zero length and checksum;
 * acpi_finish fills both once the body is written. */
void acpi_header(struct aml *a, const char sig[4], uint8_t revision);
/* Fills in the length and checksum of the table in `a`; -ENOSPC if it overflowed. */
int acpi_finish(struct aml *a);
uint8_t acpi_checksum(const uint8_t *p, size_t len);

/* One builder per table. `a` is empty on entry and holds the whole table on return. */
int acpi_build_dsdt(struct aml *a, const struct vmm_acpi_cfg *cfg);
int acpi_build_madt(struct aml *a, unsigned vcpus);
int acpi_build_fadt(struct aml *a, uint64_t dsdt_gpa);
int acpi_build_xsdt(struct aml *a, const uint64_t *tables, unsigned n);
/* The 36-byte RSDP (revision 2) pointing at the XSDT, both checksums set. */
void acpi_build_rsdp(uint8_t out[36], uint64_t xsdt_gpa);

#endif
