/* The qcow2 module against images made by qemu-img, every image thaw wrote judged by
 * `qemu-img check` and `qemu-img compare` against a raw file holding the same writes:
 * reads, writes (allocation, COW, L2 and refcount updates), refcount widths, small
 * clusters (refcount table growth), backing chains, overlays in constant space,
 * hostile and unsupported images refused by name. */
#include "tests/unit/test_disk_harness.h"

#define MIB (1ull << 20)

/* The same writes to a qcow2 image (through thaw) and to a raw file. */
static void write_both(struct disk *d, int raw, uint64_t off, size_t len, uint64_t seed)
{
	uint8_t *b = malloc(len);

	fill(b, len, seed);
	assert_int_equal(disk_write(d, off, b, len), 0);
	assert_int_equal(pwrite(raw, b, len, (off_t)off), (ssize_t)len);
	free(b);
}

/* A deterministic mix of writes: single sectors, cluster-crossing, whole clusters,
 * several clusters, rewrites of what was written before. */
static void write_mix(struct disk *d, int raw, uint64_t size, unsigned n, uint64_t seed)
{
	for (unsigned i = 0; i < n; i++) {
		uint64_t h = (seed + i) * 0x9e3779b97f4a7c15ull;
		size_t len = 512 * (1 + (h >> 7) % 300);
		uint64_t off = ((h >> 23) % (size / 512)) * 512;

		if (off + len > size)
			off = size - len;
		write_both(d, raw, off, len, seed + i);
	}
}

static int make_raw(const char *path, uint64_t size)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	return fd;
}

static void test_reads_what_qemu_io_wrote(void **state)
{
	struct dfx *f = *state;
	const char *img = P(f, 0, "a.qcow2");
	uint8_t buf[4096], want[4096];
	struct disk *d;

	REQUIRE_QEMU_IMG();
	assert_int_equal(sh("qemu-img create -f qcow2 %s 16M", img), 0);
	assert_int_equal(sh("qemu-io -c 'write -P 0xab 65024 4096' -c 'write -z 1M 64k' "
			    "-c 'write -P 0x11 3M 512' %s",
			    img),
			 0);
	d = open_rw(f, img);
	assert_int_equal(disk_format(d), DISK_FMT_QCOW2);
	assert_int_equal(disk_size(d), 16 * MIB);
	assert_int_equal(disk_read(d, 65024, buf, sizeof(buf)), 0);
	memset(want, 0xab, sizeof(want));
	assert_memory_equal(buf, want, sizeof(buf));
	assert_int_equal(disk_read(d, 3 * MIB - 512, buf, 2048), 0);
	memset(want, 0, 512);
	memset(want + 512, 0x11, 512);
	memset(want + 1024, 0, 1024);
	assert_memory_equal(buf, want, 2048);
	assert_int_equal(disk_read(d, 1 * MIB, buf, sizeof(buf)), 0);
	memset(want, 0, sizeof(want));
	assert_memory_equal(buf, want, sizeof(buf));
	disk_close(d);
}

static void writes_match_raw(struct dfx *f, const char *create_opts, unsigned n)
{
	const char *img = P(f, 0, "w.qcow2"), *ref = P(f, 1, "w.raw");
	uint64_t size = 24 * MIB;
	struct disk *d;
	int raw;

	assert_int_equal(sh("qemu-img create -f qcow2 %s %s 24M", create_opts, img), 0);
	raw = make_raw(ref, size);
	d = open_rw(f, img);
	write_mix(d, raw, size, n, 1);
	assert_int_equal(disk_flush(d), 0);
	write_mix(d, raw, size, n, 1000); /* rewrites in place, more allocation */
	disk_close(d);
	close(raw);
	assert_int_equal(qemu_check(img), 0);
	assert_int_equal(qemu_compare(img, ref), 0);
	/* And thaw's own check agrees. */
	{
		struct disk_check_result r;

		assert_int_equal(disk_open(img, true, &d, f->err, sizeof(f->err)), 0);
		assert_int_equal(disk_check(d, &r, NULL, NULL), 0);
		assert_int_equal(r.corruptions, 0);
		assert_int_equal(r.leaks, 0);
		disk_close(d);
	}
}

