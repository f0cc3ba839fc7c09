/* virtio-blk backed by a raw host file or a qcow2 image, with its I/O through io_uring.
 *
 * A request's data buffers are guest memory: the kernel reads and writes them
 * directly (readv/writev with iovecs from the checked chain), and the completion,
 * signalled on the ring's eventfd, is handled on the main loop. At most one request
 * per queue entry is in flight, so the ring never overflows.
 *
 * The backend's format is found by its magic when it is opened. A raw file is read and
 * written at the guest's offsets. A qcow2 image (vmm/disk/disk.h) goes through the
 * ring too when the request falls on clusters it already holds (one extent of its own
 * file: the same readv/writev at another offset); anything else (a first write that
 * allocates, copy-on-write, backing files, zero clusters) and every flush go through
 * vmm/disk synchronously, on the main thread: metadata updates are ordered there, and
 * a guest flush returns once data and metadata are durable. A notification that
 * reaches a qcow2 drive on a vCPU thread (no ioeventfd) is handed to the main loop,
 * whose seccomp filter allows the file calls that needs.
 */
#include "vmm/virtio/virtio_int.h"

#include "common/uring.h"
#include "vmm/disk/disk.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_ids.h>
#include <liburing.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#define BLK_QUEUE_MAX 128
/* Segments of data per request: the queue size less the header and status. */
#define BLK_SEG_MAX (BLK_QUEUE_MAX - 2)
#define SECTOR	    512ull
/* The backend's index in the ring's registered files: entries name it, not b->fd. */
#define BLK_FILE 0

struct blk_req {
	uint16_t head;
	uint8_t *status;  /* the status byte, in guest memory */
	uint32_t written; /* bytes the device writes into the chain on success */
	uint32_t expect;  /* bytes the I/O must transfer */
	unsigned niov;
	struct iovec iov[BLK_QUEUE_MAX];
	struct blk_req *next_free;
};

struct blk {
	char path[VIRTIO_PATH_MAX];
	bool ro;
	int fd;		   /* -1: backend gone, every request fails; disk's own when qcow2 */
	struct disk *disk; /* a qcow2 image (owns fd), NULL for a raw file */
	bool probed_raw;   /* raw by its magic: a guest may not write a qcow2 magic there */
	uint64_t capacity; /* sectors */
	pthread_t main;	   /* the thread of the main loop (qcow2 work happens there) */
	struct io_uring ring;
	bool ring_ok;
	int ev_fd; /* the ring's completion eventfd */
	bool ev_watched;
	unsigned inflight;
	bool starved; /* stopped popping for lack of a free request */
	struct blk_req *free;
	struct blk_req reqs[BLK_QUEUE_MAX];
	struct virtq_elem e; /* scratch for virtio_pop */
	struct virtio_blk_config cfg;
	struct virtio_rl rl;
	uint8_t last_status; /* of the request finish() completed last */
	/* A new overlay made over a base at creation: the base's disk_identity, which is
	 * the overlay's contents until the guest writes (what a restore compares). */
	uint64_t base_identity;
	char internal[64]; /* an internal checkpoint this VM snapshot records, "" none */
};

/* Firecracker's block metrics (the ones thaw counts), in d->cnt. */
enum {
	BLK_READ_COUNT,
	BLK_WRITE_COUNT,
	BLK_READ_BYTES,
	BLK_WRITE_BYTES,
	BLK_FLUSH_COUNT,
	BLK_INVALID_REQS,
	BLK_EXECUTE_FAILS,
	BLK_QUEUE_EVENTS,
	BLK_UPDATE_COUNT,
	BLK_UPDATE_FAILS,
	BLK_THROTTLED,
};

static const char *const blk_counters[] = {"read_count",
					   "write_count",
					   "read_bytes",
					   "write_bytes",
					   "flush_count",
					   "invalid_reqs_count",
					   "execute_fails",
					   "queue_event_count",
					   "update_count",
					   "update_fails",
					   "rate_limiter_throttled_events",
					   NULL};

static void finish(struct virtio_dev *d, struct blk_req *r, uint8_t status, bool push)
{
	struct blk *b = d->priv;

	b->last_status = status;
	if (push) {
		*r->status = status;
		virtq_push(&d->vq[0], r->head, status == VIRTIO_BLK_S_OK ? r->written : 1);
	}
	r->next_free = b->free;
	b->free = r;
}

/* Handles every completion the ring holds; `push` false drops them (device reset). */
static unsigned reap(struct virtio_dev *d, bool push)
{
	struct blk *b = d->priv;
	struct io_uring_cqe *cqe;
	unsigned n = 0;

	while (io_uring_peek_cqe(&b->ring, &cqe) == 0) {
		struct blk_req *r = io_uring_cqe_get_data(cqe);
		int res = cqe->res;

		io_uring_cqe_seen(&b->ring, cqe);
		b->inflight--;
		n++;
		if (res < 0 || (uint32_t)res != r->expect) {
			log_ratelimited(LOG_WARN, "virtio %s: I/O of %u bytes: %s", d->id,
					r->expect, res < 0 ? strerror(-res) : "short transfer");
			virtio_count_add(d, BLK_EXECUTE_FAILS, 1);
			finish(d, r, VIRTIO_BLK_S_IOERR, push);
		} else {
			finish(d, r, VIRTIO_BLK_S_OK, push);
		}
	}
	return n;
}

