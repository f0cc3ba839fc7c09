/* The bus: sorted registration that refuses overlaps, lookup by binary search, and
 * dispatch that refuses accesses running off the end of a range. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "vmm/vmm.h"

/* What the last handler call saw. */
struct call {
	int calls;
	void *opaque;
	uint64_t offset;
	uint32_t len;
	bool is_write;
	uint8_t data[8];
};

static struct call last;

static void handler(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	last.calls++;
	last.opaque = opaque;
	last.offset = offset;
	last.len = len;
	last.is_write = is_write;
	if (is_write) {
		memcpy(last.data, data, len);
	} else {
		for (uint32_t i = 0; i < len; i++)
			data[i] = (uint8_t)(0x10 + i);
	}
}

static int reset(void **state)
{
	memset(&last, 0, sizeof(last));
	return 0;
}

static int reg(struct vmm_bus *bus, uint64_t base, uint64_t len)
{
	return vmm_bus_register(bus, base, len, handler, NULL, "test");
}

/* A bus holding one range [0x1000, 0x1100). */
static void one_range(struct vmm_bus *bus)
{
	memset(bus, 0, sizeof(*bus));
	assert_int_equal(reg(bus, 0x1000, 0x100), 0);
}

static void test_register_keeps_ranges_sorted_by_base(void **state)
{
	struct vmm_bus bus = {0};

	assert_int_equal(reg(&bus, 0x300, 0x10), 0);
	assert_int_equal(reg(&bus, 0x100, 0x10), 0);
	assert_int_equal(reg(&bus, 0x500, 0x10), 0);
	assert_int_equal(reg(&bus, 0x200, 0x10), 0);
	assert_int_equal(bus.nr, 4);
	assert_int_equal(bus.ranges[0].base, 0x100);
	assert_int_equal(bus.ranges[1].base, 0x200);
	assert_int_equal(bus.ranges[2].base, 0x300);
	assert_int_equal(bus.ranges[3].base, 0x500);
}

static void test_register_stores_handler_opaque_and_name(void **state)
{
	struct vmm_bus bus = {0};
	int dev;

	assert_int_equal(vmm_bus_register(&bus, 0x3f8, 8, handler, &dev, "com1"), 0);
	assert_int_equal(bus.ranges[0].len, 8);
	assert_ptr_equal(bus.ranges[0].fn, handler);
	assert_ptr_equal(bus.ranges[0].opaque, &dev);
	assert_string_equal(bus.ranges[0].name, "com1");
}

static void test_overlap_inside_refused(void **state)
{
	struct vmm_bus bus;

	one_range(&bus);
	assert_int_equal(reg(&bus, 0x1010, 0x10), -EEXIST);
	assert_int_equal(bus.nr, 1);
}

static void test_overlap_straddling_start_refused(void **state)
{
	struct vmm_bus bus;

	one_range(&bus);
	assert_int_equal(reg(&bus, 0xff0, 0x20), -EEXIST);
	assert_int_equal(reg(&bus, 0x0, 0x1001), -EEXIST); /* last byte on the first byte */
	assert_int_equal(bus.nr, 1);
}

static void test_overlap_straddling_end_refused(void **state)
{
	struct vmm_bus bus;

	one_range(&bus);
	assert_int_equal(reg(&bus, 0x10f0, 0x20), -EEXIST);
	assert_int_equal(reg(&bus, 0x10ff, 0x1), -EEXIST); /* just the last byte */
	assert_int_equal(bus.nr, 1);
}

static void test_overlap_identical_refused(void **state)
{
	struct vmm_bus bus;

	one_range(&bus);
	assert_int_equal(reg(&bus, 0x1000, 0x100), -EEXIST);
	assert_int_equal(bus.nr, 1);
}

static void test_overlap_enclosing_refused(void **state)
{
	struct vmm_bus bus;

	one_range(&bus);
	assert_int_equal(reg(&bus, 0x800, 0x1000), -EEXIST);
	assert_int_equal(bus.nr, 1);
}

static void test_overlap_with_middle_of_several_refused(void **state)
{
	struct vmm_bus bus = {0};

	assert_int_equal(reg(&bus, 0x100, 0x10), 0);
	assert_int_equal(reg(&bus, 0x200, 0x10), 0);
	assert_int_equal(reg(&bus, 0x300, 0x10), 0);
	assert_int_equal(reg(&bus, 0x20f, 0x2), -EEXIST);
	assert_int_equal(bus.nr, 3);
}

