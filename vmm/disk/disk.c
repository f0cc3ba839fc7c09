/* The disk object: format probing, raw files, backing chains, and the calls that
 * dispatch to qcow2.c. */
#include "vmm/disk/disk_int.h"

#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int disk_fail(struct disk *d, int ret, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(d->err, sizeof(d->err), fmt, ap);
	va_end(ap);
	return ret;
}

/* The one transfer loop: whole `len` bytes, EINTR retried; at the end of the file a
 * read either fails (-EIO) or, with `zero_tail`, fills the rest with zeros. */
static int xfer(int fd, uint8_t *p, size_t len, uint64_t off, bool write, bool zero_tail)
{
	while (len) {
		ssize_t n = write ? pwrite(fd, p, len, (off_t)off) : pread(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0 && zero_tail) {
			memset(p, 0, len);
			return 0;
		}
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int disk_pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	return xfer(fd, buf, len, off, false, false);
}

int disk_pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	return xfer(fd, (uint8_t *)buf, len, off, true, false);
}

int disk_pread_zero(struct disk *d, uint64_t off, void *buf, size_t len)
{
	int ret = xfer(d->fd, buf, len, off, false, true);

	if (ret)
		return disk_fail(d, -EIO, "%s: read at %#llx: %s", d->path, (unsigned long long)off,
				 strerror(-ret));
	return 0;
}

int disk_probe(int fd, enum disk_format *fmt)
{
	uint8_t m[4];
	ssize_t n = pread(fd, m, sizeof(m), 0);

	if (n < 0)
		return -errno;
	*fmt = n == 4 && m[0] == 'Q' && m[1] == 'F' && m[2] == 'I' && m[3] == 0xfb ? DISK_FMT_QCOW2
										   : DISK_FMT_RAW;
	return 0;
}