static void blk_notify(struct virtio_dev *d, unsigned q);
static int drain(struct virtio_dev *d, bool push);

static void on_complete(void *opaque, uint32_t events)
{
	struct virtio_dev *d = opaque;
	struct blk *b = d->priv;
	uint64_t cnt;

	__atomic_add_fetch(&d->vm->device_events, 1, __ATOMIC_RELAXED);

	if (read(b->ev_fd, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN)
		log_ratelimited(LOG_WARN, "virtio %s: eventfd read: %s", d->id, strerror(errno));
	pthread_mutex_lock(&d->lock);
	if (reap(d, true))
		virtio_notify(d, 0);
	if (b->starved && b->free) {
		b->starved = false;
		blk_notify(d, 0);
	}
	pthread_mutex_unlock(&d->lock);
}

static size_t iov_total(const struct iovec *iov, unsigned n)
{
	size_t t = 0;

	for (unsigned i = 0; i < n; i++)
		t += iov[i].iov_len;
	return t;
}

static struct io_uring_sqe *get_sqe(struct blk *b)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&b->ring);

	if (!sqe) {
		io_uring_submit(&b->ring);
		sqe = io_uring_get_sqe(&b->ring);
	}
	return sqe;
}

/* A read or write of `len` bytes at guest offset *off, for a qcow2 image or a raw
 * file whose format was probed. Returns 1 when the ring should do it (*off then the
 * offset in the image's file), 0 when it was completed here. */
static int route(struct virtio_dev *d, struct blk_req *r, bool write, uint64_t *off, uint64_t len)
{
	static const uint8_t magic[4] = {'Q', 'F', 'I', 0xfb};
	struct blk *b = d->priv;
	struct disk_extent e;
	uint8_t head[4];
	int ret;

	if (!b->disk) {
		/* A raw drive found raw by its magic would be opened as qcow2 next time, and
		 * follow a backing file the guest named: refuse the header (as QEMU does for
		 * probed raw images). */
		if (write && *off == 0 && len >= 4 &&
		    iov_to_buf(r->iov, r->niov, 0, head, 4) == 4 && !memcmp(head, magic, 4)) {
			log_ratelimited(LOG_WARN,
					"virtio %s: write of a qcow2 header to sector 0 of a raw "
					"drive refused",
					d->id);
			finish(d, r, VIRTIO_BLK_S_IOERR, true);
			return 0;
		}
		return 1;
	}
	ret = disk_map(b->disk, *off, len, write, &e);
	if (!ret && e.len == len && e.kind == DISK_EXT_DATA) {
		*off = e.host_off;
		return 1;
	}
	if (!ret && e.len == len && e.kind == DISK_EXT_ZERO && !write) {
		for (unsigned i = 0; i < r->niov; i++)
			memset(r->iov[i].iov_base, 0, r->iov[i].iov_len);
	} else if (!ret) {
		ret = write ? disk_writev(b->disk, *off, r->iov, r->niov, len)
			    : disk_readv(b->disk, *off, r->iov, r->niov, len);
	}
	if (ret) {
		log_ratelimited(LOG_WARN, "virtio %s: %s", d->id, disk_error(b->disk));
		r->written = 1;
	}
	finish(d, r, ret ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK, true);
	return 0;
}

/* Parses one chain into a request. Returns 1 when submitted to the ring, 0 when
 * completed here, -EINVAL when the chain is malformed (device needs reset). */
