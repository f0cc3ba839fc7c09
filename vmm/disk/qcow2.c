/* qcow2 version 3: open and validate, L1/L2 lookup, refcounts and cluster
 * allocation, copy-on-write, ordered flush, and image creation. The format is
 * docs/interop/qcow2.txt in QEMU's tree; docs/disk.md says what we implement.
 *
 * Metadata lives in memory (L1 and refcount tables whole, L2 tables and refcount
 * blocks as cached clusters) and reaches the file only in qcow2_flush, in the order
 * that keeps a crashed image consistent: refcounts (a new refcount block before the
 * table entry naming it), then L2 tables, then the L1 table, with fdatasync between;
 * data is written before all of them. A cluster whose last reference is dropped is
 * freed (refcount decremented) only after that drop is durable.
 */
#include "vmm/disk/disk_int.h"

#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Cached metadata above this is written back and dropped at the next request. */
#define CACHE_LIMIT (32ull << 20)

static struct qcow2_cblock *cblock_new(struct qcow2 *q, uint64_t off)
{
	struct qcow2_cblock *b = calloc(1, sizeof(*b) + q->cs);

	if (b) {
		b->off = off;
		q->cached_bytes += q->cs;
	}
	return b;
}

static void cblock_free(struct qcow2 *q, struct qcow2_cblock **b)
{
	if (*b) {
		q->cached_bytes -= q->cs;
		free(*b);
		*b = NULL;
	}
}

int qcow2_check_table_off(struct disk *d, uint64_t off, uint64_t bytes, const char *what)
{
	struct qcow2 *q = d->q;

	if (off & (q->cs - 1))
		return disk_fail(d, -EIO, "%s: %s at %#llx is not cluster aligned", d->path, what,
				 (unsigned long long)off);
	if (off > q->file_size || bytes > q->file_size - off)
		return disk_fail(d, -EIO, "%s: %s at %#llx lies beyond the end of the file",
				 d->path, what, (unsigned long long)off);
	return 0;
}

/* --------------------------------------------------------------------- refcounts */

static uint64_t rb_get(const struct qcow2 *q, const uint8_t *b, uint64_t i)
{
	switch (q->refcount_order) {
	case 6:
		return disk_get64(b + i * 8);
	case 5:
		return disk_get32(b + i * 4);
	case 4:
		return (uint64_t)b[i * 2] << 8 | b[i * 2 + 1];
	case 3:
		return b[i];
	default: { /* 1, 2 or 4 bits, least significant first within a byte */
		unsigned bits = 1u << q->refcount_order;
		uint64_t bit = i * bits;

		return (b[bit / 8] >> (bit % 8)) & ((1u << bits) - 1);
	}
	}
}

static void rb_set(const struct qcow2 *q, uint8_t *b, uint64_t i, uint64_t v)
{
	switch (q->refcount_order) {
	case 6:
		disk_put64(b + i * 8, v);
		break;
	case 5:
		disk_put32(b + i * 4, (uint32_t)v);
		break;
	case 4:
		b[i * 2] = (uint8_t)(v >> 8);
		b[i * 2 + 1] = (uint8_t)v;
		break;
	case 3:
		b[i] = (uint8_t)v;
		break;
	default: {
		unsigned bits = 1u << q->refcount_order;
		uint64_t bit = i * bits;
		uint8_t mask = (uint8_t)(((1u << bits) - 1) << (bit % 8));

		b[bit / 8] = (uint8_t)((b[bit / 8] & ~mask) | ((v << (bit % 8)) & mask));
	}
	}
}

/* The refcount block at table index `bi`, loaded; NULL (and 0) when there is none. */
static int rb_load(struct disk *d, uint64_t bi, struct qcow2_cblock **out)
{
	struct qcow2 *q = d->q;
	uint64_t off;
	int ret;

	*out = NULL;
	if (bi >= q->rt_entries)
		return 0;
	if (q->rbc[bi]) {
		*out = q->rbc[bi];
		return 0;
	}
	off = q->rt[bi] & ~QCOW2_RT_RESERVED;
	if (!off)
		return 0;
	ret = qcow2_check_table_off(d, off, q->cs, "refcount block");
	if (ret)
		return ret;
	q->rbc[bi] = cblock_new(q, off);
	if (!q->rbc[bi])
		return disk_fail(d, -ENOMEM, "out of memory");
	ret = disk_pread_full(d->fd, q->rbc[bi]->data, q->cs, off);
	if (ret) {
		cblock_free(q, &q->rbc[bi]);
		return disk_fail(d, -EIO, "%s: reading refcount block at %#llx: %s", d->path,
				 (unsigned long long)off, strerror(-ret));
	}
	*out = q->rbc[bi];
	return 0;
}

int qcow2_get_refcount(struct disk *d, uint64_t cluster, uint64_t *rc)
{
	struct qcow2_cblock *b;
	int ret = rb_load(d, cluster / d->q->rb_entries, &b);

	if (ret)
		return ret;
	*rc = b ? rb_get(d->q, b->data, cluster % d->q->rb_entries) : 0;
	return 0;
}

/* Callers make sure the block exists (qcow2_alloc does, for what it hands out). */
int qcow2_set_refcount(struct disk *d, uint64_t cluster, uint64_t rc)
{
	struct qcow2 *q = d->q;
	struct qcow2_cblock *b;
	int ret = rb_load(d, cluster / q->rb_entries, &b);

	if (ret)
		return ret;
	if (!b)
		return disk_fail(d, -EIO, "%s: cluster %#llx has no refcount block", d->path,
				 (unsigned long long)(cluster * q->cs));
	if (rc > q->rc_max)
		return disk_fail(d, -EMLINK, "%s: refcount of cluster %#llx would exceed %llu",
				 d->path, (unsigned long long)(cluster * q->cs),
				 (unsigned long long)q->rc_max);
	rb_set(q, b->data, cluster % q->rb_entries, rc);
	b->dirty = true;
	if (rc == 0 && cluster < q->free_hint)
		q->free_hint = cluster;
	return 0;
}

int qcow2_ref_add(struct disk *d, uint64_t off, int delta)
{
	uint64_t c = off >> d->q->cluster_bits, rc;
	int ret = qcow2_get_refcount(d, c, &rc);

	if (ret)
		return ret;
	if (delta < 0 && rc == 0)
		return disk_fail(d, -EIO, "%s: freeing cluster %#llx whose refcount is already 0",
				 d->path, (unsigned long long)off);
	return qcow2_set_refcount(d, c, delta < 0 ? rc - 1 : rc + 1);
}

int qcow2_free_later(struct disk *d, uint64_t off)
{
	struct qcow2 *q = d->q;

	if (q->npending == q->cap_pending) {
		size_t cap = q->cap_pending ? q->cap_pending * 2 : 64;
		uint64_t *p = realloc(q->pending, cap * sizeof(*p));

		if (!p)
			return disk_fail(d, -ENOMEM, "out of memory");
		q->pending = p;
		q->cap_pending = cap;
	}
	q->pending[q->npending++] = off;
	return 0;
}

