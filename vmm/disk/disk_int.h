/* Private to vmm/disk/: the disk object and the qcow2 state shared by qcow2*.c. */
#ifndef THAW_DISK_INT_H
#define THAW_DISK_INT_H

#include "vmm/disk/disk.h"

#include <endian.h>
#include <stdarg.h>

/* ------------------------------------------------------------------- qcow2 layout */
#define QCOW2_MAGIC	      0x514649fbu /* "QFI\xfb" */
#define QCOW2_HDR_V3_LEN      104u
#define QCOW2_OFF_MASK	      0x00fffffffffffe00ull /* bits 9-55: host offsets */
#define QCOW2_COPIED	      (1ull << 63)	    /* refcount exactly 1 (active tables) */
#define QCOW2_COMPRESSED      (1ull << 62)
#define QCOW2_ZERO	      1ull		    /* L2: reads as zeros */
#define QCOW2_L1_RESERVED     0x7f000000000001ffull /* bits 1-8, 56-62 */
#define QCOW2_L2_RESERVED     0x3f000000000001feull /* bits 1-8, 56-61 */
#define QCOW2_RT_RESERVED     0x1ffull
#define QCOW2_MAX_L1_BYTES    (32u << 20) /* qemu's limits, so both read each other's */
#define QCOW2_MAX_RT_BYTES    (8u << 20)
#define QCOW2_MAX_SNAP_BYTES  (64u << 20)
#define QCOW2_EXT_END	      0u
#define QCOW2_EXT_BACKING_FMT 0xe2792acau
#define QCOW2_EXT_FEATURES    0x6803f857u
#define QCOW2_EXT_BITMAPS     0x23852875u
#define QCOW2_EXT_CRYPTO      0x0537be77u
#define QCOW2_EXT_DATA_FILE   0x44415441u

/* Incompatible feature bits. */
#define QCOW2_INCOMPAT_DIRTY	 (1ull << 0)
#define QCOW2_INCOMPAT_CORRUPT	 (1ull << 1)
#define QCOW2_INCOMPAT_DATA_FILE (1ull << 2)
#define QCOW2_INCOMPAT_COMPRESS	 (1ull << 3)
#define QCOW2_INCOMPAT_EXTL2	 (1ull << 4)
#define QCOW2_COMPAT_LAZY	 (1ull << 0)

/* A cached metadata cluster (an L2 table or a refcount block). */
struct qcow2_cblock {
	uint64_t off; /* where it lives in the file */
	bool dirty;
	uint8_t data[]; /* cluster_size bytes, big-endian as on disk */
};

struct qcow2 {
	unsigned cluster_bits;
	uint64_t cs; /* cluster size */
	uint64_t l2_entries;
	uint64_t incompat, compat, autoclear;
	uint32_t header_len;
	unsigned refcount_order;
	uint64_t rb_entries; /* refcounts per block */
	uint64_t rc_max;

	uint32_t l1_size;
	uint64_t l1_off;
	uint64_t *l1; /* host order */
	bool l1_dirty;
	struct qcow2_cblock **l2c; /* by L1 index */

	uint64_t rt_off;
	uint32_t rt_clusters;
	uint64_t rt_entries;
	uint64_t *rt; /* host order */
	bool rt_dirty;
	struct qcow2_cblock **rbc; /* by refcount table index */

	uint64_t cached_bytes;
	uint64_t file_size; /* what the file holds */
	uint64_t alloc_end; /* end of the highest cluster allocated (>= file_size possible) */
	uint64_t free_hint; /* cluster index where the free search starts */

	uint64_t *pending; /* clusters to decrement once their references are durable */
	size_t npending, cap_pending;

	char backing[DISK_BACKING_MAX + 1];
	char backing_fmt[16];

	struct disk_snapshot *snaps;
	uint32_t nb_snaps;
	uint64_t snap_off;
	uint64_t snap_bytes; /* size of the table in the file */

	uint8_t *scratch; /* one cluster, for COW */
	/* Something was written to the file (or handed out for writing by qcow2_map)
	 * since the last fdatasync: qcow2_sync skips a sync that would make nothing
	 * durable. True after open (the file may be new, made without a sync). */
	bool unsynced;
	/* qcow2_map handed out an extent for writing since the last qcow2_flush: that
	 * flush syncs, whatever `unsynced` says (the caller wrote it, not us). */
	bool mapped_for_write;
};

struct disk {
	enum disk_format fmt;
	int fd;
	bool ro;
	uint64_t size;
	char *path;
	struct disk *backing;
	struct qcow2 *q;
	char err[256];
};