static void test_writes_pass_check_and_compare_equal_to_raw(void **state)
{
	REQUIRE_QEMU_IMG();
	writes_match_raw(*state, "", 200);
}

static void test_refcount_widths_1_8_64_bits(void **state)
{
	REQUIRE_QEMU_IMG();
	writes_match_raw(*state, "-o refcount_bits=1", 60);
	sh("rm -f %s/w.*", ((struct dfx *)*state)->dir);
	writes_match_raw(*state, "-o refcount_bits=8", 60);
	sh("rm -f %s/w.*", ((struct dfx *)*state)->dir);
	writes_match_raw(*state, "-o refcount_bits=64", 60);
}

/* 512-byte clusters: one refcount block covers 128 KiB, the first table 8 MiB, so
 * 24 MiB of writes grow the refcount table more than once. */
static void test_small_clusters_grow_the_refcount_table(void **state)
{
	struct dfx *f = *state;
	const char *img = P(f, 0, "w.qcow2");
	char out[256];

	REQUIRE_QEMU_IMG();
	writes_match_raw(f, "-o cluster_size=512", 400);
	assert_int_equal(sh_out(out, sizeof(out),
				"qemu-img info --output=json %s | grep -c '\"cluster-size\": 512'",
				img),
			 0);
}

static void test_zero_and_unallocated_clusters_read_as_zeros_and_take_writes(void **state)
{
	struct dfx *f = *state;
	const char *img = P(f, 0, "z.qcow2"), *ref = P(f, 1, "z.raw");
	struct disk *d;
	int raw;

	REQUIRE_QEMU_IMG();
	assert_int_equal(sh("qemu-img create -f qcow2 %s 8M", img), 0);
	/* A preallocated zero cluster (write -z after data keeps its offset) and a plain one. */
	assert_int_equal(sh("qemu-io -c 'write -P 0x5a 0 128k' -c 'write -z 0 64k' "
			    "-c 'write -z 1M 64k' %s",
			    img),
			 0);
	raw = make_raw(ref, 8 * MIB);
	{
		uint8_t b[65536];

		memset(b, 0x5a, sizeof(b));
		assert_int_equal(pwrite(raw, b, sizeof(b), 65536), (ssize_t)sizeof(b));
	}
	d = open_rw(f, img);
	write_both(d, raw, 512, 1024, 7);	    /* into the zero cluster */
	write_both(d, raw, 1 * MIB + 4096, 512, 8); /* into the plain zero cluster */
	write_both(d, raw, 70000 & ~511u, 512, 9);  /* into the data cluster */
	disk_close(d);
	close(raw);
	assert_int_equal(qemu_check(img), 0);
	assert_int_equal(qemu_compare(img, ref), 0);
}

/* raw base <- qcow2 made by qemu-img <- qcow2 made by thaw: reads fall through, a
 * partial write copies the rest of its cluster from below. */
