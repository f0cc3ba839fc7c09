/* The split virtqueue against crafted rings: good chains (direct, multi-descriptor,
 * indirect) and every kind of bad one, which must be refused without touching
 * anything outside guest memory; through a device, a bad chain marks only that
 * device as needing reset. */
#include "tests/unit/test_virtio_harness.h"

#define QSZ 16

struct fx {
	struct vm *vm;
	struct virtq_state s;
	struct virtq q;
	struct h_queue hq;
	struct virtq_elem e;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	const char *why = NULL;

	f->vm = h_vm_new(H_MEM_SIZE);
	f->s = (struct virtq_state){
	    .size = QSZ, .desc = H_DESC(0), .avail = H_AVAIL(0), .used = H_USED(0), .ready = true};
	assert_int_equal(
	    virtq_setup(&f->q, &f->s, &f->vm->mem, 256,
			(1ull << VIRTIO_RING_F_INDIRECT_DESC) | (1ull << VIRTIO_RING_F_EVENT_IDX),
			&why),
	    0);
	f->hq = (struct h_queue){.vm = f->vm, .slot = 0, .size = QSZ};
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

/* Pops and expects a refusal naming something. */
static void expect_bad(struct fx *f)
{
	const char *why = NULL;

	assert_int_equal(virtq_pop(&f->q, &f->e, &why), -EINVAL);
	assert_non_null(why);
	assert_int_equal(f->s.next_avail, 0); /* nothing consumed */
}

static void test_single_readable_descriptor(void **state)
{
	struct fx *f = *state;
	uint64_t a[] = {H_DATA};
	uint32_t l[] = {100};
	bool w[] = {false};
	const char *why;

	memcpy(h_ptr(f->vm, H_DATA), "hello", 5);
	h_publish(&f->hq, h_add_chain(&f->hq, 1, a, l, w));
	assert_int_equal(virtq_pop(&f->q, &f->e, &why), 1);
	assert_int_equal(f->e.head, 0);
	assert_int_equal(f->e.nr_out, 1);
	assert_int_equal(f->e.nr_in, 0);
	assert_int_equal(f->e.out_len, 100);
	assert_ptr_equal(f->e.iov[0].iov_base, h_ptr(f->vm, H_DATA));
	assert_memory_equal(f->e.iov[0].iov_base, "hello", 5);
	assert_int_equal(virtq_pop(&f->q, &f->e, &why), 0);
}

static void test_multi_descriptor_chain_readable_then_writable(void **state)
{
	struct fx *f = *state;
	uint64_t a[] = {H_DATA, H_DATA + 0x1000, H_DATA + 0x2000, H_DATA + 0x3000};
	uint32_t l[] = {16, 512, 512, 1};
	bool w[] = {false, true, true, true};
	const char *why;

	h_publish(&f->hq, h_add_chain(&f->hq, 4, a, l, w));
	assert_int_equal(virtq_pop(&f->q, &f->e, &why), 1);
	assert_int_equal(f->e.nr_out, 1);
	assert_int_equal(f->e.nr_in, 3);
	assert_int_equal(f->e.out_len, 16);
	assert_int_equal(f->e.in_len, 1025);
	assert_ptr_equal(f->e.iov[3].iov_base, h_ptr(f->vm, H_DATA + 0x3000));
}

static void test_indirect_chain(void **state)
{
	struct fx *f = *state;
	struct vring_desc *t = h_ptr(f->vm, H_DATA);
	const char *why;

	t[0] = (struct vring_desc){
	    .addr = H_DATA + 0x1000, .len = 16, .flags = VRING_DESC_F_NEXT, .next = 2};
	t[2] = (struct vring_desc){.addr = H_DATA + 0x2000,
				   .len = 4096,
				   .flags = VRING_DESC_F_WRITE | VRING_DESC_F_NEXT,
				   .next = 1};
	t[1] = (struct vring_desc){.addr = H_DATA + 0x3000, .len = 1, .flags = VRING_DESC_F_WRITE};
	h_set_desc(&f->hq, 5, H_DATA, 3 * 16, VRING_DESC_F_INDIRECT, 0);
	h_publish(&f->hq, 5);
	assert_int_equal(virtq_pop(&f->q, &f->e, &why), 1);
	assert_int_equal(f->e.head, 5);
	assert_int_equal(f->e.nr_out, 1);
	assert_int_equal(f->e.nr_in, 2);
	assert_int_equal(f->e.in_len, 4097);
	assert_ptr_equal(f->e.iov[2].iov_base, h_ptr(f->vm, H_DATA + 0x3000));
}

static void test_empty_ring_pops_nothing_and_arms_event(void **state)
{
	struct fx *f = *state;
	const char *why;
	uint16_t *avail_event = (uint16_t *)&h_used(&f->hq)->ring[QSZ];

	*avail_event = 0xbeef;
	assert_int_equal(virtq_pop(&f->q, &f->e, &why), 0);
	assert_int_equal(*avail_event, 0); /* next_avail: notify me at the next chain */
}

static void test_buffer_outside_memory_refused(void **state)
{
	struct fx *f = *state;
	uint64_t a[] = {H_MEM_SIZE - 8};
	uint32_t l[] = {16};
	bool w[] = {false};

	h_publish(&f->hq, h_add_chain(&f->hq, 1, a, l, w));
	expect_bad(f);
}

static void test_buffer_address_wrapping_refused(void **state)
{
	struct fx *f = *state;
	uint64_t a[] = {UINT64_MAX - 4};
	uint32_t l[] = {16};
	bool w[] = {true};

	h_publish(&f->hq, h_add_chain(&f->hq, 1, a, l, w));
	expect_bad(f);
}

static void test_descriptor_loop_refused(void **state)
{
	struct fx *f = *state;

	h_set_desc(&f->hq, 0, H_DATA, 8, VRING_DESC_F_NEXT, 1);
	h_set_desc(&f->hq, 1, H_DATA, 8, VRING_DESC_F_NEXT, 2);
	h_set_desc(&f->hq, 2, H_DATA, 8, VRING_DESC_F_NEXT, 0);
	h_publish(&f->hq, 0);
	expect_bad(f);
}

static void test_self_loop_refused(void **state)
{
	struct fx *f = *state;

	h_set_desc(&f->hq, 3, H_DATA, 8, VRING_DESC_F_NEXT, 3);
	h_publish(&f->hq, 3);
	expect_bad(f);
}

static void test_chain_as_long_as_queue_is_accepted(void **state)
{
	struct fx *f = *state;
	const char *why;

	for (uint16_t i = 0; i < QSZ; i++)
		h_set_desc(&f->hq, i, H_DATA, 8, i + 1 < QSZ ? VRING_DESC_F_NEXT : 0, i + 1);
	h_publish(&f->hq, 0);
	assert_int_equal(virtq_pop(&f->q, &f->e, &why), 1);
	assert_int_equal(f->e.nr_out, QSZ);
}

static void test_chain_longer_than_indirect_limit_refused(void **state)
{
	struct fx *f = *state;
	unsigned n = VIRTQ_MAX_CHAIN + 1;
	struct vring_desc *t = h_ptr(f->vm, H_DATA);

	for (unsigned i = 0; i < n; i++)
		t[i] = (struct vring_desc){.addr = H_DATA + 0x10000,
					   .len = 1,
					   .flags = i + 1 < n ? VRING_DESC_F_NEXT : 0,
					   .next = (uint16_t)(i + 1)};
	h_set_desc(&f->hq, 0, H_DATA, n * 16, VRING_DESC_F_INDIRECT, 0);
	h_publish(&f->hq, 0);
	expect_bad(f);
}

static void test_next_index_outside_table_refused(void **state)
{
	struct fx *f = *state;

	h_set_desc(&f->hq, 0, H_DATA, 8, VRING_DESC_F_NEXT, QSZ);
	h_publish(&f->hq, 0);
	expect_bad(f);
}

static void test_head_outside_table_refused(void **state)
{
	struct fx *f = *state;

	h_publish(&f->hq, QSZ + 3);
	expect_bad(f);
}

static void test_avail_index_jump_refused(void **state)
{
	struct fx *f = *state;

	h_avail(&f->hq)->idx = QSZ + 1;
	expect_bad(f);
}

static void test_readable_after_writable_refused(void **state)
{
	struct fx *f = *state;
	uint64_t a[] = {H_DATA, H_DATA + 0x100};
	uint32_t l[] = {8, 8};
	bool w[] = {true, false};

	h_publish(&f->hq, h_add_chain(&f->hq, 2, a, l, w));
	expect_bad(f);
}

/* Needs 3 GiB of (unbacked, untouched) guest memory so that each length is
 * in bounds and only their sum overflows. */
static void test_total_length_overflow_refused(void **state)
{
	struct vm *vm = h_vm_new(3ull << 30);
	struct virtq_state s = {
	    .size = QSZ, .desc = H_DESC(0), .avail = H_AVAIL(0), .used = H_USED(0), .ready = true};
	struct h_queue hq = {.vm = vm, .slot = 0, .size = QSZ};
	struct virtq q;
	struct virtq_elem *e = malloc(sizeof(*e));
	uint64_t a[] = {H_DATA, H_DATA};
	uint32_t l[] = {0x90000000u, 0x90000000u};
	bool w[] = {true, true};
	const char *why;

	assert_int_equal(virtq_setup(&q, &s, &vm->mem, 256, 0, &why), 0);
	h_publish(&hq, h_add_chain(&hq, 2, a, l, w));
	assert_int_equal(virtq_pop(&q, e, &why), -EINVAL);
	assert_string_equal(why, "chain length overflows 32 bits");
	free(e);
	h_vm_free(vm);
}

static void test_indirect_without_feature_refused(void **state)
{
	struct fx *f = *state;
	const char *why;

	assert_int_equal(virtq_setup(&f->q, &f->s, &f->vm->mem, 256, 0, &why), 0);
	((struct vring_desc *)h_ptr(f->vm, H_DATA))[0] =
	    (struct vring_desc){.addr = H_DATA + 0x1000, .len = 8};
	h_set_desc(&f->hq, 0, H_DATA, 16, VRING_DESC_F_INDIRECT, 0);
	h_publish(&f->hq, 0);
	expect_bad(f);
}

static void test_indirect_table_length_not_multiple_refused(void **state)
{
	struct fx *f = *state;

	h_set_desc(&f->hq, 0, H_DATA, 24, VRING_DESC_F_INDIRECT, 0);
	h_publish(&f->hq, 0);
	expect_bad(f);
}

static void test_indirect_table_empty_refused(void **state)
{
	struct fx *f = *state;

	h_set_desc(&f->hq, 0, H_DATA, 0, VRING_DESC_F_INDIRECT, 0);
	h_publish(&f->hq, 0);
	expect_bad(f);
}

static void test_indirect_table_outside_memory_refused(void **state)
{
	struct fx *f = *state;

	h_set_desc(&f->hq, 0, H_MEM_SIZE - 16, 32, VRING_DESC_F_INDIRECT, 0);
	h_publish(&f->hq, 0);
	expect_bad(f);
}

static void test_nested_indirect_refused(void **state)
{
	struct fx *f = *state;

	((struct vring_desc *)h_ptr(f->vm, H_DATA))[0] =
	    (struct vring_desc){.addr = H_DATA + 0x1000, .len = 16, .flags = VRING_DESC_F_INDIRECT};
	h_set_desc(&f->hq, 0, H_DATA, 16, VRING_DESC_F_INDIRECT, 0);
	h_publish(&f->hq, 0);
	expect_bad(f);
}

static void test_indirect_with_next_refused(void **state)
{
	struct fx *f = *state;

	((struct vring_desc *)h_ptr(f->vm, H_DATA))[0] =
	    (struct vring_desc){.addr = H_DATA + 0x1000, .len = 8};
	h_set_desc(&f->hq, 0, H_DATA, 16, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 1);
	h_set_desc(&f->hq, 1, H_DATA, 8, 0, 0);
	h_publish(&f->hq, 0);
	expect_bad(f);
}

static void test_indirect_loop_refused(void **state)
{
	struct fx *f = *state;
	struct vring_desc *t = h_ptr(f->vm, H_DATA);

	t[0] = (struct vring_desc){
	    .addr = H_DATA + 0x1000, .len = 8, .flags = VRING_DESC_F_NEXT, .next = 1};
	t[1] = (struct vring_desc){
	    .addr = H_DATA + 0x1000, .len = 8, .flags = VRING_DESC_F_NEXT, .next = 0};
	h_set_desc(&f->hq, 0, H_DATA, 32, VRING_DESC_F_INDIRECT, 0);
	h_publish(&f->hq, 0);
	expect_bad(f);
}

static void test_indirect_next_outside_table_refused(void **state)
{
	struct fx *f = *state;
	struct vring_desc *t = h_ptr(f->vm, H_DATA);

	t[0] = (struct vring_desc){
	    .addr = H_DATA + 0x1000, .len = 8, .flags = VRING_DESC_F_NEXT, .next = 7};
	h_set_desc(&f->hq, 0, H_DATA, 32, VRING_DESC_F_INDIRECT, 0);
	h_publish(&f->hq, 0);
	expect_bad(f);
}

static void test_queue_size_checks(void **state)
{
	struct fx *f = *state;
	struct virtq_state s = f->s;
	const char *why;
	const uint16_t bad[] = {0, 3, 24, 512};

	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		s.size = bad[i];
		why = NULL;
		assert_int_equal(virtq_setup(&f->q, &s, &f->vm->mem, 256, 0, &why), -EINVAL);
		assert_non_null(why);
		assert_null(f->q.desc);
	}
	s.size = 256;
	assert_int_equal(virtq_setup(&f->q, &s, &f->vm->mem, 256, 0, &why), 0);
}