/* Records a cause in d->err and returns `ret`. */
int disk_fail(struct disk *d, int ret, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* pread/pwrite of exactly `len` bytes (short transfers become -EIO). */
int disk_pread_full(int fd, void *buf, size_t len, uint64_t off);
int disk_pwrite_full(int fd, const void *buf, size_t len, uint64_t off);
/* Reads d's file at `off`; past its end, zeros. Failures recorded in d. */
int disk_pread_zero(struct disk *d, uint64_t off, void *buf, size_t len);

/* Big-endian fields of on-disk structures. */
static inline uint16_t disk_get16(const uint8_t *p)
{
	uint16_t v;
	__builtin_memcpy(&v, p, 2);
	return be16toh(v);
}

static inline uint32_t disk_get32(const uint8_t *p)
{
	uint32_t v;
	__builtin_memcpy(&v, p, 4);
	return be32toh(v);
}

static inline uint64_t disk_get64(const uint8_t *p)
{
	uint64_t v;
	__builtin_memcpy(&v, p, 8);
	return be64toh(v);
}

static inline void disk_put16(uint8_t *p, uint16_t v)
{
	v = htobe16(v);
	__builtin_memcpy(p, &v, 2);
}

static inline void disk_put32(uint8_t *p, uint32_t v)
{
	v = htobe32(v);
	__builtin_memcpy(p, &v, 4);
}

static inline void disk_put64(uint8_t *p, uint64_t v)
{
	v = htobe64(v);
	__builtin_memcpy(p, &v, 8);
}

/* qcow2.c */
int qcow2_open(struct disk *d, char *err, size_t errlen);
void qcow2_free(struct qcow2 *q);
int qcow2_read(struct disk *d, uint64_t off, uint8_t *buf, size_t len);
int qcow2_write(struct disk *d, uint64_t off, const uint8_t *buf, size_t len);
int qcow2_flush(struct disk *d);
/* qcow2_flush, leaving the frees pending unless `apply_frees`. */
int qcow2_flush_meta(struct disk *d, bool apply_frees);
/* Writes every dirty refcount block and table, then syncs once (twice when the
 * refcount table itself changed: a new block is durable before the table names it).
 * No barrier between refcounts and references: only for changes that add no
 * reference a crash could expose before its refcount (the snapshot calls, whose new
 * structures the header names afterwards, and reference drops). Pending frees stay
 * pending. */
int qcow2_flush_batch(struct disk *d);
/* Decrements (in memory) the clusters qcow2_free_later queued: call only once the
 * drops of their references are durable and no caller I/O is in flight on them. */
int qcow2_apply_frees(struct disk *d);
/* pwrite of the image's file, remembered for qcow2_sync; failures recorded in d. */
int qcow2_pwrite(struct disk *d, const void *buf, size_t len, uint64_t off, const char *what);
/* fdatasync of the image's file, skipped when nothing was written since the last. */
int qcow2_sync(struct disk *d);
int qcow2_map(struct disk *d, uint64_t off, uint64_t len, bool for_write, struct disk_extent *e);
int qcow2_block_status(struct disk *d, uint64_t off, uint64_t len, bool *here, uint64_t *run);

/* Refcounts and tables, for qcow2_snap.c and qcow2_check.c. */
int qcow2_get_refcount(struct disk *d, uint64_t cluster, uint64_t *rc);
int qcow2_set_refcount(struct disk *d, uint64_t cluster, uint64_t rc);
/* Adds `delta` (+1 or -1) to the refcount of the cluster at `off`. */
int qcow2_ref_add(struct disk *d, uint64_t off, int delta);
int qcow2_alloc(struct disk *d, uint64_t n, uint64_t *off);
int qcow2_free_later(struct disk *d, uint64_t off);
/* The L2 table at L1 index `i` (NULL when none); loaded into the cache. */
int qcow2_l2_get(struct disk *d, uint64_t i, struct qcow2_cblock **out);
/* Reads an L2 table that is not the active one's into `buf` (one cluster, host order). */
int qcow2_read_table(struct disk *d, uint64_t off, uint64_t *buf, uint64_t n);
int qcow2_check_table_off(struct disk *d, uint64_t off, uint64_t bytes, const char *what);
void qcow2_drop_l2_cache(struct disk *d);

static inline uint64_t qcow2_l2_entry(const struct qcow2_cblock *t, uint64_t i)
{
	return disk_get64(t->data + i * 8);
}

static inline void qcow2_l2_set(struct qcow2_cblock *t, uint64_t i, uint64_t e)
{
	disk_put64(t->data + i * 8, e);
	t->dirty = true;
}

/* qcow2_snap.c */
int qcow2_snap_load(struct disk *d, uint32_t nb, uint64_t off, char *err, size_t errlen);
/* Sets COPIED on every active L1/L2 entry whose cluster has refcount 1, clears it
 * elsewhere. */
int qcow2_fix_copied(struct disk *d);

/* qcow2_check.c: nothing shared. */

#endif