static void test_backing_chain_raw_qcow2_qcow2(void **state)
{
	struct dfx *f = *state;
	const char *base = P(f, 0, "base.raw"), *mid = P(f, 1, "mid.qcow2");
	const char *top = P(f, 2, "top.qcow2"), *ref = P(f, 3, "ref.raw");
	struct disk_create_opts o = {.backing = "mid.qcow2", .backing_fmt = DISK_FMT_QCOW2};
	uint8_t *b = malloc(8 * MIB);
	struct disk *d;
	int raw;

	REQUIRE_QEMU_IMG();
	raw = make_raw(base, 8 * MIB);
	fill(b, 8 * MIB, 42);
	assert_int_equal(pwrite(raw, b, 8 * MIB, 0), (ssize_t)(8 * MIB));
	close(raw);
	assert_int_equal(sh("qemu-img create -f qcow2 -b base.raw -F raw %s", mid), 0);
	assert_int_equal(sh("qemu-io -c 'write -P 0x77 1M 100k' %s", mid), 0);
	assert_int_equal(disk_create_qcow2(top, &o, f->err, sizeof(f->err)), 0);
	assert_int_equal(
	    sh("cp %s %s && qemu-io -f raw -c 'write -P 0x77 1M 100k' %s", base, ref, ref), 0);
	d = open_rw(f, top);
	assert_non_null(disk_backing(d));
	assert_non_null(disk_backing(disk_backing(d)));
	assert_int_equal(disk_size(d), 8 * MIB);
	raw = open(ref, O_RDWR);
	write_both(d, raw, 4096, 512, 1);		  /* over the raw base */
	write_both(d, raw, 1 * MIB + 50 * 1024, 4096, 2); /* over mid's data */
	write_both(d, raw, 7 * MIB + 512, 300 * 1024, 3); /* several clusters */
	{
		uint8_t got[8192], want[8192];

		assert_int_equal(disk_read(d, 1 * MIB - 4096, got, sizeof(got)), 0);
		assert_int_equal(pread(raw, want, sizeof(want), 1 * MIB - 4096),
				 (ssize_t)sizeof(want));
		assert_memory_equal(got, want, sizeof(got));
	}
	disk_close(d);
	close(raw);
	assert_int_equal(qemu_check(top), 0);
	assert_int_equal(qemu_compare(top, ref), 0);
	/* The layers below are untouched. */
	assert_int_equal(qemu_check(mid), 0);
	free(b);
}

/* A chain that loops (an image its own backing file, through qemu-img -u) is cut at
 * DISK_MAX_CHAIN; a missing backing file is named. */
static void test_backing_loops_and_missing_files_are_refused(void **state)
{
	struct dfx *f = *state;
	const char *a = P(f, 0, "a.qcow2"), *b = P(f, 1, "b.qcow2");
	struct disk *d = NULL;

	REQUIRE_QEMU_IMG();
	assert_int_equal(sh("qemu-img create -f qcow2 %s 1M && qemu-img create -f qcow2 %s 1M && "
			    "qemu-img rebase -u -f qcow2 -b b.qcow2 -F qcow2 %s && "
			    "qemu-img rebase -u -f qcow2 -b a.qcow2 -F qcow2 %s",
			    a, b, a, b),
			 0);
	assert_int_equal(disk_open(a, false, &d, f->err, sizeof(f->err)), -ELOOP);
	assert_non_null(strstr(f->err, "deeper than 16"));
	assert_null(d);
	assert_int_equal(sh("qemu-img rebase -u -f qcow2 -b gone.raw -F raw %s", b), 0);
	assert_int_equal(disk_open(b, false, &d, f->err, sizeof(f->err)), -ENOENT);
	assert_non_null(strstr(f->err, "gone.raw"));
}

/* The overlay of a 1 TiB disk costs what the overlay of a 1 GiB disk does. */
static void test_overlay_size_does_not_depend_on_disk_size(void **state)
{
	struct dfx *f = *state;
	const char *small = P(f, 0, "small.raw"), *big = P(f, 1, "big.raw");
	const char *o1 = P(f, 2, "o1.qcow2"), *o2 = P(f, 3, "o2.qcow2");
	struct disk_create_opts a = {.backing = "small.raw", .backing_fmt = DISK_FMT_RAW};
	struct disk_create_opts b = {
	    .backing = "big.raw", .backing_fmt = DISK_FMT_RAW, .no_sync = true};
	struct stat s1, s2;

	REQUIRE_QEMU_IMG();
	close(make_raw(small, 1ull << 30));
	close(make_raw(big, 1ull << 40));
	assert_int_equal(disk_create_qcow2(o1, &a, f->err, sizeof(f->err)), 0);
	assert_int_equal(disk_create_qcow2(o2, &b, f->err, sizeof(f->err)), 0);
	assert_int_equal(stat(o1, &s1), 0);
	assert_int_equal(stat(o2, &s2), 0);
	assert_int_equal(s1.st_size, s2.st_size);
	assert_true(s2.st_blocks * 512 <= 4 * 65536); /* header, tables: the L1 is a hole */
	assert_int_equal(qemu_check(o2), 0);
	assert_int_equal(sh("qemu-img info %s | grep -q 'virtual size: 1 TiB'", o2), 0);
	/* An existing file is never overwritten. */
	assert_int_equal(disk_create_qcow2(o1, &a, f->err, sizeof(f->err)), -EEXIST);
}