static void test_ring_outside_memory_or_misaligned_refused(void **state)
{
	struct fx *f = *state;
	struct virtq_state s = f->s;
	const char *why;

	s.used = H_MEM_SIZE - 8;
	assert_int_equal(virtq_setup(&f->q, &s, &f->vm->mem, 256, 0, &why), -EINVAL);
	s = f->s;
	s.desc = UINT64_MAX - 15;
	assert_int_equal(virtq_setup(&f->q, &s, &f->vm->mem, 256, 0, &why), -EINVAL);
	s = f->s;
	s.desc += 8;
	assert_int_equal(virtq_setup(&f->q, &s, &f->vm->mem, 256, 0, &why), -EINVAL);
	s = f->s;
	s.used += 2;
	assert_int_equal(virtq_setup(&f->q, &s, &f->vm->mem, 256, 0, &why), -EINVAL);
}

static void test_push_publishes_used_and_event_idx_decides_interrupts(void **state)
{
	struct fx *f = *state;
	uint16_t *used_event = &h_avail(&f->hq)->ring[QSZ];
	struct vring_used *u = h_used(&f->hq);

	virtq_push(&f->q, 7, 123);
	assert_int_equal(u->idx, 1);
	assert_int_equal(u->ring[0].id, 7);
	assert_int_equal(u->ring[0].len, 123);
	assert_true(virtq_should_notify(&f->q)); /* the first one always */
	*used_event = 5;			 /* "interrupt me after entry 5" */
	virtq_push(&f->q, 1, 0);
	assert_false(virtq_should_notify(&f->q));
	for (int i = 0; i < 4; i++)
		virtq_push(&f->q, 1, 0);
	assert_true(virtq_should_notify(&f->q)); /* used idx went 2 -> 6, past 5 */
	virtq_push(&f->q, 1, 0);
	assert_false(virtq_should_notify(&f->q));
}