static int write_rt(struct disk *d, uint64_t off, const uint64_t *rt, uint64_t entries)
{
	uint64_t *be = malloc(entries * 8);
	int ret;

	if (!be)
		return -ENOMEM;
	for (uint64_t i = 0; i < entries; i++)
		be[i] = htobe64(rt[i]);
	d->q->unsynced = true;
	ret = disk_pwrite_full(d->fd, be, entries * 8, off);
	free(be);
	return ret;
}

/* The refcount table is full: a bigger one goes, with the refcount block that counts
 * it, into the first range of clusters no block covers yet (all free by definition),
 * and the header switches to it once both are durable. */
static int grow_rt(struct disk *d, uint64_t need)
{
	struct qcow2 *q = d->q;
	uint64_t nb = q->rt_entries, want = need + 1 > 2 * nb ? need + 1 : 2 * nb;
	uint64_t k = (want * 8 + q->cs - 1) / q->cs, entries = k * q->cs / 8;
	uint64_t rb_off = nb * q->rb_entries * q->cs, t_off = rb_off + q->cs;
	uint64_t old_off = q->rt_off, old_clusters = q->rt_clusters;
	struct qcow2_cblock *rb, **rbc;
	uint64_t *rt;
	uint8_t hdr[12];
	int ret;

	if (k * q->cs > QCOW2_MAX_RT_BYTES || k + 1 > q->rb_entries)
		return disk_fail(d, -ENOSPC, "%s: the refcount table cannot grow further", d->path);
	ret = qcow2_flush_meta(d, false);
	if (ret)
		return ret;
	rt = calloc(entries, 8);
	rbc = calloc(entries, sizeof(*rbc));
	rb = cblock_new(q, rb_off);
	if (!rt || !rbc || !rb) {
		free(rt);
		free(rbc);
		free(rb);
		return disk_fail(d, -ENOMEM, "out of memory");
	}
	memcpy(rt, q->rt, q->rt_entries * 8);
	memcpy(rbc, q->rbc, q->rt_entries * sizeof(*rbc));
	rt[nb] = rb_off;
	for (uint64_t i = 0; i <= k; i++)
		rb_set(q, rb->data, i, 1);
	rbc[nb] = rb;
	ret = disk_pwrite_full(d->fd, rb->data, q->cs, rb_off);
	if (!ret)
		ret = write_rt(d, t_off, rt, entries);
	if (!ret && fdatasync(d->fd) < 0)
		ret = -errno;
	disk_put64(hdr, t_off);
	disk_put32(hdr + 8, (uint32_t)k);
	if (!ret)
		ret = disk_pwrite_full(d->fd, hdr, sizeof(hdr), 48);
	if (!ret && fdatasync(d->fd) < 0)
		ret = -errno;
	if (ret) {
		free(rt);
		free(rbc);
		cblock_free(q, &rb);
		return disk_fail(d, -EIO, "%s: growing the refcount table: %s", d->path,
				 strerror(-ret));
	}
	free(q->rt);
	free(q->rbc);
	q->rt = rt;
	q->rbc = rbc;
	q->rt_entries = entries;
	q->rt_off = t_off;
	q->rt_clusters = (uint32_t)k;
	if (t_off + k * q->cs > q->alloc_end)
		q->alloc_end = t_off + k * q->cs;
	if (q->alloc_end > q->file_size)
		q->file_size = q->alloc_end; /* the writes above extended it */
	for (uint64_t i = 0; i < old_clusters; i++) {
		ret = qcow2_free_later(d, old_off + i * q->cs);
		if (ret)
			return ret;
	}
	return 0;
}

/* A refcount block for table index `bi` (which has none): placed on the first
 * cluster of the range it covers, free because nothing counts it, and counting itself. */
static int rb_create(struct disk *d, uint64_t bi)
{
	struct qcow2 *q = d->q;
	uint64_t off = bi * q->rb_entries * q->cs;

	if (bi == 0) /* cluster 0 is the header, in use: its block cannot be missing */
		return disk_fail(d, -EIO, "%s: the refcount table has no block for the header",
				 d->path);
	q->rbc[bi] = cblock_new(q, off);
	if (!q->rbc[bi])
		return disk_fail(d, -ENOMEM, "out of memory");
	rb_set(q, q->rbc[bi]->data, 0, 1);
	q->rbc[bi]->dirty = true;
	q->rt[bi] = off;
	q->rt_dirty = true;
	if (off + q->cs > q->alloc_end)
		q->alloc_end = off + q->cs;
	return 0;
}

int qcow2_alloc(struct disk *d, uint64_t n, uint64_t *off)
{
	struct qcow2 *q = d->q;
	uint64_t end_cl;
	int ret;

	for (;;) {
		uint64_t start = q->free_hint, run = 0, c, rc;
		bool again = false;

		end_cl = q->alloc_end >> q->cluster_bits;
		for (c = start; run < n; c++) {
			if (c >= end_cl) {
				run = n; /* everything past the end is free */
				break;
			}
			ret = qcow2_get_refcount(d, c, &rc);
			if (ret)
				return ret;
			if (rc) {
				start = c + 1;
				run = 0;
			} else {
				run++;
			}
		}
		if (start > (UINT64_MAX >> q->cluster_bits) - n ||
		    (start + n) << q->cluster_bits > QCOW2_OFF_MASK)
			return disk_fail(d, -ENOSPC, "%s: image offsets exhausted", d->path);
		for (uint64_t bi = start / q->rb_entries; bi <= (start + n - 1) / q->rb_entries;
		     bi++) {
			if (bi >= q->rt_entries) {
				ret = grow_rt(d, bi);
				if (ret)
					return ret;
				again = true;
				break;
			}
			if (!(q->rt[bi] & ~QCOW2_RT_RESERVED)) {
				ret = rb_create(d, bi);
				if (ret)
					return ret;
				if (bi * q->rb_entries >= start)
					again = true; /* it took a cluster of our run */
			}
		}
		if (again)
			continue;
		for (uint64_t i = 0; i < n; i++) {
			ret = qcow2_set_refcount(d, start + i, 1);
			if (ret)
				return ret;
		}
		if (n == 1 || start == q->free_hint)
			q->free_hint = start + n;
		*off = start << q->cluster_bits;
		if (*off + n * q->cs > q->alloc_end)
			q->alloc_end = *off + n * q->cs;
		return 0;
	}
}

/* ----------------------------------------------------------------------- L2 tables */