/* disk_identity: stable across a reopen, changed by a write that allocates, none for raw;
 * disk_create_overlay probes its base's format. */
static void test_identity_follows_allocations(void **state)
{
	struct dfx *f = *state;
	const char *img = P(f, 0, "id.qcow2"), *raw = P(f, 1, "id.raw"), *ov = P(f, 2, "ov.qcow2");
	struct disk_create_opts o = {.size = 1 << 20};
	uint8_t buf[4096] = {1};
	struct disk *d;
	uint64_t id0;

	close(make_raw(raw, 1 << 20));
	assert_int_equal(disk_create_qcow2(img, &o, f->err, sizeof(f->err)), 0);
	d = open_rw(f, img);
	id0 = disk_identity(d);
	assert_int_not_equal(id0, 0);
	disk_close(d);
	d = open_rw(f, img);
	assert_int_equal(disk_identity(d), id0);
	assert_int_equal(disk_write(d, 0, buf, sizeof(buf)), 0);
	assert_int_equal(disk_flush(d), 0);
	assert_int_not_equal(disk_identity(d), id0);
	disk_close(d);
	d = open_rw(f, raw);
	assert_int_equal(disk_identity(d), 0);
	disk_close(d);
	assert_int_equal(disk_create_overlay(ov, "id.raw", true, f->err, sizeof(f->err)), 0);
	d = open_rw(f, ov);
	assert_int_equal(disk_size(d), 1 << 20);
	disk_close(d);
	assert_int_equal(disk_create_overlay(ov, "id.raw", true, f->err, sizeof(f->err)), -EEXIST);
	assert_int_not_equal(
	    disk_create_overlay(P(f, 3, "x.qcow2"), "none.raw", true, f->err, sizeof(f->err)), 0);
	assert_non_null(strstr(f->err, "none.raw"));
}

static void test_create_empty_image_qemu_reads(void **state)
{
	struct dfx *f = *state;
	const char *img = P(f, 0, "e.qcow2");
	struct disk_create_opts o = {.size = 100 * MIB};
	struct disk *d;
	uint8_t b[4096];

	REQUIRE_QEMU_IMG();
	assert_int_equal(disk_create_qcow2(img, &o, f->err, sizeof(f->err)), 0);
	assert_int_equal(qemu_check(img), 0);
	assert_int_equal(sh("qemu-io -c 'write -P 0x3c 5M 8k' %s", img), 0);
	d = open_rw(f, img);
	assert_int_equal(disk_read(d, 5 * MIB + 4096, b, sizeof(b)), 0);
	for (unsigned i = 0; i < sizeof(b); i++)
		assert_int_equal(b[i], 0x3c);
	disk_close(d);
}

/* Writes one 32-bit field of the header, big-endian. */
static void poke32(const char *path, off_t off, uint32_t v)
{
	int fd = open(path, O_RDWR);

	v = htobe32(v);
	assert_int_equal(pwrite(fd, &v, 4, off), 4);
	close(fd);
}

static void poke64(const char *path, off_t off, uint64_t v)
{
	int fd = open(path, O_RDWR);

	v = htobe64(v);
	assert_int_equal(pwrite(fd, &v, 8, off), 8);
	close(fd);
}

static void expect_refused(struct dfx *f, const char *img, int err, const char *words)
{
	struct disk *d = NULL;
	int ret = disk_open(img, false, &d, f->err, sizeof(f->err));

	if (ret != err || !strstr(f->err, words))
		fprintf(stderr, "open %s: %d (%s), expected %d naming \"%s\"\n", img, ret, f->err,
			err, words);
	assert_int_equal(ret, err);
	assert_non_null(strstr(f->err, words));
	assert_null(d);
}

