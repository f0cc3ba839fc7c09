/* virtio-blk against a real temporary file through the real io_uring path: read,
 * write, flush, get-id, read-only drives, bad requests, completions through the
 * main loop, quiesce, save/restore and reopening the backend. */
#include "tests/unit/test_virtio_harness.h"

#include <fcntl.h>
#include <linux/virtio_blk.h>
#include <stdio.h>

#define DISK_SECTORS 64
#define HDR_GPA	     H_DATA
#define DATA_GPA     (H_DATA + 0x1000)
#define STATUS_GPA   (H_DATA + 0x8000)

struct fx {
	struct vm *vm;
	struct virtio_dev *d;
	struct h_queue q;
	char path[64];
	int fd; /* our own view of the file */
};

static int make(void **state, bool ro)
{
	struct fx *f = calloc(1, sizeof(*f));
	char spec[160];
	struct vm_config cfg = {.nr_drives = 1};
	uint8_t sector[512];

	snprintf(f->path, sizeof(f->path), "/tmp/thaw-test-blk-XXXXXX");
	f->fd = mkstemp(f->path);
	assert_true(f->fd >= 0);
	for (unsigned s = 0; s < DISK_SECTORS; s++) {
		memset(sector, (int)s, sizeof(sector));
		assert_int_equal(pwrite(f->fd, sector, 512, s * 512), 512);
	}
	snprintf(spec, sizeof(spec), "id=disk0,path=%s,ro=%s", f->path, ro ? "on" : "off");
	cfg.drives[0] = spec;
	f->vm = h_vm_new(H_MEM_SIZE);
	assert_int_equal(vmm_devices_attach(f->vm, &cfg, NULL, 0), 0);
	f->d = virtio_get(f->vm, 0);
	h_driver_up(f->d, ~0ull, &f->q, 1, 128, 0);
	*state = f;
	return 0;
}

static int setup_rw(void **state)
{
	return make(state, false);
}

static int setup_ro(void **state)
{
	return make(state, true);
}

static int teardown(void **state)
{
	struct fx *f = *state;

	h_vm_free(f->vm);
	close(f->fd);
	unlink(f->path);
	free(f);
	return 0;
}

/* Submits one request: header, `len` data bytes at DATA_GPA (device-writable for
 * reads and get-id), status byte. Returns the used length, status in *status. */
static uint32_t request(struct fx *f, uint32_t type, uint64_t sector, uint32_t len, uint8_t *status)
{
	struct virtio_blk_outhdr *h = h_ptr(f->vm, HDR_GPA);
	bool data_w = type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_GET_ID;
	uint64_t a[] = {HDR_GPA, DATA_GPA, STATUS_GPA};
	uint32_t l[] = {sizeof(*h), len, 1}, id = 0, used = 0;
	bool w[] = {false, data_w, true};
	uint64_t a2[] = {HDR_GPA, STATUS_GPA};
	uint32_t l2[] = {sizeof(*h), 1};
	bool w2[] = {false, true};
	uint8_t *st = h_ptr(f->vm, STATUS_GPA);

	h->type = type;
	h->ioprio = 0;
	h->sector = sector;
	*st = 0xee;
	if (len)
		h_publish(&f->q, h_add_chain(&f->q, 3, a, l, w));
	else
		h_publish(&f->q, h_add_chain(&f->q, 2, a2, l2, w2));
	h_kick(f->d, 0);
	assert_int_equal(virtio_quiesce(f->vm), 0);
	assert_true(h_take_used(&f->q, &id, &used));
	*status = *st;
	return used;
}

static void test_read_returns_file_contents(void **state)
{
	struct fx *f = *state;
	uint8_t st, want[1024];
	uint32_t used;

	memset(want, 5, 512);
	memset(want + 512, 6, 512);
	used = request(f, VIRTIO_BLK_T_IN, 5, 1024, &st);
	assert_int_equal(st, VIRTIO_BLK_S_OK);
	assert_int_equal(used, 1025);
	assert_memory_equal(h_ptr(f->vm, DATA_GPA), want, 1024);
}

