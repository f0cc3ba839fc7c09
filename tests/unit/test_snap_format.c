/* The snapshot file: layout, atomic creation, validation of hostile files, memory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "restore/snap_internal.h"
#include "restore/snap_kvm.h"

#define MEM_SIZE (6u << 20) /* three checksum chunks */

struct fx {
	char dir[64];
	char path[128];
	uint8_t *mem;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_snap.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/vm.snap", f->dir);
	f->mem = aligned_alloc(4096, MEM_SIZE);
	memset(f->mem, 0, MEM_SIZE);
	/* data pages, zero pages between them, and a zero tail (a trailing hole) */
	for (uint32_t pg = 0; pg < MEM_SIZE / 4096 - 16; pg++) {
		if (pg % 3 == 1)
			continue;
		for (uint32_t i = 0; i < 4096; i += 8) {
			uint64_t v = ((uint64_t)pg << 32) | i | 1;
			memcpy(f->mem + pg * 4096 + i, &v, 8);
		}
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	DIR *d = opendir(f->dir);
	struct dirent *e;
	char p[512];
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.' && (!e->d_name[1] || !strcmp(e->d_name, "..")))
			continue;
		snprintf(p, sizeof(p), "%s/%s", f->dir, e->d_name);
		unlink(p);
	}
	if (d)
		closedir(d);
	rmdir(f->dir);
	free(f->mem);
	free(f);
	return 0;
}

static int count_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

/* A snapshot with a few state sections, an optional extra section and memory. */
static void write_snapshot(struct fx *f, const char *extra, uint32_t extra_flags)
{
	struct snap_writer *w;
	struct snap_writer_opts o = {.no_fsync = true};
	struct snap_sec *s;
	struct snap_machine m = {.mem_size = MEM_SIZE, .nr_vcpus = 1, .nr_regions = 1};
	m.regions[0].size = MEM_SIZE;
	snprintf(m.cmdline, sizeof(m.cmdline), "console=ttyS0");
	assert_int_equal(snap_writer_create(f->path, &o, &w), 0);
	assert_int_equal(snap_put_machine(w, &m), 0);
	assert_int_equal(snap_writer_section(w, "device.blk0", 3, 1, SNAP_SEC_REQUIRED, &s), 0);
	snap_put_str(s, SNAP_DEV_KIND, "virtio-blk");
	snap_put_u64(s, 0x1000, 42);
	if (extra) {
		assert_int_equal(snap_writer_section(w, extra, 1, 0, extra_flags, &s), 0);
		snap_put_u64(s, 7, 0xdeadbeef);
		snap_put_str(s, 8, "from the future");
	}
	assert_int_equal(snap_put_config(w, "{\"vcpus\": 1}", 12), 0);
	assert_int_equal(snap_writer_set_memory(w, f->mem, MEM_SIZE), 0);
	assert_int_equal(snap_writer_commit(w, NULL), 0);
}

static void patch(const char *path, uint64_t off, const void *p, size_t len)
{
	int fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, p, len, (off_t)off), (ssize_t)len);
	close(fd);
}

static void flip_bit(const char *path, uint64_t off, unsigned bit)
{
	uint8_t b;
	int fd = open(path, O_RDWR);
	assert_int_equal(pread(fd, &b, 1, (off_t)off), 1);
	b ^= (uint8_t)(1u << bit);
	assert_int_equal(pwrite(fd, &b, 1, (off_t)off), 1);
	close(fd);
}

static void expect_open_error(const char *path, const char *substr)
{
	struct snap *s = NULL;
	char err[256] = "";
	int r = snap_open(path, &s, err, sizeof(err));
	if (r == 0)
		snap_close(s);
	assert_true(r < 0);
	if (!strstr(err, substr))
		fail_msg("error \"%s\" does not contain \"%s\"", err, substr);
}

static void read_header(const char *path, uint8_t *h)
{
	int fd = open(path, O_RDONLY);
	assert_int_equal(pread(fd, h, SNAP_HEADER_SIZE, 0), SNAP_HEADER_SIZE);
	close(fd);
}