int qcow2_l2_get(struct disk *d, uint64_t i, struct qcow2_cblock **out)
{
	struct qcow2 *q = d->q;
	uint64_t off = q->l1[i] & QCOW2_OFF_MASK;
	int ret;

	*out = NULL;
	if (q->l2c[i]) {
		*out = q->l2c[i];
		return 0;
	}
	if (!off)
		return 0;
	ret = qcow2_check_table_off(d, off, q->cs, "L2 table");
	if (ret)
		return ret;
	q->l2c[i] = cblock_new(q, off);
	if (!q->l2c[i])
		return disk_fail(d, -ENOMEM, "out of memory");
	ret = disk_pread_full(d->fd, q->l2c[i]->data, q->cs, off);
	if (ret) {
		cblock_free(q, &q->l2c[i]);
		return disk_fail(d, -EIO, "%s: reading L2 table at %#llx: %s", d->path,
				 (unsigned long long)off, strerror(-ret));
	}
	*out = q->l2c[i];
	return 0;
}

int qcow2_read_table(struct disk *d, uint64_t off, uint64_t *buf, uint64_t n)
{
	int ret = qcow2_check_table_off(d, off, n * 8, "table");

	if (ret)
		return ret;
	ret = disk_pread_full(d->fd, buf, n * 8, off);
	if (ret)
		return disk_fail(d, -EIO, "%s: reading table at %#llx: %s", d->path,
				 (unsigned long long)off, strerror(-ret));
	for (uint64_t i = 0; i < n; i++)
		buf[i] = be64toh(buf[i]);
	return 0;
}

void qcow2_drop_l2_cache(struct disk *d)
{
	for (uint32_t i = 0; i < d->q->l1_size; i++)
		cblock_free(d->q, &d->q->l2c[i]);
}

/* The L2 entry for guest cluster `vc` (0 when unallocated), checked. */
static int lookup(struct disk *d, uint64_t vc, uint64_t *entry)
{
	struct qcow2 *q = d->q;
	struct qcow2_cblock *t;
	uint64_t e;
	int ret = qcow2_l2_get(d, vc / q->l2_entries, &t);

	*entry = 0;
	if (ret || !t)
		return ret;
	e = qcow2_l2_entry(t, vc % q->l2_entries);
	if (e & QCOW2_COMPRESSED)
		return disk_fail(d, -ENOTSUP,
				 "%s: guest offset %#llx is a compressed cluster: compression "
				 "is not supported (qemu-img convert the image without -c)",
				 d->path, (unsigned long long)(vc * q->cs));
	if (e & QCOW2_L2_RESERVED)
		return disk_fail(d, -EIO, "%s: L2 entry for guest offset %#llx has reserved bits",
				 d->path, (unsigned long long)(vc * q->cs));
	*entry = e;
	return 0;
}

/* Reads from the backing chain; past its end, zeros. */
static int read_backing(struct disk *d, uint64_t off, uint8_t *buf, size_t len)
{
	struct disk *b = d->backing;
	size_t have = 0;
	int ret;

	if (b && off < b->size) {
		have = b->size - off < len ? (size_t)(b->size - off) : len;
		ret = disk_read(b, off, buf, have);
		if (ret)
			return disk_fail(d, ret, "%s", b->err);
	}
	memset(buf + have, 0, len - have);
	return 0;
}

/* Writes back and drops cached metadata when the cache grew past its limit; only
 * between requests, where nobody holds a cached block. */
static int cache_trim(struct disk *d)
{
	struct qcow2 *q = d->q;
	int ret;

	if (q->cached_bytes <= CACHE_LIMIT)
		return 0;
	if (!d->ro) {
		ret = qcow2_flush_meta(d, false);
		if (ret)
			return ret;
	}
	qcow2_drop_l2_cache(d);
	for (uint64_t i = 0; i < q->rt_entries; i++)
		if (q->rbc[i] && !q->rbc[i]->dirty)
			cblock_free(q, &q->rbc[i]);
	return 0;
}

int qcow2_read(struct disk *d, uint64_t off, uint8_t *buf, size_t len)
{
	struct qcow2 *q = d->q;
	int ret = cache_trim(d);

	while (!ret && len) {
		uint64_t in = off & (q->cs - 1), e, host;
		size_t n = q->cs - in < len ? (size_t)(q->cs - in) : len;

		ret = lookup(d, off >> q->cluster_bits, &e);
		if (ret)
			break;
		host = e & QCOW2_OFF_MASK;
		if (e & QCOW2_ZERO)
			memset(buf, 0, n);
		else if (host)
			ret = disk_pread_zero(d, host + in, buf, n);
		else
			ret = read_backing(d, off, buf, n);
		off += n;
		buf += n;
		len -= n;
	}
	return ret;
}

/* The L2 table for guest cluster `vc`, ours alone to change: allocated when missing,
 * copied when shared with a snapshot (COPIED clear). */
static int l2_for_write(struct disk *d, uint64_t vc, struct qcow2_cblock **out)
{
	struct qcow2 *q = d->q;
	uint64_t i = vc / q->l2_entries, old = q->l1[i] & QCOW2_OFF_MASK, off;
	struct qcow2_cblock *t;
	int ret;

	if (old && (q->l1[i] & QCOW2_COPIED))
		return qcow2_l2_get(d, i, out);
	ret = qcow2_l2_get(d, i, &t); /* the shared table's contents, if any */
	if (ret)
		return ret;
	ret = qcow2_alloc(d, 1, &off);
	if (ret)
		return ret;
	if (!t) {
		q->l2c[i] = t = cblock_new(q, off);
		if (!t)
			return disk_fail(d, -ENOMEM, "out of memory");
	} else {
		t->off = off;
		ret = qcow2_free_later(d, old);
		if (ret)
			return ret;
	}
	t->dirty = true;
	q->l1[i] = off | QCOW2_COPIED;
	q->l1_dirty = true;
	*out = t;
	return 0;
}

/* Whether the cluster at `host` holds the header, the L1 or refcount table or the
 * snapshot table: a data cluster there is a corrupt (or hostile) image, and a guest
 * write must not land on them. (L2 tables and refcount blocks are not checked.) */
static bool overlaps_fixed_metadata(const struct qcow2 *q, uint64_t host)
{
	uint64_t l1_end = q->l1_off + (((uint64_t)q->l1_size * 8 + q->cs - 1) & ~(q->cs - 1));
	uint64_t rt_end = q->rt_off + q->rt_entries * 8;
	uint64_t sn_end = q->snap_off + ((q->snap_bytes + q->cs - 1) & ~(q->cs - 1));

	return host < q->cs || (host >= q->l1_off && host < l1_end) ||
	       (host >= q->rt_off && host < rt_end) ||
	       (q->nb_snaps && host >= q->snap_off && host < sn_end);
}

