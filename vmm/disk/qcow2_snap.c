/* qcow2 internal snapshots: the snapshot table, create (copy the L1 table, one more
 * reference on everything it reaches), revert (the snapshot's L1 becomes the active
 * one, no data copied) and delete (references dropped, clusters nobody else uses
 * freed). Each step is ordered so that a crash leaks at most: new structures are
 * written and counted before the header names them; references are dropped before
 * the refcounts that counted them. Changes that add no reference a crash could expose
 * go in one batch with one fdatasync (qcow2_flush_batch): create is that batch and
 * the header, two syncs. The format's own window stays (a COPIED flag and the
 * refcount it mirrors live in different clusters): a crash inside a batch may leave
 * them disagreeing, always on a cluster the image references once (docs/disk.md).
 */
#include "vmm/disk/disk_int.h"

#include "common/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SNAP_FIXED	40u
#define SNAP_EXTRA_MAX	1024u /* qemu's limit for the extra data it writes and reads */
#define SNAP_EXTRA_OURS 16u   /* vm_state_size_large, disk_size: what version 3 needs */

static uint64_t align8(uint64_t v)
{
	return (v + 7) & ~7ull;
}

int qcow2_snap_load(struct disk *d, uint32_t nb, uint64_t off, char *err, size_t errlen)
{
	struct qcow2 *q = d->q;
	uint8_t fixed[SNAP_FIXED], extra[SNAP_EXTRA_MAX];
	uint64_t p = off;

	if (nb > DISK_SNAP_MAX)
		return errf(err, errlen, -EINVAL, "%s: %u snapshots (at most %d)", d->path, nb,
			    DISK_SNAP_MAX);
	if (!nb)
		return 0;
	if (off & (q->cs - 1) || off >= q->file_size)
		return errf(err, errlen, -EINVAL, "%s: snapshot table at %#llx misplaced", d->path,
			    (unsigned long long)off);
	q->snaps = calloc(nb, sizeof(*q->snaps));
	if (!q->snaps)
		return errf(err, errlen, -ENOMEM, "out of memory");
	for (uint32_t i = 0; i < nb; i++) {
		struct disk_snapshot *s = &q->snaps[i];
		uint32_t id_len, name_len, extra_len;
		int ret;

		if (p - off + SNAP_FIXED > QCOW2_MAX_SNAP_BYTES || p + SNAP_FIXED > q->file_size)
			return errf(err, errlen, -EINVAL,
				    "%s: snapshot %u runs past the file or the table limit",
				    d->path, i);
		ret = disk_pread_full(d->fd, fixed, SNAP_FIXED, p);
		if (ret)
			return errf(err, errlen, ret, "%s: reading snapshot %u: %s", d->path, i,
				    strerror(-ret));
		s->l1_offset = disk_get64(fixed);
		s->l1_size = disk_get32(fixed + 8);
		id_len = disk_get16(fixed + 12);
		name_len = disk_get16(fixed + 14);
		s->date_sec = disk_get32(fixed + 16);
		s->date_nsec = disk_get32(fixed + 20);
		s->vm_clock_nsec = disk_get64(fixed + 24);
		s->vm_state_size = disk_get32(fixed + 32);
		extra_len = disk_get32(fixed + 36);
		if (extra_len > SNAP_EXTRA_MAX || id_len > DISK_SNAP_NAME_MAX ||
		    name_len > DISK_SNAP_NAME_MAX)
			return errf(err, errlen, -EINVAL,
				    "%s: snapshot %u: extra data of %u bytes, id of %u, name of "
				    "%u (limits %u, %d, %d)",
				    d->path, i, extra_len, id_len, name_len, SNAP_EXTRA_MAX,
				    DISK_SNAP_NAME_MAX, DISK_SNAP_NAME_MAX);
		p += SNAP_FIXED;
		if (p + extra_len + id_len + name_len > q->file_size)
			return errf(err, errlen, -EINVAL, "%s: snapshot %u runs past the file",
				    d->path, i);
		s->disk_size = d->size;
		if (extra_len) {
			ret = disk_pread_full(d->fd, extra, extra_len, p);
			if (ret)
				return errf(err, errlen, ret, "%s: reading snapshot %u: %s",
					    d->path, i, strerror(-ret));
			if (extra_len >= 8)
				s->vm_state_size = disk_get64(extra);
			if (extra_len >= 16)
				s->disk_size = disk_get64(extra + 8);
		}
		p += extra_len;
		if ((id_len && disk_pread_full(d->fd, s->id, id_len, p)) ||
		    (name_len && disk_pread_full(d->fd, s->name, name_len, p + id_len)))
			return errf(err, errlen, -EIO, "%s: reading snapshot %u's names", d->path,
				    i);
		s->id[id_len] = 0;
		s->name[name_len] = 0;
		p = align8(p + id_len + name_len);
		if ((uint64_t)s->l1_size * 8 > QCOW2_MAX_L1_BYTES ||
		    (s->l1_size && (s->l1_offset & (q->cs - 1) || s->l1_offset > q->file_size ||
				    (uint64_t)s->l1_size * 8 > q->file_size - s->l1_offset)))
			return errf(err, errlen, -EINVAL,
				    "%s: snapshot %u's L1 table (%u entries at %#llx) is "
				    "misplaced or too large",
				    d->path, i, s->l1_size, (unsigned long long)s->l1_offset);
	}
	q->nb_snaps = nb;
	q->snap_off = off;
	q->snap_bytes = p - off;
	return 0;
}