static int start(struct virtio_dev *d, struct virtq_elem *e, struct blk_req *r)
{
	struct blk *b = d->priv;
	struct virtio_blk_outhdr hdr;
	struct io_uring_sqe *sqe;
	uint64_t len, off;
	unsigned last;
	int ret;

	if (e->out_len < sizeof(hdr) || e->in_len < 1) {
		virtio_set_needs_reset(d, "block request without header or status byte");
		return -EINVAL;
	}
	iov_to_buf(e->iov, e->nr_out, 0, &hdr, sizeof(hdr));
	/* Every request is an operation; reads and writes also move their data. */
	len = hdr.type == VIRTIO_BLK_T_IN    ? e->in_len - 1
	      : hdr.type == VIRTIO_BLK_T_OUT ? e->out_len - sizeof(hdr)
					     : 0;
	virtio_rl_charge(&b->rl, len);
	if (hdr.type == VIRTIO_BLK_T_IN || hdr.type == VIRTIO_BLK_T_OUT) {
		bool in = hdr.type == VIRTIO_BLK_T_IN;

		virtio_count_add(d, in ? BLK_READ_COUNT : BLK_WRITE_COUNT, 1);
		virtio_count_add(d, in ? BLK_READ_BYTES : BLK_WRITE_BYTES, len);
	} else if (hdr.type == VIRTIO_BLK_T_FLUSH) {
		virtio_count_add(d, BLK_FLUSH_COUNT, 1);
	}
	/* The status byte is the last byte of the last non-empty writable buffer. */
	for (last = e->nr_out + e->nr_in; last > e->nr_out && e->iov[last - 1].iov_len == 0;)
		last--;
	r->head = e->head;
	r->status = (uint8_t *)e->iov[last - 1].iov_base + e->iov[last - 1].iov_len - 1;
	r->written = 1;
	r->expect = 0;

	switch (hdr.type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT:
		len = hdr.type == VIRTIO_BLK_T_IN ? e->in_len - 1 : e->out_len - sizeof(hdr);
		if (len % SECTOR || hdr.sector > b->capacity ||
		    len / SECTOR > b->capacity - hdr.sector) {
			log_ratelimited(LOG_WARN,
					"virtio %s: request of %llu bytes at sector %llu outside "
					"the %llu-sector disk or not whole sectors",
					d->id, (unsigned long long)len,
					(unsigned long long)hdr.sector,
					(unsigned long long)b->capacity);
			finish(d, r, VIRTIO_BLK_S_IOERR, true);
			return 0;
		}
		if (hdr.type == VIRTIO_BLK_T_OUT && b->ro) {
			log_ratelimited(LOG_WARN, "virtio %s: write to a read-only drive refused",
					d->id);
			finish(d, r, VIRTIO_BLK_S_IOERR, true);
			return 0;
		}
		if (b->fd < 0) {
			finish(d, r, VIRTIO_BLK_S_IOERR, true);
			return 0;
		}
		if (len == 0) {
			finish(d, r, VIRTIO_BLK_S_OK, true);
			return 0;
		}
		off = hdr.sector * SECTOR;
		if (hdr.type == VIRTIO_BLK_T_IN) {
			r->niov =
			    iov_slice(e->iov + e->nr_out, e->nr_in, 0, len, r->iov, BLK_QUEUE_MAX);
			r->written = (uint32_t)len + 1;
		} else {
			r->niov =
			    iov_slice(e->iov, e->nr_out, sizeof(hdr), len, r->iov, BLK_QUEUE_MAX);
		}
		/* More pieces than r->iov holds (the driver ignored seg_max): fail the whole
		 * request now, before a partial write changes the disk under an error. */
		if (iov_total(r->iov, r->niov) != len) {
			log_ratelimited(LOG_WARN,
					"virtio %s: request in more than %u pieces (seg_max %u)",
					d->id, BLK_QUEUE_MAX, BLK_SEG_MAX);
			r->written = 1;
			finish(d, r, VIRTIO_BLK_S_IOERR, true);
			return 0;
		}
		r->expect = (uint32_t)len;
		if (b->disk || b->probed_raw) {
			ret = route(d, r, hdr.type == VIRTIO_BLK_T_OUT, &off, len);
			if (ret <= 0)
				return 0; /* completed here */
		}
		sqe = get_sqe(b);
		if (!sqe)
			break;
		if (hdr.type == VIRTIO_BLK_T_IN)
			io_uring_prep_readv(sqe, BLK_FILE, r->iov, r->niov, off);
		else
			io_uring_prep_writev(sqe, BLK_FILE, r->iov, r->niov, off);
		io_uring_sqe_set_flags(sqe, IOSQE_FIXED_FILE);
		io_uring_sqe_set_data(sqe, r);
		b->inflight++;
		return 1;
	case VIRTIO_BLK_T_FLUSH:
		if (b->ro || b->fd < 0) {
			/* Nothing of ours can be dirty on a read-only drive. */
			finish(d, r, b->fd < 0 ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK, true);
			return 0;
		}
		if (b->disk) {
			/* Data, then refcounts, L2 and L1 tables, each durable before the next
			 * (vmm/disk/qcow2.c). The ring's requests complete first: the flush
			 * frees clusters copy-on-write replaced, which one of them may still
			 * be reading. */
			ret = io_uring_submit(&b->ring); /* this batch's, before waiting */
			if (ret >= 0)
				ret = drain(d, true);
			if (!ret)
				ret = disk_flush(b->disk);
			if (ret)
				log_ratelimited(LOG_WARN, "virtio %s: flush: %s", d->id,
						disk_error(b->disk));
			finish(d, r, ret ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK, true);
			return 0;
		}
		sqe = get_sqe(b);
		if (!sqe)
			break;
		io_uring_prep_fsync(sqe, BLK_FILE, IORING_FSYNC_DATASYNC);
		io_uring_sqe_set_flags(sqe, IOSQE_FIXED_FILE);
		io_uring_sqe_set_data(sqe, r);
		b->inflight++;
		return 1;
	case VIRTIO_BLK_T_GET_ID: {
		char id[VIRTIO_BLK_ID_BYTES] = {0};
		size_t n = e->in_len - 1 < sizeof(id) ? e->in_len - 1 : sizeof(id);

		memcpy(id, d->id, strnlen(d->id, sizeof(id)));
		iov_from_buf(e->iov + e->nr_out, e->nr_in, 0, id, n);
		r->written = (uint32_t)n + 1;
		finish(d, r, VIRTIO_BLK_S_OK, true);
		return 0;
	}
	default:
		finish(d, r, VIRTIO_BLK_S_UNSUPP, true);
		return 0;
	}
	/* No submission entry although one per request was sized: a bug, not the
	 * guest's doing; fail the request rather than the VMM. */
	log_ratelimited(LOG_ERROR, "virtio %s: io_uring submission queue full", d->id);
	finish(d, r, VIRTIO_BLK_S_IOERR, true);
	return 0;
}