static int write_cluster(struct disk *d, uint64_t off, const uint8_t *buf, size_t n)
{
	struct qcow2 *q = d->q;
	uint64_t vc = off >> q->cluster_bits, in = off & (q->cs - 1), idx = vc % q->l2_entries;
	uint64_t e, host, new_off;
	struct qcow2_cblock *t;
	int ret;

	ret = lookup(d, vc, &e);
	if (ret)
		return ret;
	host = e & QCOW2_OFF_MASK;
	if (host && overlaps_fixed_metadata(q, host))
		return disk_fail(d, -EIO,
				 "%s: L2 entry for guest offset %#llx points into the image's own "
				 "tables (%#llx): corrupt image, write refused",
				 d->path, (unsigned long long)(off - in), (unsigned long long)host);
	if (host && (e & QCOW2_COPIED) && !(e & QCOW2_ZERO)) {
		q->unsynced = true;
		ret = disk_pwrite_full(d->fd, buf, n, host + in);
		return ret ? disk_fail(d, -EIO, "%s: write at %#llx: %s", d->path,
				       (unsigned long long)(host + in), strerror(-ret))
			   : 0;
	}
	/* A new cluster, whole: what the guest does not overwrite comes from where the
	 * cluster read from before (shared cluster, zeros, or the backing chain). */
	if (n < q->cs) {
		if (e & QCOW2_ZERO)
			memset(q->scratch, 0, q->cs);
		else if (host)
			ret = disk_pread_zero(d, host, q->scratch, q->cs);
		else
			ret = read_backing(
			    d, off - in, q->scratch,
			    off - in + q->cs > d->size ? (size_t)(d->size - (off - in)) : q->cs);
		if (ret)
			return ret;
		if (!(e & QCOW2_ZERO) && !host && off - in + q->cs > d->size)
			memset(q->scratch + (d->size - (off - in)), 0,
			       q->cs - (d->size - (off - in)));
	}
	memcpy(q->scratch + in, buf, n);
	ret = l2_for_write(d, vc, &t);
	if (ret)
		return ret;
	if (host && (e & QCOW2_COPIED)) {
		new_off = host; /* a preallocated zero cluster that is ours: fill it */
	} else {
		ret = qcow2_alloc(d, 1, &new_off);
		if (ret)
			return ret;
	}
	q->unsynced = true;
	ret = disk_pwrite_full(d->fd, q->scratch, q->cs, new_off);
	if (ret)
		return disk_fail(d, -EIO, "%s: write at %#llx: %s", d->path,
				 (unsigned long long)new_off, strerror(-ret));
	if (new_off + q->cs > q->file_size)
		q->file_size = new_off + q->cs;
	qcow2_l2_set(t, idx, new_off | QCOW2_COPIED);
	if (host && new_off != host)
		return qcow2_free_later(d, host);
	return 0;
}

int qcow2_write(struct disk *d, uint64_t off, const uint8_t *buf, size_t len)
{
	struct qcow2 *q = d->q;
	int ret = cache_trim(d);

	while (!ret && len) {
		uint64_t in = off & (q->cs - 1);
		size_t n = q->cs - in < len ? (size_t)(q->cs - in) : len;

		ret = write_cluster(d, off, buf, n);
		off += n;
		buf += n;
		len -= n;
	}
	return ret;
}

int qcow2_sync(struct disk *d)
{
	if (!d->q->unsynced)
		return 0;
	if (fdatasync(d->fd) < 0)
		return disk_fail(d, -errno, "%s: fdatasync: %s", d->path, strerror(errno));
	d->q->unsynced = false;
	return 0;
}

int qcow2_pwrite(struct disk *d, const void *buf, size_t len, uint64_t off, const char *what)
{
	int ret;

	d->q->unsynced = true;
	ret = disk_pwrite_full(d->fd, buf, len, off);
	if (ret)
		return disk_fail(d, -EIO, "%s: writing %s: %s", d->path, what, strerror(-ret));
	return 0;
}

/* Every cluster a refcount will count exists in the file before the refcount does
 * (an L2 table or refcount block allocated here is written later). */
static int extend_file(struct disk *d)
{
	struct qcow2 *q = d->q;

	if (q->alloc_end <= q->file_size)
		return 0;
	if (ftruncate(d->fd, (off_t)q->alloc_end) < 0)
		return disk_fail(d, -errno, "%s: ftruncate: %s", d->path, strerror(errno));
	q->file_size = q->alloc_end;
	q->unsynced = true;
	return 0;
}

/* Refcount blocks, then (after a barrier, so the table never names a block not yet
 * written) the refcount table. */
/* The dirty ones of `n` cached clusters; returns 1 when it wrote any, or -errno. */
static int write_dirty(struct disk *d, struct qcow2_cblock **blocks, uint64_t n, const char *what)
{
	int ret, wrote = 0;

	for (uint64_t i = 0; i < n; i++) {
		struct qcow2_cblock *b = blocks[i];

		if (!b || !b->dirty)
			continue;
		ret = qcow2_pwrite(d, b->data, d->q->cs, b->off, what);
		if (ret)
			return ret;
		b->dirty = false;
		wrote = 1;
	}
	return wrote;
}

static int flush_refcounts(struct disk *d)
{
	struct qcow2 *q = d->q;
	int ret = write_dirty(d, q->rbc, q->rt_entries, "refcount block");

	if (ret < 0)
		return ret;
	if (q->rt_dirty) {
		ret = qcow2_sync(d);
		if (ret)
			return ret;
		ret = write_rt(d, q->rt_off, q->rt, q->rt_entries);
		if (ret)
			return disk_fail(d, -EIO, "%s: writing refcount table: %s", d->path,
					 strerror(-ret));
		q->rt_dirty = false;
	}
	return 0;
}

/* Dirty L2 tables; returns 1 when it wrote any. */
static int write_l2_tables(struct disk *d)
{
	return write_dirty(d, d->q->l2c, d->q->l1_size, "L2 table");
}

static int write_l1(struct disk *d)
{
	struct qcow2 *q = d->q;
	int ret;

	if (!q->l1_dirty)
		return 0;
	ret = write_rt(d, q->l1_off, q->l1, q->l1_size);
	if (ret)
		return disk_fail(d, -EIO, "%s: writing L1 table: %s", d->path, strerror(-ret));
	q->l1_dirty = false;
	return 0;
}

int qcow2_flush(struct disk *d)
{
	/* The caller's own writes to disk_map's extents are complete by now (disk.h):
	 * they are what this sync makes durable. Not in a flush from inside a request,
	 * when one may still be in flight and land after its sync. */
	if (d->q->mapped_for_write) {
		d->q->unsynced = true;
		d->q->mapped_for_write = false;
	}
	return qcow2_flush_meta(d, true);
}

int qcow2_flush_batch(struct disk *d)
{
	int ret = extend_file(d);

	if (!ret)
		ret = flush_refcounts(d);
	if (!ret)
		ret = write_l2_tables(d);
	if (ret >= 0)
		ret = write_l1(d);
	if (!ret)
		ret = qcow2_sync(d);
	return ret;
}