static void test_unsupported_features_are_refused_by_name(void **state)
{
	struct dfx *f = *state;
	const char *img = P(f, 0, "u.qcow2");

	REQUIRE_QEMU_IMG();
	assert_int_equal(sh("qemu-img create -f qcow2 -o data_file=%s/u.data %s 1M", f->dir, img),
			 0);
	expect_refused(f, img, -ENOTSUP, "external data file");
	sh("rm -f %s %s/u.data", img, f->dir);
	assert_int_equal(sh("qemu-img create -f qcow2 -o extended_l2=on %s 1M", img), 0);
	expect_refused(f, img, -ENOTSUP, "extended L2");
	sh("rm -f %s", img);
	assert_int_equal(sh("qemu-img create -f qcow2 --object secret,id=s0,data=pw "
			    "-o encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10 "
			    "%s 1M",
			    img),
			 0);
	expect_refused(f, img, -ENOTSUP, "encrypt");
	sh("rm -f %s", img);
	assert_int_equal(sh("qemu-img create -f qcow2 -o compat=0.10 %s 1M", img), 0);
	expect_refused(f, img, -ENOTSUP, "version 2");
	sh("rm -f %s", img);
	assert_int_equal(sh("qemu-img create -f qcow2 %s 1M", img), 0);
	poke64(img, 72, 1ull << 9);
	expect_refused(f, img, -ENOTSUP, "unknown incompatible feature bit 9");
	poke64(img, 72, 1ull << 1);
	expect_refused(f, img, -ENOTSUP, "corrupt");
}

static void test_compressed_clusters_fail_reads_by_name(void **state)
{
	struct dfx *f = *state;
	const char *src = P(f, 0, "c.raw"), *img = P(f, 1, "c.qcow2");
	struct disk *d;
	uint8_t b[512];

	REQUIRE_QEMU_IMG();
	assert_int_equal(sh("qemu-img create -f raw %s 1M && qemu-io -f raw -c 'write -P 1 0 64k' "
			    "%s && qemu-img convert -c -O qcow2 %s %s",
			    src, src, src, img),
			 0);
	d = open_rw(f, img);
	assert_int_equal(disk_read(d, 0, b, sizeof(b)), -ENOTSUP);
	assert_non_null(strstr(disk_error(d), "compress"));
	assert_int_equal(disk_write(d, 0, b, sizeof(b)), -ENOTSUP);
	disk_close(d);
}

static void test_hostile_header_fields_are_refused(void **state)
{
	struct dfx *f = *state;
	const char *img = P(f, 0, "h.qcow2");
	static const struct {
		off_t off;
		int width;
		uint64_t v;
		const char *words;
	} cases[] = {
	    {20, 32, 30, "cluster_bits"},	    {36, 32, 0x10000000, "L1 table"},
	    {40, 64, 1ull << 40, "L1 table"},	    {40, 64, 0x10001, "not cluster aligned"},
	    {48, 64, 1ull << 40, "refcount table"}, {56, 32, 0xffffffff, "refcount table"},
	    {60, 32, 70000, "snapshots"},	    {8, 64, 0x1000000, "backing file name"},
	    {96, 32, 7, "refcount_order"},	    {100, 32, 3, "header_length"},
	    {24, 64, 1ull << 62, "L1 table"},
	};

	REQUIRE_QEMU_IMG();
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		sh("rm -f %s", img);
		assert_int_equal(sh("qemu-img create -f qcow2 %s 1M", img), 0);
		if (cases[i].off == 8)
			poke32(img, 16, 10);
		if (cases[i].width == 32)
			poke32(img, cases[i].off, (uint32_t)cases[i].v);
		else
			poke64(img, cases[i].off, cases[i].v);
		expect_refused(f, img, -EINVAL, cases[i].words);
	}
}

