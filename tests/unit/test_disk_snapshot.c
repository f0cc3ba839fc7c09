/* Internal snapshots: create, list, revert, delete, each image judged by qemu-img
 * (check, snapshot -l, compare against a raw file), snapshots made by qemu-img read
 * by thaw and the other way round, and create/delete cycles that do not grow the image. */
#include "tests/unit/test_disk_harness.h"

#define MIB  (1ull << 20)
#define SIZE (8 * MIB)

/* Fills [off, off+len) with a pattern of `seed`, in thaw's image and the raw copy. */
static void put(struct disk *d, int raw, uint64_t off, size_t len, uint64_t seed)
{
	uint8_t *b = malloc(len);

	fill(b, len, seed);
	assert_int_equal(disk_write(d, off, b, len), 0);
	if (raw >= 0)
		assert_int_equal(pwrite(raw, b, len, (off_t)off), (ssize_t)len);
	free(b);
}

/* The state `seed` of the whole disk: a few scattered writes. */
static void state(struct disk *d, int raw, uint64_t seed)
{
	put(d, raw, 0, 4096, seed);
	put(d, raw, 1 * MIB + 512, 70000 & ~511u, seed + 1);
	put(d, raw, 5 * MIB, 256 * 1024, seed + 2);
}

static void assert_same_as_raw(struct disk *d, const char *raw_path)
{
	uint8_t *a = malloc(SIZE), *b = malloc(SIZE);
	int fd = open(raw_path, O_RDONLY);

	assert_int_equal(disk_read(d, 0, a, SIZE), 0);
	assert_int_equal(pread(fd, b, SIZE, 0), (ssize_t)SIZE);
	assert_memory_equal(a, b, SIZE);
	close(fd);
	free(a);
	free(b);
}

/* qemu-img's verdict on `img`: consistent, equal to the raw file `ref`, and its
 * snapshot list holding the names in `listed` and none of `gone` (NULL-ended). */
static void judged(const char *img, const char *ref, const char *const *listed,
		   const char *const *gone)
{
	char out[4096];

	assert_int_equal(qemu_check(img), 0);
	assert_int_equal(qemu_compare(img, ref), 0);
	assert_int_equal(sh_out(out, sizeof(out), "qemu-img snapshot -l %s", img), 0);
	for (; listed && *listed; listed++)
		assert_non_null(strstr(out, *listed));
	for (; gone && *gone; gone++)
		assert_null(strstr(out, *gone));
}

static void test_create_revert_delete_judged_by_qemu_img(void **st)
{
	struct dfx *f = *st;
	const char *img = P(f, 0, "s.qcow2"), *r1 = P(f, 1, "s1.raw"), *r2 = P(f, 2, "s2.raw");
	struct disk *d;
	int raw;

	REQUIRE_QEMU_IMG();
	assert_int_equal(
	    sh("qemu-img create -f qcow2 %s 8M && qemu-img create -f raw %s 8M", img, r1), 0);
	d = open_rw(f, img);
	raw = open(r1, O_RDWR);
	state(d, raw, 10);
	close(raw);
	assert_int_equal(disk_snapshot_create(d, "first"), 0);
	assert_int_equal(disk_snapshot_create(d, "first"), -EEXIST);
	assert_int_equal(sh("cp %s %s", r1, r2), 0);
	raw = open(r2, O_RDWR);
	state(d, raw, 20); /* after the snapshot: COW of shared clusters and L2 tables */
	close(raw);
	assert_int_equal(disk_snapshot_create(d, "second"), 0);
	disk_close(d);

	judged(img, r2, (const char *const[]){"first", "second", NULL}, NULL);
	/* qemu-img reads the snapshot's contents as thaw wrote them. */
	assert_int_equal(
	    sh("qemu-img convert -l snapshot.name=first -O raw %s %s/first.raw", img, f->dir), 0);
	assert_int_equal(sh("cmp %s %s/first.raw", r1, f->dir), 0);

	d = open_rw(f, img);
	assert_int_equal(disk_snapshot_count(d), 2);
	assert_string_equal(disk_snapshot_get(d, 0)->name, "first");
	assert_string_equal(disk_snapshot_get(d, 1)->id, "2");
	assert_int_equal(disk_snapshot_revert(d, "first"), 0);
	assert_same_as_raw(d, r1);
	assert_int_equal(disk_snapshot_revert(d, "nope"), -ENOENT);
	disk_close(d);
	judged(img, r1, (const char *const[]){"first", "second", NULL}, NULL);

	d = open_rw(f, img);
	assert_int_equal(disk_snapshot_delete(d, "first"), 0);
	assert_int_equal(disk_snapshot_count(d), 1);
	assert_same_as_raw(d, r1); /* the active image keeps what it had */
	disk_close(d);
	judged(img, r1, (const char *const[]){"second", NULL},
	       (const char *const[]){"first", NULL});

	d = open_rw(f, img);
	assert_int_equal(disk_snapshot_revert(d, "2"), 0); /* by id */
	assert_same_as_raw(d, r2);
	assert_int_equal(disk_snapshot_delete(d, "second"), 0);
	disk_close(d);
	judged(img, r2, NULL, (const char *const[]){"first", "second", NULL});
}