static void test_round_trip_sections_and_fields(void **state)
{
	struct fx *f = *state;
	write_snapshot(f, NULL, 0);
	struct snap *s;
	char err[256];
	struct stat st;
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600); /* the default */
	assert_int_equal(snap_open(f->path, &s, err, sizeof(err)), 0);
	uint16_t maj, min;
	snap_format_version(s, &maj, &min);
	assert_int_equal(maj, SNAP_FORMAT_MAJOR);
	assert_int_equal(min, SNAP_FORMAT_MINOR);

	const struct snap_section *d = snap_section_find(s, "device.blk0");
	assert_non_null(d);
	assert_int_equal(d->ver_major, 3);
	assert_int_equal(d->ver_minor, 1);
	assert_true(d->flags & SNAP_SEC_REQUIRED);
	uint64_t v;
	assert_int_equal(snap_get_u64(d, 0x1000, &v), 0);
	assert_int_equal(v, 42);
	assert_int_equal(snap_get_u64(d, 0x1001, &v), -ENOENT);
	assert_int_equal(snap_get_u64(d, SNAP_DEV_KIND, &v), -EPROTO);
	char kind[32];
	assert_int_equal(snap_get_strbuf(d, SNAP_DEV_KIND, kind, sizeof(kind)), 0);
	assert_string_equal(kind, "virtio-blk");
	assert_int_equal(snap_get_strbuf(d, SNAP_DEV_KIND, kind, 4), -ENAMETOOLONG);

	/* iteration sees every field in order */
	struct snap_field fl;
	size_t pos = 0;
	int n = 0;
	while (snap_field_next(d, &pos, &fl) == 1)
		n++;
	assert_int_equal(n, 2);

	struct snap_machine m;
	assert_int_equal(snap_get_machine(s, &m, err, sizeof(err)), 0);
	assert_int_equal(m.mem_size, MEM_SIZE);
	assert_string_equal(m.cmdline, "console=ttyS0");
	const char *json;
	size_t jlen;
	assert_int_equal(snap_get_config(s, &json, &jlen), 0);
	assert_int_equal(jlen, 12);
	assert_memory_equal(json, "{\"vcpus\": 1}", 12);

	/* host facts recorded are this host's */
	struct snap_host_facts now;
	snap_host_facts_current(&now);
	assert_string_equal(snap_host_facts(s)->vendor, now.vendor);
	assert_int_equal(snap_host_facts(s)->cpuid_digest, now.cpuid_digest);
	assert_string_equal(snap_host_facts(s)->kernel, now.kernel);

	/* memory is last and 2 MiB aligned; the table lists it last */
	struct snap_memory_loc loc;
	assert_int_equal(snap_memory(s, &loc), 0);
	assert_false(loc.external);
	assert_int_equal(loc.offset % SNAP_MEM_ALIGN, 0);
	assert_int_equal(loc.size, MEM_SIZE);
	const struct snap_section *last = snap_section_at(s, snap_section_count(s) - 1);
	assert_string_equal(last->name, "memory");
	snap_close(s);
}

static void test_memory_mmap_reads_back_with_holes(void **state)
{
	struct fx *f = *state;
	write_snapshot(f, NULL, 0);
	struct snap *s;
	char err[256];
	assert_int_equal(snap_open(f->path, &s, err, sizeof(err)), 0);
	struct snap_memory_loc loc;
	snap_memory(s, &loc);
	int fd;
	assert_int_equal(snap_memory_open(s, &fd, err, sizeof(err)), 0);
	snap_close(s); /* the mapping must not need the snap */
	void *p = mmap(NULL, loc.size, PROT_READ, MAP_PRIVATE, fd, (off_t)loc.offset);
	assert_true(p != MAP_FAILED);
	assert_memory_equal(p, f->mem, MEM_SIZE);
	munmap(p, loc.size);
	/* zero pages are holes: fewer blocks allocated than the file's size */
	struct stat st;
	fstat(fd, &st);
	close(fd);
	assert_true((uint64_t)st.st_blocks * 512 < (uint64_t)st.st_size - MEM_SIZE / 4);

	/* the zero bitmap says exactly which pages are zero */
	assert_int_equal(snap_open(f->path, &s, err, sizeof(err)), 0);
	const uint8_t *bits;
	uint64_t npages;
	assert_int_equal(snap_memory_zero_bitmap(s, &bits, &npages), 0);
	assert_int_equal(npages, MEM_SIZE / 4096);
	for (uint64_t pg = 0; pg < npages; pg++) {
		bool zero = true;
		for (int i = 0; i < 4096 && zero; i++)
			zero = f->mem[pg * 4096 + (unsigned)i] == 0;
		assert_int_equal(!!(bits[pg / 8] & (1u << (pg % 8))), zero);
	}
	uint64_t chunks;
	assert_int_equal(snap_memory_verify(s, NULL, NULL, &chunks), 0);
	assert_int_equal(chunks, 3);
	snap_close(s);
}

