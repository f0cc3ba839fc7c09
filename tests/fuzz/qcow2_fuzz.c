/* libFuzzer target for the qcow2 parser and the code behind it: an image is
 * untrusted input (a clone's disk, a downloaded base). No input may crash the module,
 * read or write outside its buffers (ASan), hang, or allocate without bound.
 *
 * The input is the image file, put in a memfd. It is opened read-only and read at a
 * few places, checked and its snapshots listed; then opened writable and written,
 * flushed, snapshotted and checked again, so a malformed table that passed the open
 * is also met by allocation, copy-on-write and the snapshot code. A backing file the
 * image names is "not found" (nothing outside the input is touched). Built and run by
 * `make fuzz` (tests/build.mk); seeds are small qemu-img images in
 * tests/fuzz/qcow2_corpus/. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vmm/disk/disk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int no_backing(void *ctx, const char *path)
{
	return -ENOENT;
}

static const struct disk_opener opener = {.open = no_backing};

static int image_fd(const uint8_t *data, size_t size)
{
	int fd = memfd_create("qcow2-fuzz", MFD_CLOEXEC);

	if (fd < 0)
		abort();
	if (size && write(fd, data, size) != (ssize_t)size)
		abort();
	return fd;
}

static void exercise_reads(struct disk *d)
{
	static uint8_t buf[1 << 17];
	uint64_t size = disk_size(d);
	uint64_t offs[] = {0, size / 2, size > sizeof(buf) ? size - sizeof(buf) : 0};
	struct disk_check_result r;
	struct disk_extent e;

	for (unsigned i = 0; i < 3; i++) {
		size_t len = size - offs[i] < sizeof(buf) ? (size_t)(size - offs[i]) : sizeof(buf);

		if (disk_read(d, offs[i], buf, len) == 0 && len)
			disk_map(d, offs[i], len, false, &e);
	}
	disk_check(d, &r, NULL, NULL);
	for (unsigned i = 0; i < disk_snapshot_count(d); i++)
		if (!disk_snapshot_get(d, i))
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t pattern[70000];
	struct disk *d;
	char err[256];
	int fd;

	memset(pattern, 0x5a, sizeof(pattern));
	fd = image_fd(data, size);
	if (disk_open_fd(fd, "fuzz.qcow2", true, &opener, &d, err, sizeof(err)) == 0) {
		exercise_reads(d);
		disk_close(d);
	}

	fd = image_fd(data, size);
	if (disk_open_fd(fd, "fuzz.qcow2", false, &opener, &d, err, sizeof(err)) == 0) {
		uint64_t dsize = disk_size(d);

		if (dsize >= sizeof(pattern)) {
			disk_write(d, 512, pattern, sizeof(pattern));
			disk_write(d, dsize - 4096, pattern, 4096);
		}
		disk_flush(d);
		if (disk_snapshot_create(d, "fuzz") == 0 && dsize >= 4096) {
			disk_write(d, 0, pattern, 4096);
			disk_snapshot_revert(d, "fuzz");
			disk_snapshot_delete(d, "fuzz");
		}
		if (disk_snapshot_count(d))
			disk_snapshot_delete(d, disk_snapshot_get(d, 0)->id);
		exercise_reads(d);
		disk_close(d);
	}
	return 0;
}
