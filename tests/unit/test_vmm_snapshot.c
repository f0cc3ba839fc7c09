/* The VMM's own snapshot sections, checked as a restore (and thaw-snap verify) checks
 * them, on files made by the real writer: here the vmgenid section, whose address a
 * restore writes a new generation ID to. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "restore/snap_kvm.h"
#include "vmm/vmm.h"

#define MEM (4u << 20)

/* A snapshot of a 4 MiB machine with a vmgenid section (tags of
 * docs/snapshot-format.md) of version `major`; the result of checking that section. */
static int check_vmgenid(uint16_t major, uint64_t addr, uint64_t irq, char *err, size_t errlen)
{
	static uint8_t mem[MEM];
	char path[] = "/tmp/thaw-test-vmgenid-XXXXXX";
	struct snap_machine m = {.mem_size = MEM, .nr_vcpus = 1};
	struct vmm_mem layout;
	struct snap_writer *w;
	struct snap_sec *sec;
	struct snap *s;
	int fd = mkstemp(path), ret;

	assert_true(fd >= 0);
	close(fd);
	vmm_mem_layout(&layout, MEM);
	m.nr_regions = layout.nr_regions;
	for (unsigned i = 0; i < layout.nr_regions; i++) {
		m.regions[i].gpa = layout.regions[i].gpa;
		m.regions[i].size = layout.regions[i].size;
		m.regions[i].offset = layout.regions[i].offset;
	}
	assert_int_equal(snap_writer_create(path, &(struct snap_writer_opts){.no_fsync = true}, &w),
			 0);
	assert_int_equal(snap_put_machine(w, &m), 0);
	assert_int_equal(snap_writer_section(w, "vmgenid", major, 0, 0, &sec), 0);
	snap_put_u64(sec, 1, addr);
	snap_put_u64(sec, 2, irq);
	assert_int_equal(snap_writer_set_memory(w, mem, sizeof(mem)), 0);
	assert_int_equal(snap_writer_commit(w, NULL), 0);
	assert_int_equal(snap_open(path, &s, err, errlen), 0);
	ret = vm_snapshot_check_section(s, snap_section_find(s, "vmgenid"), err, errlen);
	snap_close(s);
	unlink(path);
	return ret;
}

static void test_vmgenid_in_reserved_memory_is_accepted(void **state)
{
	char err[256] = "";

	assert_int_equal(check_vmgenid(1, BOOT_VMGENID_ADDR, VMM_GED_IRQ, err, sizeof(err)), 0);
}

/* An address a restore must not write to is refused, naming it: guest RAM the guest
 * uses, beyond RAM, across a page. */
static void test_vmgenid_outside_reserved_memory_is_refused_by_name(void **state)
{
	static const uint64_t bad[] = {0x200000, MEM + 0x1000, BOOT_VMGENID_ADDR + 0xff8,
				       UINT64_MAX - 8};
	char err[256], want[64];

	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(check_vmgenid(1, bad[i], VMM_GED_IRQ, err, sizeof(err)), -EBADMSG);
		snprintf(want, sizeof(want), "%#llx is not in reserved guest memory",
			 (unsigned long long)bad[i]);
		if (!strstr(err, want))
			fail_msg("'%s' lacks '%s'", err, want);
	}
}

static void test_vmgenid_of_another_ged_or_a_newer_version_is_refused(void **state)
{
	char err[256];

	assert_int_equal(check_vmgenid(1, BOOT_VMGENID_ADDR, 9, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "GED IRQ 9"));
	assert_int_equal(check_vmgenid(2, BOOT_VMGENID_ADDR, VMM_GED_IRQ, err, sizeof(err)),
			 -EPROTONOSUPPORT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_vmgenid_in_reserved_memory_is_accepted),
	    cmocka_unit_test(test_vmgenid_outside_reserved_memory_is_refused_by_name),
	    cmocka_unit_test(test_vmgenid_of_another_ged_or_a_newer_version_is_refused),
	};

	return cmocka_run_group_tests_name("vmm snapshot sections", tests, NULL, NULL);
}