static int default_open(void *ctx, const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

/* A backing name resolved against the directory of the image naming it. */
static char *resolve(const char *image, const char *name)
{
	const char *slash = strrchr(image, '/');
	char *out;

	if (name[0] == '/' || !slash) {
		out = strdup(name);
	} else if (asprintf(&out, "%.*s/%s", (int)(slash - image), image, name) < 0) {
		out = NULL;
	}
	return out;
}

static int open_chain(int fd, const char *path, bool ro, const struct disk_opener *op,
		      unsigned depth, const char *want_fmt, struct disk **out, char *err,
		      size_t errlen)
{
	struct disk *d = calloc(1, sizeof(*d));
	struct stat st;
	int ret;

	if (!d || !(d->path = strdup(path))) {
		free(d);
		close(fd);
		return errf(err, errlen, -ENOMEM, "%s: out of memory", path);
	}
	d->fd = fd;
	d->ro = ro;
	if (fstat(fd, &st) < 0) {
		ret = errf(err, errlen, -errno, "%s: fstat: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		ret = errf(err, errlen, -EINVAL, "%s: not a regular file", path);
		goto fail;
	}
	ret = disk_probe(fd, &d->fmt);
	if (ret) {
		errf(err, errlen, ret, "%s: read: %s", path, strerror(-ret));
		goto fail;
	}
	/* A backing file declared raw is raw even when it starts like a qcow2 header:
	 * a guest may have written one there. */
	if (want_fmt && !strcmp(want_fmt, "raw"))
		d->fmt = DISK_FMT_RAW;
	else if (want_fmt && !strcmp(want_fmt, "qcow2") && d->fmt != DISK_FMT_QCOW2) {
		ret = errf(err, errlen, -EINVAL, "%s: declared qcow2 by its overlay, but is not",
			   path);
		goto fail;
	}
	if (d->fmt == DISK_FMT_RAW) {
		d->size = (uint64_t)st.st_size;
		*out = d;
		return 0;
	}
	ret = qcow2_open(d, err, errlen);
	if (ret)
		goto fail;
	if (d->q->backing[0]) {
		char *bpath;
		int bfd;

		if (depth >= DISK_MAX_CHAIN) {
			ret = errf(err, errlen, -ELOOP,
				   "%s: backing chain deeper than %d images (a loop?)", path,
				   DISK_MAX_CHAIN);
			goto fail;
		}
		bpath = resolve(path, d->q->backing);
		if (!bpath) {
			ret = errf(err, errlen, -ENOMEM, "%s: out of memory", path);
			goto fail;
		}
		bfd = op && op->open ? op->open(op->ctx, bpath) : default_open(NULL, bpath);
		if (bfd < 0) {
			ret = errf(err, errlen, bfd, "%s: backing file %s: %s", path, bpath,
				   bfd == -EXDEV ? "it lies outside the directory drives are "
						   "opened beneath"
						 : strerror(-bfd));
			free(bpath);
			goto fail;
		}
		ret = open_chain(bfd, bpath, true, op, depth + 1,
				 d->q->backing_fmt[0] ? d->q->backing_fmt : NULL, &d->backing, err,
				 errlen);
		free(bpath);
		if (ret)
			goto fail;
	}
	*out = d;
	return 0;
fail:
	d->ro = true; /* nothing to flush */
	disk_close(d);
	return ret;
}

int disk_open_fd(int fd, const char *path, bool read_only, const struct disk_opener *op,
		 struct disk **out, char *err, size_t errlen)
{
	return open_chain(fd, path, read_only, op, 0, NULL, out, err, errlen);
}

int disk_open(const char *path, bool read_only, struct disk **out, char *err, size_t errlen)
{
	int fd = open(path, (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);

	if (fd < 0)
		return errf(err, errlen, -errno, "%s: open: %s", path, strerror(errno));
	return disk_open_fd(fd, path, read_only, NULL, out, err, errlen);
}

void disk_close(struct disk *d)
{
	if (!d)
		return;
	if (!d->ro && d->q && disk_flush(d))
		log_err("disk %s: flush at close: %s", d->path, d->err);
	disk_close(d->backing);
	if (d->q)
		qcow2_free(d->q);
	if (d->fd >= 0)
		close(d->fd);
	free(d->path);
	free(d);
}

enum disk_format disk_format(const struct disk *d)
{
	return d->fmt;
}

uint64_t disk_size(const struct disk *d)
{
	return d->size;
}

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h;
}

uint64_t disk_identity(const struct disk *d)
{
	const struct qcow2 *q = d->q;
	uint64_t h = 0xcbf29ce484222325ull, f[4];

	if (d->fmt != DISK_FMT_QCOW2 || !q)
		return 0;
	f[0] = d->size;
	f[1] = q->cluster_bits;
	f[2] = q->l1_off;
	f[3] = q->l1_size;
	h = fnv1a(h, f, sizeof(f));
	/* Where each L2 table is, not the COPIED flag (bookkeeping an internal snapshot
	 * changes without changing the contents). */
	for (uint32_t i = 0; i < q->l1_size; i++) {
		uint64_t off = q->l1[i] & ~QCOW2_COPIED;

		h = fnv1a(h, &off, sizeof(off));
	}
	return h ? h : 1; /* 0 means none */
}

const char *disk_path(const struct disk *d)
{
	return d->path;
}

bool disk_read_only(const struct disk *d)
{
	return d->ro;
}

int disk_fd(const struct disk *d)
{
	return d->fd;
}

struct disk *disk_backing(const struct disk *d)
{
	return d->backing;
}

const char *disk_error(const struct disk *d)
{
	return d->err;
}

static int check_range(struct disk *d, uint64_t off, size_t len)
{
	if (off > d->size || len > d->size - off)
		return disk_fail(d, -EINVAL, "%s: %zu bytes at %llu lie beyond the %llu-byte disk",
				 d->path, len, (unsigned long long)off,
				 (unsigned long long)d->size);
	return 0;
}

int disk_read(struct disk *d, uint64_t off, void *buf, size_t len)
{
	int ret = check_range(d, off, len);

	if (ret)
		return ret;
	if (d->fmt == DISK_FMT_RAW) /* a backing file shorter than its overlay: zeros */
		return disk_pread_zero(d, off, buf, len);
	return qcow2_read(d, off, buf, len);
}

int disk_write(struct disk *d, uint64_t off, const void *buf, size_t len)
{
	int ret = check_range(d, off, len);

	if (ret)
		return ret;
	if (d->ro)
		return disk_fail(d, -EROFS, "%s: read-only", d->path);
	if (d->fmt == DISK_FMT_RAW) {
		ret = disk_pwrite_full(d->fd, buf, len, off);
		return ret ? disk_fail(d, ret, "%s: write at %llu: %s", d->path,
				       (unsigned long long)off, strerror(-ret))
			   : 0;
	}
	return qcow2_write(d, off, buf, len);
}

/* Vector I/O by pieces of at most one bounce buffer; qcow2 splits by cluster anyway. */
#define BOUNCE (256u << 10)

static int vec_io(struct disk *d, uint64_t off, const struct iovec *iov, unsigned niov, size_t len,
		  bool write)
{
	size_t chunk = len < BOUNCE ? len : BOUNCE;
	uint8_t *b = malloc(chunk ? chunk : 1);
	unsigned i = 0;
	size_t in = 0; /* bytes used of iov[i] */
	int ret = 0;

	if (!b)
		return disk_fail(d, -ENOMEM, "out of memory");
	while (len && !ret) {
		size_t n = len < chunk ? len : chunk, done = 0;

		if (!write)
			ret = disk_read(d, off, b, n);
		while (!ret && done < n) {
			size_t k;

			while (i < niov && in == iov[i].iov_len) {
				i++;
				in = 0;
			}
			if (i == niov) {
				ret = disk_fail(d, -EINVAL, "iovec shorter than its length");
				break;
			}
			k = iov[i].iov_len - in < n - done ? iov[i].iov_len - in : n - done;
			if (write)
				memcpy(b + done, (uint8_t *)iov[i].iov_base + in, k);
			else
				memcpy((uint8_t *)iov[i].iov_base + in, b + done, k);
			in += k;
			done += k;
		}
		if (!ret && write)
			ret = disk_write(d, off, b, n);
		off += n;
		len -= n;
	}
	free(b);
	return ret;
}

int disk_readv(struct disk *d, uint64_t off, const struct iovec *iov, unsigned niov, size_t len)
{
	return vec_io(d, off, iov, niov, len, false);
}

int disk_writev(struct disk *d, uint64_t off, const struct iovec *iov, unsigned niov, size_t len)
{
	return vec_io(d, off, iov, niov, len, true);
}

int disk_flush(struct disk *d)
{
	if (d->ro)
		return 0;
	if (d->fmt == DISK_FMT_QCOW2)
		return qcow2_flush(d);
	if (fdatasync(d->fd) < 0)
		return disk_fail(d, -errno, "%s: fdatasync: %s", d->path, strerror(errno));
	return 0;
}

int disk_map(struct disk *d, uint64_t off, uint64_t len, bool for_write, struct disk_extent *e)
{
	int ret = check_range(d, off, len);

	if (ret)
		return ret;
	if (!len)
		return disk_fail(d, -EINVAL, "empty range");
	if (d->fmt == DISK_FMT_QCOW2)
		return qcow2_map(d, off, len, for_write, e);
	e->kind = DISK_EXT_DATA;
	e->host_off = off;
	e->len = len;
	return 0;
}

int disk_block_status(struct disk *d, uint64_t off, uint64_t len, bool *here, uint64_t *run)
{
	int ret = check_range(d, off, len);

	if (ret)
		return ret;
	if (d->fmt == DISK_FMT_QCOW2)
		return qcow2_block_status(d, off, len, here, run);
	*here = true;
	*run = len;
	return 0;
}

void disk_get_info(const struct disk *d, struct disk_info *info)
{
	struct stat st;

	memset(info, 0, sizeof(*info));
	info->format = d->fmt;
	info->size = d->size;
	if (fstat(d->fd, &st) == 0)
		info->file_size = (uint64_t)st.st_size;
	if (!d->q)
		return;
	info->cluster_size = (uint32_t)d->q->cs;
	info->refcount_bits = 1u << d->q->refcount_order;
	info->nb_snapshots = d->q->nb_snaps;
	snprintf(info->backing, sizeof(info->backing), "%s", d->q->backing);
	snprintf(info->backing_fmt, sizeof(info->backing_fmt), "%s", d->q->backing_fmt);
	info->lazy_refcounts = d->q->compat & QCOW2_COMPAT_LAZY;
}

unsigned disk_snapshot_count(const struct disk *d)
{
	return d->q ? d->q->nb_snaps : 0;
}

const struct disk_snapshot *disk_snapshot_get(const struct disk *d, unsigned i)
{
	return d->q && i < d->q->nb_snaps ? &d->q->snaps[i] : NULL;
}

int disk_snapshot_find(const struct disk *d, const char *key)
{
	if (!d->q)
		return -ENOENT;
	for (uint32_t i = 0; i < d->q->nb_snaps; i++)
		if (!strcmp(d->q->snaps[i].id, key))
			return (int)i;
	for (uint32_t i = 0; i < d->q->nb_snaps; i++)
		if (!strcmp(d->q->snaps[i].name, key))
			return (int)i;
	return -ENOENT;
}