static void blk_notify(struct virtio_dev *d, unsigned q)
{
	struct blk *b = d->priv;
	unsigned submitted = 0, taken = 0;
	int ret;

	if (q != 0)
		return;
	/* qcow2's metadata is the main thread's: a vCPU thread's notification (MMIO with
	 * no ioeventfd) goes to the main loop as if through the kick eventfd. */
	if (b->disk && !pthread_equal(pthread_self(), b->main)) {
		virtio_requeue(d, 0);
		return;
	}
	virtio_count_add(d, BLK_QUEUE_EVENTS, 1);
	/* Requests the device answers at once (GET_ID, refused ones) free their slot
	 * again, so only the budget bounds a guest that republishes them. */
	while (taken < VIRTIO_BUDGET_CHAINS) {
		struct blk_req *r = b->free;

		if (!r) {
			b->starved = true; /* resumed when a completion frees one */
			break;
		}
		if (!virtio_rl_admit(&b->rl))
			break; /* its timer requeues the queue */
		ret = virtio_pop(d, 0, &b->e);
		if (ret <= 0)
			break;
		b->free = r->next_free;
		taken++;
		ret = start(d, &b->e, r);
		if (ret < 0) {
			r->next_free = b->free;
			b->free = r;
			virtio_count_add(d, BLK_INVALID_REQS, 1);
			break;
		}
		/* Answered at once with an error: refused (out of range, read-only, ...). */
		if (ret == 0 && b->last_status != VIRTIO_BLK_S_OK)
			virtio_count_add(d, BLK_INVALID_REQS, 1);
		submitted += (unsigned)ret;
	}
	if (submitted) {
		ret = io_uring_submit(&b->ring);
		if (ret < 0)
			log_ratelimited(LOG_ERROR, "virtio %s: io_uring_submit: %s", d->id,
					strerror(-ret));
	}
	virtio_notify(d, 0);
	if (taken == VIRTIO_BUDGET_CHAINS)
		virtio_requeue(d, 0);
}

/* Waits for every request in flight; `push` says whether they complete to the guest
 * (quiesce) or are dropped because the driver reset the device. */
static int drain(struct virtio_dev *d, bool push)
{
	struct blk *b = d->priv;
	bool any = false;

	while (b->inflight) {
		struct io_uring_cqe *cqe;
		int ret = io_uring_wait_cqe(&b->ring, &cqe);

		if (ret < 0 && ret != -EINTR) {
			log_err("virtio %s: io_uring_wait_cqe: %s", d->id, strerror(-ret));
			virtio_set_needs_reset(d, "block I/O could not be drained");
			return ret;
		}
		if (reap(d, push))
			any = true;
	}
	if (any && push)
		virtio_notify(d, 0);
	return 0;
}

/* Before a snapshot: requests done, and a qcow2 image's metadata in its file, so the
 * image on disk is the one the snapshot's memory goes with. */
static int blk_quiesce(struct virtio_dev *d)
{
	struct blk *b = d->priv;
	int ret = drain(d, true);

	if (!ret && b->disk && !b->ro && (ret = disk_flush(b->disk)))
		log_err("drive %s: flush: %s", d->id, disk_error(b->disk));
	return ret;
}

static void blk_reset(struct virtio_dev *d)
{
	struct blk *b = d->priv;

	drain(d, false);
	b->starved = false;
}

static void blk_config_read(struct virtio_dev *d, uint32_t off, uint8_t *data, uint32_t len)
{
	struct blk *b = d->priv;

	b->cfg.capacity = b->capacity;
	memcpy(data, (uint8_t *)&b->cfg + off, len);
}

/* Closes the backend, whichever kind it is. */
static void close_backend(struct blk *b)
{
	if (b->disk)
		disk_close(b->disk); /* flushes, closes b->fd */
	else if (b->fd >= 0)
		close(b->fd);
	b->disk = NULL;
	b->fd = -1;
	b->probed_raw = false;
}

/* Backing files a qcow2 image names are looked up as its own path was. */
struct beneath {
	int dirfd;
	const char *dir;
};

static int open_backing(void *ctx, const char *path)
{
	const struct beneath *w = ctx;

	return vmm_open_beneath(w->dirfd, w->dir, path, O_RDONLY);
}

/* Opens `path` (beneath `dirfd` when >= 0), a raw file or a qcow2 image by its magic,
 * and returns its size in sectors through `sectors`. */