/* The table for `n` snapshots (`skip` left out, or -1), serialized. */
static uint8_t *snap_serialize(const struct qcow2 *q, const struct disk_snapshot *extra_snap,
			       long skip, uint64_t *len)
{
	uint64_t total = 0, p = 0;
	uint8_t *b;

	for (uint32_t i = 0; i <= q->nb_snaps; i++) {
		const struct disk_snapshot *s = i < q->nb_snaps ? &q->snaps[i] : extra_snap;

		if (!s || (long)i == skip)
			continue;
		total += align8(SNAP_FIXED + SNAP_EXTRA_OURS + strlen(s->id) + strlen(s->name));
	}
	b = calloc(1, total ? total : 1);
	if (!b)
		return NULL;
	for (uint32_t i = 0; i <= q->nb_snaps; i++) {
		const struct disk_snapshot *s = i < q->nb_snaps ? &q->snaps[i] : extra_snap;
		uint16_t id_len, name_len;

		if (!s || (long)i == skip)
			continue;
		id_len = (uint16_t)strlen(s->id);
		name_len = (uint16_t)strlen(s->name);
		disk_put64(b + p, s->l1_offset);
		disk_put32(b + p + 8, s->l1_size);
		disk_put16(b + p + 12, id_len);
		disk_put16(b + p + 14, name_len);
		disk_put32(b + p + 16, (uint32_t)s->date_sec);
		disk_put32(b + p + 20, (uint32_t)s->date_nsec);
		disk_put64(b + p + 24, s->vm_clock_nsec);
		disk_put32(b + p + 32,
			   s->vm_state_size > UINT32_MAX ? 0 : (uint32_t)s->vm_state_size);
		disk_put32(b + p + 36, SNAP_EXTRA_OURS);
		disk_put64(b + p + 40, s->vm_state_size);
		disk_put64(b + p + 48, s->disk_size);
		memcpy(b + p + 56, s->id, id_len);
		memcpy(b + p + 56 + id_len, s->name, name_len);
		p += align8(SNAP_FIXED + SNAP_EXTRA_OURS + id_len + name_len);
	}
	*len = total;
	return b;
}

/* Writes a new snapshot table in freshly allocated clusters (counted, not yet named
 * by the header). */
static int snap_write_table(struct disk *d, const struct disk_snapshot *add, long skip,
			    uint64_t *off, uint64_t *len)
{
	struct qcow2 *q = d->q;
	uint8_t *b = snap_serialize(q, add, skip, len);
	int ret;

	if (!b)
		return disk_fail(d, -ENOMEM, "out of memory");
	*off = 0;
	if (*len) {
		ret = qcow2_alloc(d, (*len + q->cs - 1) >> q->cluster_bits, off);
		if (!ret)
			ret = qcow2_pwrite(d, b, *len, *off, "the snapshot table");
		if (ret) {
			free(b);
			return ret;
		}
	}
	free(b);
	return 0;
}

/* Points the header at the new table, durably, then queues the old one's clusters
 * to be freed (nothing names them): the next qcow2_flush or qcow2_apply_frees. */
static int snap_switch_table(struct disk *d, uint32_t nb, uint64_t off, uint64_t len)
{
	struct qcow2 *q = d->q;
	uint64_t old = q->snap_off, old_len = q->snap_bytes;
	uint8_t hdr[12];
	int ret;

	disk_put32(hdr, nb);
	disk_put64(hdr + 4, off);
	ret = qcow2_pwrite(d, hdr, sizeof(hdr), 60, "the header");
	if (!ret)
		ret = qcow2_sync(d);
	if (ret)
		return ret;
	q->snap_off = off;
	q->snap_bytes = len;
	for (uint64_t c = 0; old_len && c < (old_len + q->cs - 1) >> q->cluster_bits; c++) {
		ret = qcow2_free_later(d, old + (c << q->cluster_bits));
		if (ret)
			return ret;
	}
	return 0;
}

