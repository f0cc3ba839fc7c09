/* virtio-rng: fills the guest's buffers from getrandom, caps what one request gets,
 * and refuses a buffer outside guest memory by needing reset. */
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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_fills_buffer_with_random_bytes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_file_roundtrip_restores, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_large_request_is_capped, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_readable_only_chain_gets_nothing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_buffer_outside_memory_needs_reset, setup,
					    teardown),
	};

	return cmocka_run_group_tests_name("virtio-rng", tests, NULL, NULL);
}
