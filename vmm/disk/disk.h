/* Disk images: raw files and qcow2 (version 3), with backing chains, internal
 * snapshots, a consistency check and creation. libdisk.a; it uses only libcommon.
 *
 * An image is untrusted input: every offset, size and table length in a qcow2 header
 * is checked against the file before anything is allocated, and features this module
 * does not implement (compression, encryption, external data files, extended L2
 * entries, unknown incompatible bits) are refused at open with a message naming them.
 *
 * Crash consistency (docs/disk.md): guest data goes to the file at once; metadata
 * (refcounts, L2 and L1 tables) is kept in memory and written by disk_flush in the
 * order refcounts, L2 tables, L1 table, with fdatasync between (each skipped when
 * nothing was written since the last), and clusters are freed only after the
 * references to them are durable. A crash at any point leaves an image that `qemu-img
 * check` finds consistent (leaked clusters at most; inside a snapshot call, also a
 * COPIED flag on a cluster referenced once, as with QEMU: docs/disk.md).
 *
 * A struct disk is used by one thread at a time.
 */
#ifndef THAW_DISK_H
#define THAW_DISK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* Longest backing chain followed (the image itself not counted): deeper is refused. */
#define DISK_MAX_CHAIN 16
/* Longest backing file name a header may hold (qemu's limit as well). */
#define DISK_BACKING_MAX 1023
/* Longest snapshot name or id string accepted or written. */
#define DISK_SNAP_NAME_MAX 255
/* Most snapshots in one image (the spec's limit). */
#define DISK_SNAP_MAX 65536

enum disk_format { DISK_FMT_RAW, DISK_FMT_QCOW2 };

struct disk;

/* How a backing file named inside an image is opened. `path` is the name from the
 * header, already resolved against the directory of the image that names it; return
 * an fd open read-only (O_CLOEXEC), or -errno. A NULL opener uses open(2). */
struct disk_opener {
	int (*open)(void *ctx, const char *path);
	void *ctx;
};

/* The format of the file open at `fd`, by its magic: qcow2 when it starts with
 * "QFI\xfb", raw otherwise. Returns 0 or -errno from pread. */
int disk_probe(int fd, enum disk_format *fmt);

/* Opens the image at `fd` (which it takes over, also on failure) named `path` (for
 * messages and to resolve a relative backing file name), probing its format, and its
 * backing chain read-only through `op`. A raw file's size is its length. Returns 0 with
 * *out set, or -errno with the cause in `err`: -ENOTSUP for a feature not implemented,
 * -EINVAL for a malformed image, -ELOOP for a chain deeper than DISK_MAX_CHAIN. */
int disk_open_fd(int fd, const char *path, bool read_only, const struct disk_opener *op,
		 struct disk **out, char *err, size_t errlen);
/* disk_open_fd on open(path) with the default opener. */
int disk_open(const char *path, bool read_only, struct disk **out, char *err, size_t errlen);
/* Flushes a writable image (errors logged) and frees it with its chain. NULL is fine. */
void disk_close(struct disk *d);

enum disk_format disk_format(const struct disk *d);
/* Virtual size in bytes (a raw file: its length when opened). */
uint64_t disk_size(const struct disk *d);
const char *disk_path(const struct disk *d);
bool disk_read_only(const struct disk *d);
/* The image's own file descriptor (owned by the disk). */
int disk_fd(const struct disk *d);
/* The next image of the chain, or NULL. */
struct disk *disk_backing(const struct disk *d);
/* What the last failing call on `d` said (empty before any failure). */
const char *disk_error(const struct disk *d);

/* Reads or writes `len` bytes at virtual offset `off` (inside disk_size). Returns 0
 * or -errno (disk_error says why): -EIO for an I/O error or a corrupt table met on
 * the way, -EROFS for a write to a read-only image, -ENOSPC when the image cannot grow
 * its tables further. Writes are durable only after disk_flush. */
int disk_read(struct disk *d, uint64_t off, void *buf, size_t len);
int disk_write(struct disk *d, uint64_t off, const void *buf, size_t len);
/* The same over an iovec array of `len` bytes in total. */
int disk_readv(struct disk *d, uint64_t off, const struct iovec *iov, unsigned niov, size_t len);
int disk_writev(struct disk *d, uint64_t off, const struct iovec *iov, unsigned niov, size_t len);
/* Makes every write that returned before it durable, data before metadata. Clusters
 * that copy-on-write replaced are freed here, and only here may be handed out again:
 * I/O a caller does itself on extents from disk_map must be complete before it calls
 * disk_flush (or a snapshot call). */
int disk_flush(struct disk *d);

/* How the range at `off` is served, for a caller that does its own data I/O (virtio-blk
 * over io_uring). DATA: `len` bytes live in this image's file at `host_off` and may be
 * read (or, when asked for a write, overwritten in place: no allocation, COW or
 * metadata change is needed); ZERO: reads as zeros; SLOW: go through disk_read or
 * disk_write. `len` is at least one byte and does not cross a cluster. */
