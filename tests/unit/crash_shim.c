/* A power cut for the crash-consistency test (test_disk_crash), preloaded into the
 * writer (LD_PRELOAD): a SIGKILL alone loses nothing the process wrote (the page
 * cache keeps it), so it tests the order of the writes but not the barriers between
 * them. This shim remembers every write to the image since its last fdatasync, and
 * at the THAW_CRASH_AT-th write or fdatasync of the image (before it) it cuts the
 * power: each of
 * the writes since the last fdatasync lands or not, by a coin from THAW_CRASH_SEED,
 * in the order they were made (what a disk with a volatile cache may do), and the
 * process is killed with SIGKILL.
 *
 * The image is the file named by THAW_CRASH_IMAGE (matched by device and inode).
 * File size changes (ftruncate, writes past the end) are kept: a cut leaves the file
 * at least as long as it was, with zeros where a lost write extended it. Writes are
 * taken as sector-atomic, as qcow2 itself assumes.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

struct rec {
	off_t off;
	size_t len;
	uint8_t *old, *new;
};

static struct {
	int ready;
	dev_t dev;
	ino_t ino;
	unsigned long at, seen;
	uint64_t seed;
	struct rec *recs;
	size_t n, cap;
} S;

static void init(void)
{
	const char *img = getenv("THAW_CRASH_IMAGE"), *at = getenv("THAW_CRASH_AT"),
		   *seed = getenv("THAW_CRASH_SEED");
	struct stat st;

	if (S.ready)
		return;
	S.ready = -1;
	if (!img || !at || stat(img, &st) < 0)
		return;
	S.dev = st.st_dev;
	S.ino = st.st_ino;
	S.at = strtoul(at, NULL, 10);
	S.seed = seed ? strtoull(seed, NULL, 10) | 1 : 1;
	S.ready = 1;
}

static int is_image(int fd)
{
	struct stat st;

	init();
	return S.ready == 1 && fstat(fd, &st) == 0 && st.st_dev == S.dev && st.st_ino == S.ino;
}

static uint64_t coin(void)
{
	S.seed ^= S.seed << 13;
	S.seed ^= S.seed >> 7;
	S.seed ^= S.seed << 17;
	return S.seed;
}

static ssize_t raw_pwrite(int fd, const void *b, size_t n, off_t off)
{
	return syscall(SYS_pwrite64, fd, b, n, off);
}

static void put_all(int fd, const uint8_t *b, size_t n, off_t off)
{
	while (n) {
		ssize_t w = raw_pwrite(fd, b, n, off);

		if (w <= 0)
			_exit(99); /* the cut itself failed: the test sees no SIGKILL */
		b += w;
		n -= (size_t)w;
		off += w;
	}
}

/* Undoes every write since the last fdatasync (newest first), then redoes those the
 * coin keeps (oldest first), and dies. */
static void power_cut(int fd)
{
	for (size_t i = S.n; i-- > 0;)
		put_all(fd, S.recs[i].old, S.recs[i].len, S.recs[i].off);
	for (size_t i = 0; i < S.n; i++)
		if (coin() & 1)
			put_all(fd, S.recs[i].new, S.recs[i].len, S.recs[i].off);
	raise(SIGKILL);
	_exit(98);
}

static int remember(int fd, const void *buf, size_t n, off_t off)
{
	struct rec *r;
	ssize_t got;

	if (S.n == S.cap) {
		size_t cap = S.cap ? S.cap * 2 : 64;
		struct rec *p = realloc(S.recs, cap * sizeof(*p));

		if (!p)
			return -1;
		S.recs = p;
		S.cap = cap;
	}
	r = &S.recs[S.n];
	r->old = calloc(1, n ? n : 1);
	r->new = malloc(n ? n : 1);
	if (!r->old || !r->new)
		return -1;
	got = pread(fd, r->old, n, off); /* past the end: zeros (calloc) */
	if (got < 0)
		return -1;
	memcpy(r->new, buf, n);
	r->off = off;
	r->len = n;
	S.n++;
	return 0;
}

static void forget(void)
{
	for (size_t i = 0; i < S.n; i++) {
		free(S.recs[i].old);
		free(S.recs[i].new);
	}
	S.n = 0;
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	ssize_t w;

	if (is_image(fd)) {
		if (++S.seen >= S.at)
			power_cut(fd);
		if (remember(fd, buf, n, off) < 0) {
			errno = ENOMEM;
			return -1;
		}
	}
	w = raw_pwrite(fd, buf, n, off);
	if ((w < 0 || (size_t)w < n) && is_image(fd)) {
		struct rec *r = &S.recs[S.n - 1];

		if (w > 0) {
			r->len = (size_t)w; /* a short write: only what it wrote */
		} else {		    /* nothing written: nothing to undo or redo */
			free(r->old);
			free(r->new);
			S.n--;
		}
	}
	return w;
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
	return pwrite(fd, buf, n, off);
}

/* A cut may also come just before a barrier: everything before it written, none of
 * it durable yet (the state a missing barrier would expose). */
static int barrier(int fd, long nr)
{
	int image = is_image(fd), ret;

	if (image && ++S.seen >= S.at)
		power_cut(fd);
	ret = (int)syscall(nr, fd);
	if (ret == 0 && image)
		forget();
	return ret;
}

int fdatasync(int fd)
{
	return barrier(fd, SYS_fdatasync);
}

int fsync(int fd)
{
	return barrier(fd, SYS_fsync);
}