static void test_snapshots_made_by_qemu_img_revert_and_delete(void **st)
{
	struct dfx *f = *st;
	const char *img = P(f, 0, "q.qcow2"), *ref = P(f, 1, "q.raw");
	struct disk *d;

	REQUIRE_QEMU_IMG();
	assert_int_equal(
	    sh("qemu-img create -f qcow2 %s 8M && qemu-io -c 'write -P 0x21 0 1M' %s "
	       "&& qemu-img snapshot -c qsnap %s && qemu-io -c 'write -P 0x42 512k 1M' "
	       "%s",
	       img, img, img, img),
	    0);
	assert_int_equal(
	    sh("qemu-img create -f raw %s 8M && qemu-io -f raw -c 'write -P 0x21 0 1M' "
	       "%s",
	       ref, ref),
	    0);
	d = open_rw(f, img);
	assert_int_equal(disk_snapshot_count(d), 1);
	assert_string_equal(disk_snapshot_get(d, 0)->name, "qsnap");
	assert_int_equal(disk_snapshot_get(d, 0)->disk_size, SIZE);
	assert_int_equal(disk_snapshot_revert(d, "qsnap"), 0);
	assert_same_as_raw(d, ref);
	disk_close(d);
	assert_int_equal(qemu_check(img), 0);
	d = open_rw(f, img);
	assert_int_equal(disk_snapshot_delete(d, "qsnap"), 0);
	disk_close(d);
	assert_int_equal(qemu_check(img), 0);
	assert_int_equal(qemu_compare(img, ref), 0);
	/* qemu-img takes over an image thaw changed: a snapshot of its own on top. */
	assert_int_equal(sh("qemu-img snapshot -c again %s", img), 0);
	assert_int_equal(qemu_check(img), 0);
}

/* One cycle of `revert` (true: write, revert to "base"; false: snapshot, write,
 * delete the snapshot) on `d`, cycle number `i`. */
static void cycle(struct disk *d, bool revert, unsigned i)
{
	char name[16];

	if (revert) {
		state(d, -1, 50 + i);
		assert_int_equal(disk_snapshot_revert(d, "base"), 0);
		return;
	}
	snprintf(name, sizeof(name), "c%u", i);
	assert_int_equal(disk_snapshot_create(d, name), 0);
	state(d, -1, 100 + i);
	assert_int_equal(disk_snapshot_delete(d, name), 0);
}

/* Twelve cycles, the file size after each: freed clusters are reused, so the file
 * stops growing after the first cycles. */
static void cycles_do_not_grow(struct dfx *f, bool revert)
{
	const char *img = P(f, 0, "c.qcow2");
	uint64_t after[12];
	struct disk *d;

	REQUIRE_QEMU_IMG();
	assert_int_equal(sh("qemu-img create -f qcow2 %s 8M", img), 0);
	d = open_rw(f, img);
	state(d, -1, 1);
	if (revert)
		assert_int_equal(disk_snapshot_create(d, "base"), 0);
	for (unsigned i = 0; i < 12; i++) {
		cycle(d, revert, i);
		assert_int_equal(disk_flush(d), 0);
		after[i] = file_size(img);
	}
	disk_close(d);
	assert_int_equal(qemu_check(img), 0);
	for (unsigned i = 3; i < 12; i++)
		assert_int_equal(after[i], after[2]);
}