/* Calls `fn` on every data cluster, then the L2 table, of each L2 table the L1 table
 * `l1` reaches (tables read from the file: call after a flush); stops at the first
 * error it or `fn` returns. */
static int tree_walk(struct disk *d, const uint64_t *l1, uint32_t n,
		     int (*fn)(struct disk *d, uint64_t off, void *ctx), void *ctx)
{
	struct qcow2 *q = d->q;
	uint64_t *t = malloc(q->cs);
	int ret = 0;

	if (!t)
		return disk_fail(d, -ENOMEM, "out of memory");
	for (uint32_t i = 0; i < n && !ret; i++) {
		uint64_t l2 = l1[i] & QCOW2_OFF_MASK;

		if (!l2)
			continue;
		ret = qcow2_read_table(d, l2, t, q->l2_entries);
		for (uint64_t j = 0; j < q->l2_entries && !ret; j++) {
			uint64_t host = t[j] & QCOW2_OFF_MASK;

			if (t[j] & QCOW2_COMPRESSED)
				ret = disk_fail(d, -ENOTSUP, "%s: compressed cluster in a snapshot",
						d->path);
			else if (host)
				ret = fn(d, host, ctx);
		}
		if (!ret)
			ret = fn(d, l2, ctx);
	}
	free(t);
	return ret;
}

static int ref_one(struct disk *d, uint64_t off, void *ctx)
{
	return qcow2_ref_add(d, off, *(const int *)ctx);
}

/* Adds `delta` to every L2 table and cluster the L1 table `l1` reaches. */
static int tree_ref(struct disk *d, const uint64_t *l1, uint32_t n, int delta)
{
	return tree_walk(d, l1, n, ref_one, &delta);
}

static int room_for_one(struct disk *d, uint64_t off, void *ctx)
{
	uint64_t rc;
	int ret = qcow2_get_refcount(d, off >> d->q->cluster_bits, &rc);

	return ret ? ret : rc >= d->q->rc_max ? -EMLINK : 0;
}

/* Refuses (-EMLINK) before anything changes when one more reference on the tree of
 * `l1` would overflow a refcount (1-bit refcounts cannot count a snapshot at all). */
static int tree_can_ref(struct disk *d, const uint64_t *l1, uint32_t n)
{
	int ret = tree_walk(d, l1, n, room_for_one, NULL);

	if (ret == -EMLINK)
		return disk_fail(d, ret,
				 "%s: one more reference would overflow a %u-bit refcount (too "
				 "many snapshots for refcount_bits=%u)",
				 d->path, 1u << d->q->refcount_order, 1u << d->q->refcount_order);
	return ret;
}

int qcow2_fix_copied(struct disk *d)
{
	struct qcow2 *q = d->q;

	for (uint32_t i = 0; i < q->l1_size; i++) {
		uint64_t l2 = q->l1[i] & QCOW2_OFF_MASK, rc, want;
		struct qcow2_cblock *t;
		int ret;

		if (!l2)
			continue;
		ret = qcow2_get_refcount(d, l2 >> q->cluster_bits, &rc);
		if (ret)
			return ret;
		want = rc == 1 ? q->l1[i] | QCOW2_COPIED : q->l1[i] & ~QCOW2_COPIED;
		if (want != q->l1[i]) {
			q->l1[i] = want;
			q->l1_dirty = true;
		}
		ret = qcow2_l2_get(d, i, &t);
		if (ret)
			return ret;
		for (uint64_t j = 0; j < q->l2_entries; j++) {
			uint64_t e = qcow2_l2_entry(t, j), host = e & QCOW2_OFF_MASK;

			if (!host || (e & QCOW2_COMPRESSED))
				continue;
			ret = qcow2_get_refcount(d, host >> q->cluster_bits, &rc);
			if (ret)
				return ret;
			want = rc == 1 ? e | QCOW2_COPIED : e & ~QCOW2_COPIED;
			if (want != e)
				qcow2_l2_set(t, j, want);
		}
	}
	return 0;
}

static int snap_usable(struct disk *d)
{
	if (d->fmt != DISK_FMT_QCOW2)
		return disk_fail(d, -ENOTSUP, "%s: a raw image has no snapshots", d->path);
	if (d->ro)
		return disk_fail(d, -EROFS, "%s: read-only", d->path);
	return 0;
}