static void collect(void *opaque, const char *msg)
{
	snprintf(opaque, 256, "%s", msg);
}

static void test_memory_corruption_found_by_verify_only(void **state)
{
	struct fx *f = *state;
	char err[256], msg[256] = "";
	write_snapshot(f, NULL, 0);
	struct snap *s;
	assert_int_equal(snap_open(f->path, &s, err, sizeof(err)), 0);
	struct snap_memory_loc loc;
	snap_memory(s, &loc);
	snap_close(s);
	flip_bit(f->path, loc.offset + (2u << 20) + 5000, 3); /* chunk 1 */
	/* the restore path does not read memory: the open still succeeds */
	assert_int_equal(snap_open(f->path, &s, err, sizeof(err)), 0);
	assert_int_equal(snap_memory_verify(s, collect, msg, NULL), -EBADMSG);
	assert_non_null(strstr(msg, "memory chunk 1"));
	assert_non_null(strstr(msg, "checksum mismatch"));
	snap_close(s);
}

static void test_external_memory_file(void **state)
{
	struct fx *f = *state;
	char mpath[160], err[256];
	snprintf(mpath, sizeof(mpath), "%s/vm.mem", f->dir);
	struct snap_writer *w;
	struct snap_writer_opts o = {.no_fsync = true, .mem_file_path = mpath, .mode = 0640};
	assert_int_equal(snap_writer_create(f->path, &o, &w), 0);
	assert_int_equal(snap_writer_set_memory(w, f->mem, MEM_SIZE), 0);
	assert_int_equal(snap_writer_commit(w, NULL), 0);
	struct stat st;
	assert_int_equal(stat(mpath, &st), 0);
	assert_int_equal(st.st_size, MEM_SIZE); /* raw: exactly the memory */
	assert_int_equal(st.st_mode & 0777, 0640);
	assert_int_equal(stat(f->path, &st), 0);
	assert_true(st.st_size < 64 * 1024); /* the snapshot itself holds no memory */
	assert_int_equal(st.st_mode & 0777, 0640);

	struct snap *s;
	assert_int_equal(snap_open(f->path, &s, err, sizeof(err)), 0);
	assert_true(snap_header_flags(s) & SNAP_HDR_MEM_EXTERNAL);
	struct snap_memory_loc loc;
	snap_memory(s, &loc);
	assert_true(loc.external);
	assert_int_equal(loc.fd, -1);
	assert_string_equal(loc.path, mpath);
	assert_int_equal(loc.offset, 0);
	int fd;
	assert_int_equal(snap_memory_open(s, &fd, err, sizeof(err)), 0);
	void *p = mmap(NULL, loc.size, PROT_READ, MAP_PRIVATE, fd, 0);
	assert_true(p != MAP_FAILED);
	assert_memory_equal(p, f->mem, MEM_SIZE);
	munmap(p, loc.size);
	close(fd);
	assert_int_equal(snap_memory_verify(s, NULL, NULL, NULL), 0);
	snap_close(s);

	/* a short memory file is refused before anything maps it, and so is a longer one
	 * (the memory file holds exactly the memory) */
	assert_int_equal(truncate(mpath, MEM_SIZE / 2), 0);
	assert_int_equal(snap_open(f->path, &s, err, sizeof(err)), 0);
	assert_int_equal(snap_memory_open(s, &fd, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "exactly"));
	snap_close(s);
	assert_int_equal(truncate(mpath, MEM_SIZE + 4096), 0);
	assert_int_equal(snap_open(f->path, &s, err, sizeof(err)), 0);
	assert_int_equal(snap_memory_open(s, &fd, err, sizeof(err)), -EBADMSG);
	snap_close(s);
}

