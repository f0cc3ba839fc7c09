/* What a drive adds to a VM snapshot and to a restore (issue 20), without the VM: the
 * calls virtio-blk makes, on the image the bench gives, timed in turns.
 *   overlay_us   disk_create_overlay(no_sync): a clone's overlay made at restore
 *                (`--drive ...,overlay-of=BASE`; issue 20 asks <= 0.2 ms)
 *   external_us  an external checkpoint: disk_flush of the open image, the overlay
 *                (disk_create_overlay, not synced, as virtio-blk makes it: its first
 *                flush makes it durable), and opening it (the drive's switch)
 *                (each checkpoint after an untimed disk_flush: the quiesce that every VM
 *                snapshot, plain or not, does first)
 *   internal_us  an internal checkpoint: disk_snapshot_create (deleted after, untimed)
 * Both checkpoints' cost is what `--snapshot-disks` adds to the memory snapshot (issue 20
 * asks <= 5 ms for a 1 GiB disk). Each also as CPU time (*_cpu_us, getrusage): the wall
 * time less it is waiting, for fdatasync mostly, and for the CPU on a loaded machine. One
 * line per round, in the order measured:
 *   round=N overlay_us= external_us= internal_us= overlay_cpu_us= external_cpu_us=
 *   internal_cpu_us=
 * usage: bench-disk-ckpt IMAGE [ROUNDS]  (IMAGE a writable qcow2 image; the overlays are
 * made beside it as IMAGE.bench-ovl and removed; exit 0, 1 on a failure, 2 usage) */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/log.h"
#include "vmm/disk/disk.h"

static int fail(const char *what, const char *path, int ret, const char *err)
{
	fprintf(stderr, "bench-disk-ckpt: %s %s: %s\n", what, path, err[0] ? err : strerror(-ret));
	return 1;
}

static uint64_t cpu_ns(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * 1000000000ull +
	       ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000ull;
}

/* The clocks at the start of a timed part, and their difference at its end (us). */
static void start(uint64_t t[2])
{
	t[0] = now_ns();
	t[1] = cpu_ns();
}

static void stop(const uint64_t t[2], double *wall, double *cpu)
{
	*wall = (double)(now_ns() - t[0]) / 1e3;
	*cpu = (double)(cpu_ns() - t[1]) / 1e3;
}

/* One round; wall times in us[0..2], CPU times in us[3..5], or 1 with the failure on
 * stderr. */
static int round_once(const char *image, const char *base, const char *ovl, unsigned r,
		      double us[6])
{
	char err[512] = "", name[32];
	struct disk *d = NULL, *o = NULL;
	uint64_t t[2];
	int ret;

	start(t);
	ret = disk_create_overlay(ovl, base, true, err, sizeof(err));
	stop(t, &us[0], &us[3]);
	if (ret)
		return fail("overlay", ovl, ret, err);
	unlink(ovl);
	ret = disk_open(image, false, &d, err, sizeof(err));
	if (!ret)
		ret = disk_flush(d); /* the quiesce every VM snapshot does first: not timed */
	if (ret) {
		disk_close(d);
		return fail("open and flush", image, ret, err);
	}
	start(t);
	ret = disk_flush(d);
	if (!ret)
		ret = disk_create_overlay(ovl, base, true, err, sizeof(err));
	if (!ret)
		ret = disk_open(ovl, false, &o, err, sizeof(err));
	stop(t, &us[1], &us[4]);
	disk_close(o);
	unlink(ovl);
	if (ret) {
		disk_close(d);
		return fail("external checkpoint of", image, ret, err);
	}
	snprintf(name, sizeof(name), "bench-%u", r);
	ret = disk_flush(d);
	if (ret) {
		disk_close(d);
		return fail("flush", image, ret, "");
	}
	start(t);
	ret = disk_snapshot_create(d, name);
	stop(t, &us[2], &us[5]);
	if (!ret)
		ret = disk_snapshot_delete(d, name);
	disk_close(d);
	return ret ? fail("internal checkpoint of", image, ret, "") : 0;
}

int main(int argc, char **argv)
{
	char ovl[PATH_MAX];
	const char *base;
	unsigned rounds = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 30;

	if (argc < 2 || argc > 3 || !rounds) {
		fprintf(stderr, "usage: bench-disk-ckpt IMAGE [ROUNDS>0]\n");
		return 2;
	}
	if ((size_t)snprintf(ovl, sizeof(ovl), "%s.bench-ovl", argv[1]) >= sizeof(ovl))
		return 2;
	base = strrchr(argv[1], '/');
	base = base ? base + 1 : argv[1]; /* relative to the overlay, beside it */
	unlink(ovl);
	for (unsigned r = 0; r < rounds; r++) {
		double us[6];

		if (round_once(argv[1], base, ovl, r, us))
			return 1;
		printf("round=%u overlay_us=%.1f external_us=%.1f internal_us=%.1f "
		       "overlay_cpu_us=%.1f external_cpu_us=%.1f internal_cpu_us=%.1f\n",
		       r, us[0], us[1], us[2], us[3], us[4], us[5]);
		fflush(stdout);
	}
	return 0;
}
