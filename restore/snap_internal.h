/* restore/ private helpers shared by its .c files. Not part of the public interface. */
#ifndef THAW_SNAP_INTERNAL_H
#define THAW_SNAP_INTERNAL_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "restore/snapshot.h"

/* Header byte offsets (docs/snapshot-format.md, "Header"). */
#define H_MAGIC	       0
#define H_MAJOR	       8
#define H_MINOR	       10
#define H_FLAGS	       12
#define H_HDR_SIZE     16
#define H_COUNT	       20
#define H_TABLE_OFF    24
#define H_STATE_END    32
#define H_FILE_SIZE    40
#define H_TABLE_CRC    48
#define H_ID	       56
#define H_CREATED      72
#define H_VENDOR       80
#define H_FAMILY       96
#define H_MODEL	       100
#define H_STEPPING     104
#define H_CPUID_DIGEST 108
#define H_KERNEL       112
#define H_KERNEL_LEN   128
#define H_CRC	       4092

/* Table entry byte offsets. */
#define T_NAME	 0
#define T_VMAJ	 32
#define T_VMIN	 34
#define T_FLAGS	 36
#define T_OFFSET 40
#define T_SIZE	 48
#define T_CRC	 56

#define FIELD_HDR 8u /* u16 tag, u16 type, u32 length */

static inline uint64_t rd64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}
static inline uint32_t rd32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}
static inline uint16_t rd16(const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, 2);
	return v;
}
static inline void wr64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}
static inline void wr32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}
static inline void wr16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, 2);
}

static inline uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

/* 1 when `name` is a valid section name (1..31 chars of [a-z0-9._-]). */
int snap_name_valid(const char *name, size_t max);

/* Reserves a field of `len` bytes and returns its value's offset in sec->buf (or -errno). */
long snap_put_reserve(struct snap_sec *sec, uint16_t tag, uint16_t type, size_t len);

/* A field tag's name for tools, in tables of the sections encoded by hand. */
struct snap_tagname {
	uint16_t tag;
	const char *name;
};
static inline const char *snap_tagname_find(const struct snap_tagname *t, size_t n, uint16_t tag)
{
	for (size_t i = 0; i < n; i++)
		if (t[i].tag == tag)
			return t[i].name;
	return NULL;
}

/* Field names of the KVM x86 schema's sections (snap_kvm.c), for snap_field_name: NULL
 * for another section or an unknown tag. */
const char *snap_kvm_field_name(const char *section, uint16_t tag);

/* CRC32C digest of the host CPUID leaves (docs: "Host facts"). */
uint32_t snap_cpuid_digest(void);

/* Formats one problem and hands it to `report` (when not NULL): verify's and check's
 * lines. */
void snap_reportf(snap_report_fn report, void *opaque, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
