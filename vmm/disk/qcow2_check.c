/* The qcow2 consistency check: every reference counted again from the header down
 * (tables of the active image and of each snapshot, data clusters) and compared with
 * the stored refcounts, with the same verdicts as `qemu-img check`: a stored refcount
 * above the references is a leak, below is corruption, and so is a reference to a
 * place outside the file or a COPIED flag that disagrees with its refcount.
 */
#include "vmm/disk/disk_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ck {
	struct disk *d;
	struct disk_check_result *r;
	void (*report)(void *ctx, const char *msg);
	void *ctx;
	uint32_t *refs;
	uint64_t nb;
};

static void say(struct ck *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(struct ck *c, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	if (!c->report)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->report(c->ctx, msg);
}

/* One more reference on each of `n` clusters from `off`. */
static void count(struct ck *c, uint64_t off, uint64_t n, const char *what)
{
	struct qcow2 *q = c->d->q;

	if (off & (q->cs - 1)) {
		say(c, "ERROR %s at %#llx is not cluster aligned", what, (unsigned long long)off);
		c->r->corruptions++;
		return;
	}
	for (uint64_t i = 0; i < n; i++) {
		uint64_t idx = (off >> q->cluster_bits) + i;

		if (idx >= c->nb) {
			say(c, "ERROR %s at %#llx lies beyond the end of the file", what,
			    (unsigned long long)(idx << q->cluster_bits));
			c->r->corruptions++;
			continue;
		}
		if (c->refs[idx] < UINT32_MAX)
			c->refs[idx]++;
	}
}

static int stored(struct ck *c, uint64_t off, uint64_t *rc)
{
	return qcow2_get_refcount(c->d, off >> c->d->q->cluster_bits, rc);
}

/* The tree of one L1 table; `active` also checks the COPIED flags. */
static int walk(struct ck *c, const uint64_t *l1, uint32_t n, bool active)
{
	struct qcow2 *q = c->d->q;
	uint64_t *t = malloc(q->cs), rc;
	int ret = 0;

	if (!t)
		return -ENOMEM;
	for (uint32_t i = 0; i < n && !ret; i++) {
		uint64_t l2 = l1[i] & QCOW2_OFF_MASK;

		if (!l2)
			continue;
		count(c, l2, 1, "L2 table");
		if (active) {
			ret = stored(c, l2, &rc);
			if (ret)
				break;
			if ((rc == 1) != !!(l1[i] & QCOW2_COPIED)) {
				say(c,
				    "ERROR OFLAG_COPIED L2 cluster: l1_index=%u l1_entry=%llx "
				    "refcount=%llu",
				    i, (unsigned long long)l1[i], (unsigned long long)rc);
				c->r->corruptions++;
			}
		}
		if (qcow2_check_table_off(c->d, l2, q->cs, "L2 table"))
			continue; /* counted above as beyond the end */
		ret = qcow2_read_table(c->d, l2, t, q->l2_entries);
		for (uint64_t j = 0; j < q->l2_entries && !ret; j++) {
			uint64_t host = t[j] & QCOW2_OFF_MASK;

			if (t[j] & QCOW2_COMPRESSED) {
				say(c,
				    "ERROR compressed cluster at L2 %#llx index %llu (not "
				    "supported)",
				    (unsigned long long)l2, (unsigned long long)j);
				c->r->corruptions++;
				continue;
			}
			if (!host)
				continue;
			count(c, host, 1, "data cluster");
			if (!active)
				continue;
			ret = stored(c, host, &rc);
			if (!ret && (rc == 1) != !!(t[j] & QCOW2_COPIED)) {
				say(c,
				    "ERROR OFLAG_COPIED data cluster: l2_entry=%llx refcount=%llu",
				    (unsigned long long)t[j], (unsigned long long)rc);
				c->r->corruptions++;
			}
		}
	}
	free(t);
	return ret;
}

static uint64_t clusters(const struct qcow2 *q, uint64_t bytes)
{
	return (bytes + q->cs - 1) >> q->cluster_bits;
}

int disk_check(struct disk *d, struct disk_check_result *r,
	       void (*report)(void *ctx, const char *msg), void *ctx)
{
	struct ck c = {.d = d, .r = r, .report = report, .ctx = ctx};
	struct qcow2 *q = d->q;
	uint64_t rc, last = 0;
	int ret = 0;

	memset(r, 0, sizeof(*r));
	if (d->fmt != DISK_FMT_QCOW2)
		return 0;
	if (!d->ro && (ret = qcow2_flush(d)))
		return ret;
	c.nb = clusters(q, q->file_size);
	c.refs = calloc(c.nb ? c.nb : 1, sizeof(*c.refs));
	if (!c.refs)
		return disk_fail(d, -ENOMEM, "out of memory");
	count(&c, 0, 1, "header");
	count(&c, q->l1_off, clusters(q, (uint64_t)q->l1_size * 8), "L1 table");
	count(&c, q->rt_off, q->rt_clusters, "refcount table");
	for (uint64_t i = 0; i < q->rt_entries; i++)
		if (q->rt[i] & ~QCOW2_RT_RESERVED)
			count(&c, q->rt[i] & ~QCOW2_RT_RESERVED, 1, "refcount block");
	if (q->nb_snaps)
		count(&c, q->snap_off, clusters(q, q->snap_bytes), "snapshot table");
	ret = walk(&c, q->l1, q->l1_size, true);
	for (uint32_t s = 0; s < q->nb_snaps && !ret; s++) {
		const struct disk_snapshot *sn = &q->snaps[s];
		uint64_t *l1 = calloc(sn->l1_size ? sn->l1_size : 1, 8);

		if (!l1) {
			ret = -ENOMEM;
			break;
		}
		count(&c, sn->l1_offset, clusters(q, (uint64_t)sn->l1_size * 8), "snapshot L1");
		ret = sn->l1_size ? qcow2_read_table(d, sn->l1_offset, l1, sn->l1_size) : 0;
		if (!ret)
			ret = walk(&c, l1, sn->l1_size, false);
		free(l1);
	}
	for (uint64_t i = 0; i < c.nb && !ret; i++) {
		ret = qcow2_get_refcount(d, i, &rc);
		if (ret)
			break;
		if (c.refs[i]) {
			r->allocated++;
			last = i + 1;
		}
		if (rc > c.refs[i]) {
			say(&c, "Leaked cluster %llu refcount=%llu reference=%u",
			    (unsigned long long)i, (unsigned long long)rc, c.refs[i]);
			r->leaks++;
		} else if (rc < c.refs[i]) {
			say(&c, "ERROR cluster %llu refcount=%llu reference=%u",
			    (unsigned long long)i, (unsigned long long)rc, c.refs[i]);
			r->corruptions++;
		}
	}
	/* Refcounts past the end of the file count nothing real: leaks. */
	for (uint64_t bi = c.nb / q->rb_entries; bi < q->rt_entries && !ret; bi++) {
		if (!(q->rt[bi] & ~QCOW2_RT_RESERVED))
			continue;
		for (uint64_t i = bi * q->rb_entries; i < (bi + 1) * q->rb_entries && !ret; i++) {
			if (i < c.nb)
				continue;
			ret = qcow2_get_refcount(d, i, &rc);
			if (!ret && rc) {
				say(&c,
				    "Leaked cluster %llu (past the end of the file) refcount=%llu",
				    (unsigned long long)i, (unsigned long long)rc);
				r->leaks++;
			}
		}
	}
	r->image_end = last << q->cluster_bits;
	free(c.refs);
	if (ret < 0 && !d->err[0])
		disk_fail(d, ret, "%s: check: %s", d->path, strerror(-ret));
	return ret;
}