/* The log line names the newcomer and the range it collides with. */
static void test_overlap_error_names_both_ranges(void **state)
{
	struct vmm_bus bus = {0};
	char out[512] = {0};
	FILE *tmp = tmpfile();
	int saved = dup(STDERR_FILENO);

	assert_non_null(tmp);
	assert_true(saved >= 0);
	assert_int_equal(vmm_bus_register(&bus, 0x1000, 0x100, handler, NULL, "uart0"), 0);
	fflush(stderr);
	assert_true(dup2(fileno(tmp), STDERR_FILENO) >= 0);
	assert_int_equal(vmm_bus_register(&bus, 0x1080, 0x100, handler, NULL, "virtio7"), -EEXIST);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	rewind(tmp);
	assert_true(fread(out, 1, sizeof(out) - 1, tmp) > 0);
	fclose(tmp);
	assert_non_null(strstr(out, "uart0"));
	assert_non_null(strstr(out, "virtio7"));
}

static void test_adjacent_ranges_accepted(void **state)
{
	struct vmm_bus bus;

	one_range(&bus);
	assert_int_equal(reg(&bus, 0x1100, 0x100), 0); /* right after */
	assert_int_equal(reg(&bus, 0xf00, 0x100), 0);  /* right before */
	assert_int_equal(bus.nr, 3);
	assert_int_equal(bus.ranges[0].base, 0xf00);
	assert_int_equal(bus.ranges[1].base, 0x1000);
	assert_int_equal(bus.ranges[2].base, 0x1100);
}

static void test_empty_range_refused(void **state)
{
	struct vmm_bus bus = {0};

	assert_int_equal(reg(&bus, 0x1000, 0), -EINVAL);
	assert_int_equal(bus.nr, 0);
}

static void test_wrapping_range_refused(void **state)
{
	struct vmm_bus bus = {0};

	assert_int_equal(reg(&bus, UINT64_MAX - 1, 4), -EINVAL);
	assert_int_equal(reg(&bus, 1, UINT64_MAX), -EINVAL);
	assert_int_equal(reg(&bus, UINT64_MAX, UINT64_MAX), -EINVAL);
	assert_int_equal(bus.nr, 0);
}

static void test_full_table_refused(void **state)
{
	struct vmm_bus bus = {0};

	for (unsigned i = 0; i < VMM_BUS_MAX; i++)
		assert_int_equal(reg(&bus, 0x1000 * (uint64_t)(i + 1), 0x10), 0);
	assert_int_equal(bus.nr, VMM_BUS_MAX);
	assert_int_equal(reg(&bus, 0x100000, 0x10), -ENOSPC);
	assert_int_equal(bus.nr, VMM_BUS_MAX);
}

static void test_find_at_range_boundaries(void **state)
{
	struct vmm_bus bus;

	one_range(&bus);
	assert_ptr_equal(vmm_bus_find(&bus, 0x1000), &bus.ranges[0]);
	assert_ptr_equal(vmm_bus_find(&bus, 0x10ff), &bus.ranges[0]);
	assert_null(vmm_bus_find(&bus, 0xfff));
	assert_null(vmm_bus_find(&bus, 0x1100));
	assert_null(vmm_bus_find(&bus, 0));
	assert_null(vmm_bus_find(&bus, UINT64_MAX));
}

static void test_find_on_empty_bus_is_null(void **state)
{
	struct vmm_bus bus = {0};

	assert_null(vmm_bus_find(&bus, 0));
	assert_null(vmm_bus_find(&bus, 0x3f8));
}

/* A full table of ranges with gaps between them, registered out of order: every first
 * and last byte finds its own range and every gap byte finds none. */
static void test_find_every_boundary_in_full_table(void **state)
{
	struct vmm_bus bus = {0};

	for (unsigned k = 0; k < VMM_BUS_MAX; k++) {
		unsigned i = (k * 7) % VMM_BUS_MAX; /* 7 is coprime to 32: a permutation */

		assert_int_equal(reg(&bus, 0x100 * (uint64_t)i + 0x10, 0x20 + i), 0);
	}
	for (unsigned i = 0; i < VMM_BUS_MAX; i++) {
		uint64_t base = 0x100 * (uint64_t)i + 0x10, len = 0x20 + i;
		const struct vmm_bus_range *r = vmm_bus_find(&bus, base);

		assert_non_null(r);
		assert_int_equal(r->base, base);
		assert_ptr_equal(vmm_bus_find(&bus, base + len - 1), r);
		assert_null(vmm_bus_find(&bus, base - 1));
		assert_null(vmm_bus_find(&bus, base + len));
	}
}

static void test_access_dispatches_offset_from_base(void **state)
{
	struct vmm_bus bus = {0};
	uint8_t data[4] = {0};
	int dev;

	assert_int_equal(vmm_bus_register(&bus, 0x1000, 0x100, handler, &dev, "dev"), 0);
	assert_true(vmm_bus_access(&bus, 0x1024, data, 4, false));
	assert_int_equal(last.calls, 1);
	assert_ptr_equal(last.opaque, &dev);
	assert_int_equal(last.offset, 0x24);
	assert_int_equal(last.len, 4);
	assert_false(last.is_write);
	assert_int_equal(data[0], 0x10);
	assert_int_equal(data[3], 0x13);
}

