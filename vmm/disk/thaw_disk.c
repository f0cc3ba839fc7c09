/* thaw-disk: offline tools over disk images (raw and qcow2).
 *   thaw-disk info IMAGE                      format, sizes, backing file, snapshots (JSON)
 *   thaw-disk check IMAGE                     refcounts and tables, as `qemu-img check`
 *   thaw-disk create IMAGE SIZE [CLUSTER]     an empty qcow2 image (SIZE: bytes, K/M/G/T)
 *   thaw-disk overlay IMAGE BACKING           a qcow2 overlay over BACKING (raw or qcow2),
 *                                             of BACKING's size, in constant time
 *   thaw-disk snapshot list IMAGE
 *   thaw-disk snapshot create|revert|delete IMAGE NAME
 *   thaw-disk commit IMAGE                    write what IMAGE holds into its backing
 *                                             file (IMAGE is left as it is)
 * Exit status as qemu-img check's: 0 good, 1 failure, 2 corruption found, 3 only leaks
 * found; 64 usage.
 *
 * Hidden, for the crash-consistency test (tests/unit/test_disk_crash.c):
 *   thaw-disk _workload IMAGE SEED LOG [snap]
 *                                        writes stamped sectors forever, flushing every
 *                                        few writes and appending "N\n" to LOG (synced)
 *                                        once writes 0..N are durable; with `snap`,
 *                                        each flush is an internal snapshot instead
 *                                        (it flushes first), and the oldest is
 *                                        deleted when there are more than two
 *   thaw-disk _verify IMAGE SEED N       every sector written by writes 0..N holds that
 *                                        write's stamp or a later write's
 */
#include "vmm/disk/disk.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXIT_CORRUPT 2
#define EXIT_LEAKS   3
#define EXIT_USAGE   64

static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -1;
	switch (*end) {
	case 'T':
		shift += 10; /* fall through */
	case 'G':
		shift += 10; /* fall through */
	case 'M':
		shift += 10; /* fall through */
	case 'K':
		shift += 10;
		end++;
		break;
	case 0:
		break;
	default:
		return -1;
	}
	if (*end || (shift && v > (UINT64_MAX >> shift)))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

static int open_image(const char *path, bool ro, struct disk **d)
{
	char err[512];
	int ret = disk_open(path, ro, d, err, sizeof(err));

	if (ret)
		log_err("%s", err);
	return ret;
}

static int cmd_info(const char *path)
{
	struct disk_info in;
	struct disk *d;
	json_object *o, *snaps;

	if (open_image(path, true, &d))
		return 1;
	disk_get_info(d, &in);
	o = json_object_new_object();
	json_object_object_add(o, "filename", json_object_new_string(path));
	json_object_object_add(
	    o, "format", json_object_new_string(in.format == DISK_FMT_QCOW2 ? "qcow2" : "raw"));
	json_object_object_add(o, "virtual-size", json_object_new_uint64(in.size));
	json_object_object_add(o, "file-size", json_object_new_uint64(in.file_size));
	if (in.format == DISK_FMT_QCOW2) {
		json_object_object_add(o, "cluster-size", json_object_new_uint64(in.cluster_size));
		json_object_object_add(o, "refcount-bits",
				       json_object_new_uint64(in.refcount_bits));
		json_object_object_add(o, "lazy-refcounts",
				       json_object_new_boolean(in.lazy_refcounts));
		if (in.backing[0]) {
			json_object_object_add(o, "backing-filename",
					       json_object_new_string(in.backing));
			if (in.backing_fmt[0])
				json_object_object_add(o, "backing-filename-format",
						       json_object_new_string(in.backing_fmt));
		}
		snaps = json_object_new_array();
		for (unsigned i = 0; i < disk_snapshot_count(d); i++) {
			const struct disk_snapshot *s = disk_snapshot_get(d, i);
			json_object *j = json_object_new_object();

			json_object_object_add(j, "id", json_object_new_string(s->id));
			json_object_object_add(j, "name", json_object_new_string(s->name));
			json_object_object_add(j, "date-sec", json_object_new_uint64(s->date_sec));
			json_object_object_add(j, "date-nsec",
					       json_object_new_uint64(s->date_nsec));
			json_object_object_add(j, "vm-clock-nsec",
					       json_object_new_uint64(s->vm_clock_nsec));
			json_object_object_add(j, "vm-state-size",
					       json_object_new_uint64(s->vm_state_size));
			json_object_array_add(snaps, j);
		}
		json_object_object_add(o, "snapshots", snaps);
	}
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY));
	json_object_put(o);
	disk_close(d);
	return 0;
}

