/* virtio-blk against a real temporary file through the real io_uring path: read,
 * write, flush, get-id, read-only drives, bad requests, completions through the
 * main loop, quiesce, save/restore and reopening the backend; the same on a qcow2
 * image (allocated clusters through the ring, allocation and COW through vmm/disk),
 * judged by qemu-img when it is installed. */
#include "tests/unit/test_virtio_harness.h"

#include <fcntl.h>
#include <linux/virtio_blk.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/wait.h>

#include "vmm/disk/disk.h"

#define DISK_SECTORS 64
#define HDR_GPA	     H_DATA
#define DATA_GPA     (H_DATA + 0x1000)
#define STATUS_GPA   (H_DATA + 0x8000)
#define BIG_SECTORS  8192 /* 4 MiB, for the stress test */

struct fx {
	struct vm *vm;
	struct virtio_dev *d;
	struct h_queue q;
	char path[64];
	int fd;		  /* our own view of the file */
	bool qcow2;	  /* the drive is a qcow2 image (setup_qcow2) */
	uint64_t sectors; /* its capacity */
};

/* A new VM for the fixture with one drive on `path`, its driver up. */
static void attach(struct fx *f, const char *path, bool ro)
{
	struct vm_config cfg = {.nr_drives = 1};
	char spec[200];

	snprintf(spec, sizeof(spec), "id=disk0,path=%s,ro=%s", path, ro ? "on" : "off");
	assert_int_equal(h_parse_drive(spec, &cfg.drives[0]), 0);
	if (f->vm)
		h_vm_free(f->vm);
	f->vm = h_vm_new(H_MEM_SIZE);
	assert_int_equal(vmm_devices_attach(f->vm, &cfg, NULL, 0), 0);
	f->d = virtio_get(f->vm, 0);
	h_driver_up(f->d, ~0ull, &f->q, 1, 128, 0);
}

static int make(void **state, bool ro, unsigned sectors)
{
	struct fx *f = calloc(1, sizeof(*f));
	uint8_t sector[512];

	snprintf(f->path, sizeof(f->path), "/tmp/thaw-test-blk-XXXXXX");
	f->fd = mkstemp(f->path);
	assert_true(f->fd >= 0);
	for (unsigned s = 0; s < sectors; s++) {
		memset(sector, (int)s, sizeof(sector));
		assert_int_equal(pwrite(f->fd, sector, 512, s * 512), 512);
	}
	attach(f, f->path, ro);
	f->sectors = sectors;
	*state = f;
	return 0;
}

static int setup_rw(void **state)
{
	return make(state, false, DISK_SECTORS);
}

static int setup_ro(void **state)
{
	return make(state, true, DISK_SECTORS);
}