int qcow2_flush_meta(struct disk *d, bool apply_frees)
{
	struct qcow2 *q = d->q;
	int ret;

	/* Each barrier below is skipped when nothing was written since the last one
	 * (qcow2_sync): a flush with nothing dirty costs no fdatasync. */
	ret = extend_file(d);
	if (!ret)
		ret = flush_refcounts(d);
	if (!ret)
		ret = qcow2_sync(d); /* guest data and refcounts before the references */
	if (!ret)
		ret = write_l2_tables(d);
	if (ret > 0)
		ret = qcow2_sync(d);
	if (!ret && q->l1_dirty) {
		ret = write_l1(d);
		if (!ret)
			ret = qcow2_sync(d);
	}
	if (ret)
		return ret;
	/* The references to these are gone on disk: now they may be freed. Not when the
	 * flush comes from inside a request (cache trim, refcount table growth): a caller
	 * may still have I/O of its own in flight on such a cluster (disk_map's extents),
	 * and a freed cluster can be handed out again at once. */
	if (q->npending && apply_frees) {
		ret = qcow2_apply_frees(d);
		if (!ret)
			ret = flush_refcounts(d);
		if (!ret)
			ret = qcow2_sync(d);
	}
	return ret;
}

int qcow2_apply_frees(struct disk *d)
{
	struct qcow2 *q = d->q;

	while (q->npending) { /* each taken off first: none is applied twice */
		int ret = qcow2_ref_add(d, q->pending[--q->npending], -1);

		if (ret)
			return ret;
	}
	return 0;
}

int qcow2_map(struct disk *d, uint64_t off, uint64_t len, bool for_write, struct disk_extent *e)
{
	struct qcow2 *q = d->q;
	uint64_t in = off & (q->cs - 1), entry, host;
	int ret = cache_trim(d);

	if (ret)
		return ret;
	ret = lookup(d, off >> q->cluster_bits, &entry);
	if (ret)
		return ret;
	e->len = q->cs - in < len ? q->cs - in : len;
	e->host_off = 0;
	host = entry & QCOW2_OFF_MASK;
	if (for_write) {
		/* In place only into a cluster of ours that is data, not the tables (the
		 * slow path refuses that, naming it). */
		e->kind = host && (entry & QCOW2_COPIED) && !(entry & QCOW2_ZERO) &&
				  !overlaps_fixed_metadata(q, host)
			      ? DISK_EXT_DATA
			      : DISK_EXT_SLOW;
	} else if (entry & QCOW2_ZERO) {
		e->kind = DISK_EXT_ZERO;
	} else if (host) {
		e->kind = DISK_EXT_DATA;
	} else {
		e->kind = d->backing && off < d->backing->size ? DISK_EXT_SLOW : DISK_EXT_ZERO;
	}
	if (e->kind == DISK_EXT_DATA) {
		if (for_write)
			q->mapped_for_write = true; /* the caller writes it */
		e->host_off = host + in;
		/* Following clusters that lie right after this one in the file, and are as
		 * usable, make one extent (one readv/writev for a large request). */
		while (e->len < len) {
			uint64_t next, nhost, n = len - e->len < q->cs ? len - e->len : q->cs;

			ret = lookup(d, (off + e->len) >> q->cluster_bits, &next);
			if (ret)
				return ret;
			nhost = next & QCOW2_OFF_MASK;
			if (!nhost || (next & QCOW2_ZERO) || nhost != e->host_off + e->len ||
			    (for_write &&
			     (!(next & QCOW2_COPIED) || overlaps_fixed_metadata(q, nhost))))
				break;
			e->len += n;
		}
		/* A cluster the file does not fully hold reads short: leave it to disk_read. */
		if (e->host_off + e->len > q->file_size)
			e->kind = DISK_EXT_SLOW;
	}
	return 0;
}

int qcow2_block_status(struct disk *d, uint64_t off, uint64_t len, bool *here, uint64_t *run)
{
	struct qcow2 *q = d->q;
	uint64_t done = 0;
	int ret;

	while (done < len) {
		uint64_t in = (off + done) & (q->cs - 1), e, n = q->cs - in;
		bool h;

		ret = lookup(d, (off + done) >> q->cluster_bits, &e);
		if (ret)
			return ret;
		h = (e & QCOW2_ZERO) || (e & QCOW2_OFF_MASK);
		if (done == 0)
			*here = h;
		else if (h != *here)
			break;
		done += n < len - done ? n : len - done;
	}
	*run = done;
	return 0;
}

/* ------------------------------------------------------------------ open, validate */

static int feature_name(const uint8_t *table, uint32_t len, unsigned type, unsigned bit, char *out,
			size_t outlen)
{
	for (uint32_t i = 0; table && i + 48 <= len; i += 48)
		if (table[i] == type && table[i + 1] == bit) {
			snprintf(out, outlen, "%.*s", (int)strnlen((const char *)table + i + 2, 46),
				 table + i + 2);
			return 0;
		}
	snprintf(out, outlen, "bit %u", bit);
	return -ENOENT;
}