static void print_problem(void *ctx, const char *msg)
{
	fprintf(stderr, "%s\n", msg);
}

static int cmd_check(const char *path)
{
	struct disk_check_result r;
	struct disk *d;
	int ret;

	if (open_image(path, true, &d))
		return 1;
	ret = disk_check(d, &r, print_problem, NULL);
	if (ret) {
		log_err("%s", disk_error(d));
		disk_close(d);
		return 1;
	}
	if (!r.corruptions && !r.leaks)
		printf("No errors were found on the image.\n");
	if (r.corruptions)
		printf("%" PRIu64 " errors were found on the image.\n", r.corruptions);
	if (r.leaks)
		printf("%" PRIu64 " leaked clusters were found on the image.\n", r.leaks);
	printf("%" PRIu64 " allocated clusters; image end offset: %" PRIu64 "\n", r.allocated,
	       r.image_end);
	disk_close(d);
	return r.corruptions ? EXIT_CORRUPT : r.leaks ? EXIT_LEAKS : 0;
}

static int cmd_create(const char *path, const char *size, const char *cluster)
{
	struct disk_create_opts o = {0};
	uint64_t cs = 0;
	char err[512];

	if (parse_size(size, &o.size) || (cluster && parse_size(cluster, &cs)) ||
	    (cs && (cs & (cs - 1)))) {
		log_err("create: size %s or cluster size %s is not a number (with K, M, G, T) "
			"or the cluster size not a power of two",
			size, cluster ? cluster : "-");
		return EXIT_USAGE;
	}
	while (cs > 1) {
		o.cluster_bits++;
		cs >>= 1;
	}
	if (disk_create_qcow2(path, &o, err, sizeof(err))) {
		log_err("%s", err);
		return 1;
	}
	return 0;
}

static int cmd_overlay(const char *path, const char *backing)
{
	char err[512];

	if (disk_create_overlay(path, backing, false, err, sizeof(err))) {
		log_err("overlay: %s", err);
		return 1;
	}
	return 0;
}

static int cmd_snapshot(const char *op, const char *path, const char *name)
{
	struct disk *d;
	int ret;

	if (!strcmp(op, "list")) {
		if (open_image(path, true, &d))
			return 1;
		printf("%-6s %-24s %12s %20s\n", "ID", "TAG", "VM SIZE", "DATE");
		for (unsigned i = 0; i < disk_snapshot_count(d); i++) {
			const struct disk_snapshot *s = disk_snapshot_get(d, i);

			printf("%-6s %-24s %12" PRIu64 " %20" PRIu64 "\n", s->id, s->name,
			       s->vm_state_size, s->date_sec);
		}
		disk_close(d);
		return 0;
	}
	if (!name)
		return EXIT_USAGE;
	if (open_image(path, false, &d))
		return 1;
	if (!strcmp(op, "create"))
		ret = disk_snapshot_create(d, name);
	else if (!strcmp(op, "revert"))
		ret = disk_snapshot_revert(d, name);
	else if (!strcmp(op, "delete"))
		ret = disk_snapshot_delete(d, name);
	else
		ret = -EINVAL;
	if (ret == -EINVAL && strcmp(op, "create")) {
		disk_close(d);
		return EXIT_USAGE;
	}
	if (ret)
		log_err("snapshot %s: %s", op, disk_error(d));
	disk_close(d);
	return ret ? 1 : 0;
}

