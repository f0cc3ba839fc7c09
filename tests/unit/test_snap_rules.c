/* The format's own rules, as docs/snapshot-format.md states them, each enforced by the
 * reader (snap_open), the offline checker (snap_check, thaw-snap verify) or the writer:
 * one test per rule, on files a writer made and then damaged the way an attacker (or a
 * broken writer) would, with every checksum recomputed so the rule itself is what
 * refuses the file. */
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "restore/snap_internal.h"
#include "restore/snap_kvm.h"

#define MEM_SIZE (4u << 20)

struct fx {
	char dir[64];
	char path[128];
	uint8_t *mem;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_snap_rules.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/vm.snap", f->dir);
	f->mem = aligned_alloc(4096, MEM_SIZE);
	memset(f->mem, 0, MEM_SIZE);
	for (uint32_t pg = 0; pg < MEM_SIZE / 4096; pg += 2)
		memset(f->mem + pg * 4096, (int)(pg | 1), 4096);
	*state = f;
	return 0;
}

static void rm_tree(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char p[512];
	while (d && (e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		if (unlink(p) < 0 && errno == EISDIR)
			rm_tree(p);
	}
	if (d)
		closedir(d);
	rmdir(dir);
}

static int teardown(void **state)
{
	struct fx *f = *state;
	rm_tree(f->dir);
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

/* A complete, restorable snapshot: machine, cpuid, one vCPU, irqchip/pit/clock, a device,
 * config and memory. `dup_tag` repeats a field of the device section. */
static void write_full(struct fx *f, const struct snap_writer_opts *o, bool dup_tag)
{
	struct snap_writer *w;
	struct snap_writer_opts def = {.no_fsync = true};
	struct snap_machine m = {.mem_size = MEM_SIZE, .nr_vcpus = 1, .nr_regions = 1};
	static struct snap_vcpu_state v;
	struct snap_vm_state vm;
	struct kvm_cpuid_entry2 c = {.function = 1, .eax = 0x806f8};
	struct snap_device_place pl = {0xd0000000, 0x1000, 5};
	struct snap_sec *s;
	m.regions[0].size = MEM_SIZE;
	memset(&vm, 0, sizeof(vm));
	assert_int_equal(snap_writer_create(f->path, o ? o : &def, &w), 0);
	assert_int_equal(snap_put_machine(w, &m), 0);
	assert_int_equal(snap_put_cpuid(w, &c, 1), 0);
	assert_int_equal(snap_put_vcpu(w, 0, &v), 0);
	assert_int_equal(snap_put_vm(w, &vm), 0);
	/* A virtio-rng as thaw writes it (docs/snapshot-format.md 6.7): it has no fields of
	 * its own, so the transport and virtio layers are all there is. */
	assert_int_equal(snap_device_begin(w, "virtio0", "virtio-rng", 1, 0, &pl, &s), 0);
	snap_put_u64(s, 5, 0);			  /* index */
	snap_put_u64(s, 6, 4);			  /* device_id: rng */
	snap_put_str(s, 7, "rng");		  /* name */
	snap_put_u64(s, SNAP_DEV_TRANSPORT, 0xf); /* status */
	if (dup_tag)
		snap_put_u64(s, SNAP_DEV_TRANSPORT, 0);
	for (uint16_t t = SNAP_DEV_TRANSPORT + 1; t <= SNAP_DEV_TRANSPORT + 5; t++)
		snap_put_u64(s, t, 0);
	snap_put_u64(s, SNAP_DEV_VIRTIO, 1ull << 32);	  /* features offered: VERSION_1 */
	snap_put_u64(s, SNAP_DEV_VIRTIO + 1, 1ull << 32); /* acked */
	snap_put_u64(s, SNAP_DEV_VIRTIO + 2, 1);	  /* queues */
	snap_put_u64a(s, SNAP_DEV_VIRTIO + 0x10, (const uint64_t[9]){0}, 9);
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

static uint8_t *slurp(const char *path, size_t *len)
{
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	uint8_t *b = malloc((size_t)st.st_size);
	int fd = open(path, O_RDONLY);
	assert_int_equal(pread(fd, b, (size_t)st.st_size, 0), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return b;
}

/* Recomputes every state section's, the table's and the header's checksum, so what a
 * test changed is judged by the rule it breaks, not by a checksum. */
static void refresh_checksums(const char *path)
{
	size_t len;
	uint8_t *b = slurp(path, &len);
	uint32_t count = rd32(b + H_COUNT);
	uint64_t toff = rd64(b + H_TABLE_OFF);
	for (uint32_t i = 0; i < count; i++) {
		uint8_t *e = b + toff + (uint64_t)i * SNAP_TABLE_ENTRY;
		uint64_t off = rd64(e + T_OFFSET), sz = rd64(e + T_SIZE);
		if (!(rd32(e + T_FLAGS) & SNAP_SEC_BULK) && off + sz <= len)
			wr32(e + T_CRC, snap_crc32c(0, b + off, sz));
	}
	wr32(b + H_TABLE_CRC, snap_crc32c(0, b + toff, (size_t)count * SNAP_TABLE_ENTRY));
	wr32(b + H_CRC, snap_crc32c(0, b, H_CRC));
	patch(path, 0, b, toff + (size_t)count * SNAP_TABLE_ENTRY);
	free(b);
}

/* File offset of the table entry of section `name`. */
static uint64_t entry_of(const char *path, const char *name)
{
	size_t len;
	uint8_t *b = slurp(path, &len);
	uint32_t count = rd32(b + H_COUNT);
	uint64_t toff = rd64(b + H_TABLE_OFF);
	for (uint32_t i = 0; i < count; i++) {
		uint64_t e = toff + (uint64_t)i * SNAP_TABLE_ENTRY;
		if (!strcmp((const char *)b + e, name)) {
			free(b);
			return e;
		}
	}
	free(b);
	fail_msg("no section %s", name);
	return 0;
}

static uint64_t rd_at(const char *path, uint64_t off)
{
	uint64_t v;
	int fd = open(path, O_RDONLY);
	assert_int_equal(pread(fd, &v, 8, (off_t)off), 8);
	close(fd);
	return v;
}

static void expect_open_error(const char *path, const char *substr)
{
	struct snap *s = NULL;
	char err[256] = "";
	int r =
	    snap_open_flags(path, SNAP_OPEN_DIFF | SNAP_OPEN_NO_SECTION_CRC, &s, err, sizeof(err));
	if (r == 0)
		snap_close(s);
	if (r == 0 || !strstr(err, substr))
		fail_msg("open gave %d \"%s\", expected an error containing \"%s\"", r, err,
			 substr);
}

static void expect_opens(const char *path)
{
	struct snap *s = NULL;
	char err[256] = "";
	if (snap_open(path, &s, err, sizeof(err)))
		fail_msg("open failed: %s", err);
	snap_close(s);
}

/* ---------------------------------------------------------------- tags */

static void test_tag_twice_in_a_section_is_refused(void **state)
{
	struct fx *f = *state;
	write_full(f, NULL, true);
	/* snap_get_u64 would see 0xf, a decoder walking the fields 0: neither may run */
	expect_open_error(f->path, "section 'device.virtio0' has tag 0x100 twice");
}

static void test_nonzero_field_padding_is_refused(void **state)
{
	struct fx *f = *state;
	write_full(f, NULL, false);
	/* config's tag 1 holds 12 bytes of JSON: 4 bytes of padding follow */
	uint64_t e = entry_of(f->path, "config");
	uint64_t off = rd_at(f->path, e + T_OFFSET);
	uint8_t x = 0x55;
	patch(f->path, off + 8 + 12, &x, 1);
	refresh_checksums(f->path);
	expect_open_error(f->path, "non-zero padding");
}

/* ---------------------------------------------------------------- header and table */

static void test_appended_bytes_are_refused(void **state)
{
	struct fx *f = *state;
	write_full(f, NULL, false);
	int fd = open(f->path, O_WRONLY | O_APPEND);
	assert_int_equal(write(fd, "hidden", 6), 6);
	close(fd);
	expect_open_error(f->path, "6 bytes appended");
}

static void test_header_reserved_bytes_must_be_zero_in_a_known_minor(void **state)
{
	struct fx *f = *state;
	write_full(f, NULL, false);
	uint8_t x = 1;
	patch(f->path, 1000, &x, 1);
	refresh_checksums(f->path);
	expect_open_error(f->path, "header reserved bytes are not zero");
	/* a newer minor may have put a field there: this reader ignores it */
	uint16_t minor = SNAP_FORMAT_MINOR + 1;
	patch(f->path, H_MINOR, &minor, 2);
	refresh_checksums(f->path);
	expect_opens(f->path);
}

static void test_table_reserved_bytes_and_flags_must_be_zero(void **state)
{
	struct fx *f = *state;
	write_full(f, NULL, false);
	uint64_t e = entry_of(f->path, "pit");
	uint32_t x = 1;
	patch(f->path, e + 60, &x, 4);
	refresh_checksums(f->path);
	expect_open_error(f->path, "section 'pit': reserved table bits or bytes");
	x = 0;
	patch(f->path, e + 60, &x, 4);
	uint32_t flags = SNAP_SEC_REQUIRED | (1u << 9);
	patch(f->path, e + T_FLAGS, &flags, 4);
	refresh_checksums(f->path);
	expect_open_error(f->path, "section 'pit': reserved table bits or bytes");
}

static void test_raw_or_bulk_outside_memory_is_refused(void **state)
{
	struct fx *f = *state;
	write_full(f, NULL, false);
	uint64_t e = entry_of(f->path, "config");
	uint32_t flags = SNAP_SEC_RAW; /* would hide its bytes from every field check */
	patch(f->path, e + T_FLAGS, &flags, 4);
	refresh_checksums(f->path);
	expect_open_error(f->path, "only 'memory' is raw and bulk");
}

static void test_required_section_without_its_flag_is_refused(void **state)
{
	struct fx *f = *state;
	write_full(f, NULL, false);
	uint64_t e = entry_of(f->path, "clock");
	uint32_t flags = 0; /* an older reader would skip it and restore without a clock */
	patch(f->path, e + T_FLAGS, &flags, 4);
	refresh_checksums(f->path);
	expect_open_error(f->path, "section 'clock' lacks the REQUIRED flag");
}

static void test_bytes_between_state_sections_are_refused(void **state)
{
	struct fx *f = *state;
	struct snap_writer *w;
	struct snap_writer_opts o = {.no_fsync = true};
	uint64_t pages[] = {1, 2};
	assert_int_equal(snap_writer_create(f->path, &o, &w), 0);
	assert_int_equal(snap_put_workingset(w, pages, 2), 0);
	assert_int_equal(snap_writer_commit(w, NULL), 0);
	expect_opens(f->path);
	/* grow the state area by 8 bytes after its last section, header kept consistent */
	uint64_t end = rd_at(f->path, H_STATE_END) + 8;
	patch(f->path, H_STATE_END, &end, 8);
	patch(f->path, H_FILE_SIZE, &end, 8);
	uint64_t junk = 0x4141414141414141ull;
	patch(f->path, end - 8, &junk, 8);
	refresh_checksums(f->path);
	expect_open_error(f->path, "only zero padding to 8 bytes may follow it");
}

static void test_state_end_must_be_8_aligned(void **state)
{
	struct fx *f = *state;
	write_full(f, NULL, false);
	uint64_t end = rd_at(f->path, H_STATE_END) + 4;
	patch(f->path, H_STATE_END, &end, 8);
	refresh_checksums(f->path);
	expect_open_error(f->path, "header fields out of range");
}

static void test_memory_must_start_at_first_boundary_after_state(void **state)
{
	struct fx *f = *state;
	write_full(f, NULL, false);
	/* move memory 2 MiB later: a 2 MiB gap no checksum covers */
	uint64_t e = entry_of(f->path, "memory");
	uint64_t off = rd_at(f->path, e + T_OFFSET) + SNAP_MEM_ALIGN;
	uint64_t fsize = off + MEM_SIZE;
	patch(f->path, e + T_OFFSET, &off, 8);
	patch(f->path, H_FILE_SIZE, &fsize, 8);
	assert_int_equal(truncate(f->path, (off_t)fsize), 0);
	refresh_checksums(f->path);
	expect_open_error(f->path, "first 2 MiB boundary after the state area");
}

static void test_empty_memory_is_refused_by_writer_and_reader(void **state)
{
	struct fx *f = *state;
	struct snap_writer *w;
	assert_int_equal(snap_writer_create(f->path, NULL, &w), 0);
	assert_int_equal(snap_writer_set_memory(w, f->mem, 0), -EINVAL);
	snap_writer_abort(w);
	write_full(f, NULL, false);
	uint64_t e = entry_of(f->path, "memory");
	uint64_t off = rd_at(f->path, e + T_OFFSET), zero = 0;
	patch(f->path, e + T_SIZE, &zero, 8);
	patch(f->path, H_FILE_SIZE, &off, 8);
	assert_int_equal(truncate(f->path, (off_t)off), 0);
	refresh_checksums(f->path);
	expect_open_error(f->path, "a non-zero whole number of pages");
}

static void test_verify_finds_bytes_hidden_before_memory(void **state)
{
	struct fx *f = *state;
	struct snap *s;
	char err[256];
	write_full(f, NULL, false);
	patch(f->path, rd_at(f->path, H_STATE_END) + 100, "hidden", 6);
	expect_opens(f->path); /* the restore path never reads there */
	assert_int_equal(snap_open(f->path, &s, err, sizeof(err)), 0);
	assert_int_equal(snap_memory_verify(s, NULL, NULL, NULL), -EBADMSG);
	snap_close(s);
}

/* ---------------------------------------------------------------- section versions */

static void test_memory_file_section_newer_major_is_refused_at_open(void **state)
{
	struct fx *f = *state;
	char mpath[160];
	snprintf(mpath, sizeof(mpath), "%s/vm.mem", f->dir);
	struct snap_writer_opts o = {.no_fsync = true, .mem_file_path = mpath};
	write_full(f, &o, false);
	uint16_t maj = 2;
	patch(f->path, entry_of(f->path, "memory.file") + T_VMAJ, &maj, 2);
	refresh_checksums(f->path);
	expect_open_error(f->path, "section 'memory.file' version 2.0 is newer than this reader");
}

static void test_optional_section_of_newer_major_is_not_used(void **state)
{
	struct fx *f = *state;
	struct snap *s;
	char err[256];
	const uint8_t *bits;
	uint64_t n;
	const char *json;
	size_t len;
	write_full(f, NULL, false);
	uint16_t maj = 2;
	patch(f->path, entry_of(f->path, "memory.zero") + T_VMAJ, &maj, 2);
	patch(f->path, entry_of(f->path, "config") + T_VMAJ, &maj, 2);
	refresh_checksums(f->path);
	assert_int_equal(snap_open(f->path, &s, err, sizeof(err)), 0);
	assert_int_equal(snap_memory_zero_bitmap(s, &bits, &n), -EPROTONOSUPPORT);
	assert_int_equal(snap_get_config(s, &json, &len), -EPROTONOSUPPORT);
	snap_close(s);
}

/* ---------------------------------------------------------------- memory.file */

static void test_memory_file_name_cannot_leave_the_directory(void **state)
{
	struct fx *f = *state;
	char mpath[160];
	static const char *const bad[] = {"../vm.m", "/etc/pa", "sub/x.m", "..\0\0\0\0\0"};
	snprintf(mpath, sizeof(mpath), "%s/vm.mem1", f->dir);
	struct snap_writer_opts o = {.no_fsync = true, .mem_file_path = mpath};
	write_full(f, &o, false);
	uint64_t e = entry_of(f->path, "memory.file");
	uint64_t off = rd_at(f->path, e + T_OFFSET);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		/* tag 1 is the first record: its value is the name, 7 bytes */
		uint32_t len = (uint32_t)strnlen(bad[i], 7);
		patch(f->path, off + 4, &len, 4);
		patch(f->path, off + 8, bad[i], 7);
		refresh_checksums(f->path);
		expect_open_error(f->path, "one file name in the snapshot's directory");
	}
}

static void test_memory_file_symlink_is_refused(void **state)
{
	struct fx *f = *state;
	char mpath[160], real[160], err[256];
	struct snap *s;
	int fd;
	snprintf(mpath, sizeof(mpath), "%s/vm.mem", f->dir);
	snprintf(real, sizeof(real), "%s/real.mem", f->dir);
	struct snap_writer_opts o = {.no_fsync = true, .mem_file_path = mpath};
	write_full(f, &o, false);
	assert_int_equal(rename(mpath, real), 0);
	assert_int_equal(symlink(real, mpath), 0);
	assert_int_equal(snap_open(f->path, &s, err, sizeof(err)), 0);
	assert_int_equal(snap_memory_open(s, &fd, err, sizeof(err)), -ELOOP);
	assert_non_null(strstr(err, "symlink"));
	snap_close(s);
}

static void test_relative_memory_file_is_written_where_the_reader_looks(void **state)
{
	struct fx *f = *state;
	char cwd[256], err[256];
	struct snap *s;
	int fd;
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(mkdir(f->path, 0700), 0); /* <dir>/vm.snap/ holds this test's files */
	assert_int_equal(chdir(f->dir), 0);
	/* both relative to the working directory: the memory file sits beside the
	 * snapshot, which must record it so that it is found from there */
	struct snap_writer_opts o = {.no_fsync = true, .mem_file_path = "vm.snap/m.raw"};
	struct snap_writer *w;
	assert_int_equal(snap_writer_create("vm.snap/s.snap", &o, &w), 0);
	assert_int_equal(snap_writer_set_memory(w, f->mem, MEM_SIZE), 0);
	assert_int_equal(snap_writer_commit(w, NULL), 0);
	assert_int_equal(chdir("/"), 0);
	char abs[256];
	snprintf(abs, sizeof(abs), "%s/s.snap", f->path);
	assert_int_equal(snap_open(abs, &s, err, sizeof(err)), 0);
	assert_int_equal(snap_memory_open(s, &fd, err, sizeof(err)), 0);
	close(fd);
	snap_close(s);
	/* a memory file elsewhere would be recorded where no reader looks: refused */
	assert_int_equal(chdir(f->dir), 0);
	o.mem_file_path = "m.raw";
	assert_int_equal(snap_writer_create("vm.snap/t.snap", &o, &w), -EINVAL);
	assert_int_equal(chdir(cwd), 0);
}

/* ---------------------------------------------------------------- atomic creation */

/* A create killed (SIGKILL) after writing memory, before commit. */
static void killed_create(struct fx *f, bool named)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct snap_writer *w;
		struct snap_writer_opts o = {.no_fsync = true, .named_temp = named};
		if (snap_writer_create(f->path, &o, &w))
			_exit(1);
		if (snap_writer_set_memory(w, f->mem, MEM_SIZE))
			_exit(1);
		kill(getpid(), SIGKILL);
		_exit(1);
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
}

static void test_killed_create_leaves_only_the_old_file(void **state)
{
	struct fx *f = *state;
	write_full(f, NULL, false);
	struct stat before, after;
	assert_int_equal(stat(f->path, &before), 0);
	for (int i = 0; i < 3; i++)
		killed_create(f, false);
	assert_int_equal(count_files(f->dir), 1); /* no `.vm.snap.tmp-XXXXXX` beside it */
	assert_int_equal(stat(f->path, &after), 0);
	assert_int_equal(before.st_ino, after.st_ino);
	expect_opens(f->path);
	/* a new create replaces it and leaves nothing else */
	write_full(f, NULL, false);
	assert_int_equal(count_files(f->dir), 1);
	expect_opens(f->path);
}

static void test_named_fallback_leftovers_are_removed_by_next_create(void **state)
{
	struct fx *f = *state;
	struct snap_writer_opts o = {.no_fsync = true, .named_temp = true};
	killed_create(f, true);
	assert_int_equal(count_files(f->dir), 1); /* what a file system without O_TMPFILE gets */
	killed_create(f, true);
	assert_int_equal(count_files(f->dir), 1); /* the second create removed the first's */
	/* a stale temporary of another target is not ours to remove */
	char other[160];
	snprintf(other, sizeof(other), "%s/.other.snap.tmp-abcdef", f->dir);
	close(open(other, O_CREAT | O_WRONLY, 0600));
	write_full(f, &o, false);
	assert_int_equal(count_files(f->dir), 2); /* vm.snap and the other target's */
	assert_int_equal(access(other, F_OK), 0);
	expect_opens(f->path);
}

static void test_link_name_left_between_link_and_rename_is_removed(void **state)
{
	struct fx *f = *state;
	char stale[160];
	write_full(f, NULL, false);
	/* a create killed after linking its finished file as `.vm.snap.tmp`, before the
	 * rename over the old file */
	snprintf(stale, sizeof(stale), "%s/.vm.snap.tmp", f->dir);
	close(open(stale, O_CREAT | O_WRONLY, 0600));
	write_full(f, NULL, false);
	assert_int_equal(count_files(f->dir), 1);
	assert_int_equal(access(stale, F_OK), -1);
}

/* ---------------------------------------------------------------- snap_check (verify) */

static void collect(void *opaque, const char *msg)
{
	char *buf = opaque;
	size_t n = strlen(buf);
	snprintf(buf + n, 4096 - n, "%s\n", msg);
}

static int check_file(const char *path, char *out, const struct snap_checker *extra, size_t nextra)
{
	struct snap *s;
	char err[256];
	out[0] = 0;
	if (snap_open_flags(path, SNAP_OPEN_DIFF, &s, err, sizeof(err)))
		fail_msg("open: %s", err);
	int r = snap_check(s, extra, nextra, collect, out, NULL);
	snap_close(s);
	return r;
}

static void test_check_passes_a_good_snapshot(void **state)
{
	struct fx *f = *state;
	char out[4096];
	write_full(f, NULL, false);
	if (check_file(f->path, out, NULL, 0))
		fail_msg("%s", out);
}

static void test_check_decodes_what_checksums_cannot_judge(void **state)
{
	struct fx *f = *state;
	char out[4096];
	write_full(f, NULL, false);
	/* vcpu.0's tag 0x101 (cs.limit, a u32) set to 2^32: checksums stay good */
	uint64_t e = entry_of(f->path, "vcpu.0");
	uint64_t off = rd_at(f->path, e + T_OFFSET), size = rd_at(f->path, e + T_SIZE);
	size_t len;
	uint8_t *b = slurp(f->path, &len);
	uint64_t pos = off;
	while (pos < off + size && rd16(b + pos) != 0x101)
		pos += 8 + align_up(rd32(b + pos + 4), 8);
	assert_true(pos < off + size);
	uint64_t v = 1ull << 32;
	patch(f->path, pos + 8, &v, 8);
	free(b);
	refresh_checksums(f->path);
	assert_int_equal(check_file(f->path, out, NULL, 0), -EBADMSG);
	assert_non_null(strstr(out, "section 'vcpu.0' field 'cs.limit' value 0x100000000"));
}

static void test_check_refuses_a_missing_vcpu(void **state)
{
	struct fx *f = *state;
	char out[4096];
	write_full(f, NULL, false);
	/* rename vcpu.0 to vcpu.1: machine says one vCPU */
	patch(f->path, entry_of(f->path, "vcpu.0") + 5, "1", 1);
	refresh_checksums(f->path);
	assert_int_equal(check_file(f->path, out, NULL, 0), -EBADMSG);
	assert_non_null(strstr(out, "section 'vcpu.0' is missing"));
	assert_non_null(strstr(out, "section 'vcpu.1' is beyond the machine's 1 vCPUs"));
}

static int seen_devices;
static int device_check(const struct snap *s, const struct snap_section *sec, char *err,
			size_t errlen)
{
	(void)s;
	seen_devices++;
	return snap_section_check_version(sec, 1, err, errlen);
}

static void test_check_runs_plugged_device_checkers(void **state)
{
	struct fx *f = *state;
	char out[4096];
	const struct snap_checker extra[] = {{"device.virtio", device_check}};
	write_full(f, NULL, false);
	seen_devices = 0;
	assert_int_equal(check_file(f->path, out, extra, 1), 0);
	assert_int_equal(seen_devices, 1);
	/* a device.virtio0 at 2.0: the device's checker refuses it */
	uint16_t maj = 2;
	patch(f->path, entry_of(f->path, "device.virtio0") + T_VMAJ, &maj, 2);
	refresh_checksums(f->path);
	assert_int_equal(check_file(f->path, out, extra, 1), -EBADMSG);
	assert_non_null(strstr(out, "section 'device.virtio0' version 2.0 is newer"));
}

static void test_check_knows_a_working_set_file(void **state)
{
	struct fx *f = *state;
	char out[4096];
	struct snap_writer *w;
	struct snap_sec *s;
	uint64_t pages[] = {3, 1};
	assert_int_equal(snap_writer_create(f->path, NULL, &w), 0);
	assert_int_equal(snap_put_workingset(w, pages, 2), 0);
	assert_int_equal(snap_writer_section(w, "base", 1, 0, 0, &s), 0);
	snap_put_str(s, 2, "vm.snap");
	assert_int_equal(snap_writer_commit(w, NULL), 0);
	if (check_file(f->path, out, NULL, 0))
		fail_msg("%s", out);
}

/* Runs `<build>/thaw-snap ARGS`, found beside this test's own build directory; its
 * output goes to `out`. Returns the exit status, or -1 when thaw-snap is not built. */
static int thaw_snap(const char *args, char *out, size_t cap)
{
	char exe[512], cmd[1024];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return -1;
	exe[n] = 0;
	*strrchr(exe, '/') = 0; /* <build>/tests */
	*strrchr(exe, '/') = 0; /* <build> */
	snprintf(cmd, sizeof(cmd), "%s/thaw-snap", exe);
	if (access(cmd, X_OK))
		return -1;
	snprintf(cmd, sizeof(cmd), "%s/thaw-snap %s 2>&1", exe, args);
	FILE *f = popen(cmd, "r");
	assert_non_null(f);
	size_t len = fread(out, 1, cap - 1, f);
	out[len] = 0;
	int st = pclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_verify_tool_fails_what_a_restore_would_refuse(void **state)
{
	struct fx *f = *state;
	char out[8192], args[256];
	snprintf(args, sizeof(args), "verify %s", f->path);
	write_full(f, NULL, false);
	int r = thaw_snap(args, out, sizeof(out));
	if (r < 0)
		skip(); /* make programs builds it; make test always has it */
	if (r != 0)
		fail_msg("verify of a good snapshot: %s", out);
	assert_non_null(strstr(out, "every section decodes"));
	/* irqchip's ioapic.id (tag 0x302, a u32) set to 2^32, checksums recomputed: every
	 * checksum is good, the restore path refuses the value */
	uint64_t e = entry_of(f->path, "irqchip");
	uint64_t off = rd_at(f->path, e + T_OFFSET), size = rd_at(f->path, e + T_SIZE);
	size_t len;
	uint8_t *b = slurp(f->path, &len);
	uint64_t pos = off;
	while (pos < off + size && rd16(b + pos) != 0x302)
		pos += 8 + align_up(rd32(b + pos + 4), 8);
	assert_true(pos < off + size);
	free(b);
	uint64_t v = 1ull << 32;
	patch(f->path, pos + 8, &v, 8);
	refresh_checksums(f->path);
	assert_int_equal(thaw_snap(args, out, sizeof(out)), 1);
	assert_non_null(strstr(out, "FAIL section 'irqchip' field 'ioapic.id'"));
	assert_null(strstr(out, "every section decodes"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	    T(test_tag_twice_in_a_section_is_refused),
	    T(test_nonzero_field_padding_is_refused),
	    T(test_appended_bytes_are_refused),
	    T(test_header_reserved_bytes_must_be_zero_in_a_known_minor),
	    T(test_table_reserved_bytes_and_flags_must_be_zero),
	    T(test_raw_or_bulk_outside_memory_is_refused),
	    T(test_required_section_without_its_flag_is_refused),
	    T(test_bytes_between_state_sections_are_refused),
	    T(test_state_end_must_be_8_aligned),
	    T(test_memory_must_start_at_first_boundary_after_state),
	    T(test_empty_memory_is_refused_by_writer_and_reader),
	    T(test_verify_finds_bytes_hidden_before_memory),
	    T(test_memory_file_section_newer_major_is_refused_at_open),
	    T(test_optional_section_of_newer_major_is_not_used),
	    T(test_memory_file_name_cannot_leave_the_directory),
	    T(test_memory_file_symlink_is_refused),
	    T(test_relative_memory_file_is_written_where_the_reader_looks),
	    T(test_killed_create_leaves_only_the_old_file),
	    T(test_named_fallback_leftovers_are_removed_by_next_create),
	    T(test_link_name_left_between_link_and_rename_is_removed),
	    T(test_check_passes_a_good_snapshot),
	    T(test_check_decodes_what_checksums_cannot_judge),
	    T(test_check_refuses_a_missing_vcpu),
	    T(test_check_runs_plugged_device_checkers),
	    T(test_check_knows_a_working_set_file),
	    T(test_verify_tool_fails_what_a_restore_would_refuse),
#undef T
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