static int check_incompat(struct disk *d, uint64_t f, const uint8_t *names, uint32_t nlen,
			  char *err, size_t errlen)
{
	static const struct {
		uint64_t bit;
		const char *what;
	} known[] = {
	    {QCOW2_INCOMPAT_DIRTY,
	     "the dirty bit (lazy refcounts in use when it was last closed: repair with "
	     "`qemu-img check -r all`)"},
	    {QCOW2_INCOMPAT_CORRUPT, "the corrupt bit (qemu found it inconsistent)"},
	    {QCOW2_INCOMPAT_DATA_FILE, "an external data file"},
	    {QCOW2_INCOMPAT_COMPRESS, "a compression type other than zlib (compression)"},
	    {QCOW2_INCOMPAT_EXTL2, "extended L2 entries (subclusters)"},
	};
	char name[48];

	for (unsigned i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (f & known[i].bit)
			return errf(err, errlen, -ENOTSUP,
				    "%s: has %s, which thaw does not support", d->path,
				    known[i].what);
	for (unsigned b = 0; b < 64; b++)
		if (f & (1ull << b)) {
			feature_name(names, nlen, 0, b, name, sizeof(name));
			return errf(err, errlen, -ENOTSUP,
				    "%s: unknown incompatible feature %s (\"%s\")", d->path, name,
				    name);
		}
	return 0;
}

/* Header extensions in [start, end) of the header cluster `h`. */
static int parse_extensions(struct disk *d, const uint8_t *h, uint32_t start, uint32_t end,
			    const uint8_t **names, uint32_t *nlen, char *err, size_t errlen)
{
	struct qcow2 *q = d->q;
	uint32_t p = start;

	while (p + 8 <= end) {
		uint32_t type = disk_get32(h + p), len = disk_get32(h + p + 4);

		p += 8;
		if (type == QCOW2_EXT_END)
			return 0;
		if (len > end - p)
			return errf(err, errlen, -EINVAL,
				    "%s: header extension %#x of %u bytes runs past the header "
				    "cluster",
				    d->path, type, len);
		switch (type) {
		case QCOW2_EXT_BACKING_FMT:
			if (len >= sizeof(q->backing_fmt))
				return errf(err, errlen, -EINVAL,
					    "%s: backing format name of %u bytes", d->path, len);
			memcpy(q->backing_fmt, h + p, len);
			q->backing_fmt[len] = 0;
			if (strcmp(q->backing_fmt, "raw") && strcmp(q->backing_fmt, "qcow2"))
				return errf(err, errlen, -ENOTSUP,
					    "%s: backing format \"%s\" (only raw and qcow2)",
					    d->path, q->backing_fmt);
			break;
		case QCOW2_EXT_FEATURES:
			*names = h + p;
			*nlen = len;
			break;
		case QCOW2_EXT_CRYPTO:
			return errf(err, errlen, -ENOTSUP,
				    "%s: has a full disk encryption header: encryption is not "
				    "supported",
				    d->path);
		case QCOW2_EXT_DATA_FILE:
			return errf(err, errlen, -ENOTSUP,
				    "%s: names an external data file, which is not supported",
				    d->path);
		default: /* bitmaps and others: optional, skipped */
			break;
		}
		p += (len + 7) & ~7u;
	}
	return errf(err, errlen, -EINVAL, "%s: header extensions without an end marker", d->path);
}

void qcow2_free(struct qcow2 *q)
{
	if (q->l2c)
		for (uint32_t i = 0; i < q->l1_size; i++)
			cblock_free(q, &q->l2c[i]);
	if (q->rbc)
		for (uint64_t i = 0; i < q->rt_entries; i++)
			cblock_free(q, &q->rbc[i]);
	free(q->l2c);
	free(q->rbc);
	free(q->l1);
	free(q->rt);
	free(q->pending);
	free(q->snaps);
	free(q->scratch);
	free(q);
}

/* The backing file name: inside the header cluster `h` (`hlen` bytes read), after the
 * fixed header, at most DISK_BACKING_MAX bytes, no NUL. */
static int parse_backing(struct disk *d, const uint8_t *h, size_t hlen, char *err, size_t errlen)
{
	struct qcow2 *q = d->q;
	uint64_t boff = disk_get64(h + 8);
	uint32_t boff_sz = disk_get32(h + 16);

	if (boff) {
		if (boff_sz == 0 || boff_sz > DISK_BACKING_MAX || boff < q->header_len ||
		    boff > hlen || boff_sz > hlen - boff)
			return errf(err, errlen, -EINVAL,
				    "%s: backing file name (%u bytes at %llu) outside the header "
				    "cluster or longer than %d",
				    d->path, boff_sz, (unsigned long long)boff, DISK_BACKING_MAX);
		memcpy(q->backing, h + boff, boff_sz);
		q->backing[boff_sz] = 0;
		if (strlen(q->backing) != boff_sz)
			return errf(err, errlen, -EINVAL, "%s: backing file name holds a NUL byte",
				    d->path);
	} else if (q->backing_fmt[0]) {
		q->backing_fmt[0] = 0; /* a format for no file: meaningless, ignored */
	}
	return 0;
}

/* The virtual size and the L1 table, loaded, every entry checked. */
static int load_l1(struct disk *d, const uint8_t *h, char *err, size_t errlen)
{
	struct qcow2 *q = d->q;
	uint64_t per_l1 = q->l2_entries * q->cs, l1_need;
	int ret;

	d->size = disk_get64(h + 24);
	q->l1_size = disk_get32(h + 36);
	q->l1_off = disk_get64(h + 40);
	l1_need = d->size / per_l1 + (d->size % per_l1 != 0);
	if ((uint64_t)q->l1_size * 8 > QCOW2_MAX_L1_BYTES || l1_need > q->l1_size)
		return errf(err, errlen, -EINVAL,
			    "%s: L1 table of %u entries for a %llu-byte disk (needs %llu, at most "
			    "%u)",
			    d->path, q->l1_size, (unsigned long long)d->size,
			    (unsigned long long)l1_need, QCOW2_MAX_L1_BYTES / 8);
	if (q->l1_size) {
		ret = qcow2_check_table_off(d, q->l1_off, (uint64_t)q->l1_size * 8, "L1 table");
		if (ret)
			return errf(err, errlen, -EINVAL, "%s", d->err);
	}
	q->l1 = calloc(q->l1_size ? q->l1_size : 1, 8);
	q->l2c = calloc(q->l1_size ? q->l1_size : 1, sizeof(*q->l2c));
	q->scratch = malloc(q->cs);
	if (!q->l1 || !q->l2c || !q->scratch)
		return errf(err, errlen, -ENOMEM, "out of memory");
	if (q->l1_size && (ret = qcow2_read_table(d, q->l1_off, q->l1, q->l1_size)))
		return errf(err, errlen, ret, "%s", d->err);
	for (uint32_t i = 0; i < q->l1_size; i++) {
		uint64_t off = q->l1[i] & QCOW2_OFF_MASK;

		if (q->l1[i] & QCOW2_L1_RESERVED)
			return errf(err, errlen, -EINVAL, "%s: L1 entry %u has reserved bits set",
				    d->path, i);
		if (off && qcow2_check_table_off(d, off, q->cs, "L2 table"))
			return errf(err, errlen, -EINVAL, "%s (L1 entry %u)", d->err, i);
	}
	return 0;
}

/* The refcount table, loaded, every block offset checked. */
static int load_rt(struct disk *d, const uint8_t *h, char *err, size_t errlen)
{
	struct qcow2 *q = d->q;
	int ret;

	q->rt_off = disk_get64(h + 48);
	q->rt_clusters = disk_get32(h + 56);
	if (q->rt_clusters == 0 || (uint64_t)q->rt_clusters * q->cs > QCOW2_MAX_RT_BYTES)
		return errf(err, errlen, -EINVAL, "%s: refcount table of %u clusters", d->path,
			    q->rt_clusters);
	q->rt_entries = (uint64_t)q->rt_clusters * q->cs / 8;
	ret = qcow2_check_table_off(d, q->rt_off, q->rt_entries * 8, "refcount table");
	if (ret)
		return errf(err, errlen, -EINVAL, "%s", d->err);
	q->rt = calloc(q->rt_entries, 8);
	q->rbc = calloc(q->rt_entries, sizeof(*q->rbc));
	if (!q->rt || !q->rbc)
		return errf(err, errlen, -ENOMEM, "out of memory");
	ret = qcow2_read_table(d, q->rt_off, q->rt, q->rt_entries);
	if (ret)
		return errf(err, errlen, ret, "%s", d->err);
	if (!(q->rt[0] & ~QCOW2_RT_RESERVED))
		return errf(err, errlen, -EINVAL,
			    "%s: the refcount table has no block for the header cluster", d->path);
	for (uint64_t i = 0; i < q->rt_entries; i++) {
		uint64_t off = q->rt[i] & ~QCOW2_RT_RESERVED;

		if (off && qcow2_check_table_off(d, off, q->cs, "refcount block"))
			return errf(err, errlen, -EINVAL, "%s (refcount table entry %llu)", d->err,
				    (unsigned long long)i);
	}
	return 0;
}

int qcow2_open(struct disk *d, char *err, size_t errlen)
{
	struct qcow2 *q = calloc(1, sizeof(*q));
	uint8_t *h = NULL;
	const uint8_t *names = NULL;
	uint32_t nlen = 0, version, crypt, nb_snaps;
	uint64_t snap_off;
	struct stat st;
	size_t hlen;
	int ret;

	if (!q)
		return errf(err, errlen, -ENOMEM, "out of memory");
	d->q = q;
	q->unsynced = true;
	if (fstat(d->fd, &st) < 0)
		return errf(err, errlen, -errno, "%s: fstat: %s", d->path, strerror(errno));
	q->file_size = (uint64_t)st.st_size;
	if (q->file_size < QCOW2_HDR_V3_LEN)
		return errf(err, errlen, -EINVAL, "%s: %llu bytes, shorter than a qcow2 header",
			    d->path, (unsigned long long)q->file_size);
	h = malloc(QCOW2_HDR_V3_LEN);
	if (!h)
		return errf(err, errlen, -ENOMEM, "out of memory");
	ret = disk_pread_full(d->fd, h, QCOW2_HDR_V3_LEN, 0);
	if (ret) {
		errf(err, errlen, ret, "%s: reading the header: %s", d->path, strerror(-ret));
		goto out;
	}
	version = disk_get32(h + 4);
	if (version != 3) {
		ret = errf(err, errlen, -ENOTSUP,
			   "%s: qcow2 version %u; only version 3 is supported (qemu-img amend -o "
			   "compat=1.1 converts a version 2 image)",
			   d->path, version);
		goto out;
	}
	q->cluster_bits = disk_get32(h + 20);
	if (q->cluster_bits < 9 || q->cluster_bits > 21) {
		ret = errf(err, errlen, -EINVAL, "%s: cluster_bits %u outside 9..21", d->path,
			   q->cluster_bits);
		goto out;
	}
	q->cs = 1ull << q->cluster_bits;
	q->l2_entries = q->cs / 8;
	crypt = disk_get32(h + 32);
	if (crypt) {
		ret =
		    errf(err, errlen, -ENOTSUP,
			 "%s: encrypted (method %u): encryption is not supported", d->path, crypt);
		goto out;
	}
	q->header_len = disk_get32(h + 100);
	if (q->header_len < QCOW2_HDR_V3_LEN || q->header_len > q->cs || q->header_len % 8) {
		ret = errf(err, errlen, -EINVAL, "%s: header_length %u", d->path, q->header_len);
		goto out;
	}
	/* The whole header cluster (or what the file holds of it). */
	hlen = q->file_size < q->cs ? (size_t)q->file_size : (size_t)q->cs;
	free(h);
	h = calloc(1, q->cs);
	if (!h) {
		ret = errf(err, errlen, -ENOMEM, "out of memory");
		goto out;
	}
	ret = disk_pread_full(d->fd, h, hlen, 0);
	if (ret) {
		errf(err, errlen, ret, "%s: reading the header: %s", d->path, strerror(-ret));
		goto out;
	}
	if (q->header_len > hlen) {
		ret = errf(err, errlen, -EINVAL, "%s: header longer than the file", d->path);
		goto out;
	}
	q->incompat = disk_get64(h + 72);
	q->compat = disk_get64(h + 80);
	q->autoclear = disk_get64(h + 88);
	q->refcount_order = disk_get32(h + 96);
	if (q->header_len > 104 && h[104] != 0) {
		ret =
		    errf(err, errlen, -ENOTSUP,
			 "%s: compression type %u: compression is not supported", d->path, h[104]);
		goto out;
	}
	ret = parse_extensions(d, h, q->header_len, (uint32_t)hlen, &names, &nlen, err, errlen);
	if (ret)
		goto out;
	ret = check_incompat(d, q->incompat, names, nlen, err, errlen);
	if (ret)
		goto out;
	if (q->refcount_order > 6) {
		ret = errf(err, errlen, -EINVAL, "%s: refcount_order %u above 6", d->path,
			   q->refcount_order);
		goto out;
	}
	q->rb_entries = q->cs * 8 >> q->refcount_order;
	q->rc_max = q->refcount_order == 6 ? UINT64_MAX : (1ull << (1u << q->refcount_order)) - 1;

	ret = parse_backing(d, h, hlen, err, errlen);
	if (!ret)
		ret = load_l1(d, h, err, errlen);
	if (!ret)
		ret = load_rt(d, h, err, errlen);
	if (ret)
		goto out;

	/* Snapshots. */
	nb_snaps = disk_get32(h + 60);
	snap_off = disk_get64(h + 64);
	ret = qcow2_snap_load(d, nb_snaps, snap_off, err, errlen);
	if (ret)
		goto out;

	q->alloc_end = (q->file_size + q->cs - 1) & ~(q->cs - 1);
	/* Autoclear bits name extensions (bitmaps) a writer that does not know them must
	 * invalidate: clear them before the first change. */
	if (!d->ro && q->autoclear) {
		uint8_t zero[8] = {0};

		ret = disk_pwrite_full(d->fd, zero, 8, 88);
		if (!ret && fdatasync(d->fd) < 0)
			ret = -errno;
		if (ret) {
			errf(err, errlen, ret, "%s: clearing autoclear features: %s", d->path,
			     strerror(-ret));
			goto out;
		}
		q->autoclear = 0;
	}
	ret = 0;
out:
	free(h);
	return ret;
}

/* ------------------------------------------------------------------------ create */

/* Writes a new image: cluster 0 the header, 1 the refcount table, 2 its one block,
 * 3.. the L1 table (a hole, as is everything else that is zero). Three small writes
 * and an ftruncate whatever the size: only the bytes that are not zero reach the page
 * cache (the rest of the four clusters reads as zeros from holes). */
static int create_file(const char *path, uint64_t size, unsigned bits, const char *backing,
		       enum disk_format backing_fmt, bool no_sync, char *err, size_t errlen)
{
	uint64_t cs = 1ull << bits, l1_size, l1_cl, per_l1, rbe, rb_len;
	uint8_t hdr[2048] = {0}, rt[8], rbs[512], *rb = rbs;
	uint32_t p = QCOW2_HDR_V3_LEN;
	int fd, ret;

	per_l1 = cs / 8 * cs;
	l1_size = size / per_l1 + (size % per_l1 != 0);
	if (!l1_size)
		l1_size = 1;
	if (l1_size * 8 > QCOW2_MAX_L1_BYTES)
		return errf(err, errlen, -EFBIG, "%llu bytes is too large for %llu-byte clusters",
			    (unsigned long long)size, (unsigned long long)cs);
	l1_cl = (l1_size * 8 + cs - 1) / cs;
	rbe = cs * 8 / 16;
	if (3 + l1_cl > rbe)
		return errf(err, errlen, -EFBIG, "%llu bytes is too large for %llu-byte clusters",
			    (unsigned long long)size, (unsigned long long)cs);
	disk_put32(hdr, QCOW2_MAGIC);
	disk_put32(hdr + 4, 3);
	disk_put32(hdr + 20, bits);
	disk_put64(hdr + 24, size);
	disk_put32(hdr + 36, (uint32_t)l1_size);
	disk_put64(hdr + 40, 3 * cs);
	disk_put64(hdr + 48, cs);
	disk_put32(hdr + 56, 1);
	disk_put32(hdr + 96, 4);
	disk_put32(hdr + 100, QCOW2_HDR_V3_LEN);
	if (backing) {
		const char *fmt = backing_fmt == DISK_FMT_RAW ? "raw" : "qcow2";
		size_t flen = strlen(fmt), blen = strlen(backing);

		/* blen <= DISK_BACKING_MAX: the whole header fits hdr */
		if (p + 8 + 8 + 8 + blen > cs)
			return errf(err, errlen, -EINVAL,
				    "backing file name does not fit a %llu-byte header cluster",
				    (unsigned long long)cs);
		disk_put32(hdr + p, QCOW2_EXT_BACKING_FMT);
		disk_put32(hdr + p + 4, (uint32_t)flen);
		memcpy(hdr + p + 8, fmt, flen);
		p += 8 + (((uint32_t)flen + 7) & ~7u);
		p += 8; /* end of extensions: type 0, length 0 */
		disk_put64(hdr + 8, p);
		disk_put32(hdr + 16, (uint32_t)blen);
		memcpy(hdr + p, backing, blen);
		p += (uint32_t)blen;
	}
	disk_put64(rt, 2 * cs);
	/* 16-bit refcounts of 1 for the header, the table, the block and the L1 table */
	rb_len = (3 + l1_cl) * 2;
	if (rb_len > sizeof(rbs)) {
		rb = malloc(rb_len);
		if (!rb)
			return errf(err, errlen, -ENOMEM, "out of memory");
	}
	for (uint64_t i = 0; i < 3 + l1_cl; i++)
		disk_put16(rb + i * 2, 1);
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		ret = errf(err, errlen, -errno, "%s: create: %s", path, strerror(errno));
		if (rb != rbs)
			free(rb);
		return ret;
	}
	ret = disk_pwrite_full(fd, hdr, p, 0);
	if (!ret)
		ret = disk_pwrite_full(fd, rt, sizeof(rt), cs);
	if (!ret)
		ret = disk_pwrite_full(fd, rb, rb_len, 2 * cs);
	if (!ret && ftruncate(fd, (off_t)((3 + l1_cl) * cs)) < 0)
		ret = -errno;
	if (!ret && !no_sync && fdatasync(fd) < 0)
		ret = -errno;
	if (rb != rbs)
		free(rb);
	close(fd);
	if (ret) {
		unlink(path);
		return errf(err, errlen, ret, "%s: writing: %s", path, strerror(-ret));
	}
	return 0;
}