static int open_backend(struct virtio_dev *d, int dirfd, const char *dir, const char *path, bool ro,
			uint64_t *sectors)
{
	struct blk *b = d->priv;
	struct beneath w = {dirfd, dir};
	const struct disk_opener op = {.open = open_backing, .ctx = &w};
	struct disk *disk;
	enum disk_format fmt;
	char err[512];
	struct stat st;
	int fd, ret;

	fd = vmm_open_beneath(dirfd, dir, path, ro ? O_RDONLY : O_RDWR);
	if (fd < 0) {
		log_err("drive %s: open %s%s%s: %s", d->id, path, dirfd >= 0 ? " inside " : "",
			dirfd >= 0 ? dir : "", fd == -EXDEV ? "it lies outside" : strerror(-fd));
		return fd;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		log_err("drive %s: %s is not a regular file", d->id, path);
		close(fd);
		return -EINVAL;
	}
	ret = disk_probe(fd, &fmt);
	if (ret) {
		log_err("drive %s: read %s: %s", d->id, path, strerror(-ret));
		close(fd);
		return ret;
	}
	if (fmt == DISK_FMT_QCOW2) {
		ret = disk_open_fd(fd, path, ro, &op, &disk, err, sizeof(err)); /* takes fd */
		if (ret) {
			log_err("drive %s: %s", d->id, err);
			return ret;
		}
		close_backend(b);
		b->disk = disk;
		b->fd = disk_fd(disk);
		*sectors = disk_size(disk) / SECTOR;
	} else {
		close_backend(b);
		b->fd = fd;
		b->probed_raw = true;
		*sectors = (uint64_t)st.st_size / SECTOR;
	}
	snprintf(b->path, sizeof(b->path), "%s", path);
	return 0;
}

/* The ring holds its own reference to the file registered at BLK_FILE: closing b->fd
 * does not end I/O on it. A new backend (reopen; PATCH /drives on a running VM next)
 * replaces it with IORING_REGISTER_FILES_UPDATE, the one register request the ring's
 * restrictions keep (virtio_blk_ring_init). Updating rather than making a new ring
 * needs no io_uring_setup after vm_launch, and the update gives nothing a thread that
 * may call io_uring_register lacks: it points the ring, which can only read, write and
 * fsync its registered file, at a descriptor that thread holds and can read and write
 * itself. The main thread's seccomp filter allows it until vm_launch (vmm/seccomp.c);
 * reopening a running VM's drive needs that request added to the sealed filter. `fd`
 * -1 empties the slot. */
static int ring_set_file(struct virtio_dev *d, int fd)
{
	struct blk *b = d->priv;
	int ret;

	if (!b->ring_ok)
		return 0;
	ret = io_uring_register_files_update(&b->ring, BLK_FILE, &fd, 1);
	if (ret < 0) {
		log_err("drive %s: io_uring_register_files_update: %s", d->id, strerror(-ret));
		return ret;
	}
	return 0;
}

/* A new backend file; `media_change` lets its size differ from what the guest knows
 * (and tells the guest), else it must hold at least that much (a restore's override). */
static int switch_backend(struct virtio_dev *d, const char *path, bool media_change)
{
	struct blk *b = d->priv;
	char cur[VIRTIO_PATH_MAX];
	uint64_t sectors;
	int ret;

	drain(d, true);
	snprintf(cur, sizeof(cur), "%s", path ? path : b->path);
	/* A media change whose file does not open leaves the drive as it was
	 * (open_backend replaces the backend only on success); a restore's override must
	 * not fall back to the snapshot's own file, which may be another clone's base. */
	if (!media_change)
		close_backend(b);
	ret = open_backend(d, -1, NULL, cur, b->ro, &sectors);
	if (ret && media_change)
		return ret;
	if (ret)
		goto gone;
	if (sectors < b->capacity && !media_change) {
		log_err("drive %s: %s holds %llu sectors, the guest knows %llu", d->id, cur,
			(unsigned long long)sectors, (unsigned long long)b->capacity);
		ret = -EINVAL;
		goto gone;
	}
	ret = ring_set_file(d, b->fd);
	if (ret)
		goto gone;
	if (media_change && sectors != b->capacity) {
		b->capacity = sectors;
		if (virtio_dev_live(d))
			virtio_config_changed(d);
	}
	return 0;
gone:
	close_backend(b);
	/* Drop the ring's reference to the old file too (b->fd < 0 submits nothing). */
	ring_set_file(d, -1);
	return ret;
}

static int blk_reopen(struct virtio_dev *d, const char *path)
{
	return switch_backend(d, path, false);
}

static int blk_change_media(struct virtio_dev *d, const char *path)
{
	int ret = switch_backend(d, path, true);

	virtio_count_add(d, ret ? BLK_UPDATE_FAILS : BLK_UPDATE_COUNT, 1);
	return ret;
}

static struct virtio_rl *blk_rate_limiter(struct virtio_dev *d, unsigned which)
{
	struct blk *b = d->priv;

	return which == 0 ? &b->rl : NULL;
}