static void test_access_write_passes_data(void **state)
{
	struct vmm_bus bus;
	uint8_t data[2] = {0xab, 0xcd};

	one_range(&bus);
	assert_true(vmm_bus_access(&bus, 0x1000, data, 2, true));
	assert_int_equal(last.calls, 1);
	assert_int_equal(last.offset, 0);
	assert_true(last.is_write);
	assert_int_equal(last.data[0], 0xab);
	assert_int_equal(last.data[1], 0xcd);
}

static void test_access_at_last_bytes_of_range_dispatched(void **state)
{
	struct vmm_bus bus;
	uint8_t data[8];

	one_range(&bus);
	assert_true(vmm_bus_access(&bus, 0x10f8, data, 8, false));
	assert_int_equal(last.offset, 0xf8);
	assert_true(vmm_bus_access(&bus, 0x10ff, data, 1, false));
	assert_int_equal(last.offset, 0xff);
	assert_int_equal(last.calls, 2);
}

static void test_access_straddling_end_refused_with_all_ones(void **state)
{
	struct vmm_bus bus;
	uint8_t data[8] = {0};

	one_range(&bus);
	assert_false(vmm_bus_access(&bus, 0x10fe, data, 4, false));
	for (int i = 0; i < 4; i++)
		assert_int_equal(data[i], 0xff);
	assert_int_equal(data[4], 0); /* only `len` bytes are filled */
	assert_false(vmm_bus_access(&bus, 0x10f9, data, 8, true));
	assert_int_equal(last.calls, 0);
}

/* A range right after the first does not receive the tail of a straddling access. */
static void test_access_straddling_into_next_range_refused(void **state)
{
	struct vmm_bus bus;
	uint8_t data[4] = {0};

	one_range(&bus);
	assert_int_equal(reg(&bus, 0x1100, 0x100), 0);
	assert_false(vmm_bus_access(&bus, 0x10fe, data, 4, false));
	assert_int_equal(last.calls, 0);
	assert_memory_equal(data, "\xff\xff\xff\xff", 4);
}

static void test_access_unmapped_read_returns_all_ones(void **state)
{
	struct vmm_bus bus;
	uint8_t data[4] = {0};

	one_range(&bus);
	assert_false(vmm_bus_access(&bus, 0x2000, data, 4, false));
	assert_memory_equal(data, "\xff\xff\xff\xff", 4);
	assert_int_equal(last.calls, 0);
}

static void test_access_unmapped_write_is_dropped(void **state)
{
	struct vmm_bus bus;
	uint8_t data[4] = {1, 2, 3, 4};

	one_range(&bus);
	assert_false(vmm_bus_access(&bus, 0xfff, data, 1, true));
	assert_int_equal(last.calls, 0);
	assert_memory_equal(data, "\x01\x02\x03\x04", 4); /* a write's buffer is left alone */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_register_keeps_ranges_sorted_by_base, reset),
	    cmocka_unit_test_setup(test_register_stores_handler_opaque_and_name, reset),
	    cmocka_unit_test_setup(test_overlap_inside_refused, reset),
	    cmocka_unit_test_setup(test_overlap_straddling_start_refused, reset),
	    cmocka_unit_test_setup(test_overlap_straddling_end_refused, reset),
	    cmocka_unit_test_setup(test_overlap_identical_refused, reset),
	    cmocka_unit_test_setup(test_overlap_enclosing_refused, reset),
	    cmocka_unit_test_setup(test_overlap_with_middle_of_several_refused, reset),
	    cmocka_unit_test_setup(test_overlap_error_names_both_ranges, reset),
	    cmocka_unit_test_setup(test_adjacent_ranges_accepted, reset),
	    cmocka_unit_test_setup(test_empty_range_refused, reset),
	    cmocka_unit_test_setup(test_wrapping_range_refused, reset),
	    cmocka_unit_test_setup(test_full_table_refused, reset),
	    cmocka_unit_test_setup(test_find_at_range_boundaries, reset),
	    cmocka_unit_test_setup(test_find_on_empty_bus_is_null, reset),
	    cmocka_unit_test_setup(test_find_every_boundary_in_full_table, reset),
	    cmocka_unit_test_setup(test_access_dispatches_offset_from_base, reset),
	    cmocka_unit_test_setup(test_access_write_passes_data, reset),
	    cmocka_unit_test_setup(test_access_at_last_bytes_of_range_dispatched, reset),
	    cmocka_unit_test_setup(test_access_straddling_end_refused_with_all_ones, reset),
	    cmocka_unit_test_setup(test_access_straddling_into_next_range_refused, reset),
	    cmocka_unit_test_setup(test_access_unmapped_read_returns_all_ones, reset),
	    cmocka_unit_test_setup(test_access_unmapped_write_is_dropped, reset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