static void test_no_interrupt_flag_without_event_idx(void **state)
{
	struct fx *f = *state;
	const char *why;

	assert_int_equal(virtq_setup(&f->q, &f->s, &f->vm->mem, 256, 0, &why), 0);
	h_avail(&f->hq)->flags = VRING_AVAIL_F_NO_INTERRUPT;
	virtq_push(&f->q, 0, 0);
	assert_false(virtq_should_notify(&f->q));
	h_avail(&f->hq)->flags = 0;
	virtq_push(&f->q, 0, 0);
	assert_true(virtq_should_notify(&f->q));
}

static void test_iov_helpers_split_and_copy(void **state)
{
	char a[4], b[6], out[10];
	struct iovec iov[2] = {{a, 4}, {b, 6}}, sl[4];
	unsigned n;

	assert_int_equal(iov_from_buf(iov, 2, 2, "ABCDEFGH", 8), 8);
	assert_memory_equal(a + 2, "AB", 2);
	assert_memory_equal(b, "CDEFGH", 6);
	assert_int_equal(iov_to_buf(iov, 2, 3, out, 10), 7);
	assert_memory_equal(out, "BCDEFGH", 7);
	n = iov_slice(iov, 2, 3, 4, sl, 4);
	assert_int_equal(n, 2);
	assert_ptr_equal(sl[0].iov_base, a + 3);
	assert_int_equal(sl[0].iov_len, 1);
	assert_int_equal(sl[1].iov_len, 3);
}

