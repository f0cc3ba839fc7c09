/* Diff snapshots: only dirty pages are written, a diff is not restorable by itself, and
 * merging it onto its base gives the later memory and state. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "restore/snap_kvm.h"

#define MEM   (4u << 20)
#define PAGES (MEM / 4096)

struct fx {
	char dir[64], base[128], diff[128], out[128], other[128];
	uint8_t *v1, *v2;
	uint8_t dirty[PAGES / 8];
};

static void put_machine(struct snap_writer *w, uint32_t vcpus)
{
	struct snap_machine m = {.mem_size = MEM, .nr_vcpus = vcpus, .nr_regions = 1};
	m.regions[0].size = MEM;
	assert_int_equal(snap_put_machine(w, &m), 0);
}

static void write_full(const char *path, const uint8_t *mem, uint32_t vcpus)
{
	struct snap_writer *w;
	struct snap_writer_opts o = {.no_fsync = true};
	assert_int_equal(snap_writer_create(path, &o, &w), 0);
	put_machine(w, vcpus);
	assert_int_equal(snap_writer_set_memory(w, mem, MEM), 0);
	assert_int_equal(snap_writer_commit(w, NULL), 0);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_snapdiff.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->base, sizeof(f->base), "%s/base.snap", f->dir);
	snprintf(f->diff, sizeof(f->diff), "%s/diff.snap", f->dir);
	snprintf(f->out, sizeof(f->out), "%s/out.snap", f->dir);
	snprintf(f->other, sizeof(f->other), "%s/other.snap", f->dir);
	f->v1 = aligned_alloc(4096, MEM);
	f->v2 = aligned_alloc(4096, MEM);
	for (uint32_t pg = 0; pg < PAGES; pg++)
		memset(f->v1 + pg * 4096, pg % 5 ? (int)(pg & 0xff) | 1 : 0, 4096);
	memcpy(f->v2, f->v1, MEM);
	/* the guest ran on: some pages change, one becomes zero, one zero page gets data */
	uint32_t changed[] = {1, 2, 3, 7, 100, 511, 512, 1023};
	for (size_t i = 0; i < sizeof(changed) / sizeof(changed[0]); i++) {
		uint32_t pg = changed[i];
		memset(f->v2 + pg * 4096, 0xee, 4096);
		f->dirty[pg / 8] |= (uint8_t)(1u << (pg % 8));
	}
	memset(f->v2 + 7 * 4096, 0, 4096); /* dirty and now zero */
	/* page 300 changes but is (wrongly) not marked dirty: the merge must keep the base's */
	memset(f->v2 + 300 * 4096, 0x11, 4096);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	unlink(f->base);
	unlink(f->diff);
	unlink(f->out);
	unlink(f->other);
	rmdir(f->dir);
	free(f->v1);
	free(f->v2);
	free(f);
	return 0;
}

static void write_diff(struct fx *f, const char *base_path)
{
	struct snap *base;
	struct snap_writer *w;
	struct snap_writer_opts o = {.no_fsync = true};
	char err[256];
	assert_int_equal(snap_open(base_path, &base, err, sizeof(err)), 0);
	assert_int_equal(snap_writer_create(f->diff, &o, &w), 0);
	put_machine(w, 2);
	assert_int_equal(snap_writer_set_diff(w, base, base_path, f->dirty, PAGES), 0);
	assert_int_equal(snap_writer_set_memory(w, f->v2, MEM), 0);
	struct snap_write_stats st;
	assert_int_equal(snap_writer_commit(w, &st), 0);
	assert_int_equal(st.data_pages, 7); /* 8 dirty, one of them zero */
	snap_close(base);
}