static int check_create_args(unsigned bits, const char *backing, char *err, size_t errlen)
{
	if (bits < 9 || bits > 21)
		return errf(err, errlen, -EINVAL, "cluster size 2^%u outside 512 B..2 MiB", bits);
	if (backing && (strlen(backing) > DISK_BACKING_MAX || !backing[0]))
		return errf(err, errlen, -EINVAL, "backing file name empty or longer than %d",
			    DISK_BACKING_MAX);
	return 0;
}

/* `backing` as the image at `path` will resolve it: relative to its directory. */
static int backing_path(const char *path, const char *backing, char *out, size_t cap, char *err,
			size_t errlen)
{
	const char *slash = strrchr(path, '/');
	int n;

	if (backing[0] != '/' && slash)
		n = snprintf(out, cap, "%.*s/%s", (int)(slash - path), path, backing);
	else
		n = snprintf(out, cap, "%s", backing);
	if (n < 0 || (size_t)n >= cap)
		return errf(err, errlen, -ENAMETOOLONG, "backing file %s: path too long", backing);
	return 0;
}

int disk_create_qcow2(const char *path, const struct disk_create_opts *o, char *err, size_t errlen)
{
	unsigned bits = o->cluster_bits ? o->cluster_bits : 16;
	uint64_t size = o->size;
	int ret = check_create_args(bits, o->backing, err, errlen);

	if (ret)
		return ret;
	if (o->backing) {
		/* Opened as the image will open it: checks the chain, gives the size. */
		char bpath[PATH_MAX];
		struct disk *b;

		ret = backing_path(path, o->backing, bpath, sizeof(bpath), err, errlen);
		if (!ret)
			ret = disk_open(bpath, true, &b, err, errlen);
		if (ret)
			return ret;
		if (disk_format(b) != o->backing_fmt) {
			disk_close(b);
			return errf(err, errlen, -EINVAL, "backing file %s is %s, not %s",
				    o->backing, o->backing_fmt == DISK_FMT_RAW ? "qcow2" : "raw",
				    o->backing_fmt == DISK_FMT_RAW ? "raw" : "qcow2");
		}
		if (!size)
			size = disk_size(b);
		disk_close(b);
	}
	return create_file(path, size, bits, o->backing, o->backing_fmt, o->no_sync, err, errlen);
}