/* Through a device: rng gets a looping chain, is marked as needing reset with a
 * configuration interrupt, stops processing; a second device keeps working, and a
 * driver reset brings the first back. */
static void test_bad_chain_marks_only_that_device_needing_reset(void **state)
{
	struct vm *vm = h_vm_new(H_MEM_SIZE);
	struct vm_config cfg = {.rng = true};
	struct virtio_dev *bad, *good;
	struct h_queue qb, qg;
	uint64_t a[] = {H_DATA};
	uint32_t l[] = {32}, id, len;
	bool w[] = {true};

	/* Two rngs: the config has one, so attach one and create another by hand. */
	assert_int_equal(vmm_devices_attach(vm, &cfg, NULL, 0), 0);
	bad = virtio_get(vm, 0);
	assert_int_equal(
	    virtio_rng_create(vm, &(struct vmm_rate_limit){0},
			      &(struct vmm_dev_place){true, 1, VIRTIO_MMIO_BASE + VIRTIO_MMIO_SIZE,
						      VIRTIO_IRQ_BASE + 1},
			      &good),
	    0);
	assert_int_equal(virtio_dev_bind(good), 0);

	h_driver_up(bad, ~0ull, &qb, 1, 8, 0);
	h_driver_up(good, ~0ull, &qg, 1, 8, 1);
	(void)h_irq(bad);

	h_set_desc(&qb, 0, H_DATA, 8, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 0);
	h_publish(&qb, 0);
	h_kick(bad, 0);
	assert_true(h_needs_reset(bad));
	assert_true(h_irq(bad));
	assert_int_equal(h_rd(bad, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_MMIO_INT_CONFIG,
			 VIRTIO_MMIO_INT_CONFIG);
	/* Further kicks do nothing until the reset. */
	h_kick(bad, 0);
	assert_false(h_take_used(&qb, &id, &len));

	/* The other device is unaffected. */
	h_publish(&qg, h_add_chain(&qg, 1, a, l, w));
	h_kick(good, 0);
	assert_true(h_take_used(&qg, &id, &len));
	assert_int_equal(len, 32);
	assert_false(h_needs_reset(good));

	/* Reset recovers. */
	h_driver_up(bad, ~0ull, &qb, 1, 8, 0);
	assert_false(h_needs_reset(bad));
	h_publish(&qb, h_add_chain(&qb, 1, a, l, w));
	h_kick(bad, 0);
	assert_true(h_take_used(&qb, &id, &len));

	virtio_dev_unbind(good);
	good->ops->destroy(good);
	free(good);
	h_vm_free(vm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_single_readable_descriptor, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_multi_descriptor_chain_readable_then_writable,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_indirect_chain, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_empty_ring_pops_nothing_and_arms_event, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_buffer_outside_memory_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_buffer_address_wrapping_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_descriptor_loop_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_self_loop_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_chain_as_long_as_queue_is_accepted, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_chain_longer_than_indirect_limit_refused, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_next_index_outside_table_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_head_outside_table_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_avail_index_jump_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_readable_after_writable_refused, setup, teardown),
	    cmocka_unit_test(test_total_length_overflow_refused),
	    cmocka_unit_test_setup_teardown(test_indirect_without_feature_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_indirect_table_length_not_multiple_refused, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_indirect_table_empty_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_indirect_table_outside_memory_refused, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_nested_indirect_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_indirect_with_next_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_indirect_loop_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_indirect_next_outside_table_refused, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_queue_size_checks, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ring_outside_memory_or_misaligned_refused, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(
		test_push_publishes_used_and_event_idx_decides_interrupts, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_no_interrupt_flag_without_event_idx, setup,
					    teardown),
	    cmocka_unit_test(test_iov_helpers_split_and_copy),
	    cmocka_unit_test(test_bad_chain_marks_only_that_device_needing_reset),
	};

	return cmocka_run_group_tests_name("virtq", tests, NULL, NULL);
}