static void test_write_reaches_the_file(void **state)
{
	struct fx *f = *state;
	uint8_t st, got[1536];

	memset(h_ptr(f->vm, DATA_GPA), 0xab, 1536);
	request(f, VIRTIO_BLK_T_OUT, 10, 1536, &st);
	assert_int_equal(st, VIRTIO_BLK_S_OK);
	assert_int_equal(pread(f->fd, got, sizeof(got), 10 * 512), sizeof(got));
	for (unsigned i = 0; i < sizeof(got); i++)
		assert_int_equal(got[i], 0xab);
	/* Neighbours untouched. */
	assert_int_equal(pread(f->fd, got, 1, 13 * 512), 1);
	assert_int_equal(got[0], 13);
}

static void test_scattered_read_across_descriptors(void **state)
{
	struct fx *f = *state;
	struct virtio_blk_outhdr *h = h_ptr(f->vm, HDR_GPA);
	uint64_t a[] = {HDR_GPA, DATA_GPA, DATA_GPA + 0x2000, DATA_GPA + 0x4000, STATUS_GPA};
	uint32_t l[] = {sizeof(*h), 100, 412, 512, 1}, id, used;
	bool w[] = {false, true, true, true, true};

	h->type = VIRTIO_BLK_T_IN;
	h->sector = 20;
	h_publish(&f->q, h_add_chain(&f->q, 5, a, l, w));
	h_kick(f->d, 0);
	assert_int_equal(virtio_quiesce(f->vm), 0);
	assert_true(h_take_used(&f->q, &id, &used));
	assert_int_equal(used, 1025);
	assert_int_equal(*(uint8_t *)h_ptr(f->vm, STATUS_GPA), VIRTIO_BLK_S_OK);
	assert_int_equal(*(uint8_t *)h_ptr(f->vm, DATA_GPA + 99), 20);
	assert_int_equal(*(uint8_t *)h_ptr(f->vm, DATA_GPA + 0x2000), 20);
	assert_int_equal(*(uint8_t *)h_ptr(f->vm, DATA_GPA + 0x4000), 21);
}

static void test_flush_succeeds(void **state)
{
	struct fx *f = *state;
	uint8_t st;

	request(f, VIRTIO_BLK_T_FLUSH, 0, 0, &st);
	assert_int_equal(st, VIRTIO_BLK_S_OK);
}

static void test_get_id_returns_drive_name(void **state)
{
	struct fx *f = *state;
	uint8_t st;
	uint32_t used;

	memset(h_ptr(f->vm, DATA_GPA), 'x', VIRTIO_BLK_ID_BYTES);
	used = request(f, VIRTIO_BLK_T_GET_ID, 0, VIRTIO_BLK_ID_BYTES, &st);
	assert_int_equal(st, VIRTIO_BLK_S_OK);
	assert_int_equal(used, VIRTIO_BLK_ID_BYTES + 1);
	assert_memory_equal(h_ptr(f->vm, DATA_GPA), "disk0\0\0\0", 8);
}

static void test_read_past_end_is_ioerr(void **state)
{
	struct fx *f = *state;
	uint8_t st;

	request(f, VIRTIO_BLK_T_IN, DISK_SECTORS - 1, 1024, &st);
	assert_int_equal(st, VIRTIO_BLK_S_IOERR);
	request(f, VIRTIO_BLK_T_IN, UINT64_MAX, 512, &st);
	assert_int_equal(st, VIRTIO_BLK_S_IOERR);
	assert_false(h_needs_reset(f->d));
}

static void test_partial_sector_is_ioerr(void **state)
{
	struct fx *f = *state;
	uint8_t st;

	request(f, VIRTIO_BLK_T_IN, 0, 100, &st);
	assert_int_equal(st, VIRTIO_BLK_S_IOERR);
}