/* An L1 entry naming a place past the end of the file is caught at open. */
static void test_l2_offset_past_the_file_is_refused(void **state)
{
	struct dfx *f = *state;
	const char *img = P(f, 0, "l.qcow2");

	REQUIRE_QEMU_IMG();
	assert_int_equal(sh("qemu-img create -f qcow2 %s 1M", img), 0);
	poke64(img, 3 * 65536, (1ull << 63) | (1ull << 40)); /* the L1 table's first entry */
	expect_refused(f, img, -EINVAL, "beyond the end");
}

/* A data cluster that points at the image's own L1 table is not written (a hostile
 * image would let the guest rewrite the tables). */
static void test_write_to_a_cluster_aliasing_the_tables_is_refused(void **state)
{
	struct dfx *f = *state;
	const char *img = P(f, 0, "a.qcow2");
	uint8_t b[512] = {1};
	uint64_t l1e;
	struct disk *d;
	int fd;

	REQUIRE_QEMU_IMG();
	assert_int_equal(
	    sh("qemu-img create -f qcow2 %s 1M && qemu-io -c 'write 0 64k' %s", img, img), 0);
	/* qemu-img's layout: L1 table at cluster 3, L2 table at 4; its first entry -> 3. */
	poke64(img, 4 * 65536, (1ull << 63) | 3 * 65536);
	d = open_rw(f, img);
	assert_int_equal(disk_write(d, 0, b, sizeof(b)), -EIO);
	assert_non_null(strstr(disk_error(d), "own tables"));
	disk_close(d);
	fd = open(img, O_RDONLY);
	assert_int_equal(pread(fd, &l1e, 8, 3 * 65536), 8);
	assert_int_equal(be64toh(l1e), (1ull << 63) | 4 * 65536); /* the L1 table intact */
	close(fd);
}

/* thaw's check finds what qemu-img check finds: a leak, and a cluster in use whose
 * refcount was cleared. */
static void test_check_reports_leaks_and_corruption_as_qemu_does(void **state)
{
	struct dfx *f = *state;
	const char *img = P(f, 0, "k.qcow2");
	struct disk_check_result r;
	struct disk *d;
	uint16_t rc;
	int fd;

	REQUIRE_QEMU_IMG();
	assert_int_equal(
	    sh("qemu-img create -f qcow2 %s 1M && qemu-io -c 'write 0 64k' %s", img, img), 0);
	/* Refcount block at cluster 2 (qemu-img's layout): cluster 4 is the L2 table,
	 * 5 the data; give cluster 9 (unused) a refcount: a leak. */
	fd = open(img, O_RDWR);
	rc = htobe16(1);
	assert_int_equal(pwrite(fd, &rc, 2, 2 * 65536 + 9 * 2), 2);
	assert_int_equal(ftruncate(fd, 10 * 65536), 0);
	close(fd);
	assert_int_equal(qemu_check(img), 3);
	assert_int_equal(disk_open(img, true, &d, f->err, sizeof(f->err)), 0);
	assert_int_equal(disk_check(d, &r, NULL, NULL), 0);
	assert_int_equal(r.leaks, 1);
	assert_int_equal(r.corruptions, 0);
	disk_close(d);
	/* Clear the data cluster's refcount: corruption. */
	fd = open(img, O_RDWR);
	rc = 0;
	assert_int_equal(pwrite(fd, &rc, 2, 2 * 65536 + 5 * 2), 2);
	close(fd);
	assert_int_equal(qemu_check(img), 2);
	assert_int_equal(disk_open(img, true, &d, f->err, sizeof(f->err)), 0);
	assert_int_equal(disk_check(d, &r, NULL, NULL), 0);
	assert_true(r.corruptions >= 1);
	disk_close(d);
}

static void test_writes_outside_the_disk_and_to_read_only_are_refused(void **state)
{
	struct dfx *f = *state;
	const char *img = P(f, 0, "r.qcow2");
	struct disk_create_opts o = {.size = 1 * MIB};
	uint8_t b[1024] = {0};
	struct disk *d;

	assert_int_equal(disk_create_qcow2(img, &o, f->err, sizeof(f->err)), 0);
	d = open_rw(f, img);
	assert_int_equal(disk_write(d, MIB - 512, b, 1024), -EINVAL);
	assert_int_equal(disk_read(d, MIB, b, 1), -EINVAL);
	disk_close(d);
	assert_int_equal(disk_open(img, true, &d, f->err, sizeof(f->err)), 0);
	assert_int_equal(disk_write(d, 0, b, 512), -EROFS);
	assert_int_equal(disk_snapshot_create(d, "x"), -EROFS);
	disk_close(d);
}