static void test_unknown_optional_section_is_skipped(void **state)
{
	struct fx *f = *state;
	char err[256];
	write_snapshot(f, "gpu-future", 0);
	struct snap *s;
	assert_int_equal(snap_open(f->path, &s, err, sizeof(err)), 0);
	const struct snap_section *x = snap_section_find(s, "gpu-future");
	assert_non_null(x); /* listed, not interpreted */
	struct snap_machine m;
	assert_int_equal(snap_get_machine(s, &m, err, sizeof(err)), 0);
	snap_close(s);
}

static void test_unknown_required_section_is_refused(void **state)
{
	struct fx *f = *state;
	write_snapshot(f, "foo", SNAP_SEC_REQUIRED);
	expect_open_error(f->path, "unknown required section 'foo'");
}

static void rewrite_header_crc(const char *path)
{
	uint8_t h[SNAP_HEADER_SIZE];
	read_header(path, h);
	uint32_t c = snap_crc32c(0, h, H_CRC);
	patch(path, H_CRC, &c, 4);
}

static void test_newer_major_version_is_refused(void **state)
{
	struct fx *f = *state;
	write_snapshot(f, NULL, 0);
	uint16_t v[2] = {2, 0};
	patch(f->path, H_MAJOR, v, 4);
	rewrite_header_crc(f->path);
	expect_open_error(f->path, "format version 2.0 is newer than this reader (1.x)");
}

static void test_newer_minor_version_is_accepted(void **state)
{
	struct fx *f = *state;
	struct snap *s;
	char err[256];
	write_snapshot(f, NULL, 0);
	uint16_t v[2] = {1, 7};
	patch(f->path, H_MAJOR, v, 4);
	rewrite_header_crc(f->path);
	assert_int_equal(snap_open(f->path, &s, err, sizeof(err)), 0);
	snap_close(s);
}

static void test_unknown_incompatible_header_flag_is_refused(void **state)
{
	struct fx *f = *state;
	write_snapshot(f, NULL, 0);
	uint32_t flags = 1u << 9;
	patch(f->path, H_FLAGS, &flags, 4);
	rewrite_header_crc(f->path);
	expect_open_error(f->path, "unknown incompatible flags 0x200");
}

static void test_bad_magic_is_refused(void **state)
{
	struct fx *f = *state;
	write_snapshot(f, NULL, 0);
	patch(f->path, 0, "QFI\xfb", 4);
	expect_open_error(f->path, "bad magic");
}

static void test_truncated_file_is_refused_at_every_point(void **state)
{
	struct fx *f = *state;
	write_snapshot(f, NULL, 0);
	struct snap *s;
	char err[256];
	assert_int_equal(snap_open(f->path, &s, err, sizeof(err)), 0);
	const struct snap_section *dev = snap_section_find(s, "device.blk0");
	uint64_t dev_mid = dev->offset + dev->size / 2;
	struct snap_memory_loc loc;
	snap_memory(s, &loc);
	snap_close(s);
	char copy[160];
	snprintf(copy, sizeof(copy), "%s/cut.snap", f->dir);
	static const struct {
		int64_t at; /* >= 0: absolute size; < 0: marker below */
		const char *msg;
	} cuts[] = {
	    {0, "bad magic"},
	    {5, "bad magic"},
	    {100, "file truncated: header needs 4096 bytes"},
	    {4096 + 20, "file truncated: section table ends at"},
	    {-1, "file truncated: section 'device.blk0' ends at"},
	    {-2, "file truncated: section 'memory' ends at"},
	    {-3, "file truncated: section 'memory' ends at"},
	};
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		uint64_t at = cuts[i].at >= 0	 ? (uint64_t)cuts[i].at
			      : cuts[i].at == -1 ? dev_mid
			      : cuts[i].at == -2 ? loc.offset + 4096
						 : loc.offset + loc.size - 1;
		char cmd[512];
		snprintf(cmd, sizeof(cmd), "cp --sparse=always %s %s", f->path, copy);
		assert_int_equal(system(cmd), 0);
		assert_int_equal(truncate(copy, (off_t)at), 0);
		expect_open_error(copy, cuts[i].msg);
	}
}