int virtio_blk_checkpoint_prepare(struct virtio_dev *d, const char *snapshot_path, char *next,
				  size_t cap)
{
	struct blk *b = d->priv;
	const char *base = strrchr(b->path, '/'), *snap = strrchr(snapshot_path, '/');
	char err[512];
	int ret = 0;

	if (d->ops != &virtio_blk_ops)
		return 0;
	pthread_mutex_lock(&d->lock);
	if (!b->disk || b->ro)
		goto out;
	base = base ? base + 1 : b->path;
	snap = snap ? snap + 1 : snapshot_path;
	if ((size_t)snprintf(next, cap, "%s.after-%s", b->path, snap) >= cap) {
		log_err("drive %s: checkpoint overlay name too long", d->id);
		ret = -ENAMETOOLONG;
		goto out;
	}
	ret = disk_flush(b->disk);
	if (ret) {
		log_err("drive %s: flush before the checkpoint: %s", d->id, strerror(-ret));
		goto out;
	}
	/* Named relative to the overlay's own directory (the image's): the pair moves.
	 * Not synced: the snapshot names the base, which is durable (the flush above);
	 * the overlay holds only what the VM writes from now on, and its first flush
	 * makes its header durable with the first of those writes. */
	ret = disk_create_overlay(next, base, true, err, sizeof(err));
	if (ret)
		log_err("drive %s: checkpoint overlay %s: %s", d->id, next, err);
	else
		ret = 1;
out:
	pthread_mutex_unlock(&d->lock);
	return ret;
}

int virtio_blk_checkpoint_switch(struct virtio_dev *d, const char *next)
{
	int ret;

	pthread_mutex_lock(&d->lock);
	ret = switch_backend(d, next, false);
	pthread_mutex_unlock(&d->lock);
	if (ret)
		log_err("drive %s: could not go on on its checkpoint overlay %s: %s", d->id, next,
			strerror(-ret));
	return ret;
}

int virtio_blk_checkpoint_internal(struct virtio_dev *d, const char *name)
{
	struct blk *b = d->priv;
	int ret = 0;

	if (d->ops != &virtio_blk_ops)
		return 0;
	pthread_mutex_lock(&d->lock);
	if (!b->disk || b->ro)
		goto out;
	if (strlen(name) >= sizeof(b->internal)) {
		log_err("drive %s: internal checkpoint name %s too long", d->id, name);
		ret = -ENAMETOOLONG;
		goto out;
	}
	ret = disk_snapshot_create(b->disk, name);
	if (ret) {
		log_err("drive %s: internal snapshot %s of %s: %s", d->id, name, b->path,
			ret == -EEXIST ? "the image has one of that name" : strerror(-ret));
		goto out;
	}
	snprintf(b->internal, sizeof(b->internal), "%s", name);
	ret = 1;
out:
	pthread_mutex_unlock(&d->lock);
	return ret;
}

void virtio_blk_checkpoint_internal_done(struct virtio_dev *d, bool keep)
{
	struct blk *b = d->priv;

	if (d->ops != &virtio_blk_ops)
		return;
	pthread_mutex_lock(&d->lock);
	if (b->internal[0] && !keep && b->disk && disk_snapshot_delete(b->disk, b->internal))
		log_err("drive %s: internal snapshot %s of a failed checkpoint left in %s", d->id,
			b->internal, b->path);
	b->internal[0] = '\0';
	pthread_mutex_unlock(&d->lock);
}

static void blk_save(struct virtio_dev *d, struct virtio_saved *out)
{
	struct blk *b = d->priv;

	snprintf(out->dev.blk.path, sizeof(out->dev.blk.path), "%s", b->path);
	out->dev.blk.read_only = b->ro;
	out->dev.blk.capacity = b->capacity;
	virtio_rl_get(&b->rl, &out->dev.blk.rl);
	out->dev.blk.qcow2 = b->disk != NULL;
	out->dev.blk.identity = b->disk ? disk_identity(b->disk) : 0;
	snprintf(out->dev.blk.internal_snapshot, sizeof(out->dev.blk.internal_snapshot), "%s",
		 b->internal);
}

static int blk_restore(struct virtio_dev *d, const struct virtio_saved *in)
{
	struct blk *b = d->priv;

	if (in->dev.blk.read_only != b->ro) {
		log_err("drive %s: saved state is %s, this drive is not", d->id,
			in->dev.blk.read_only ? "read-only" : "read-write");
		return -EINVAL;
	}
	if (in->dev.blk.capacity != b->capacity) {
		log_err("drive %s: saved capacity %llu sectors, file has %llu", d->id,
			(unsigned long long)in->dev.blk.capacity, (unsigned long long)b->capacity);
		return -EINVAL;
	}
	if (in->dev.blk.identity) {
		uint64_t now = b->base_identity ? b->base_identity
			       : b->disk	? disk_identity(b->disk)
						: 0;

		if (now != in->dev.blk.identity) {
			/* The memory was taken with other disk contents: running it on these
			 * would corrupt both. */
			log_err("drive %s: %s is not the image the snapshot was taken with (its "
				"contents changed since, or it is another image)",
				d->id, b->path);
			return -EINVAL;
		}
	}
	return 0;
}