enum disk_ext_kind { DISK_EXT_DATA, DISK_EXT_ZERO, DISK_EXT_SLOW };
struct disk_extent {
	enum disk_ext_kind kind;
	uint64_t host_off;
	uint64_t len;
};
int disk_map(struct disk *d, uint64_t off, uint64_t len, bool for_write, struct disk_extent *e);

/* Whether the range at `off` is defined by this image (data or zero clusters: *here
 * true) or falls through to its backing chain (false); *len is how far that holds
 * (at most `len`). For a raw image always true. Returns 0 or -errno. */
int disk_block_status(struct disk *d, uint64_t off, uint64_t len, bool *here, uint64_t *run);

/* ------------------------------------------------------------------------- qcow2 */

struct disk_info {
	enum disk_format format;
	uint64_t size;	       /* virtual bytes */
	uint64_t file_size;    /* bytes of the file */
	uint32_t cluster_size; /* qcow2 only, from here on */
	uint32_t refcount_bits;
	uint32_t nb_snapshots;
	char backing[DISK_BACKING_MAX + 1]; /* as named in the header, "" when none */
	char backing_fmt[16];		    /* "raw", "qcow2" or "" */
	bool lazy_refcounts;
};
void disk_get_info(const struct disk *d, struct disk_info *info);

struct disk_create_opts {
	uint64_t size;	       /* virtual bytes; 0 with a backing file: the backing's size */
	unsigned cluster_bits; /* 0: 16 (64 KiB) */
	const char *backing;   /* NULL: none; stored as given (relative to the new image) */
	enum disk_format backing_fmt;
	/* Skip the fdatasync at the end: for an overlay made at restore, whose first
	 * disk_flush makes the header durable with the rest (the file is new). */
	bool no_sync;
};
/* Creates a new qcow2 v3 image at `path` (O_EXCL: an existing file is refused). Its
 * cost does not depend on the size: a header, one refcount table and block, and an L1
 * table left as a hole. A backing file is opened (as the image will) to check it and
 * learn the size. Returns 0 or -errno with `err` filled. */
int disk_create_qcow2(const char *path, const struct disk_create_opts *o, char *err, size_t errlen);

/* An identity of a qcow2 image's contents as its metadata describes them: a hash of
 * its size, cluster size and L1 table (where it is, and where each L2 table is). Anything that
 * allocates a cluster for new data, or moves the tables, changes it; rewriting data inside clusters
 * already allocated does not (a VM checkpoint's base image is never written again, which is what it
 * guards). 0 for a raw file (no identity). Call after disk_flush for the file's own state. */
uint64_t disk_identity(const struct disk *d);

/* A new qcow2 overlay at `path` over `backing` (raw or qcow2, its format probed; a
 * relative name is taken relative to the overlay's directory and stored as given), of
 * the backing file's size. `no_sync` as in disk_create_opts. 0 or -errno with `err`. */
int disk_create_overlay(const char *path, const char *backing, bool no_sync, char *err,
			size_t errlen);

struct disk_snapshot {
	char id[DISK_SNAP_NAME_MAX + 1];
	char name[DISK_SNAP_NAME_MAX + 1];
	uint64_t date_sec, date_nsec, vm_clock_nsec;
	uint64_t vm_state_size, disk_size;
	uint64_t l1_offset;
	uint32_t l1_size;
};
/* The snapshot table (a raw image has none). Index from 0 to count - 1. */
unsigned disk_snapshot_count(const struct disk *d);
const struct disk_snapshot *disk_snapshot_get(const struct disk *d, unsigned i);
/* Index of the snapshot whose id, else whose name, is `key`; -ENOENT when none. */
int disk_snapshot_find(const struct disk *d, const char *key);
/* Internal snapshots of a writable qcow2 image. Create copies the L1 table and adds
 * one reference to every table and cluster it reaches; revert makes the snapshot's L1
 * table the active one (no data cluster is copied) and drops the old one's
 * references; delete drops the snapshot's references, freeing what nothing else uses.
 * Each is flushed when it returns. -EEXIST: a snapshot of that name exists (create);
 * -ENOENT: no such snapshot; -EMLINK: a refcount would overflow. */
int disk_snapshot_create(struct disk *d, const char *name);
int disk_snapshot_revert(struct disk *d, const char *key);
int disk_snapshot_delete(struct disk *d, const char *key);

struct disk_check_result {
	uint64_t corruptions; /* references without refcount, bad offsets, flag errors */
	uint64_t leaks;	      /* clusters with a refcount nothing references */
	uint64_t allocated;   /* clusters in use */
	uint64_t image_end;   /* end of the last cluster in use, bytes */
};
/* Recounts every reference (header, tables, snapshots, data) and compares with the
 * stored refcounts, as `qemu-img check` does. Each problem is passed to `report`
 * (may be NULL). Returns 0 (the result says whether the image is clean) or -errno
 * when the check itself could not run. Pending metadata is flushed first. */
int disk_check(struct disk *d, struct disk_check_result *r,
	       void (*report)(void *ctx, const char *msg), void *ctx);

#endif