static void test_flipped_bit_in_each_state_section_is_named(void **state)
{
	struct fx *f = *state;
	write_snapshot(f, "extra", 0);
	struct snap *s;
	char err[256], copy[160], cmd[512], want[256];
	assert_int_equal(snap_open(f->path, &s, err, sizeof(err)), 0);
	size_t n = snap_section_count(s);
	struct snap_section secs[16];
	assert_true(n <= 16);
	for (size_t i = 0; i < n; i++)
		secs[i] = *snap_section_at(s, i);
	snap_close(s);
	snprintf(copy, sizeof(copy), "%s/flip.snap", f->dir);
	int checked = 0;
	for (size_t i = 0; i < n; i++) {
		if (secs[i].flags & SNAP_SEC_BULK)
			continue;
		for (uint64_t at = secs[i].offset; at < secs[i].offset + secs[i].size;
		     at += secs[i].size / 3 + 1) {
			snprintf(cmd, sizeof(cmd), "cp --sparse=always %s %s", f->path, copy);
			assert_int_equal(system(cmd), 0);
			flip_bit(copy, at, (unsigned)(at % 8));
			snprintf(want, sizeof(want), "section '%.31s' checksum mismatch",
				 secs[i].name);
			expect_open_error(copy, want);
			checked++;
		}
	}
	assert_true(checked >= 3 * 5); /* machine, device, extra, config, sums, zero */

	/* header and table */
	snprintf(cmd, sizeof(cmd), "cp --sparse=always %s %s", f->path, copy);
	assert_int_equal(system(cmd), 0);
	flip_bit(copy, H_VENDOR + 2, 1);
	expect_open_error(copy, "header checksum mismatch");
	assert_int_equal(system(cmd), 0);
	flip_bit(copy, SNAP_HEADER_SIZE + T_OFFSET, 4);
	expect_open_error(copy, "section table checksum mismatch");
}

