/* Guest memory: the layout around the MMIO hole and the one checked translator. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/vmm.h"

#define MiB (1ull << 20)
#define GiB (1ull << 30)

/* A guest small enough to sit below the hole. */
#define SMALL (64 * MiB)
/* A guest that spills 1 MiB above 4 GiB. */
#define BIG (VMM_MMIO_HOLE_START + MiB)

static void test_layout_below_hole_is_one_region(void **state)
{
	struct vmm_mem mem = {0};

	vmm_mem_layout(&mem, SMALL);
	assert_int_equal(mem.size, SMALL);
	assert_int_equal(mem.nr_regions, 1);
	assert_int_equal(mem.regions[0].gpa, 0);
	assert_int_equal(mem.regions[0].size, SMALL);
	assert_int_equal(mem.regions[0].offset, 0);
	assert_int_equal(vmm_mem_end(&mem), SMALL);
}

static void test_layout_exactly_up_to_hole_is_one_region(void **state)
{
	struct vmm_mem mem = {0};

	vmm_mem_layout(&mem, VMM_MMIO_HOLE_START);
	assert_int_equal(mem.nr_regions, 1);
	assert_int_equal(mem.regions[0].size, VMM_MMIO_HOLE_START);
	assert_int_equal(vmm_mem_end(&mem), VMM_MMIO_HOLE_START);
}

static void test_layout_above_hole_splits_at_hole(void **state)
{
	struct vmm_mem mem = {0};

	vmm_mem_layout(&mem, 8 * GiB);
	assert_int_equal(mem.size, 8 * GiB);
	assert_int_equal(mem.nr_regions, 2);
	assert_int_equal(mem.regions[0].gpa, 0);
	assert_int_equal(mem.regions[0].size, VMM_MMIO_HOLE_START);
	assert_int_equal(mem.regions[0].offset, 0);
	assert_int_equal(mem.regions[1].gpa, VMM_MMIO_HOLE_END);
	assert_int_equal(mem.regions[1].size, 8 * GiB - VMM_MMIO_HOLE_START);
	assert_int_equal(mem.regions[1].offset, VMM_MMIO_HOLE_START);
	assert_int_equal(vmm_mem_end(&mem), VMM_MMIO_HOLE_END + 8 * GiB - VMM_MMIO_HOLE_START);
}

/* Fixtures: real (untouched, NORESERVE) mappings so translated pointers are valid. */
struct mems {
	struct vmm_mem small, big;
};

static int setup(void **state)
{
	static struct mems m;

	if (vmm_mem_alloc(&m.small, SMALL) || vmm_mem_alloc(&m.big, BIG))
		return -1;
	*state = &m;
	return 0;
}

static int teardown(void **state)
{
	struct mems *m = *state;

	vmm_mem_free(&m->small);
	vmm_mem_free(&m->big);
	return 0;
}

static void test_alloc_maps_the_layout(void **state)
{
	struct mems *m = *state;

	assert_non_null(m->small.host);
	assert_true(m->small.owned);
	assert_int_equal(m->small.nr_regions, 1);
	assert_int_equal(m->big.nr_regions, 2);
	assert_int_equal(m->big.size, BIG);
}

static void test_free_clears_the_mapping(void **state)
{
	struct vmm_mem mem = {0};

	assert_int_equal(vmm_mem_alloc(&mem, 2 * MiB), 0);
	vmm_mem_free(&mem);
	assert_null(mem.host);
	assert_false(mem.owned);
	vmm_mem_free(&mem); /* twice is harmless */
}

static void test_gpa_first_byte(void **state)
{
	struct mems *m = *state;

	assert_ptr_equal(vmm_gpa(&m->small, 0, 1), m->small.host);
	assert_ptr_equal(vmm_gpa(&m->big, 0, 1), m->big.host);
}

static void test_gpa_last_byte(void **state)
{
	struct mems *m = *state;

	assert_ptr_equal(vmm_gpa(&m->small, SMALL - 1, 1), m->small.host + SMALL - 1);
	assert_ptr_equal(vmm_gpa(&m->small, SMALL - 8, 8), m->small.host + SMALL - 8);
}

static void test_gpa_whole_ram_in_one_range(void **state)
{
	struct mems *m = *state;

	assert_ptr_equal(vmm_gpa(&m->small, 0, SMALL), m->small.host);
	assert_null(vmm_gpa(&m->small, 0, SMALL + 1));
}

static void test_gpa_one_past_end_refused(void **state)
{
	struct mems *m = *state;

	assert_null(vmm_gpa(&m->small, SMALL, 1));
	assert_null(vmm_gpa(&m->small, SMALL - 1, 2)); /* last byte plus one */
	assert_null(vmm_gpa(&m->small, SMALL - 4, 8));
}