/* The snapshot `key` of a writable qcow2 image, found, with everything pending flushed
 * (revert and delete read tables from the file). Returns its index or -errno. */
static int snap_target(struct disk *d, const char *key)
{
	int idx, ret = snap_usable(d);

	if (ret)
		return ret;
	idx = disk_snapshot_find(d, key);
	if (idx < 0)
		return disk_fail(d, -ENOENT, "%s: no snapshot %s", d->path, key);
	ret = qcow2_flush(d);
	return ret ? ret : idx;
}

/* A snapshot's L1 table, padded with zeros to the active table's size. */
static int snap_l1(struct disk *d, const struct disk_snapshot *s, uint64_t **out)
{
	struct qcow2 *q = d->q;
	uint64_t *l1;
	int ret;

	if (s->l1_size > q->l1_size)
		return disk_fail(d, -ENOTSUP,
				 "%s: snapshot %s has a larger L1 table (%u entries) than the "
				 "image (%u): resized disks are not supported",
				 d->path, s->id, s->l1_size, q->l1_size);
	l1 = calloc(q->l1_size ? q->l1_size : 1, 8);
	if (!l1)
		return disk_fail(d, -ENOMEM, "out of memory");
	if (s->l1_size) {
		ret = qcow2_read_table(d, s->l1_offset, l1, s->l1_size);
		if (ret) {
			free(l1);
			return ret;
		}
	}
	for (uint32_t i = 0; i < s->l1_size; i++) {
		uint64_t off = l1[i] & QCOW2_OFF_MASK;

		if ((l1[i] & QCOW2_L1_RESERVED) ||
		    (off && qcow2_check_table_off(d, off, q->cs, "L2 table"))) {
			free(l1);
			return disk_fail(d, -EIO, "%s: snapshot %s's L1 entry %u is invalid",
					 d->path, s->id, i);
		}
	}
	*out = l1;
	return 0;
}

int disk_snapshot_create(struct disk *d, const char *name)
{
	struct qcow2 *q;
	struct disk_snapshot s = {0}, *grown;
	uint64_t id = 0, l1_bytes, toff, tlen, *be = NULL;
	struct timespec now;
	int ret = snap_usable(d);

	if (ret)
		return ret;
	q = d->q;
	if (!name[0] || strlen(name) > DISK_SNAP_NAME_MAX)
		return disk_fail(d, -EINVAL, "snapshot name empty or longer than %d",
				 DISK_SNAP_NAME_MAX);
	for (uint32_t i = 0; i < q->nb_snaps; i++) {
		uint64_t v = strtoull(q->snaps[i].id, NULL, 10);

		if (!strcmp(q->snaps[i].name, name))
			return disk_fail(d, -EEXIST, "%s: a snapshot named %s exists", d->path,
					 name);
		if (v > id)
			id = v;
	}
	if (q->nb_snaps >= DISK_SNAP_MAX)
		return disk_fail(d, -ENOSPC, "%s: %d snapshots already", d->path, DISK_SNAP_MAX);
	ret = qcow2_flush(d);
	if (!ret)
		ret = tree_can_ref(d, q->l1, q->l1_size);
	if (ret)
		return ret;
	snprintf(s.id, sizeof(s.id), "%llu", (unsigned long long)id + 1);
	snprintf(s.name, sizeof(s.name), "%s", name);
	clock_gettime(CLOCK_REALTIME, &now);
	s.date_sec = (uint64_t)now.tv_sec;
	s.date_nsec = (uint64_t)now.tv_nsec;
	s.disk_size = d->size;
	s.l1_size = q->l1_size;

	/* 1. The L1 copy, in new clusters. */
	l1_bytes = (uint64_t)q->l1_size * 8;
	if (l1_bytes) {
		be = malloc(l1_bytes);
		if (!be)
			return disk_fail(d, -ENOMEM, "out of memory");
		for (uint32_t i = 0; i < q->l1_size; i++)
			be[i] = htobe64(q->l1[i] & ~QCOW2_COPIED);
		ret = qcow2_alloc(d, (l1_bytes + q->cs - 1) >> q->cluster_bits, &s.l1_offset);
		if (!ret)
			ret = qcow2_pwrite(d, be, l1_bytes, s.l1_offset, "the snapshot's L1 table");
		free(be);
		if (ret)
			return ret;
	}
	/* 2. One more reference on everything the active table reaches; the active
	 * entries lose COPIED where that made them shared. */
	ret = tree_ref(d, q->l1, q->l1_size, +1);
	if (!ret)
		ret = qcow2_fix_copied(d);
	/* 3. The new table; then all of the above durable with one barrier, before the
	 * header names the table (4). Nothing in that batch adds a reference a crash
	 * could expose: the L1 copy and the table are unnamed until the header, the
	 * refcounts only grow, and the COPIED flags cleared beside them belong to the
	 * same step (whichever of the two lands first, what check sees is a leak or a
	 * flag on a cluster with one real reference: docs/disk.md). */
	if (!ret)
		ret = snap_write_table(d, &s, -1, &toff, &tlen);
	if (!ret)
		ret = qcow2_flush_batch(d);
	if (ret)
		return ret;
	grown = realloc(q->snaps, (q->nb_snaps + 1) * sizeof(*grown));
	if (!grown)
		return disk_fail(d, -ENOMEM, "out of memory");
	q->snaps = grown;
	/* 4. The header, durable. The old table's clusters are freed by the next flush
	 * (a crash before it leaks them). */
	ret = snap_switch_table(d, q->nb_snaps + 1, toff, tlen);
	if (ret)
		return ret;
	q->snaps[q->nb_snaps++] = s;
	return 0;
}