static void test_unknown_type_is_unsupp(void **state)
{
	struct fx *f = *state;
	uint8_t st;

	request(f, 42, 0, 512, &st);
	assert_int_equal(st, VIRTIO_BLK_S_UNSUPP);
}

static void test_request_without_status_byte_needs_reset(void **state)
{
	struct fx *f = *state;
	uint64_t a[] = {HDR_GPA};
	uint32_t l[] = {16};
	bool w[] = {false};

	h_publish(&f->q, h_add_chain(&f->q, 1, a, l, w));
	h_kick(f->d, 0);
	assert_true(h_needs_reset(f->d));
}

static void test_config_space_capacity_and_geometry(void **state)
{
	struct fx *f = *state;
	uint64_t cap;
	uint32_t seg_max, blk_size;

	cap = h_rd(f->d, VIRTIO_MMIO_CONFIG) | (uint64_t)h_rd(f->d, VIRTIO_MMIO_CONFIG + 4) << 32;
	assert_int_equal(cap, DISK_SECTORS);
	seg_max = h_rd(f->d, VIRTIO_MMIO_CONFIG + offsetof(struct virtio_blk_config, seg_max));
	assert_int_equal(seg_max, 126);
	blk_size = h_rd(f->d, VIRTIO_MMIO_CONFIG + offsetof(struct virtio_blk_config, blk_size));
	assert_int_equal(blk_size, 512);
	assert_true(f->d->vs.device_features & (1ull << VIRTIO_BLK_F_FLUSH));
	assert_false(f->d->vs.device_features & (1ull << VIRTIO_BLK_F_RO));
}

static void test_ro_drive_refuses_writes_and_leaves_file(void **state)
{
	struct fx *f = *state;
	uint8_t st, got[512];

	assert_true(f->d->vs.device_features & (1ull << VIRTIO_BLK_F_RO));
	memset(h_ptr(f->vm, DATA_GPA), 0xcd, 512);
	request(f, VIRTIO_BLK_T_OUT, 3, 512, &st);
	assert_int_equal(st, VIRTIO_BLK_S_IOERR);
	assert_int_equal(pread(f->fd, got, 512, 3 * 512), 512);
	for (unsigned i = 0; i < 512; i++)
		assert_int_equal(got[i], 3);
	/* Reads still work, and the device is not broken. */
	request(f, VIRTIO_BLK_T_IN, 3, 512, &st);
	assert_int_equal(st, VIRTIO_BLK_S_OK);
	assert_false(h_needs_reset(f->d));
}

static void stop_loop(void *opaque)
{
	vmm_loop_stop(opaque, 0);
}

static void test_completion_arrives_through_main_loop(void **state)
{
	struct fx *f = *state;
	struct virtio_blk_outhdr *h = h_ptr(f->vm, HDR_GPA);
	uint64_t a[] = {HDR_GPA, DATA_GPA, STATUS_GPA};
	uint32_t l[] = {sizeof(*h), 512, 1}, id, used;
	bool w[] = {false, true, true};

	h->type = VIRTIO_BLK_T_IN;
	h->sector = 7;
	(void)h_irq(f->d);
	h_publish(&f->q, h_add_chain(&f->q, 3, a, l, w));
	h_kick(f->d, 0);
	/* The loop runs the io_uring eventfd callback, then idles out. */
	f->vm->loop.timeout_ms = 200;
	f->vm->loop.idle = stop_loop;
	f->vm->loop.idle_opaque = &f->vm->loop;
	vmm_loop_run(&f->vm->loop);
	assert_true(h_take_used(&f->q, &id, &used));
	assert_int_equal(used, 513);
	assert_int_equal(*(uint8_t *)h_ptr(f->vm, DATA_GPA), 7);
	assert_true(h_irq(f->d));
}