static void test_gpa_len_zero_inside_ram(void **state)
{
	struct mems *m = *state;

	assert_ptr_equal(vmm_gpa(&m->small, 0, 0), m->small.host);
	assert_ptr_equal(vmm_gpa(&m->small, SMALL - 1, 0), m->small.host + SMALL - 1);
}

/* An address that is not RAM is refused even for an empty range. */
static void test_gpa_len_zero_outside_ram_refused(void **state)
{
	struct mems *m = *state;

	assert_null(vmm_gpa(&m->small, SMALL, 0));
	assert_null(vmm_gpa(&m->big, VMM_MMIO_HOLE_START, 0));
}

static void test_gpa_last_byte_below_hole(void **state)
{
	struct mems *m = *state;

	assert_ptr_equal(vmm_gpa(&m->big, VMM_MMIO_HOLE_START - 1, 1),
			 m->big.host + VMM_MMIO_HOLE_START - 1);
}

static void test_gpa_inside_hole_refused(void **state)
{
	struct mems *m = *state;

	assert_null(vmm_gpa(&m->big, VMM_MMIO_HOLE_START, 1));
	assert_null(vmm_gpa(&m->big, VIRTIO_MMIO_BASE, 4));
	assert_null(vmm_gpa(&m->big, VMM_MMIO_HOLE_END - 1, 1));
}

static void test_gpa_crossing_into_hole_refused(void **state)
{
	struct mems *m = *state;

	assert_null(vmm_gpa(&m->big, VMM_MMIO_HOLE_START - 4, 8));
	/* even a range that would end in the RAM above the hole */
	assert_null(
	    vmm_gpa(&m->big, VMM_MMIO_HOLE_START - 4, VMM_MMIO_HOLE_END - VMM_MMIO_HOLE_START + 8));
}

static void test_gpa_crossing_out_of_hole_refused(void **state)
{
	struct mems *m = *state;

	assert_null(vmm_gpa(&m->big, VMM_MMIO_HOLE_END - 4, 8));
}

/* RAM above 4 GiB is the host mapping's tail, right after the RAM below the hole. */
static void test_gpa_above_4g_maps_after_low_ram(void **state)
{
	struct mems *m = *state;

	assert_ptr_equal(vmm_gpa(&m->big, VMM_MMIO_HOLE_END, 1), m->big.host + VMM_MMIO_HOLE_START);
	assert_ptr_equal(vmm_gpa(&m->big, VMM_MMIO_HOLE_END + MiB - 1, 1), m->big.host + BIG - 1);
	assert_ptr_equal(vmm_gpa(&m->big, VMM_MMIO_HOLE_END, MiB),
			 m->big.host + VMM_MMIO_HOLE_START);
}

static void test_gpa_past_end_above_4g_refused(void **state)
{
	struct mems *m = *state;

	assert_null(vmm_gpa(&m->big, VMM_MMIO_HOLE_END + MiB, 1));
	assert_null(vmm_gpa(&m->big, VMM_MMIO_HOLE_END + MiB - 1, 2));
	assert_null(vmm_gpa(&m->big, VMM_MMIO_HOLE_END, MiB + 1));
}

static void test_gpa_wrapping_sum_refused(void **state)
{
	struct mems *m = *state;

	assert_null(vmm_gpa(&m->big, UINT64_MAX - 1, 4));
	assert_null(vmm_gpa(&m->big, UINT64_MAX, 1));
	assert_null(vmm_gpa(&m->small, 1, UINT64_MAX)); /* 1 + len wraps to 0 */
	assert_null(vmm_gpa(&m->small, 0, UINT64_MAX));
	assert_null(vmm_gpa(&m->big, VMM_MMIO_HOLE_END, UINT64_MAX - VMM_MMIO_HOLE_END + 2));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_layout_below_hole_is_one_region),
	    cmocka_unit_test(test_layout_exactly_up_to_hole_is_one_region),
	    cmocka_unit_test(test_layout_above_hole_splits_at_hole),
	    cmocka_unit_test(test_free_clears_the_mapping),
	    cmocka_unit_test_setup_teardown(test_alloc_maps_the_layout, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gpa_first_byte, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gpa_last_byte, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gpa_whole_ram_in_one_range, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gpa_one_past_end_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gpa_len_zero_inside_ram, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gpa_len_zero_outside_ram_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gpa_last_byte_below_hole, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gpa_inside_hole_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gpa_crossing_into_hole_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gpa_crossing_out_of_hole_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gpa_above_4g_maps_after_low_ram, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gpa_past_end_above_4g_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gpa_wrapping_sum_refused, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