int disk_snapshot_revert(struct disk *d, const char *key)
{
	struct qcow2 *q = d->q;
	uint64_t *l1 = NULL, *old;
	int idx = snap_target(d, key), ret;

	if (idx < 0)
		return idx;
	if (q->snaps[idx].disk_size != d->size)
		return disk_fail(d, -ENOTSUP,
				 "%s: snapshot %s is of a %llu-byte disk, the image is %llu: "
				 "resized disks are not supported",
				 d->path, key, (unsigned long long)q->snaps[idx].disk_size,
				 (unsigned long long)d->size);
	ret = snap_l1(d, &q->snaps[idx], &l1);
	if (!ret && (ret = tree_can_ref(d, l1, q->l1_size)))
		free(l1);
	if (ret)
		return ret;
	/* The snapshot's tree gains the active table's reference first (a crash now
	 * leaks), then the active table switches, then the old tree loses its own. */
	ret = tree_ref(d, l1, q->l1_size, +1);
	if (!ret)
		ret = qcow2_flush_batch(d);
	if (ret) {
		free(l1);
		return ret;
	}
	qcow2_drop_l2_cache(d);
	old = q->l1;
	q->l1 = l1;
	q->l1_dirty = true;
	ret = qcow2_flush(d);
	/* The old tree's drops and the COPIED flags they set go in one batch: nothing
	 * references the old tree any more, so either landing first is harmless. */
	if (!ret)
		ret = tree_ref(d, old, q->l1_size, -1);
	free(old);
	if (!ret)
		ret = qcow2_fix_copied(d);
	if (!ret)
		ret = qcow2_flush_batch(d);
	return ret;
}

int disk_snapshot_delete(struct disk *d, const char *key)
{
	struct qcow2 *q = d->q;
	struct disk_snapshot s;
	uint64_t *l1 = NULL, toff, tlen;
	int idx = snap_target(d, key), ret;

	if (idx < 0)
		return idx;
	s = q->snaps[idx];
	ret = snap_l1(d, &s, &l1);
	if (!ret)
		ret = snap_write_table(d, NULL, idx, &toff, &tlen);
	if (!ret)
		ret = qcow2_flush_batch(d);
	if (!ret)
		ret = snap_switch_table(d, q->nb_snaps - 1, toff, tlen);
	if (ret) {
		free(l1);
		return ret;
	}
	memmove(&q->snaps[idx], &q->snaps[idx + 1], (q->nb_snaps - (uint32_t)idx - 1) * sizeof(s));
	q->nb_snaps--;
	/* Nothing names the snapshot now: its tree, its L1 copy and the old table lose
	 * their references, and COPIED comes back where that left one; all in one
	 * batch (drops of references that are gone: a crash leaks at most). */
	ret = tree_ref(d, l1, s.l1_size, -1);
	free(l1);
	for (uint64_t c = 0; !ret && c < ((uint64_t)s.l1_size * 8 + q->cs - 1) >> q->cluster_bits;
	     c++)
		ret = qcow2_ref_add(d, s.l1_offset + (c << q->cluster_bits), -1);
	if (!ret)
		ret = qcow2_apply_frees(d);
	if (!ret)
		ret = qcow2_fix_copied(d);
	if (!ret)
		ret = qcow2_flush_batch(d);
	return ret;
}