int disk_create_overlay(const char *path, const char *backing, bool no_sync, char *err,
			size_t errlen)
{
	char bpath[PATH_MAX];
	enum disk_format fmt = DISK_FMT_RAW;
	uint8_t h[32];
	uint64_t size = 0;
	struct stat st;
	ssize_t n;
	int fd, ret = check_create_args(16, backing, err, errlen);

	/* The backing file is read once, for its format and size: its magic and the
	 * header's size field (qcow2), or its length (raw). The rest of the chain is
	 * checked by the overlay's own open, which follows every link anyway. */
	if (!ret)
		ret = backing_path(path, backing, bpath, sizeof(bpath), err, errlen);
	if (ret)
		return ret;
	fd = open(bpath, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errf(err, errlen, -errno, "backing file %s: %s", bpath, strerror(errno));
	n = pread(fd, h, sizeof(h), 0);
	if (n < 0) {
		ret = -errno;
	} else if (n >= 4 && disk_get32(h) == QCOW2_MAGIC) {
		fmt = DISK_FMT_QCOW2;
		size = disk_get64(h + 24);
		if (n < (ssize_t)sizeof(h))
			ret = -EINVAL; /* a qcow2 magic and no header after it */
	} else if (fstat(fd, &st) < 0) {
		ret = -errno;
	} else {
		size = (uint64_t)st.st_size;
	}
	close(fd);
	if (ret)
		return errf(err, errlen, ret, "backing file %s: %s", bpath, strerror(-ret));
	return create_file(path, size, 16, backing, fmt, no_sync, err, errlen);
}