/* Each cycle takes a snapshot, rewrites the data (COW) and deletes the snapshot. */
static void test_create_delete_cycles_do_not_grow_the_image(void **st)
{
	cycles_do_not_grow(*st, false);
}

/* Reverting drops the active tree: revert cycles do not grow the image either. */
static void test_revert_cycles_do_not_grow_the_image(void **st)
{
	cycles_do_not_grow(*st, true);
}

/* A snapshot of an overlay: clusters still in the backing file stay there. */
static void test_snapshot_of_an_overlay(void **st)
{
	struct dfx *f = *st;
	const char *base = P(f, 0, "b.raw"), *top = P(f, 1, "t.qcow2"), *ref = P(f, 2, "r.raw");
	struct disk_create_opts o = {.backing = "b.raw", .backing_fmt = DISK_FMT_RAW};
	struct disk *d;
	int raw;

	REQUIRE_QEMU_IMG();
	assert_int_equal(sh("qemu-img create -f raw %s 8M && qemu-io -f raw -c 'write -P 9 0 8M' "
			    "%s && cp %s %s",
			    base, base, base, ref),
			 0);
	assert_int_equal(disk_create_qcow2(top, &o, f->err, sizeof(f->err)), 0);
	d = open_rw(f, top);
	raw = open(ref, O_RDWR);
	state(d, raw, 5);
	close(raw);
	assert_int_equal(disk_snapshot_create(d, "s"), 0);
	state(d, -1, 6);
	assert_int_equal(disk_snapshot_revert(d, "s"), 0);
	assert_same_as_raw(d, ref);
	disk_close(d);
	assert_int_equal(qemu_check(top), 0);
	assert_int_equal(qemu_compare(top, ref), 0);
}

/* 1-bit refcounts cannot count a second reference, 2-bit ones three: the snapshot that
 * would overflow one is refused before anything changes, and the image stays clean. */
static void test_refcount_overflow_is_refused_cleanly(void **st)
{
	struct dfx *f = *st;
	const char *img = P(f, 0, "o.qcow2");
	struct disk *d;

	REQUIRE_QEMU_IMG();
	assert_int_equal(sh("qemu-img create -f qcow2 -o refcount_bits=1 %s 8M", img), 0);
	d = open_rw(f, img);
	state(d, -1, 1);
	assert_int_equal(disk_snapshot_create(d, "one"), -EMLINK);
	assert_non_null(strstr(disk_error(d), "refcount_bits=1"));
	assert_int_equal(disk_snapshot_count(d), 0);
	disk_close(d);
	assert_int_equal(qemu_check(img), 0);
	sh("rm -f %s", img);
	assert_int_equal(sh("qemu-img create -f qcow2 -o refcount_bits=2 %s 8M", img), 0);
	d = open_rw(f, img);
	state(d, -1, 1);
	assert_int_equal(disk_snapshot_create(d, "one"), 0);
	assert_int_equal(disk_snapshot_create(d, "two"), 0);
	assert_int_equal(disk_snapshot_create(d, "three"), -EMLINK);
	assert_int_equal(disk_snapshot_revert(d, "one"), -EMLINK); /* 3 + 1 as well */
	assert_int_equal(disk_snapshot_delete(d, "two"), 0);
	assert_int_equal(disk_snapshot_revert(d, "one"), 0);
	disk_close(d);
	assert_int_equal(qemu_check(img), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, dfx_setup, dfx_teardown)
	    T(test_create_revert_delete_judged_by_qemu_img),
	    T(test_snapshots_made_by_qemu_img_revert_and_delete),
	    T(test_create_delete_cycles_do_not_grow_the_image),
	    T(test_revert_cycles_do_not_grow_the_image),
	    T(test_snapshot_of_an_overlay),
	    T(test_refcount_overflow_is_refused_cleanly),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