static int setup_big(void **state)
{
	return make(state, false, BIG_SECTORS);
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

/* Publishes a one-sector read of `sector` (not yet notified). */
static void publish_read(struct fx *f, uint64_t sector)
{
	struct virtio_blk_outhdr *h = h_ptr(f->vm, HDR_GPA);
	uint64_t a[] = {HDR_GPA, DATA_GPA, STATUS_GPA};
	uint32_t l[] = {sizeof(*h), 512, 1};
	bool w[] = {false, true, true};

	h->type = VIRTIO_BLK_T_IN;
	h->sector = sector;
	h_publish(&f->q, h_add_chain(&f->q, 3, a, l, w));
}

/* Runs the main loop until it idles, then expects the read of `sector` (whose sectors
 * hold their own number) completed. */
static void loop_completes_read(struct fx *f, uint64_t sector)
{
	uint32_t id, used;

	f->vm->loop.timeout_ms = 200;
	f->vm->loop.idle = stop_loop;
	f->vm->loop.idle_opaque = &f->vm->loop;
	vmm_loop_run(&f->vm->loop);
	assert_true(h_take_used(&f->q, &id, &used));
	assert_int_equal(used, 513);
	assert_int_equal(*(uint8_t *)h_ptr(f->vm, DATA_GPA), sector);
}

static void test_completion_arrives_through_main_loop(void **state)
{
	struct fx *f = *state;

	(void)h_irq(f->d);
	publish_read(f, 7);
	h_kick(f->d, 0);
	/* The loop runs the io_uring eventfd callback, then idles out. */
	loop_completes_read(f, 7);
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

/* The drive through a snapshot file: what a new device (built from the same
 * configuration) takes back, and a saved place that is not the device's refused. */
static void test_file_roundtrip_restores_a_new_device(void **state)
{
	struct fx *f = *state;
	struct virtio_saved s;
	struct vm_config cfg = {.nr_drives = 1};
	struct vm *vm2 = h_vm_new(H_MEM_SIZE);
	char spec[160];
	uint8_t st;

	request(f, VIRTIO_BLK_T_IN, 0, 512, &st);
	assert_int_equal(virtio_quiesce(f->vm), 0); /* a qcow2 image's metadata flushed */
	h_file_roundtrip(f->d, &s);
	assert_string_equal(s.dev.blk.path, f->path);
	assert_int_equal(s.dev.blk.capacity, f->sectors);
	assert_int_equal(s.dev.blk.qcow2, f->qcow2);
	snprintf(spec, sizeof(spec), "id=disk0,path=%s,ro=off", f->path);
	assert_int_equal(h_parse_drive(spec, &cfg.drives[0]), 0);
	memcpy(h_ptr(vm2, 0), h_ptr(f->vm, 0), H_MEM_SIZE); /* the rings live there */
	assert_int_equal(vmm_devices_attach(vm2, &cfg, NULL, 0), 0);
	assert_int_equal(virtio_restore(virtio_get(vm2, 0), &s), 0);
	s.place.irq++;
	assert_int_equal(virtio_restore(virtio_get(vm2, 0), &s), -EINVAL);
	h_vm_free(vm2);
}

/* The ring reads through its registered file, not b->fd: a reopened backend must
 * replace that registration, or requests keep going to the old file. */
static void test_reopen_to_another_file_reads_the_new_one(void **state)
{
	struct fx *f = *state;
	char other[] = "/tmp/thaw-test-blk-other-XXXXXX";
	uint8_t sector[512], st;
	int fd = mkstemp(other);

	assert_true(fd >= 0);
	memset(sector, 0xab, sizeof(sector));
	for (unsigned s = 0; s < DISK_SECTORS; s++)
		assert_int_equal(pwrite(fd, sector, 512, s * 512), 512);
	close(fd);
	assert_int_equal(virtio_reopen(f->d, other), 0);
	h_driver_up(f->d, ~0ull, &f->q, 1, 128, 0);
	request(f, VIRTIO_BLK_T_IN, 5, 512, &st);
	assert_int_equal(st, VIRTIO_BLK_S_OK);
	assert_int_equal(*(uint8_t *)h_ptr(f->vm, DATA_GPA), 0xab);
	assert_int_equal(*(uint8_t *)h_ptr(f->vm, DATA_GPA + 511), 0xab);
	unlink(other);
}

/* PATCH /drives with a new path: a media change. The guest is told the new capacity
 * (configuration interrupt, ConfigGeneration moves) and reads the new file. */
static void test_media_change_to_a_larger_file(void **state)
{
	struct fx *f = *state;
	char other[] = "/tmp/thaw-test-blk-media-XXXXXX";
	uint8_t sector[512], st;
	uint32_t gen = h_rd(f->d, VIRTIO_MMIO_CONFIG_GENERATION);
	uint64_t cap;
	int fd = mkstemp(other);

	assert_true(fd >= 0);
	memset(sector, 0xcd, sizeof(sector));
	for (unsigned s = 0; s < 2 * DISK_SECTORS; s++)
		assert_int_equal(pwrite(fd, sector, 512, s * 512), 512);
	close(fd);
	(void)h_irq(f->d);
	assert_int_equal(virtio_change_media(f->d, other), 0);
	cap = h_rd(f->d, VIRTIO_MMIO_CONFIG) | (uint64_t)h_rd(f->d, VIRTIO_MMIO_CONFIG + 4) << 32;
	assert_int_equal(cap, 2 * DISK_SECTORS);
	assert_true(h_rd(f->d, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_MMIO_INT_CONFIG);
	assert_true(h_irq(f->d));
	assert_int_not_equal(h_rd(f->d, VIRTIO_MMIO_CONFIG_GENERATION), gen);
	/* A sector only the larger file has. */
	request(f, VIRTIO_BLK_T_IN, DISK_SECTORS + 3, 512, &st);
	assert_int_equal(st, VIRTIO_BLK_S_OK);
	assert_int_equal(*(uint8_t *)h_ptr(f->vm, DATA_GPA), 0xcd);
	unlink(other);
}

/* A media change to a file that does not open is refused and the drive keeps its
 * file; reopen (a restore's override) would leave it without one. */
static void test_failed_media_change_keeps_the_old_file(void **state)
{
	struct fx *f = *state;
	uint8_t st;

	assert_int_equal(virtio_change_media(f->d, "/nonexistent/thaw-disk"), -ENOENT);
	request(f, VIRTIO_BLK_T_IN, 7, 512, &st);
	assert_int_equal(st, VIRTIO_BLK_S_OK);
	assert_int_equal(*(uint8_t *)h_ptr(f->vm, DATA_GPA), 7);
}

/* A drive's rate limit is saved (with the burst left) and a restore plans it back. */
static void test_rate_limit_is_saved_with_the_drive(void **state)
{
	struct fx *f = *state;
	struct virtio_saved s;
	struct vmm_rate_limit rl = {.bandwidth = {1 << 20, 4096, 1000}, .ops = {100, 0, 500}};
	uint8_t st;

	assert_int_equal(virtio_set_rate_limit(f->d, 0, &rl, 0), 0);
	request(f, VIRTIO_BLK_T_IN, 0, 1024, &st); /* spends 1024 of the burst */
	assert_int_equal(st, VIRTIO_BLK_S_OK);
	h_file_roundtrip(f->d, &s);
	assert_int_equal(s.dev.blk.rl.bandwidth.size, 1 << 20);
	assert_int_equal(s.dev.blk.rl.bandwidth.one_time_burst, 3072);
	assert_int_equal(s.dev.blk.rl.bandwidth.refill_ms, 1000);
	assert_int_equal(s.dev.blk.rl.ops.size, 100);
	assert_int_equal(s.dev.blk.rl.ops.refill_ms, 500);
	/* Keeping the bandwidth bucket and lifting ops. */
	assert_int_equal(
	    virtio_set_rate_limit(f->d, 0, &(struct vmm_rate_limit){0}, VMM_RL_KEEP_BANDWIDTH), 0);
	h_file_roundtrip(f->d, &s);
	assert_int_equal(s.dev.blk.rl.bandwidth.size, 1 << 20);
	assert_int_equal(s.dev.blk.rl.ops.size, 0);
	assert_int_equal(virtio_set_rate_limit(f->d, 1, &rl, 0), -ENOTSUP);
}

/* ------------------------------------------------------------- stress */

/* Like a Linux guest's large I/O, but meaner: several requests in flight at once, each
 * scattered over up to seg_max pieces of guest memory (through indirect tables or plain
 * chains), reads and writes mixed, over many rounds. After each round every byte of
 * guest memory must be what the requests say: the disk's data in the read buffers, the
 * status bytes, and everything else exactly as before. A device that writes one byte
 * outside its buffers corrupts the guest far from the cause (a kernel that later triple
 * faults), so the whole of memory is compared, not only the buffers. */
#define ST_SEG_MAX  126	   /* the seg_max the device announces */
#define ST_META	    H_DATA /* headers, 16 bytes each, then status bytes */
#define ST_STATUS   (H_DATA + 0x800)
#define ST_TABLES   (H_DATA + 0x1000)  /* one 4 KiB indirect table per request */
#define ST_POOL	    (H_DATA + 0x10000) /* data pages, each piece in a page of its own */
#define ST_INFLIGHT 5
#define ST_ROUNDS   40
#define ST_ZONE	    (BIG_SECTORS / ST_INFLIGHT) /* requests of one round never overlap */
#define ST_PAGES    ((H_MEM_SIZE - ST_POOL) / 4096)

struct st_req {
	bool write, direct;
	uint64_t sector;
	uint32_t bytes;
	unsigned nseg;
	uint64_t gpa[ST_SEG_MAX];
	uint32_t len[ST_SEG_MAX];
};

static uint64_t st_rand(uint64_t *x)
{
	/* xorshift64: reproducible from the seed the test prints. */
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* Draws one request of round-slot `i`, taking its pages from `pool` (shuffled). */
static void st_draw(struct st_req *r, unsigned i, uint64_t *x, const uint32_t *pool,
		    unsigned *next_page)
{
	uint32_t rest, k;

	r->write = st_rand(x) % 3 == 0;
	r->nseg = 1 + (unsigned)(st_rand(x) % ST_SEG_MAX);
	r->direct = r->nseg <= 20 && st_rand(x) % 2;
	r->bytes = 0;
	for (unsigned s = 0; s < r->nseg; s++) {
		uint32_t page = pool[(*next_page)++], off, len;

		if (s + 1 < r->nseg) {
			off = (uint32_t)(st_rand(x) % 4096);
			len = 1 + (uint32_t)(st_rand(x) % (4096 - off));
		} else {
			/* The last piece makes the total a whole number of sectors. */
			rest = (512 - r->bytes % 512) % 512;
			k = (uint32_t)(st_rand(x) % 8);
			len = rest ? rest + 512 * (k % 7) : 512 * (k + 1);
			off = (uint32_t)(st_rand(x) % (4096 - len + 1));
		}
		r->gpa[s] = ST_POOL + (uint64_t)page * 4096 + off;
		r->len[s] = len;
		r->bytes += len;
	}
	r->sector = (uint64_t)i * ST_ZONE + st_rand(x) % (ST_ZONE - r->bytes / 512 + 1);
}

/* Publishes `r` as request `i`: header, data pieces, status byte. Returns the head. */
static uint16_t st_publish(struct fx *f, const struct st_req *r, unsigned i)
{
	struct virtio_blk_outhdr *h = h_ptr(f->vm, ST_META + i * 16);
	uint64_t a[ST_SEG_MAX + 2];
	uint32_t l[ST_SEG_MAX + 2];
	bool w[ST_SEG_MAX + 2];
	uint16_t head;
	unsigned n = 0;

	*h = (struct virtio_blk_outhdr){.type = r->write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN,
					.sector = r->sector};
	a[n] = ST_META + i * 16, l[n] = 16, w[n++] = false;
	for (unsigned s = 0; s < r->nseg; s++)
		a[n] = r->gpa[s], l[n] = r->len[s], w[n++] = !r->write;
	a[n] = ST_STATUS + i, l[n] = 1, w[n++] = true;
	if (r->direct) {
		head = h_add_chain(&f->q, n, a, l, w);
		h_publish(&f->q, head);
		return head;
	}
	for (unsigned s = 0; s < n; s++) {
		struct vring_desc *t = h_ptr(f->vm, ST_TABLES + i * 0x1000 + s * 16);

		*t = (struct vring_desc){.addr = a[s],
					 .len = l[s],
					 .flags = (uint16_t)((w[s] ? VRING_DESC_F_WRITE : 0) |
							     (s + 1 < n ? VRING_DESC_F_NEXT : 0)),
					 .next = (uint16_t)(s + 1)};
	}
	head = f->q.next_desc;
	h_set_desc(&f->q, head, ST_TABLES + i * 0x1000, n * 16, VRING_DESC_F_INDIRECT, 0);
	h_publish(&f->q, head);
	f->q.next_desc = (uint16_t)((head + 1) % f->q.size);
	return head;
}

static void test_stress_scattered_io_touches_only_its_buffers(void **state)
{
	struct fx *f = *state;
	const size_t disk = (size_t)BIG_SECTORS * 512;
	uint8_t *shadow = malloc(disk), *want = malloc(H_MEM_SIZE), *mem = h_ptr(f->vm, 0);
	uint32_t pool[ST_PAGES];
	uint64_t x = 0x7468617762; /* "thawb" */
	static struct st_req reqs[ST_INFLIGHT];
	uint16_t heads[ST_INFLIGHT];
	unsigned requests = 0, segs = 0;

	if (getenv("THAW_TEST_SEED"))
		x = strtoull(getenv("THAW_TEST_SEED"), NULL, 0) | 1;
	print_message("stress seed %#llx (THAW_TEST_SEED reproduces it)\n", (unsigned long long)x);
	assert_non_null(shadow);
	assert_non_null(want);
	/* A disk whose every 4-byte word is different, so a read from the wrong place or
	 * into the wrong place shows. */
	for (size_t o = 0; o < disk; o += 4) {
		uint32_t v = (uint32_t)(o / 4) * 2654435761u;

		memcpy(shadow + o, &v, 4);
	}
	assert_int_equal(pwrite(f->fd, shadow, disk, 0), (ssize_t)disk);

	for (unsigned round = 0; round < ST_ROUNDS; round++) {
		unsigned next_page = 0, done = 0;
		uint32_t id, used;

		/* Fresh noise in the whole data area, and a new page order. */
		for (uint64_t o = ST_POOL; o < H_MEM_SIZE; o++)
			mem[o] = (uint8_t)st_rand(&x);
		for (unsigned p = 0; p < ST_PAGES; p++)
			pool[p] = p;
		for (unsigned p = ST_PAGES - 1; p > 0; p--) {
			unsigned q = (unsigned)(st_rand(&x) % (p + 1));
			uint32_t t = pool[p];

			pool[p] = pool[q], pool[q] = t;
		}
		for (unsigned i = 0; i < ST_INFLIGHT; i++) {
			st_draw(&reqs[i], i, &x, pool, &next_page);
			heads[i] = st_publish(f, &reqs[i], i);
			*(uint8_t *)h_ptr(f->vm, ST_STATUS + i) = 0xee;
			segs += reqs[i].nseg;
		}
		memcpy(want, mem, H_MEM_SIZE);
		h_kick(f->d, 0);
		assert_int_equal(virtio_quiesce(f->vm), 0);
		assert_false(h_needs_reset(f->d));

		/* What memory and the disk must hold now. */
		for (unsigned i = 0; i < ST_INFLIGHT; i++) {
			const struct st_req *r = &reqs[i];
			uint8_t *d = shadow + r->sector * 512;

			for (unsigned s = 0; s < r->nseg; d += r->len[s], s++) {
				if (r->write)
					memcpy(d, want + r->gpa[s], r->len[s]);
				else
					memcpy(want + r->gpa[s], d, r->len[s]);
			}
			want[ST_STATUS + i] = VIRTIO_BLK_S_OK;
		}
		while (h_take_used(&f->q, &id, &used)) {
			unsigned i = 0;

			while (i < ST_INFLIGHT && heads[i] != id)
				i++;
			assert_true(i < ST_INFLIGHT);
			assert_int_equal(used, reqs[i].write ? 1 : reqs[i].bytes + 1);
			done++;
		}
		assert_int_equal(done, ST_INFLIGHT);
		/* Rings excepted (the device owns the used ring), memory is as computed. */
		assert_memory_equal(mem + H_DATA, want + H_DATA, H_MEM_SIZE - H_DATA);
		assert_memory_equal(mem, want, H_RING(0));
		requests += ST_INFLIGHT;
	}
	/* And the file is the shadow. */
	{
		uint8_t *got = malloc(disk);

		assert_non_null(got);
		assert_int_equal(pread(f->fd, got, disk, 0), (ssize_t)disk);
		assert_memory_equal(got, shadow, disk);
		free(got);
	}
	print_message("stress: %u requests, %u data pieces, memory and file exact\n", requests,
		      segs);
	free(want);
	free(shadow);
}

/* A chain with more data pieces than seg_max is the driver's bug; the device fails it
 * whole rather than doing part of it (a partial write would change the disk under an
 * error status). */
static void test_more_pieces_than_seg_max_fail_untouched(void **state)
{
	enum { N = 200, BYTES = 512 * 7 };
	struct fx *f = *state;
	struct vring_desc *t = h_ptr(f->vm, ST_TABLES);
	uint8_t before[BYTES], after[BYTES];
	uint32_t id, used;
	unsigned n = 0;

	assert_int_equal(pread(f->fd, before, sizeof(before), 0), (ssize_t)sizeof(before));
	*(struct virtio_blk_outhdr *)h_ptr(f->vm, ST_META) =
	    (struct virtio_blk_outhdr){.type = VIRTIO_BLK_T_OUT, .sector = 0};
	t[n] = (struct vring_desc){.addr = ST_META, .len = 16, .flags = VRING_DESC_F_NEXT};
	t[n].next = (uint16_t)(n + 1), n++;
	/* N pieces of 16 bytes, the last making the total whole sectors. */
	for (unsigned s = 0; s < N; s++) {
		t[n] = (struct vring_desc){.addr = ST_POOL + s * 4096,
					   .len = s + 1 < N ? 16 : BYTES - 16 * (N - 1),
					   .flags = VRING_DESC_F_NEXT};
		memset(h_ptr(f->vm, t[n].addr), 0x77, t[n].len);
		t[n].next = (uint16_t)(n + 1), n++;
	}
	t[n++] = (struct vring_desc){.addr = ST_STATUS, .len = 1, .flags = VRING_DESC_F_WRITE};
	*(uint8_t *)h_ptr(f->vm, ST_STATUS) = 0xee;
	h_set_desc(&f->q, 0, ST_TABLES, n * 16, VRING_DESC_F_INDIRECT, 0);
	h_publish(&f->q, 0);
	h_kick(f->d, 0);
	assert_int_equal(virtio_quiesce(f->vm), 0);
	assert_true(h_take_used(&f->q, &id, &used));
	assert_int_equal(*(uint8_t *)h_ptr(f->vm, ST_STATUS), VIRTIO_BLK_S_IOERR);
	assert_int_equal(used, 1);
	assert_int_equal(pread(f->fd, after, sizeof(after), 0), (ssize_t)sizeof(after));
	assert_memory_equal(before, after, sizeof(after));
	assert_false(h_needs_reset(f->d));
}

/* Requests answered at once (GET_ID) free their slot again: a guest republishing one
 * gets VIRTIO_BUDGET_CHAINS per notification, the rest on the next loop round. */
static void test_flood_gets_a_budget_per_notification(void **state)
{
	struct fx *f = *state;
	struct virtio_blk_outhdr *h = h_ptr(f->vm, HDR_GPA);
	uint64_t a[] = {HDR_GPA, DATA_GPA, STATUS_GPA};
	uint32_t l[] = {sizeof(*h), VIRTIO_BLK_ID_BYTES, 1};
	bool w[] = {false, true, true};
	struct h_flood fl;
	uint16_t first, second;

	h->type = VIRTIO_BLK_T_GET_ID;
	h->ioprio = 0;
	h->sector = 0;
	/* Below 65536 so the 16-bit used index cannot wrap past what it measures. */
	h_flood_start(&fl, &f->q, h_add_chain(&f->q, 3, a, l, w), 60000);
	h_kick(f->d, 0);
	first = h_used_idx(&f->q);
	h_flood_stop(&fl);
	assert_int_equal(first, VIRTIO_BUDGET_CHAINS);
	h_loop_round(f->d);
	second = h_used_idx(&f->q);
	assert_int_equal((uint16_t)(second - first), VIRTIO_BUDGET_CHAINS);
	assert_false(h_needs_reset(f->d));
}

/* ------------------------------------------------------------------ qcow2 drives */

#define Q_SIZE (4u << 20) /* 4 MiB of 4 KiB clusters */

/* A qcow2 image whose first DISK_SECTORS sectors hold their own number, as the raw
 * fixture's do, made by vmm/disk (qemu-img may be absent). */
static int setup_qcow2(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct disk_create_opts o = {.size = Q_SIZE, .cluster_bits = 12};
	uint8_t sector[512];
	struct disk *disk;
	char err[256];

	snprintf(f->path, sizeof(f->path), "/tmp/thaw-test-blkq-XXXXXX");
	f->fd = mkstemp(f->path);
	assert_true(f->fd >= 0);
	close(f->fd);
	unlink(f->path);
	assert_int_equal(disk_create_qcow2(f->path, &o, err, sizeof(err)), 0);
	assert_int_equal(disk_open(f->path, false, &disk, err, sizeof(err)), 0);
	for (unsigned s = 0; s < DISK_SECTORS; s++) {
		memset(sector, (int)s, sizeof(sector));
		assert_int_equal(disk_write(disk, s * 512, sector, 512), 0);
	}
	disk_close(disk);
	f->fd = open(f->path, O_RDONLY);
	attach(f, f->path, false);
	f->qcow2 = true;
	f->sectors = Q_SIZE / 512;
	*state = f;
	return 0;
}

/* What the image reads at `off`, through vmm/disk on a second, read-only handle. */
static void image_read(struct fx *f, uint64_t off, void *buf, size_t len)
{
	struct disk *disk;
	char err[256];

	assert_int_equal(disk_open(f->path, true, &disk, err, sizeof(err)), 0);
	assert_int_equal(disk_read(disk, off, buf, len), 0);
	disk_close(disk);
}

static bool qemu_img(void)
{
	if (system("command -v qemu-img >/dev/null 2>&1") == 0)
		return true;
	fprintf(stderr, "*** qemu-img missing (`make deps` installs qemu-utils): the image is "
			"judged by vmm/disk's own check only ***\n");
	return false;
}

/* The image passes `qemu-img check` (and vmm/disk's check). */
static void assert_image_consistent(struct fx *f)
{
	struct disk_check_result r;
	struct disk *disk;
	char err[256], cmd[256];

	assert_int_equal(disk_open(f->path, true, &disk, err, sizeof(err)), 0);
	assert_int_equal(disk_check(disk, &r, NULL, NULL), 0);
	assert_int_equal(r.corruptions, 0);
	assert_int_equal(r.leaks, 0);
	disk_close(disk);
	if (qemu_img()) {
		snprintf(cmd, sizeof(cmd), "qemu-img check -q %s", f->path);
		assert_int_equal(system(cmd), 0);
	}
}

static void test_qcow2_drive_reads_writes_and_flushes(void **state)
{
	struct fx *f = *state;
	uint8_t st, got[8192], want[8192];
	uint32_t used;
	uint64_t cap;

	/* The guest sees the image's virtual size. */
	cap = h_rd(f->d, VIRTIO_MMIO_CONFIG) | (uint64_t)h_rd(f->d, VIRTIO_MMIO_CONFIG + 4) << 32;
	assert_int_equal(cap, Q_SIZE / 512);
	/* Allocated clusters: through the ring. */
	used = request(f, VIRTIO_BLK_T_IN, 5, 1024, &st);
	assert_int_equal(st, VIRTIO_BLK_S_OK);
	assert_int_equal(used, 1025);
	memset(want, 5, 512);
	memset(want + 512, 6, 512);
	assert_memory_equal(h_ptr(f->vm, DATA_GPA), want, 1024);
	memset(h_ptr(f->vm, DATA_GPA), 0xab, 1536);
	request(f, VIRTIO_BLK_T_OUT, 10, 1536, &st);
	assert_int_equal(st, VIRTIO_BLK_S_OK);
	/* Unallocated: reads zeros; a first write allocates (and spans two clusters). */
	memset(h_ptr(f->vm, DATA_GPA), 0x77, 8192);
	request(f, VIRTIO_BLK_T_IN, 2048, 8192, &st);
	assert_int_equal(st, VIRTIO_BLK_S_OK);
	memset(want, 0, sizeof(want));
	assert_memory_equal(h_ptr(f->vm, DATA_GPA), want, 8192);
	memset(h_ptr(f->vm, DATA_GPA), 0xcd, 8192);
	request(f, VIRTIO_BLK_T_OUT, 2048 + 4, 8192, &st);
	assert_int_equal(st, VIRTIO_BLK_S_OK);
	request(f, VIRTIO_BLK_T_FLUSH, 0, 0, &st);
	assert_int_equal(st, VIRTIO_BLK_S_OK);

	image_read(f, 10 * 512, got, 1536);
	memset(want, 0xab, 1536);
	assert_memory_equal(got, want, 1536);
	image_read(f, 13 * 512, got, 1);
	assert_int_equal(got[0], 13);
	image_read(f, 2048 * 512, got, sizeof(got));
	memset(want, 0, 2048);
	memset(want + 2048, 0xcd, sizeof(want) - 2048);
	assert_memory_equal(got, want, sizeof(got));
	assert_image_consistent(f);
}

/* Many requests at once, reads and first writes mixed, then compared with qemu-img
 * against a raw file holding the same writes. */
static void test_qcow2_drive_matches_a_raw_file_with_the_same_writes(void **state)
{
	struct fx *f = *state;
	char raw[] = "/tmp/thaw-test-blkq-raw-XXXXXX", cmd[256];
	uint8_t st, sector[512];
	int rfd = mkstemp(raw);

	assert_true(rfd >= 0);
	assert_int_equal(ftruncate(rfd, Q_SIZE), 0);
	for (unsigned s = 0; s < DISK_SECTORS; s++) {
		memset(sector, (int)s, sizeof(sector));
		assert_int_equal(pwrite(rfd, sector, 512, s * 512), 512);
	}
	for (unsigned i = 0; i < 60; i++) {
		uint64_t h = (i + 1) * 0x9e3779b97f4a7c15ull;
		uint32_t len = 512 * (uint32_t)(1 + (h >> 5) % 24);
		uint64_t sec = (h >> 17) % (Q_SIZE / 512 - len / 512);
		uint8_t *data = h_ptr(f->vm, DATA_GPA);

		for (uint32_t k = 0; k < len; k++)
			data[k] = (uint8_t)(i * 31 + k / 512);
		request(f, VIRTIO_BLK_T_OUT, sec, len, &st);
		assert_int_equal(st, VIRTIO_BLK_S_OK);
		assert_int_equal(pwrite(rfd, data, len, (off_t)(sec * 512)), (ssize_t)len);
		request(f, VIRTIO_BLK_T_IN, sec, len, &st);
		assert_int_equal(st, VIRTIO_BLK_S_OK);
		for (uint32_t k = 0; k < len; k++)
			assert_int_equal(data[k], (uint8_t)(i * 31 + k / 512));
	}
	close(rfd);
	request(f, VIRTIO_BLK_T_FLUSH, 0, 0, &st);
	assert_int_equal(st, VIRTIO_BLK_S_OK);
	assert_image_consistent(f);
	if (qemu_img()) {
		snprintf(cmd, sizeof(cmd), "qemu-img compare -q %s %s", f->path, raw);
		assert_int_equal(system(cmd), 0);
	}
	unlink(raw);
}

/* A flush in the same notification as reads the ring is doing: the reads complete
 * first (the flush may free clusters), nothing waits on what is not submitted. */
static void test_qcow2_flush_behind_ring_reads_in_one_batch(void **state)
{
	struct fx *f = *state;
	struct virtio_blk_outhdr *hs = h_ptr(f->vm, HDR_GPA);
	uint32_t id, used, seen = 0;

	for (unsigned i = 0; i < 4; i++) {
		uint64_t a[] = {HDR_GPA + i * 16, DATA_GPA + i * 512, STATUS_GPA + i};
		uint32_t l[] = {16, 512, 1};
		bool w[] = {false, true, true};

		hs[i] = (struct virtio_blk_outhdr){.type = VIRTIO_BLK_T_IN, .sector = 20 + i};
		h_publish(&f->q, h_add_chain(&f->q, 3, a, l, w));
	}
	{
		uint64_t a[] = {HDR_GPA + 4 * 16, STATUS_GPA + 4};
		uint32_t l[] = {16, 1};
		bool w[] = {false, true};

		hs[4] = (struct virtio_blk_outhdr){.type = VIRTIO_BLK_T_FLUSH};
		h_publish(&f->q, h_add_chain(&f->q, 2, a, l, w));
	}
	h_kick(f->d, 0);
	assert_int_equal(virtio_quiesce(f->vm), 0);
	while (h_take_used(&f->q, &id, &used))
		seen++;
	assert_int_equal(seen, 5);
	for (unsigned i = 0; i < 5; i++)
		assert_int_equal(*(uint8_t *)h_ptr(f->vm, STATUS_GPA + i), VIRTIO_BLK_S_OK);
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(*(uint8_t *)h_ptr(f->vm, DATA_GPA + i * 512 + 100), 20 + i);
}

struct kick_arg {
	struct virtio_dev *d;
};

static void *kick_thread(void *opaque)
{
	struct kick_arg *k = opaque;

	h_kick(k->d, 0);
	return NULL;
}

/* A notification on another thread (a vCPU's, without an ioeventfd) is served by the
 * main loop: no qcow2 work on a thread whose seccomp filter does not allow it. */
static void test_qcow2_notify_from_a_vcpu_thread_is_served_by_the_main_loop(void **state)
{
	struct fx *f = *state;
	struct kick_arg k = {f->d};
	uint32_t id, used;
	pthread_t t;

	publish_read(f, 9);
	assert_int_equal(pthread_create(&t, NULL, kick_thread, &k), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_false(h_take_used(&f->q, &id, &used)); /* not served on that thread */
	loop_completes_read(f, 9);
}

/* The format is the host's business (the guest sees the same device): a drive saved
 * on a raw file restores onto a qcow2 overlay over that file, as a clone with its own
 * overlay does, and reads the same data. */
static void test_raw_drive_restores_onto_a_qcow2_overlay_of_its_file(void **state)
{
	struct fx *f = *state;
	char top[96], err[256];
	struct disk_create_opts o = {.backing_fmt = DISK_FMT_RAW, .no_sync = true};
	struct virtio_saved s;
	uint8_t st;

	request(f, VIRTIO_BLK_T_IN, 0, 512, &st);
	h_file_roundtrip(f->d, &s);
	assert_false(s.dev.blk.qcow2);
	snprintf(top, sizeof(top), "%s.clone.qcow2", f->path);
	o.backing = f->path; /* absolute */
	assert_int_equal(disk_create_qcow2(top, &o, err, sizeof(err)), 0);
	{
		struct vm *old = f->vm;
		struct vm_config cfg = {.nr_drives = 1};
		char spec[200];

		f->vm = h_vm_new(H_MEM_SIZE);
		memcpy(h_ptr(f->vm, 0), h_ptr(old, 0), H_MEM_SIZE);
		h_vm_free(old);
		f->q.vm = f->vm; /* the driver's rings, now in the new VM's memory */
		snprintf(spec, sizeof(spec), "id=disk0,path=%s,ro=off", top);
		assert_int_equal(h_parse_drive(spec, &cfg.drives[0]), 0);
		assert_int_equal(vmm_devices_attach(f->vm, &cfg, NULL, 0), 0);
		f->d = virtio_get(f->vm, 0);
		assert_int_equal(virtio_restore(f->d, &s), 0);
	}
	/* The clone's writes go to its overlay; the base file keeps sector 3's 3s. */
	memset(h_ptr(f->vm, DATA_GPA), 0xee, 512);
	request(f, VIRTIO_BLK_T_OUT, 3, 512, &st);
	assert_int_equal(st, VIRTIO_BLK_S_OK);
	request(f, VIRTIO_BLK_T_IN, 2, 1024, &st);
	assert_int_equal(st, VIRTIO_BLK_S_OK);
	assert_int_equal(*(uint8_t *)h_ptr(f->vm, DATA_GPA), 2);
	assert_int_equal(*(uint8_t *)h_ptr(f->vm, DATA_GPA + 512), 0xee);
	assert_int_equal(pread(f->fd, &st, 1, 3 * 512), 1);
	assert_int_equal(st, 3);
	unlink(top);
}

/* A qcow2 image over a raw backing file: reads fall through, a partial write copies
 * the rest of the cluster from the backing file, the backing file is unchanged. */
static void test_qcow2_overlay_drive_leaves_its_backing_file_alone(void **state)
{
	struct fx *f = *state;
	char dir[] = "/tmp/thaw-test-blkq-dir-XXXXXX", base[96], top[96], spec[200], err[256];
	struct disk_create_opts o = {.backing = "base.raw", .backing_fmt = DISK_FMT_RAW};
	struct vm *vm;
	uint8_t st, got[4096];
	int fd;

	assert_non_null(mkdtemp(dir));
	snprintf(base, sizeof(base), "%s/base.raw", dir);
	snprintf(top, sizeof(top), "%s/top.qcow2", dir);
	fd = open(base, O_RDWR | O_CREAT, 0644);
	memset(got, 0x42, sizeof(got));
	for (unsigned i = 0; i < 256; i++)
		assert_int_equal(pwrite(fd, got, sizeof(got), i * 4096), 4096);
	close(fd);
	assert_int_equal(disk_create_qcow2(top, &o, err, sizeof(err)), 0);
	attach(f, top, false);
	vm = f->vm;
	request(f, VIRTIO_BLK_T_IN, 100, 512, &st);
	assert_int_equal(st, VIRTIO_BLK_S_OK);
	assert_int_equal(*(uint8_t *)h_ptr(vm, DATA_GPA + 100), 0x42);
	memset(h_ptr(vm, DATA_GPA), 0x99, 512);
	request(f, VIRTIO_BLK_T_OUT, 9, 512, &st);
	assert_int_equal(st, VIRTIO_BLK_S_OK);
	request(f, VIRTIO_BLK_T_IN, 8, 1024, &st);
	assert_int_equal(*(uint8_t *)h_ptr(vm, DATA_GPA), 0x42);
	assert_int_equal(*(uint8_t *)h_ptr(vm, DATA_GPA + 512), 0x99);
	fd = open(base, O_RDONLY);
	assert_int_equal(pread(fd, got, 512, 9 * 512), 512);
	assert_int_equal(got[0], 0x42);
	close(fd);
	snprintf(spec, sizeof(spec), "rm -rf %s", dir);
	assert_int_equal(system(spec), 0);
}

/* Under --snapshot-paths DIR a qcow2 drive's backing file is looked up beneath DIR as
 * the drive itself is: one that names a file outside is refused. */
static void test_qcow2_backing_file_outside_the_paths_dir_is_refused(void **state)
{
	struct fx *f = *state;
	char dir[] = "/tmp/thaw-test-blkq-jail-XXXXXX", path[160], cmd[200], err[256];
	struct disk_create_opts in = {.backing = "base.raw", .backing_fmt = DISK_FMT_RAW};
	struct disk_create_opts out = {.backing = "../outside.raw", .backing_fmt = DISK_FMT_RAW};
	struct vm_config cfg = {.nr_drives = 1};
	struct vm *vm;
	int fd;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/base.raw", dir);
	fd = open(path, O_RDWR | O_CREAT, 0644);
	assert_int_equal(ftruncate(fd, 1 << 20), 0);
	close(fd);
	snprintf(path, sizeof(path), "%s/../outside.raw", dir);
	fd = open(path, O_RDWR | O_CREAT, 0644);
	assert_int_equal(ftruncate(fd, 1 << 20), 0);
	close(fd);
	snprintf(path, sizeof(path), "%s/in.qcow2", dir);
	assert_int_equal(disk_create_qcow2(path, &in, err, sizeof(err)), 0);
	snprintf(path, sizeof(path), "%s/out.qcow2", dir);
	assert_int_equal(disk_create_qcow2(path, &out, err, sizeof(err)), 0);
	cfg.paths_dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	cfg.paths_dir = dir;
	assert_true(cfg.paths_dirfd >= 0);
	assert_int_equal(h_parse_drive("id=disk0,path=in.qcow2,ro=off", &cfg.drives[0]), 0);
	cfg.drives[0].beneath = true;
	vm = h_vm_new(H_MEM_SIZE);
	assert_int_equal(vmm_devices_attach(vm, &cfg, NULL, 0), 0);
	h_vm_free(vm);
	assert_int_equal(h_parse_drive("id=disk0,path=out.qcow2,ro=off", &cfg.drives[0]), 0);
	cfg.drives[0].beneath = true;
	vm = h_vm_new(H_MEM_SIZE);
	assert_int_equal(vmm_devices_attach(vm, &cfg, NULL, 0), -EXDEV);
	h_vm_free(vm);
	close(cfg.paths_dirfd);
	snprintf(cmd, sizeof(cmd), "rm -rf %s %s/../outside.raw", dir, dir);
	assert_int_equal(system(cmd), 0);
	(void)f;
}

/* A raw drive found raw by its magic: the guest may not turn it into a qcow2 image
 * (whose header could name any file as its backing file). */
static void test_raw_drive_refuses_a_qcow2_header_at_sector_0(void **state)
{
	struct fx *f = *state;
	uint8_t st, got[4];

	memcpy(h_ptr(f->vm, DATA_GPA), "QFI\xfb", 4);
	request(f, VIRTIO_BLK_T_OUT, 0, 512, &st);
	assert_int_equal(st, VIRTIO_BLK_S_IOERR);
	assert_int_equal(pread(f->fd, got, 4, 0), 4);
	assert_int_equal(got[0], 0);
	/* Elsewhere it is data like any other. */
	request(f, VIRTIO_BLK_T_OUT, 1, 512, &st);
	assert_int_equal(st, VIRTIO_BLK_S_OK);
}

int main(void)
{
#define RW(fn) cmocka_unit_test_setup_teardown(fn, setup_rw, teardown)
#define RO(fn) cmocka_unit_test_setup_teardown(fn, setup_ro, teardown)
#define Q(fn)  cmocka_unit_test_setup_teardown(fn, setup_qcow2, teardown)
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
	    RW(test_file_roundtrip_restores_a_new_device),
	    RW(test_flood_gets_a_budget_per_notification),

	    RW(test_reopen_to_another_file_reads_the_new_one),
	    RW(test_media_change_to_a_larger_file),
	    RW(test_failed_media_change_keeps_the_old_file),
	    RW(test_rate_limit_is_saved_with_the_drive),
	    RW(test_raw_drive_refuses_a_qcow2_header_at_sector_0),
	    RW(test_qcow2_backing_file_outside_the_paths_dir_is_refused),
	    Q(test_qcow2_drive_reads_writes_and_flushes),
	    Q(test_qcow2_drive_matches_a_raw_file_with_the_same_writes),
	    Q(test_qcow2_notify_from_a_vcpu_thread_is_served_by_the_main_loop),
	    Q(test_qcow2_flush_behind_ring_reads_in_one_batch),
	    Q(test_file_roundtrip_restores_a_new_device),
	    RW(test_raw_drive_restores_onto_a_qcow2_overlay_of_its_file),
	    Q(test_qcow2_overlay_drive_leaves_its_backing_file_alone),
	    cmocka_unit_test_setup_teardown(test_stress_scattered_io_touches_only_its_buffers,
					    setup_big, teardown),
	    cmocka_unit_test_setup_teardown(test_more_pieces_than_seg_max_fail_untouched, setup_big,
					    teardown),
	};

	return cmocka_run_group_tests_name("virtio-blk", tests, NULL, NULL);
}