/* The drive's own fields in its snapshot section (docs/snapshot-format.md). */
enum {
	BLK_TAG_PATH = SNAP_DEV_OWN, /* str: the backing file when saved */
	BLK_TAG_READ_ONLY,	     /* u64: 0 or 1 */
	BLK_TAG_CAPACITY,	     /* u64: 512-byte sectors, as the guest saw them */
	/* u64: 0 raw, 1 qcow2 (absent: raw, older snapshots). For inspection only: the
	 * guest sees the same device either way, so a restore may put a drive saved on a
	 * raw file onto a qcow2 overlay of it (a clone's own writes) and back. Its own
	 * number: the tags after capacity are net's and vsock's (docs/snapshot-format.md). */
	BLK_TAG_FORMAT = SNAP_DEV_OWN + 7,
	BLK_TAG_IDENTITY = SNAP_DEV_OWN + 8, /* u64: disk_identity when saved; absent: none */
	BLK_TAG_INTERNAL = SNAP_DEV_OWN + 9, /* str: internal checkpoint; absent: none */
};

static void blk_encode(struct snap_sec *sec, const struct virtio_saved *s)
{
	snap_put_str(sec, BLK_TAG_PATH, s->dev.blk.path);
	snap_put_u64(sec, BLK_TAG_READ_ONLY, s->dev.blk.read_only);
	snap_put_u64(sec, BLK_TAG_CAPACITY, s->dev.blk.capacity);
	virtio_rl_encode(sec, VIRTIO_TAG_RL, &s->dev.blk.rl);
	snap_put_u64(sec, BLK_TAG_FORMAT, s->dev.blk.qcow2);
	if (s->dev.blk.identity)
		snap_put_u64(sec, BLK_TAG_IDENTITY, s->dev.blk.identity);
	if (s->dev.blk.internal_snapshot[0])
		snap_put_str(sec, BLK_TAG_INTERNAL, s->dev.blk.internal_snapshot);
}

static int blk_decode(const struct snap_section *sec, struct virtio_saved *s, char *err,
		      size_t errlen)
{
	uint64_t ro, fmt = 0;
	int ret;

	if (snap_get_strbuf(sec, BLK_TAG_PATH, s->dev.blk.path, sizeof(s->dev.blk.path)) ||
	    !s->dev.blk.path[0])
		return errf(err, errlen, -EBADMSG, "%s: drive path missing or longer than %d",
			    sec->name, VIRTIO_PATH_MAX - 1);
	ret = virtio_get_u64(sec, BLK_TAG_READ_ONLY, 1, true, &ro, err, errlen);
	if (!ret)
		ret = virtio_get_u64(sec, BLK_TAG_CAPACITY, UINT64_MAX / SECTOR, true,
				     &s->dev.blk.capacity, err, errlen);
	if (!ret)
		ret = virtio_rl_decode(sec, VIRTIO_TAG_RL, &s->dev.blk.rl, err, errlen);
	if (!ret)
		ret = virtio_get_u64(sec, BLK_TAG_FORMAT, 1, false, &fmt, err, errlen);
	if (!ret)
		ret = virtio_get_u64(sec, BLK_TAG_IDENTITY, UINT64_MAX, false, &s->dev.blk.identity,
				     err, errlen);
	if (!ret) {
		int r = snap_get_strbuf(sec, BLK_TAG_INTERNAL, s->dev.blk.internal_snapshot,
					sizeof(s->dev.blk.internal_snapshot));

		if (r == -ENOENT)
			s->dev.blk.internal_snapshot[0] = '\0';
		else if (r)
			ret = errf(err, errlen, -EBADMSG,
				   "%s: internal snapshot name unreadable or longer than %zu",
				   sec->name, sizeof(s->dev.blk.internal_snapshot) - 1);
	}
	s->dev.blk.read_only = ro != 0;
	s->dev.blk.qcow2 = fmt != 0;
	return ret;
}

static void blk_destroy(struct virtio_dev *d)
{
	struct blk *b = d->priv;

	virtio_rl_destroy(&b->rl);
	if (b->ev_watched)
		vmm_loop_del(&d->vm->loop, b->ev_fd);
	if (b->ring_ok)
		io_uring_queue_exit(&b->ring);
	if (b->ev_fd >= 0)
		close(b->ev_fd);
	close_backend(b);
	free(b);
}

const struct virtio_dev_ops virtio_blk_ops = {
    .name = "blk",
    .kind = "virtio-blk",
    .device_id = VIRTIO_ID_BLOCK,
    .nr_queues = 1,
    .queue_max = BLK_QUEUE_MAX,
    .config_len = sizeof(struct virtio_blk_config),
    .config_read = blk_config_read,
    .notify = blk_notify,
    .reset = blk_reset,
    .save = blk_save,
    .restore = blk_restore,
    .encode = blk_encode,
    .decode = blk_decode,
    .reopen = blk_reopen,
    .change_media = blk_change_media,
    .metrics_group = "block",
    .counter_names = blk_counters,
    .rate_limiter = blk_rate_limiter,
    .quiesce = blk_quiesce,
    .destroy = blk_destroy,
};