static void test_hostile_table_bounds_are_refused(void **state)
{
	struct fx *f = *state;
	write_snapshot(f, NULL, 0);
	char copy[160], cmd[512];
	snprintf(copy, sizeof(copy), "%s/evil.snap", f->dir);
	snprintf(cmd, sizeof(cmd), "cp --sparse=always %s %s", f->path, copy);
	uint8_t h[SNAP_HEADER_SIZE];
	read_header(f->path, h);
	uint32_t count = rd32(h + H_COUNT);
	uint8_t *tab = malloc(count * SNAP_TABLE_ENTRY);
	int fd = open(f->path, O_RDONLY);
	assert_int_equal(pread(fd, tab, count * SNAP_TABLE_ENTRY, SNAP_HEADER_SIZE),
			 (ssize_t)(count * SNAP_TABLE_ENTRY));
	close(fd);

	/* Each case edits the table and fixes both checksums so only the bound is wrong. */
	struct {
		unsigned entry, field;
		uint64_t value;
		const char *msg;
	} cases[] = {
	    {0, T_SIZE, ~0ull - 10, "offset+size overflows"},
	    {1, T_OFFSET, 4096, "overlaps"},
	    {0, T_OFFSET, 1ull << 40, "file truncated: section 'machine' ends at"},
	    {0, T_NAME, 0x4f4f4f, "invalid name"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t *t = malloc(count * SNAP_TABLE_ENTRY);
		memcpy(t, tab, count * SNAP_TABLE_ENTRY);
		uint8_t *e = t + cases[i].entry * SNAP_TABLE_ENTRY;
		if (cases[i].field == T_NAME)
			memcpy(e, &cases[i].value, 4);
		else
			wr64(e + cases[i].field, cases[i].value);
		assert_int_equal(system(cmd), 0);
		patch(copy, SNAP_HEADER_SIZE, t, count * SNAP_TABLE_ENTRY);
		uint32_t c = snap_crc32c(0, t, count * SNAP_TABLE_ENTRY);
		patch(copy, H_TABLE_CRC, &c, 4);
		rewrite_header_crc(copy);
		expect_open_error(copy, cases[i].msg);
		free(t);
	}
	/* a duplicate name */
	uint8_t *t = malloc(count * SNAP_TABLE_ENTRY);
	memcpy(t, tab, count * SNAP_TABLE_ENTRY);
	memcpy(t + SNAP_TABLE_ENTRY, t, SNAP_NAME_MAX);
	assert_int_equal(system(cmd), 0);
	patch(copy, SNAP_HEADER_SIZE, t, count * SNAP_TABLE_ENTRY);
	uint32_t c = snap_crc32c(0, t, count * SNAP_TABLE_ENTRY);
	patch(copy, H_TABLE_CRC, &c, 4);
	rewrite_header_crc(copy);
	expect_open_error(copy, "duplicate section 'machine'");
	free(t);
	/* a huge section count */
	assert_int_equal(system(cmd), 0);
	uint32_t big = 1u << 30;
	patch(copy, H_COUNT, &big, 4);
	rewrite_header_crc(copy);
	expect_open_error(copy, "header fields out of range");
	free(tab);
}

static void test_abort_leaves_no_file(void **state)
{
	struct fx *f = *state;
	struct snap_writer *w;
	struct snap_sec *s;
	assert_int_equal(snap_writer_create(f->path, NULL, &w), 0);
	assert_int_equal(count_files(f->dir), 0); /* the file being written has no name */
	assert_int_equal(snap_writer_section(w, "machine", 1, 0, SNAP_SEC_REQUIRED, &s), 0);
	snap_writer_abort(w);
	assert_int_equal(count_files(f->dir), 0);
	assert_int_equal(access(f->path, F_OK), -1);
}

static void test_full_disk_leaves_no_file_and_keeps_old_one(void **state)
{
	struct fx *f = *state;
	/* An old snapshot under the final name must survive a failed create untouched. */
	write_snapshot(f, NULL, 0);
	struct stat before;
	assert_int_equal(stat(f->path, &before), 0);

	/* RLIMIT_FSIZE makes writes past 1 MiB fail with EFBIG, as a full disk would with
	 * ENOSPC: memory (at 2 MiB) cannot be written. */
	struct rlimit old, lim = {.rlim_cur = 1u << 20, .rlim_max = RLIM_INFINITY};
	getrlimit(RLIMIT_FSIZE, &old);
	lim.rlim_max = old.rlim_max;
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	struct snap_writer *w;
	struct snap_writer_opts o = {.no_fsync = true};
	assert_int_equal(snap_writer_create(f->path, &o, &w), 0);
	assert_int_equal(snap_writer_set_memory(w, f->mem, MEM_SIZE), 0);
	int r = snap_writer_commit(w, NULL);
	setrlimit(RLIMIT_FSIZE, &old);
	signal(SIGXFSZ, SIG_DFL);
	assert_int_equal(r, -EFBIG);
	assert_int_equal(count_files(f->dir), 1); /* only the old snapshot */
	struct stat after;
	assert_int_equal(stat(f->path, &after), 0);
	assert_int_equal(after.st_ino, before.st_ino);
	struct snap *s;
	char err[256];
	assert_int_equal(snap_open(f->path, &s, err, sizeof(err)), 0);
	snap_close(s);
}

static void test_failed_section_builder_fails_commit(void **state)
{
	struct fx *f = *state;
	struct snap_writer *w;
	struct snap_sec *s;
	assert_int_equal(snap_writer_create(f->path, NULL, &w), 0);
	assert_int_equal(snap_writer_section(w, "device.x", 1, 0, 0, &s), 0);
	assert_int_equal(snap_put_strn(s, 1, "a\0b", 3), -EINVAL); /* NUL inside a string */
	assert_int_equal(snap_put_u64(s, 2, 1), -EINVAL);	   /* sticky */
	assert_int_equal(snap_writer_commit(w, NULL), -EINVAL);
	assert_int_equal(count_files(f->dir), 0);
}

static void test_writer_refuses_bad_names_and_duplicates(void **state)
{
	struct fx *f = *state;
	struct snap_writer *w;
	struct snap_sec *s;
	assert_int_equal(snap_writer_create(f->path, NULL, &w), 0);
	assert_int_equal(snap_writer_section(w, "Bad Name", 1, 0, 0, &s), -EINVAL);
	assert_int_equal(snap_writer_section(w, "", 1, 0, 0, &s), -EINVAL);
	assert_int_equal(snap_writer_section(w, "a-name-that-is-far-too-long-for-32", 1, 0, 0, &s),
			 -EINVAL);
	assert_int_equal(snap_writer_section(w, "memory", 1, 0, 0, &s), -EINVAL);
	assert_int_equal(snap_writer_section(w, "x", 1, 0, 0, &s), 0);
	assert_int_equal(snap_writer_section(w, "x", 1, 0, 0, &s), -EEXIST);
	assert_int_equal(snap_writer_set_memory(w, f->mem, 100), -EINVAL);
	assert_int_equal(snap_put_config(w, "{not json", 9), -EINVAL);
	snap_writer_abort(w);
}

static void test_memory_file_without_memory_is_refused(void **state)
{
	struct fx *f = *state;
	char mpath[160];
	struct snap_writer *w;
	snprintf(mpath, sizeof(mpath), "%s/vm.mem", f->dir);
	struct snap_writer_opts o = {.mem_file_path = mpath};
	assert_int_equal(snap_writer_create(f->path, &o, &w), 0);
	assert_int_equal(count_files(f->dir), 0); /* both files being written are unnamed */
	assert_int_equal(snap_writer_commit(w, NULL), -EINVAL);
	assert_int_equal(count_files(f->dir), 0);
}

static void sums_of(const char *path, uint64_t *out, size_t cap, size_t *n)
{
	struct snap *s;
	char err[256];
	const uint64_t *v;
	assert_int_equal(snap_open(path, &s, err, sizeof(err)), 0);
	assert_int_equal(snap_get_u64a(snap_section_find(s, "memory.sums"), 3, &v, n), 0);
	assert_true(*n <= cap);
	memcpy(out, v, *n * 8);
	assert_int_equal(snap_memory_verify(s, NULL, NULL, NULL), 0);
	snap_close(s);
}

static void test_checksum_thread_gives_same_sums(void **state)
{
	struct fx *f = *state;
	uint64_t a[8], b[8];
	size_t na, nb;
	write_snapshot(f, NULL, 0);
	sums_of(f->path, a, 8, &na);
	struct snap_writer *w;
	struct snap_writer_opts o = {.no_fsync = true, .checksum_thread = true};
	assert_int_equal(snap_writer_create(f->path, &o, &w), 0);
	assert_int_equal(snap_writer_set_memory(w, f->mem, MEM_SIZE), 0);
	assert_int_equal(snap_writer_commit(w, NULL), 0);
	sums_of(f->path, b, 8, &nb);
	assert_int_equal(na, 3);
	assert_int_equal(nb, na);
	assert_memory_equal(a, b, na * 8);
}

static void test_snapshot_without_memory(void **state)
{
	struct fx *f = *state;
	struct snap_writer *w;
	struct snap *s;
	char err[256];
	uint64_t pages[] = {5, 1, 9};
	assert_int_equal(snap_writer_create(f->path, NULL, &w), 0);
	assert_int_equal(snap_put_workingset(w, pages, 3), 0);
	assert_int_equal(snap_writer_commit(w, NULL), 0);
	assert_int_equal(snap_open(f->path, &s, err, sizeof(err)), 0);
	struct snap_memory_loc loc;
	snap_memory(s, &loc);
	assert_int_equal(loc.size, 0);
	const uint64_t *ws;
	size_t n;
	/* a working-set side file: pages are the base's, not checked here */
	assert_int_equal(snap_workingset(s, &ws, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(ws[0], 5);
	snap_close(s);
}

static void test_workingset_round_trip(void **state)
{
	struct fx *f = *state;
	struct snap_writer *w;
	struct snap *s;
	char err[256];
	uint64_t pages[] = {1000, 3, 77, 1, 1535};
	assert_int_equal(snap_writer_create(f->path, NULL, &w), 0);
	assert_int_equal(snap_put_workingset(w, pages, 5), 0);
	assert_int_equal(snap_writer_set_memory(w, f->mem, MEM_SIZE), 0);
	assert_int_equal(snap_writer_commit(w, NULL), 0);
	assert_int_equal(snap_open(f->path, &s, err, sizeof(err)), 0);
	const uint64_t *ws;
	size_t n;
	assert_int_equal(snap_workingset(s, &ws, &n), 0);
	assert_int_equal(n, 5);
	assert_memory_equal(ws, pages, sizeof(pages));
	snap_close(s);
	/* a page beyond memory is refused */
	pages[2] = MEM_SIZE / 4096;
	assert_int_equal(snap_writer_create(f->path, NULL, &w), 0);
	assert_int_equal(snap_put_workingset(w, pages, 5), 0);
	assert_int_equal(snap_writer_set_memory(w, f->mem, MEM_SIZE), 0);
	assert_int_equal(snap_writer_commit(w, NULL), 0);
	assert_int_equal(snap_open(f->path, &s, err, sizeof(err)), 0);
	assert_int_equal(snap_workingset(s, &ws, &n), -EBADMSG);
	snap_close(s);
}

static void test_crc32c_vectors(void **state)
{
	(void)state;
	assert_int_equal(snap_crc32c(0, "123456789", 9), 0xe3069283);
	uint8_t *z = calloc(1, 3 * 4096 + 123);
	assert_int_equal(snap_crc32c_zeros(0, 3 * 4096 + 123), snap_crc32c(0, z, 3 * 4096 + 123));
	assert_int_equal(snap_crc32c_zeros(0x1234, 4096), snap_crc32c(0x1234, z, 4096));
	/* chaining equals one pass, across the 3-stream boundary */
	uint8_t *b = malloc(20000);
	for (int i = 0; i < 20000; i++)
		b[i] = (uint8_t)(i * 7 + 3);
	uint32_t one = snap_crc32c(0, b, 20000);
	assert_int_equal(snap_crc32c(snap_crc32c(0, b, 4097), b + 4097, 20000 - 4097), one);
	assert_int_equal(snap_crc32c(snap_crc32c(0, b + 1, 1), b + 2, 17),
			 snap_crc32c(0, b + 1, 18));
	free(b);
	free(z);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_crc32c_vectors),
	    cmocka_unit_test_setup_teardown(test_round_trip_sections_and_fields, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_memory_mmap_reads_back_with_holes, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_memory_corruption_found_by_verify_only, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_external_memory_file, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unknown_optional_section_is_skipped, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_unknown_required_section_is_refused, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_newer_major_version_is_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_newer_minor_version_is_accepted, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unknown_incompatible_header_flag_is_refused, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_bad_magic_is_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_truncated_file_is_refused_at_every_point, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_flipped_bit_in_each_state_section_is_named, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_hostile_table_bounds_are_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_abort_leaves_no_file, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_full_disk_leaves_no_file_and_keeps_old_one, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_failed_section_builder_fails_commit, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_writer_refuses_bad_names_and_duplicates, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_memory_file_without_memory_is_refused, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_checksum_thread_gives_same_sums, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_snapshot_without_memory, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_workingset_round_trip, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