static int cmd_commit(const char *path)
{
	struct disk *top, *base;
	uint64_t off = 0, size;
	uint8_t *buf;
	int ret = 0;

	if (open_image(path, true, &top))
		return 1;
	if (!disk_backing(top)) {
		log_err("commit: %s has no backing file", path);
		disk_close(top);
		return 1;
	}
	if (open_image(disk_path(disk_backing(top)), false, &base)) {
		disk_close(top);
		return 1;
	}
	size = disk_size(top);
	if (disk_size(base) < size) {
		log_err("commit: %s (%" PRIu64 " bytes) is smaller than %s (%" PRIu64 ")",
			disk_path(base), disk_size(base), path, size);
		ret = -EINVAL;
	}
	buf = malloc(1u << 20);
	if (!buf)
		ret = -ENOMEM;
	while (!ret && off < size) {
		uint64_t run, len = size - off < (1u << 20) ? size - off : (1u << 20);
		bool here;

		ret = disk_block_status(top, off, len, &here, &run);
		if (!ret && here) {
			ret = disk_read(top, off, buf, run);
			if (ret)
				log_err("commit: %s", disk_error(top));
			else if ((ret = disk_write(base, off, buf, run)))
				log_err("commit: %s", disk_error(base));
		} else if (ret) {
			log_err("commit: %s", disk_error(top));
		}
		off += run;
	}
	if (!ret && (ret = disk_flush(base)))
		log_err("commit: %s", disk_error(base));
	free(buf);
	disk_close(base);
	disk_close(top);
	return ret ? 1 : 0;
}

/* ---------------------------------------------------------- the crash workload */

#define WL_SECTORS_MAX 64 /* a write covers 1..64 sectors */
#define WL_FLUSH_EVERY 8

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

/* Write `i` of the sequence for `seed` on a disk of `sectors`: first sector, count. */
static void wl_write(uint64_t seed, uint64_t i, uint64_t sectors, uint64_t *first, uint64_t *n)
{
	uint64_t h = mix(seed * 0x9e3779b97f4a7c15ull + i);

	*n = 1 + h % WL_SECTORS_MAX;
	*first = (h >> 8) % (sectors - *n + 1);
}

/* A sector's stamp: the write and its own place, then a pattern from both. */
static void wl_stamp(uint8_t *s, uint64_t seed, uint64_t i, uint64_t sector)
{
	memcpy(s, &i, 8);
	memcpy(s + 8, &sector, 8);
	for (unsigned k = 16; k < 512; k += 8) {
		uint64_t v = mix(seed ^ (i << 20) ^ (sector << 3) ^ k);

		memcpy(s + k, &v, 8);
	}
}

/* The workload's snapshot step: a new internal snapshot, the oldest deleted when more
 * than two; both flush (the create first of all: writes before it are durable). */
static int wl_snapshot(struct disk *d, uint64_t i)
{
	char name[DISK_SNAP_NAME_MAX + 1];
	int ret;

	snprintf(name, sizeof(name), "w%" PRIu64, i);
	ret = disk_snapshot_create(d, name);
	if (!ret && disk_snapshot_count(d) > 2) {
		snprintf(name, sizeof(name), "%s", disk_snapshot_get(d, 0)->id);
		ret = disk_snapshot_delete(d, name);
	}
	return ret;
}

static int cmd_workload(const char *path, const char *seed_s, const char *log_path, bool snaps)
{
	uint64_t seed = strtoull(seed_s, NULL, 10), sectors;
	uint8_t *buf = malloc(WL_SECTORS_MAX * 512);
	struct disk *d;
	int logfd;

	logfd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (!buf || logfd < 0 || open_image(path, false, &d))
		return 1;
	sectors = disk_size(d) / 512;
	if (sectors < WL_SECTORS_MAX)
		return 1;
	for (uint64_t i = 0;; i++) {
		uint64_t first, n;
		char line[32];
		int len;

		wl_write(seed, i, sectors, &first, &n);
		for (uint64_t k = 0; k < n; k++)
			wl_stamp(buf + k * 512, seed, i, first + k);
		if (disk_write(d, first * 512, buf, n * 512)) {
			log_err("workload: %s", disk_error(d));
			return 1;
		}
		if (i % WL_FLUSH_EVERY != WL_FLUSH_EVERY - 1)
			continue;
		if (snaps) {
			if (wl_snapshot(d, i)) {
				log_err("workload: %s", disk_error(d));
				return 1;
			}
		} else if (disk_flush(d)) {
			log_err("workload: %s", disk_error(d));
			return 1;
		}
		len = snprintf(line, sizeof(line), "%" PRIu64 "\n", i);
		if (write(logfd, line, (size_t)len) != len || fdatasync(logfd) < 0)
			return 1;
	}
}

