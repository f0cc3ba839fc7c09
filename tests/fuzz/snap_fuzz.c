/* libFuzzer target for the snapshot reader: the file is hostile input. Each input is
 * opened twice: as is (exercises magic, version, checksums) and with every checksum
 * recomputed (so mutations reach the table, bounds, field and codec checks behind them).
 * Everything a restore would call on an opened snapshot is then exercised. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "restore/snap_internal.h"
#include "restore/snap_kvm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int memfd = -1;
static char path[64];
static struct snap_vcpu_state vcpu;
static struct kvm_cpuid_entry2 cpuid[SNAP_MAX_CPUID];

static void fix_checksums(uint8_t *b, size_t size)
{
	if (size < SNAP_HEADER_SIZE)
		return;
	uint32_t count = rd32(b + H_COUNT);
	uint64_t toff = rd64(b + H_TABLE_OFF);
	if (count <= SNAP_MAX_SECTIONS && toff <= size &&
	    (uint64_t)count * SNAP_TABLE_ENTRY <= size - toff) {
		for (uint32_t i = 0; i < count; i++) {
			uint8_t *e = b + toff + (uint64_t)i * SNAP_TABLE_ENTRY;
			uint64_t off = rd64(e + T_OFFSET), len = rd64(e + T_SIZE);
			if (off <= size && len <= size - off &&
			    !(rd32(e + T_FLAGS) & SNAP_SEC_BULK))
				wr32(e + T_CRC, snap_crc32c(0, b + off, len));
		}
		wr32(b + H_TABLE_CRC, snap_crc32c(0, b + toff, (size_t)count * SNAP_TABLE_ENTRY));
	}
	wr32(b + H_CRC, snap_crc32c(0, b, H_CRC));
}

static void exercise(unsigned flags)
{
	struct snap *s;
	char err[256];
	if (snap_open_flags(path, flags, &s, err, sizeof(err)))
		return;
	for (size_t i = 0; i < snap_section_count(s); i++) {
		const struct snap_section *sec = snap_section_at(s, i);
		struct snap_field f;
		size_t pos = 0;
		while (sec->data && !(sec->flags & SNAP_SEC_RAW) &&
		       snap_field_next(sec, &pos, &f) == 1)
			(void)snap_field_name(sec->name, f.tag);
		if (sec->data && !(sec->flags & SNAP_SEC_RAW) &&
		    snap_section_check_fields(sec, err, sizeof(err)))
			abort(); /* snap_open ran the same check: it must have passed */
		if (!strncmp(sec->name, "vcpu.", 5))
			snap_decode_vcpu(sec, &vcpu, err, sizeof(err));
		if (!strncmp(sec->name, "device.", 7)) {
			char kind[32];
			struct snap_device_place p;
			snap_device_get_place(sec, kind, sizeof(kind), &p);
		}
	}
	struct snap_vm_state vm;
	struct snap_machine m;
	size_t n;
	const char *json;
	const uint8_t *bits;
	const uint64_t *pages;
	uint64_t npages;
	snap_get_vm(s, &vm, err, sizeof(err));
	snap_get_machine(s, &m, err, sizeof(err));
	snap_get_cpuid(s, cpuid, SNAP_MAX_CPUID, &n, err, sizeof(err));
	snap_get_config(s, &json, &n);
	snap_memory_zero_bitmap(s, &bits, &npages);
	snap_workingset(s, &pages, &n);
	snap_check(s, NULL, 0, NULL, NULL, NULL); /* what thaw-snap verify decodes */
	struct snap_memory_loc loc;
	snap_memory(s, &loc);
	if (!loc.external) /* an external path may name any file: not the fuzzer's business */
		snap_memory_verify(s, NULL, NULL, NULL);
	snap_close(s);
}

static void load(const uint8_t *data, size_t size)
{
	if (ftruncate(memfd, 0) || pwrite(memfd, data, size, 0) != (ssize_t)size)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (memfd < 0) {
		memfd = memfd_create("snap-fuzz", MFD_CLOEXEC);
		if (memfd < 0)
			abort();
		snprintf(path, sizeof(path), "/proc/self/fd/%d", memfd);
	}
	load(data, size);
	exercise(0);
	uint8_t *copy = malloc(size ? size : 1);
	memcpy(copy, data, size);
	fix_checksums(copy, size);
	load(copy, size);
	exercise(0);
	exercise(SNAP_OPEN_DIFF | SNAP_OPEN_NO_SECTION_CRC);
	free(copy);
	return 0;
}