static void test_merge_gives_later_memory_and_state(void **state)
{
	struct fx *f = *state;
	char err[256];
	write_full(f->base, f->v1, 1);
	write_diff(f, f->base);

	/* the diff holds only the dirty pages */
	struct stat st;
	assert_int_equal(stat(f->diff, &st), 0);
	assert_true((uint64_t)st.st_blocks * 512 < 64 * 4096 + (64u << 10));

	assert_int_equal(snap_merge(f->base, f->diff, f->out, err, sizeof(err)), 0);
	struct snap *s;
	assert_int_equal(snap_open(f->out, &s, err, sizeof(err)), 0);
	assert_false(snap_header_flags(s) & SNAP_HDR_DIFF);
	assert_null(snap_section_find(s, "base"));
	struct snap_machine m;
	assert_int_equal(snap_get_machine(s, &m, err, sizeof(err)), 0);
	assert_int_equal(m.nr_vcpus, 2); /* the diff's state */
	struct snap_memory_loc loc;
	snap_memory(s, &loc);
	int fd;
	assert_int_equal(snap_memory_open(s, &fd, err, sizeof(err)), 0);
	uint8_t *p = mmap(NULL, loc.size, PROT_READ, MAP_PRIVATE, fd, (off_t)loc.offset);
	assert_true(p != MAP_FAILED);
	close(fd);
	/* expected: v2 except page 300, which was not in the dirty log */
	memcpy(f->v2 + 300 * 4096, f->v1 + 300 * 4096, 4096);
	assert_memory_equal(p, f->v2, MEM);
	munmap(p, loc.size);
	assert_int_equal(snap_memory_verify(s, NULL, NULL, NULL), 0);
	const uint8_t *bits;
	uint64_t n;
	assert_int_equal(snap_memory_zero_bitmap(s, &bits, &n), 0);
	assert_true(bits[0] & (1u << 7)); /* page 7 became zero */
	assert_true(bits[0] & (1u << 5)); /* page 5 was zero in the base and stayed */
	snap_close(s);
}

static void test_diff_is_not_restorable_directly(void **state)
{
	struct fx *f = *state;
	char err[256] = "";
	struct snap *s;
	write_full(f->base, f->v1, 1);
	write_diff(f, f->base);
	assert_int_equal(snap_open(f->diff, &s, err, sizeof(err)), -EPROTONOSUPPORT);
	assert_non_null(strstr(err, "is a diff snapshot: merge it onto its base first"));
	/* but it verifies: its sums cover its own bytes, holes as zeros */
	assert_int_equal(snap_open_flags(f->diff, SNAP_OPEN_DIFF, &s, err, sizeof(err)), 0);
	assert_int_equal(snap_memory_verify(s, NULL, NULL, NULL), 0);
	snap_close(s);
}

static void test_merge_onto_wrong_base_is_refused(void **state)
{
	struct fx *f = *state;
	char err[256] = "";
	write_full(f->base, f->v1, 1);
	write_diff(f, f->base);
	write_full(f->other, f->v1, 1); /* same content, another snapshot */
	assert_int_equal(snap_merge(f->other, f->diff, f->out, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "taken against another snapshot"));
	assert_int_equal(access(f->out, F_OK), -1);
}

/* Flips one byte of memory page `pg` of the snapshot at `path` (checksums untouched). */
static void damage_memory(const char *path, unsigned flags, uint64_t pg)
{
	struct snap *s;
	struct snap_memory_loc loc;
	char err[256];
	uint8_t b;
	assert_int_equal(snap_open_flags(path, flags, &s, err, sizeof(err)), 0);
	snap_memory(s, &loc);
	snap_close(s);
	int fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	off_t off = (off_t)(loc.offset + pg * 4096 + 17);
	assert_int_equal(pread(fd, &b, 1, off), 1);
	b ^= 0x40;
	assert_int_equal(pwrite(fd, &b, 1, off), 1);
	close(fd);
}

static void test_merge_refuses_a_base_with_damaged_memory(void **state)
{
	struct fx *f = *state;
	char err[256] = "";
	write_full(f->base, f->v1, 1);
	write_diff(f, f->base);
	damage_memory(f->base, 0, 4); /* a page the diff does not replace */
	assert_int_equal(snap_merge(f->base, f->diff, f->out, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, f->base));
	assert_non_null(strstr(err, "memory chunk 0"));
	assert_int_equal(access(f->out, F_OK), -1); /* nothing certified as good */
}

static void test_merge_refuses_a_diff_with_damaged_memory(void **state)
{
	struct fx *f = *state;
	char err[256] = "";
	write_full(f->base, f->v1, 1);
	write_diff(f, f->base);
	damage_memory(f->diff, SNAP_OPEN_DIFF, 100); /* a dirty page the diff holds */
	assert_int_equal(snap_merge(f->base, f->diff, f->out, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, f->diff));
	assert_int_equal(access(f->out, F_OK), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_merge_gives_later_memory_and_state, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_diff_is_not_restorable_directly, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_merge_onto_wrong_base_is_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_merge_refuses_a_base_with_damaged_memory, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_merge_refuses_a_diff_with_damaged_memory, setup,
					    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