static void test_many_requests_in_flight_then_quiesce(void **state)
{
	struct fx *f = *state;
	struct virtio_blk_outhdr *hs = h_ptr(f->vm, HDR_GPA);
	unsigned n = 40, got = 0;
	uint32_t id, used;

	/* Descriptor triples: header i, 512 bytes, status i. */
	for (unsigned i = 0; i < n; i++) {
		uint64_t a[] = {HDR_GPA + i * 16, DATA_GPA + i * 512, STATUS_GPA + i};
		uint32_t l[] = {16, 512, 1};
		bool w[] = {false, true, true};

		hs[i] = (struct virtio_blk_outhdr){.type = VIRTIO_BLK_T_IN, .sector = i};
		h_publish(&f->q, h_add_chain(&f->q, 3, a, l, w));
	}
	h_kick(f->d, 0);
	assert_int_equal(virtio_quiesce(f->vm), 0);
	while (h_take_used(&f->q, &id, &used)) {
		assert_int_equal(used, 513);
		got++;
	}
	assert_int_equal(got, n);
	for (unsigned i = 0; i < n; i++) {
		assert_int_equal(*(uint8_t *)h_ptr(f->vm, STATUS_GPA + i), VIRTIO_BLK_S_OK);
		assert_int_equal(*(uint8_t *)h_ptr(f->vm, DATA_GPA + i * 512 + 17), i);
	}
}

static void test_save_restore_and_reopen(void **state)
{
	struct fx *f = *state;
	struct virtio_saved s;
	char small[] = "/tmp/thaw-test-blk-small-XXXXXX";
	int fd = mkstemp(small);
	uint8_t st;

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 512), 0);
	close(fd);
	request(f, VIRTIO_BLK_T_IN, 0, 512, &st);
	virtio_save(f->d, &s);
	assert_string_equal(s.dev.blk.path, f->path);
	assert_int_equal(s.dev.blk.capacity, DISK_SECTORS);
	assert_false(s.dev.blk.read_only);
	assert_int_equal(virtio_restore(f->d, &s), 0);

	s.dev.blk.capacity = DISK_SECTORS + 1;
	assert_int_equal(virtio_restore(f->d, &s), -EINVAL);

	/* A backend smaller than what the guest was told is refused... */
	assert_int_equal(virtio_reopen(f->d, small), -EINVAL);
	/* ...and the device then fails requests instead of crashing. */
	s.dev.blk.capacity = DISK_SECTORS;
	h_driver_up(f->d, ~0ull, &f->q, 1, 128, 0);
	request(f, VIRTIO_BLK_T_IN, 0, 512, &st);
	assert_int_equal(st, VIRTIO_BLK_S_IOERR);
	/* Reopening the right file brings it back. */
	assert_int_equal(virtio_reopen(f->d, f->path), 0);
	request(f, VIRTIO_BLK_T_IN, 1, 512, &st);
	assert_int_equal(st, VIRTIO_BLK_S_OK);
	unlink(small);
}

int main(void)
{
#define RW(fn) cmocka_unit_test_setup_teardown(fn, setup_rw, teardown)
#define RO(fn) cmocka_unit_test_setup_teardown(fn, setup_ro, teardown)
	const struct CMUnitTest tests[] = {
	    RW(test_read_returns_file_contents),
	    RW(test_write_reaches_the_file),
	    RW(test_scattered_read_across_descriptors),
	    RW(test_flush_succeeds),
	    RW(test_get_id_returns_drive_name),
	    RW(test_read_past_end_is_ioerr),
	    RW(test_partial_sector_is_ioerr),
	    RW(test_unknown_type_is_unsupp),
	    RW(test_request_without_status_byte_needs_reset),
	    RW(test_config_space_capacity_and_geometry),
	    RO(test_ro_drive_refuses_writes_and_leaves_file),
	    RW(test_completion_arrives_through_main_loop),
	    RW(test_many_requests_in_flight_then_quiesce),
	    RW(test_save_restore_and_reopen),
	};

	return cmocka_run_group_tests_name("virtio-blk", tests, NULL, NULL);
}