static int cmd_verify(const char *path, const char *seed_s, const char *n_s)
{
	uint64_t seed = strtoull(seed_s, NULL, 10), last = strtoull(n_s, NULL, 10), sectors;
	uint64_t *expect;
	uint8_t got[512], want[512];
	struct disk *d;
	int bad = 0;

	if (open_image(path, true, &d))
		return 1;
	sectors = disk_size(d) / 512;
	expect = malloc(sectors * sizeof(*expect)); /* the last acknowledged write + 1 */
	if (!expect)
		return 1;
	memset(expect, 0, sectors * sizeof(*expect));
	for (uint64_t i = 0; i <= last; i++) {
		uint64_t first, n;

		wl_write(seed, i, sectors, &first, &n);
		for (uint64_t k = 0; k < n; k++)
			expect[first + k] = i + 1;
	}
	for (uint64_t s = 0; s < sectors && bad < 10; s++) {
		uint64_t w, place, first, n;

		if (disk_read(d, s * 512, got, 512)) {
			log_err("verify: %s", disk_error(d));
			return 1;
		}
		memcpy(&w, got, 8);
		memcpy(&place, got + 8, 8);
		if (!expect[s]) {
			static const uint8_t zero[512];

			if (!memcmp(got, zero, 512))
				continue;
		}
		/* Either the acknowledged write or a later one that covers this sector. */
		wl_write(seed, w, sectors, &first, &n);
		wl_stamp(want, seed, w, s);
		if (w + 1 >= expect[s] && place == s && s >= first && s < first + n &&
		    !memcmp(got, want, 512))
			continue;
		fprintf(stderr,
			"sector %" PRIu64 ": expected write %" PRIu64 " or later, found %s\n", s,
			expect[s] ? expect[s] - 1 : 0,
			place == s ? "an older or damaged stamp" : "something else");
		bad++;
	}
	free(expect);
	disk_close(d);
	return bad ? 2 : 0;
}

static int usage(void)
{
	fprintf(stderr, "usage: thaw-disk info IMAGE\n"
			"       thaw-disk check IMAGE\n"
			"       thaw-disk create IMAGE SIZE [CLUSTER_SIZE]\n"
			"       thaw-disk overlay IMAGE BACKING\n"
			"       thaw-disk snapshot list IMAGE\n"
			"       thaw-disk snapshot create|revert|delete IMAGE NAME\n"
			"       thaw-disk commit IMAGE\n");
	return EXIT_USAGE;
}

int main(int argc, char **argv)
{
	int ret;

	log_set_prefix("thaw-disk");
	if (argc < 3)
		return usage();
	if (!strcmp(argv[1], "info") && argc == 3)
		return cmd_info(argv[2]);
	if (!strcmp(argv[1], "check") && argc == 3)
		return cmd_check(argv[2]);
	if (!strcmp(argv[1], "create") && (argc == 4 || argc == 5))
		return cmd_create(argv[2], argv[3], argc == 5 ? argv[4] : NULL);
	if (!strcmp(argv[1], "overlay") && argc == 4)
		return cmd_overlay(argv[2], argv[3]);
	if (!strcmp(argv[1], "snapshot") && (argc == 4 || argc == 5)) {
		ret = cmd_snapshot(argv[2], argv[3], argc == 5 ? argv[4] : NULL);
		return ret == EXIT_USAGE ? usage() : ret;
	}
	if (!strcmp(argv[1], "commit") && argc == 3)
		return cmd_commit(argv[2]);
	if (!strcmp(argv[1], "_workload") && (argc == 5 || (argc == 6 && !strcmp(argv[5], "snap"))))
		return cmd_workload(argv[2], argv[3], argv[4], argc == 6);
	if (!strcmp(argv[1], "_verify") && argc == 5)
		return cmd_verify(argv[2], argv[3], argv[4]);
	return usage();
}