/* The extents a caller would do its own I/O on agree with disk_read. */
static void test_map_matches_reads(void **state)
{
	struct dfx *f = *state;
	const char *img = P(f, 0, "m.qcow2");
	struct disk_create_opts o = {.size = 4 * MIB};
	struct disk_extent e;
	uint8_t b[4096], c[4096];
	struct disk *d;

	assert_int_equal(disk_create_qcow2(img, &o, f->err, sizeof(f->err)), 0);
	d = open_rw(f, img);
	assert_int_equal(disk_map(d, 0, 4096, false, &e), 0);
	assert_int_equal(e.kind, DISK_EXT_ZERO);
	assert_int_equal(disk_map(d, 0, 4096, true, &e), 0);
	assert_int_equal(e.kind, DISK_EXT_SLOW);
	fill(b, sizeof(b), 3);
	assert_int_equal(disk_write(d, 65536 + 4096, b, sizeof(b)), 0);
	assert_int_equal(disk_map(d, 65536 + 4096, 8192, true, &e), 0);
	assert_int_equal(e.kind, DISK_EXT_DATA);
	assert_int_equal(e.len, 8192);
	assert_int_equal(pread(disk_fd(d), c, sizeof(c), (off_t)e.host_off), (ssize_t)sizeof(c));
	assert_memory_equal(b, c, sizeof(b));
	assert_int_equal(disk_map(d, 65536 + 65000, 4096, false, &e), 0);
	assert_int_equal(e.len, 536); /* stops at the cluster's end: the next is not there */
	/* Clusters allocated one after the other in the file make one extent. */
	{
		uint8_t *big = malloc(4 * 65536);

		fill(big, 4 * 65536, 4);
		assert_int_equal(disk_write(d, 4 * 65536, big, 4 * 65536), 0);
		assert_int_equal(disk_map(d, 4 * 65536 + 512, 3 * 65536, true, &e), 0);
		assert_int_equal(e.kind, DISK_EXT_DATA);
		assert_int_equal(e.len, 3 * 65536);
		assert_int_equal(pread(disk_fd(d), big, 3 * 65536, (off_t)e.host_off), 3 * 65536);
		assert_int_equal(disk_read(d, 4 * 65536 + 512, big + 3 * 65536 - 4096, 4096), 0);
		assert_memory_equal(big, big + 3 * 65536 - 4096, 4096);
		free(big);
	}
	disk_close(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, dfx_setup, dfx_teardown)
	    T(test_reads_what_qemu_io_wrote),
	    T(test_writes_pass_check_and_compare_equal_to_raw),
	    T(test_refcount_widths_1_8_64_bits),
	    T(test_small_clusters_grow_the_refcount_table),
	    T(test_zero_and_unallocated_clusters_read_as_zeros_and_take_writes),
	    T(test_backing_chain_raw_qcow2_qcow2),
	    T(test_backing_loops_and_missing_files_are_refused),
	    T(test_overlay_size_does_not_depend_on_disk_size),
	    T(test_identity_follows_allocations),
	    T(test_create_empty_image_qemu_reads),
	    T(test_unsupported_features_are_refused_by_name),
	    T(test_compressed_clusters_fail_reads_by_name),
	    T(test_hostile_header_fields_are_refused),
	    T(test_l2_offset_past_the_file_is_refused),
	    T(test_check_reports_leaks_and_corruption_as_qemu_does),
	    T(test_write_to_a_cluster_aliasing_the_tables_is_refused),
	    T(test_writes_outside_the_disk_and_to_read_only_are_refused),
	    T(test_map_matches_reads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
