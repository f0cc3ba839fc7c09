/* virtio-rng: fills the guest's buffers from getrandom, caps what one request gets,
 * serves a flood a budget per notification, and refuses a buffer outside guest memory
 * by needing reset. */
#include "tests/unit/test_virtio_harness.h"

#include <linux/virtio_ids.h>

struct fx {
	struct vm *vm;
	struct virtio_dev *d;
	struct h_queue q;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct vm_config cfg = {.rng = true};

	f->vm = h_vm_new(H_MEM_SIZE);
	assert_int_equal(vmm_devices_attach(f->vm, &cfg, NULL, 0), 0);
	f->d = virtio_get(f->vm, 0);
	h_driver_up(f->d, ~0ull, &f->q, 1, 64, 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	h_vm_free(f->vm);
	free(f);
	return 0;
}

static void test_fills_buffer_with_random_bytes(void **state)
{
	struct fx *f = *state;
	uint64_t a[] = {H_DATA, H_DATA + 0x1000};
	uint32_t l[] = {256, 256}, id, len;
	bool w[] = {true, true};
	uint8_t *p = h_ptr(f->vm, H_DATA), *p2 = h_ptr(f->vm, H_DATA + 0x1000);
	unsigned zero = 0, same = 0;

	memset(p, 0, 256);
	memset(p2, 0, 256);
	h_publish(&f->q, h_add_chain(&f->q, 2, a, l, w));
	h_kick(f->d, 0);
	assert_true(h_take_used(&f->q, &id, &len));
	assert_int_equal(len, 512);
	for (unsigned i = 0; i < 256; i++) {
		zero += p[i] == 0;
		same += p[i] == p2[i];
	}
	/* 256 random bytes: about one zero and one coincidence expected; 32 is
	 * astronomically unlikely unless nothing was written. */
	assert_true(zero < 32);
	assert_true(same < 32);
	assert_true(h_irq(f->d));
}

static void test_large_request_is_capped(void **state)
{
	struct fx *f = *state;
	uint64_t a[] = {H_DATA};
	uint32_t l[] = {1u << 20}, id, len;
	bool w[] = {true};

	h_publish(&f->q, h_add_chain(&f->q, 1, a, l, w));
	h_kick(f->d, 0);
	assert_true(h_take_used(&f->q, &id, &len));
	assert_int_equal(len, 64 * 1024);
}

static void test_readable_only_chain_gets_nothing(void **state)
{
	struct fx *f = *state;
	uint64_t a[] = {H_DATA};
	uint32_t l[] = {64}, id, len;
	bool w[] = {false};

	h_publish(&f->q, h_add_chain(&f->q, 1, a, l, w));
	h_kick(f->d, 0);
	assert_true(h_take_used(&f->q, &id, &len));
	assert_int_equal(len, 0);
	assert_false(h_needs_reset(f->d));
}

static void test_buffer_outside_memory_needs_reset(void **state)
{
	struct fx *f = *state;
	uint64_t a[] = {H_MEM_SIZE - 16};
	uint32_t l[] = {64}, id, len;
	bool w[] = {true};

	h_publish(&f->q, h_add_chain(&f->q, 1, a, l, w));
	h_kick(f->d, 0);
	assert_false(h_take_used(&f->q, &id, &len));
	assert_true(h_needs_reset(f->d));
}

/* The entropy device through a snapshot file: layers 1 and 2 only, restored. */
static void test_file_roundtrip_restores(void **state)
{
	struct fx *f = *state;
	struct virtio_saved s;

	h_file_roundtrip(f->d, &s);
	assert_int_equal(s.place.device_id, VIRTIO_ID_RNG);
	assert_true(s.vs.q[0].ready);
	assert_int_equal(virtio_restore(f->d, &s), 0);
}

/* A guest republishing one chain as fast as it is used gets VIRTIO_BUDGET_CHAINS per
 * notification; the device re-arms its kick so the rest comes on the next loop round. */
static void test_flood_gets_a_budget_per_notification(void **state)
{
	struct fx *f = *state;
	uint64_t a[] = {H_DATA};
	uint32_t l[] = {16};
	bool w[] = {true};
	struct h_flood fl;
	uint16_t first, second;

	/* Below 65536 so the 16-bit used index cannot wrap past what it measures. */
	h_flood_start(&fl, &f->q, h_add_chain(&f->q, 1, a, l, w), 60000);
	h_kick(f->d, 0);
	first = h_used_idx(&f->q);
	h_flood_stop(&fl);
	assert_int_equal(first, VIRTIO_BUDGET_CHAINS);
	/* The rest waits for the loop's next round, which the device asked for. */
	h_loop_round(f->d);
	second = h_used_idx(&f->q);
	assert_int_equal((uint16_t)(second - first), VIRTIO_BUDGET_CHAINS);
	assert_false(h_needs_reset(f->d));
}

/* Large requests: one notification hands out at most 256 KiB (four 64 KiB requests). */
static void test_byte_budget_per_notification(void **state)
{
	struct fx *f = *state;
	uint64_t a[] = {H_DATA};
	uint32_t l[] = {64 * 1024};
	bool w[] = {true};
	uint16_t head = h_add_chain(&f->q, 1, a, l, w);

	for (unsigned i = 0; i < 64; i++)
		h_publish(&f->q, head);
	h_kick(f->d, 0);
	assert_int_equal(h_used_idx(&f->q), 4);
	h_loop_round(f->d);
	assert_int_equal(h_used_idx(&f->q), 8);
	/* The round that finds the ring empty does not re-arm: the loop goes quiet. */
	for (unsigned i = 0; i < 15; i++)
		h_loop_round(f->d);
	assert_int_equal(h_used_idx(&f->q), 64);
	assert_false(h_rearmed(f->d, 0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_fills_buffer_with_random_bytes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_file_roundtrip_restores, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_large_request_is_capped, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_readable_only_chain_gets_nothing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_buffer_outside_memory_needs_reset, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_flood_gets_a_budget_per_notification, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_byte_budget_per_notification, setup, teardown),
	};

	return cmocka_run_group_tests_name("virtio-rng", tests, NULL, NULL);
}