int virtio_blk_ring_init(struct io_uring *ring, int fd, bool ro, int ev_fd, char *err,
			 size_t errlen)
{
	/* What start() submits: data in and out, and flushes; a read-only drive only
	 * reads (its file is open read-only too). */
	static const uint8_t ops[] = {IORING_OP_READV, IORING_OP_WRITEV, IORING_OP_FSYNC};
	static const uint8_t reg_ops[] = {IORING_REGISTER_FILES_UPDATE}; /* ring_set_file */
	const struct uring_limits l = {.ops = ops,
				       .nr_ops = ro ? 1 : 3,
				       .files = &fd,
				       .nr_files = 1,
				       .eventfd = ev_fd,
				       .register_ops = reg_ops,
				       .nr_register_ops = 1};

	return uring_init_restricted(ring, BLK_QUEUE_MAX, &l, err, errlen);
}

/* The completion eventfd and the ring on the open backend (the device's destroy
 * releases them on failure). */
static int ring_setup(struct virtio_dev *d)
{
	struct blk *b = d->priv;
	char err[160];
	int ret;

	b->ev_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (b->ev_fd < 0) {
		ret = -errno;
		log_err("drive %s: eventfd: %s", d->id, strerror(-ret));
		return ret;
	}
	ret = virtio_blk_ring_init(&b->ring, b->fd, b->ro, b->ev_fd, err, sizeof(err));
	if (ret) {
		log_err("drive %s: %s", d->id, err);
		return ret;
	}
	b->ring_ok = true;
	return 0;
}

int virtio_blk_create(struct vm *vm, const struct vmm_drive_cfg *c,
		      const struct vmm_dev_place *place, int dirfd, const char *dir,
		      struct virtio_dev **out)
{
	uint64_t features = (1ull << VIRTIO_BLK_F_SEG_MAX) | (1ull << VIRTIO_BLK_F_BLK_SIZE) |
			    (1ull << VIRTIO_BLK_F_FLUSH) | (1ull << VIRTIO_RING_F_EVENT_IDX) |
			    (1ull << VIRTIO_RING_F_INDIRECT_DESC);
	struct virtio_dev *d;
	struct blk *b;
	int ret;

	if (!c->id[0] || !c->path[0]) {
		log_err("drive: needs an id and a path");
		return -EINVAL;
	}
	if (c->read_only)
		features |= 1ull << VIRTIO_BLK_F_RO;

	d = calloc(1, sizeof(*d));
	b = calloc(1, sizeof(*b));
	if (!d || !b) {
		free(d);
		free(b);
		return -ENOMEM;
	}
	virtio_dev_init(d, &virtio_blk_ops, vm, c->id, place, features);
	d->priv = b;
	b->fd = b->ev_fd = -1;
	b->ro = c->read_only;
	b->main = pthread_self();
	for (unsigned i = 0; i < BLK_QUEUE_MAX; i++) {
		b->reqs[i].next_free = b->free;
		b->free = &b->reqs[i];
	}
	b->cfg.seg_max = BLK_SEG_MAX;
	b->cfg.blk_size = SECTOR;
	*out = d; /* from here the caller's destroy releases what we took */
	if (c->overlay_of[0]) {
		/* A clone's own thin copy of its base's disk, made here in constant time;
		 * its first flush makes the header durable with the rest. */
		char err[512];

		ret = disk_create_overlay(c->path, c->overlay_of, true, err, sizeof(err));
		if (ret) {
			log_err("drive %s: overlay %s over %s: %s", c->id, c->path, c->overlay_of,
				err);
			return ret;
		}
	}
	ret = open_backend(d, dirfd, dir, c->path, c->read_only, &b->capacity);
	/* An internal disk checkpoint: the image goes back to it before anything reads it
	 * (its L1 table switched, nothing copied). */
	if (!ret && c->revert_to[0]) {
		if (!b->disk) {
			log_err(
			    "drive %s: the snapshot goes with internal checkpoint %s of a qcow2 "
			    "image; %s is raw",
			    c->id, c->revert_to, c->path);
			return -EINVAL;
		}
		ret = disk_snapshot_revert(b->disk, c->revert_to);
		if (ret) {
			log_err("drive %s: revert %s to its internal checkpoint %s: %s", c->id,
				c->path, c->revert_to,
				ret == -ENOENT ? "the image has no such snapshot" : strerror(-ret));
			return ret;
		}
	}
	/* A new overlay holds its base's contents: what a restore checks the snapshot's
	 * image identity against. */
	if (!ret && c->overlay_of[0] && b->disk && disk_backing(b->disk))
		b->base_identity = disk_identity(disk_backing(b->disk));
	if (ret)
		return ret;
	ret = ring_setup(d);
	if (ret)
		return ret;
	ret = vmm_loop_add(&vm->loop, b->ev_fd, EPOLLIN, on_complete, d);
	if (ret)
		return ret;
	b->ev_watched = true;
	b->rl.cnt = BLK_THROTTLED;
	return virtio_rl_set(&b->rl, d, 0, &c->rl, 0);
}
