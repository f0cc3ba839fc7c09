/* The page-fault handler: one thread that reads userfaultfd events and installs pages with
 * UFFDIO_COPY / UFFDIO_ZEROPAGE, and, for prefetch, keeps io_uring reads of the working
 * set in flight and installs each extent as it arrives. Faults always go first: the loop
 * serves every event that is pending before it installs more prefetched data.
 *
 * Shared by thaw's own handler thread and thaw-uffd; it knows nothing of either. */
#include "uffd/uffd.h"

#include <errno.h>
#include <inttypes.h>
#include <liburing.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/log.h"
#include "common/uring.h"

#define PEND_MAX       256 /* faults read but not yet served */
#define UFFD_MSG_BATCH 32  /* uffd messages per read */
#define FAULT_OPS      512 /* a 2 MiB chunk of 4 KiB runs */
#define SRC_FILE       0   /* src_fd's index in the ring's registered files */

enum slot_state { SLOT_FREE, SLOT_READING, SLOT_READY };

struct slot {
	enum slot_state state;
	struct uffd_op op;
	uint8_t *buf;
};

struct uffd_server {
	struct uffd_server_opts o;
	struct uffd_region regions[UFFD_MAX_REGIONS];
	uint64_t npages, chunk_pages;
	uint64_t *zero, *removed, *filled, *recbits;
	uint64_t *rec;
	size_t nrec;
	struct uffd_stats st;
	uint64_t pend[PEND_MAX];
	size_t npend;
	uint64_t t_start;
	bool started;

	/* prefetch */
	bool prefetching;
	size_t ws_pos;
	struct io_uring ring;
	bool ring_ok;
	int ring_efd;
	struct slot *slots;
	unsigned nslots;
	uint8_t *staging;
	size_t staging_len;
	uint64_t *scratch;
	struct uffd_op *plan;
	size_t nplan, plan_pos;
};

static void set_bit(uint64_t *b, uint64_t i)
{
	b[i / 64] |= 1ull << (i % 64);
}

static void clear_bit(uint64_t *b, uint64_t i)
{
	b[i / 64] &= ~(1ull << (i % 64));
}

static struct uffd_pages pages_of(const struct uffd_server *s)
{
	return (struct uffd_pages){s->npages, s->zero, s->removed, s->filled};
}

/* Host address -> memory page and the page range of its region. */
static int addr_to_page(const struct uffd_server *s, uint64_t addr, uint64_t *page, uint64_t *lo,
			uint64_t *hi)
{
	for (size_t i = 0; i < s->o.nr_regions; i++) {
		const struct uffd_region *r = &s->regions[i];

		if (addr >= r->base && addr - r->base < r->size) {
			*page = (r->offset + (addr - r->base)) / UFFD_PAGE;
			*lo = r->offset / UFFD_PAGE;
			*hi = (r->offset + r->size) / UFFD_PAGE;
			return 0;
		}
	}
	return -ENOENT;
}

/* Memory page -> host address and how many pages follow in the same region. */
static int page_to_addr(const struct uffd_server *s, uint64_t page, uint64_t *addr, uint64_t *room)
{
	uint64_t off = page * UFFD_PAGE;

	for (size_t i = 0; i < s->o.nr_regions; i++) {
		const struct uffd_region *r = &s->regions[i];

		if (off >= r->offset && off - r->offset < r->size) {
			*addr = r->base + (off - r->offset);
			*room = (r->offset + r->size - off) / UFFD_PAGE;
			return 0;
		}
	}
	return -ENOENT;
}

static void mark_filled(struct uffd_server *s, uint64_t page, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		set_bit(s->filled, page + i);
}

static void wake(struct uffd_server *s, uint64_t addr, uint64_t len)
{
	struct uffdio_range r = {.start = addr, .len = len};

	ioctl(s->o.uffd, UFFDIO_WAKE, &r);
}

/* Installs `op` (progress is written back into it). `buf` holds the op's data (prefetch)
 * or is NULL to copy straight from the snapshot mapping. Returns 0, -EAGAIN when the
 * memory map is changing (remove events pending: read them, then retry the op), or
 * another -errno (logged). */
static int install(struct uffd_server *s, struct uffd_op *op, const uint8_t *buf)
{
	while (op->npages) {
		uint64_t addr, room, len, done = 0;
		int64_t res;
		int ret;

		if (page_to_addr(s, op->page, &addr, &room)) {
			/* a page in no region (a hole between Firecracker-style regions) */
			op->page++;
			op->npages--;
			if (buf)
				buf += UFFD_PAGE;
			continue;
		}
		len = op->npages < room ? op->npages : room;
		if (op->kind == UFFD_OP_COPY) {
			struct uffdio_copy c = {
			    .dst = addr,
			    .src =
				(uint64_t)(uintptr_t)(buf ? buf : s->o.src + op->page * UFFD_PAGE),
			    .len = len * UFFD_PAGE,
			    .mode = 0};

			ret = ioctl(s->o.uffd, UFFDIO_COPY, &c) ? -errno : 0;
			res = c.copy;
		} else {
			struct uffdio_zeropage z = {
			    .range = {.start = addr, .len = len * UFFD_PAGE}, .mode = 0};

			ret = ioctl(s->o.uffd, UFFDIO_ZEROPAGE, &z) ? -errno : 0;
			res = z.zeropage;
		}
		if (ret == 0)
			done = len;
		else if (res > 0)
			done = (uint64_t)res / UFFD_PAGE; /* partial: the rest is retried */
		if (done) {
			mark_filled(s, op->page, done);
			if (op->kind == UFFD_OP_COPY)
				s->st.copied_pages += done;
			else
				s->st.zero_pages += done;
			op->page += done;
			op->npages -= done;
			if (buf)
				buf += done * UFFD_PAGE;
			continue;
		}
		if (res == -EEXIST || ret == -EEXIST) {
			/* Already there (another vCPU's fault, or prefetch): whoever waits on
			 * it still needs waking. */
			s->st.exists++;
			mark_filled(s, op->page, 1);
			wake(s, addr, UFFD_PAGE);
			op->page++;
			op->npages--;
			if (buf)
				buf += UFFD_PAGE;
			continue;
		}
		if (res == -EAGAIN || ret == -EAGAIN) {
			s->st.eagain++;
			return -EAGAIN;
		}
		if (ret == -ESRCH || ret == -ENOENT || res == -ESRCH || res == -ENOENT)
			return -ESRCH; /* the VMM's memory is gone: it is exiting */
		log_ratelimited(LOG_ERROR, "uffd: %s at %#" PRIx64 " (%" PRIu64 " pages): %s",
				op->kind == UFFD_OP_COPY ? "UFFDIO_COPY" : "UFFDIO_ZEROPAGE", addr,
				len, strerror(-ret));
		return ret;
	}
	return 0;
}

static void record(struct uffd_server *s, uint64_t page)
{
	if (!s->rec || uffd_bit(s->recbits, page))
		return;
	set_bit(s->recbits, page);
	s->rec[s->nrec++] = page;
	s->st.recorded = s->nrec;
}

/* Serves one fault at host address `addr`: -EAGAIN means retry later. */
static int serve_fault(struct uffd_server *s, uint64_t addr)
{
	struct uffd_op ops[FAULT_OPS];
	struct uffd_pages pg = pages_of(s);
	uint64_t page, lo, hi;
	size_t n;

	if (addr_to_page(s, addr, &page, &lo, &hi)) {
		log_ratelimited(LOG_WARN, "uffd: fault at %#" PRIx64 " outside every region", addr);
		return 0;
	}
	n = uffd_plan_fault(&pg, page, s->chunk_pages, lo, hi, s->o.strategy.zero, ops, FAULT_OPS);
	for (size_t i = 0; i < n; i++) {
		int ret = install(s, &ops[i], NULL);

		if (ret == -EAGAIN)
			return ret;
		if (ret == -ESRCH)
			return 0;
		if (ret && i == 0) {
			/* The faulting page could not be installed: wake the thread so it
			 * faults again rather than sleeping for ever. */
			wake(s, addr & ~(uint64_t)(UFFD_PAGE - 1), UFFD_PAGE);
		}
	}
	return 0;
}

static void on_remove(struct uffd_server *s, uint64_t start, uint64_t end)
{
	s->st.removes++;
	for (uint64_t a = start & ~(uint64_t)(UFFD_PAGE - 1); a < end; a += UFFD_PAGE) {
		uint64_t page, lo, hi;

		if (addr_to_page(s, a, &page, &lo, &hi))
			continue;
		set_bit(s->removed, page);
		clear_bit(s->filled, page);
		s->st.removed_pages++;
	}
}

/* Reads every pending event: faults are queued, removes applied at once (they must be
 * seen before any later install). */
static int read_events(struct uffd_server *s)
{
	struct uffd_msg msgs[UFFD_MSG_BATCH];

	while (s->npend + UFFD_MSG_BATCH <= PEND_MAX) {
		ssize_t r = read(s->o.uffd, msgs, sizeof(msgs));

		if (r < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return 0;
			return -errno;
		}
		if (r == 0)
			return 0;
		for (size_t i = 0; i < (size_t)r / sizeof(msgs[0]); i++) {
			const struct uffd_msg *m = &msgs[i];

			if (m->event == UFFD_EVENT_PAGEFAULT) {
				uint64_t page, lo, hi;

				s->st.faults++;
				if (!addr_to_page(s, m->arg.pagefault.address, &page, &lo, &hi))
					record(s, page);
				s->pend[s->npend++] = m->arg.pagefault.address;
			} else if (m->event == UFFD_EVENT_REMOVE) {
				on_remove(s, m->arg.remove.start, m->arg.remove.end);
			}
		}
	}
	return 0;
}

static void serve_pending(struct uffd_server *s)
{
	size_t i;

	for (i = 0; i < s->npend; i++)
		if (serve_fault(s, s->pend[i]) == -EAGAIN)
			break;
	memmove(s->pend, s->pend + i, (s->npend - i) * sizeof(s->pend[0]));
	s->npend -= i;
}

/* ---------------------------------------------------------------- prefetch */

/* Installs a slot's extent, leaving out pages removed while it was being read. */
static void slot_advance(struct slot *sl, uint64_t n)
{
	sl->op.page += n;
	sl->op.npages -= n;
	if (sl->buf)
		sl->buf += n * UFFD_PAGE;
}

static int install_slot(struct uffd_server *s, struct slot *sl)
{
	while (sl->op.npages) {
		struct uffd_op run = sl->op;
		uint64_t before = s->st.copied_pages + s->st.zero_pages, todo;
		int ret;

		if (uffd_bit(s->removed, sl->op.page)) {
			slot_advance(sl, 1);
			continue;
		}
		run.npages = 1;
		while (run.npages < sl->op.npages && !uffd_bit(s->removed, run.page + run.npages))
			run.npages++;
		todo = run.npages;
		ret = install(s, &run, run.kind == UFFD_OP_COPY ? sl->buf : NULL);
		s->st.prefetched += s->st.copied_pages + s->st.zero_pages - before;
		slot_advance(sl, todo - run.npages);
		if (ret == -EAGAIN)
			return ret;
		if (ret) {
			sl->op.npages = 0; /* the rest comes on demand */
			return 0;
		}
	}
	return 0;
}

static uint8_t *slot_buf(const struct uffd_server *s, unsigned i)
{
	return s->staging + (size_t)i * s->o.strategy.extent_pages * UFFD_PAGE;
}

static void prefetch_done(struct uffd_server *s)
{
	s->prefetching = false;
	s->st.prefetch_ns = now_ns() - s->t_start;
	log_debug("uffd: prefetch done: %" PRIu64 " pages in %.1f ms", s->st.prefetched,
		  (double)s->st.prefetch_ns / 1e6);
}

/* Fills free slots with the next extents and submits their reads. */
static void refill(struct uffd_server *s)
{
	unsigned busy = 0, submitted = 0;

	for (unsigned i = 0; i < s->nslots; i++) {
		struct slot *sl = &s->slots[i];

		if (sl->state != SLOT_FREE) {
			busy++;
			continue;
		}
		while (sl->state == SLOT_FREE) {
			struct uffd_op op;

			if (s->plan_pos == s->nplan) {
				struct uffd_pages pg = pages_of(s);

				s->nplan = uffd_plan_prefetch(
				    &pg, s->o.ws, s->o.nws, &s->ws_pos, s->o.strategy.batch,
				    s->o.strategy.gap_pages, s->o.strategy.extent_pages,
				    s->o.strategy.zero, s->scratch, s->plan, s->o.strategy.batch);
				s->plan_pos = 0;
				if (s->nplan == 0 && s->ws_pos >= s->o.nws)
					break;
				if (s->nplan == 0)
					continue;
			}
			op = s->plan[s->plan_pos++];
			sl->op = op;
			if (op.kind == UFFD_OP_ZERO) {
				sl->buf = NULL;
				sl->state = SLOT_READY;
				busy++;
				break;
			}
			struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);

			if (!sqe) {
				s->plan_pos--;
				break;
			}
			sl->buf = slot_buf(s, i);
			io_uring_prep_read(sqe, SRC_FILE, sl->buf,
					   (unsigned)(op.npages * UFFD_PAGE),
					   s->o.src_off + op.page * UFFD_PAGE);
			io_uring_sqe_set_flags(sqe, IOSQE_FIXED_FILE);
			io_uring_sqe_set_data64(sqe, i);
			sl->state = SLOT_READING;
			busy++;
			submitted++;
		}
	}
	if (submitted)
		io_uring_submit(&s->ring);
	if (busy == 0 && s->plan_pos == s->nplan && s->ws_pos >= s->o.nws)
		prefetch_done(s);
}

static void reap(struct uffd_server *s)
{
	struct io_uring_cqe *cqe;
	uint64_t v;

	if (read(s->ring_efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_ratelimited(LOG_WARN, "uffd: reading the io_uring eventfd: %s",
				strerror(errno));
	while (io_uring_peek_cqe(&s->ring, &cqe) == 0) {
		struct slot *sl = &s->slots[io_uring_cqe_get_data64(cqe)];

		if (cqe->res != (int)(sl->op.npages * UFFD_PAGE)) {
			/* a failed or short read: the mapping has the same bytes */
			log_ratelimited(LOG_WARN, "uffd: prefetch read of %" PRIu64 " pages: %s",
					sl->op.npages,
					cqe->res < 0 ? strerror(-cqe->res) : "short read");
			sl->buf = NULL;
		}
		sl->state = SLOT_READY;
		io_uring_cqe_seen(&s->ring, cqe);
	}
}

/* Installs every slot whose data is there; stops at the first -EAGAIN. */
static int install_ready(struct uffd_server *s)
{
	for (unsigned i = 0; i < s->nslots; i++) {
		struct slot *sl = &s->slots[i];

		if (sl->state != SLOT_READY)
			continue;
		if (install_slot(s, sl) == -EAGAIN)
			return -EAGAIN;
		sl->state = SLOT_FREE;
	}
	return 0;
}

static bool any_ready(const struct uffd_server *s)
{
	for (unsigned i = 0; i < s->nslots; i++)
		if (s->slots[i].state == SLOT_READY)
			return true;
	return false;
}

int uffd_ring_init(struct io_uring *ring, unsigned depth, int src_fd, int efd, char *err,
		   size_t errlen)
{
	/* refill() reads extents of the memory file, nothing else; the file never
	 * changes, so no register request is left once the ring is enabled. */
	static const uint8_t ops[] = {IORING_OP_READ};
	const struct uring_limits l = {
	    .ops = ops, .nr_ops = 1, .files = &src_fd, .nr_files = 1, .eventfd = efd};

	return uring_init_restricted(ring, depth, &l, err, errlen);
}

static int prefetch_setup(struct uffd_server *s)
{
	const struct uffd_strategy *st = &s->o.strategy;
	char err[160];
	int ret;

	s->nslots = st->depth;
	s->slots = calloc(s->nslots, sizeof(*s->slots));
	if (st->batch == 0)
		return -EINVAL;
	s->scratch = calloc(st->batch, sizeof(*s->scratch));
	s->plan = calloc(st->batch, sizeof(*s->plan));
	if (!s->slots || !s->scratch || !s->plan)
		return -ENOMEM;
	s->staging_len = (size_t)s->nslots * st->extent_pages * UFFD_PAGE;
	s->staging = mmap(NULL, s->staging_len, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (s->staging == MAP_FAILED) {
		s->staging = NULL;
		return -ENOMEM;
	}
	s->ring_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->ring_efd < 0)
		return -errno;
	ret = uffd_ring_init(&s->ring, s->nslots, s->o.src_fd, s->ring_efd, err, sizeof(err));
	if (ret) {
		log_err("uffd: %s", err);
		return ret;
	}
	s->ring_ok = true;
	s->prefetching = s->o.nws > 0;
	return 0;
}

/* ---------------------------------------------------------------- life cycle */

static uint64_t *bitmap(uint64_t npages)
{
	return calloc((npages + 63) / 64, sizeof(uint64_t));
}

int uffd_server_create(const struct uffd_server_opts *o, struct uffd_server **out)
{
	struct uffd_server *s;
	int ret = -ENOMEM;

	if (o->nr_regions == 0 || o->nr_regions > UFFD_MAX_REGIONS || o->mem_size % UFFD_PAGE)
		return -EINVAL;
	for (size_t i = 0; i < o->nr_regions; i++)
		if (o->regions[i].offset > o->mem_size ||
		    o->regions[i].size > o->mem_size - o->regions[i].offset)
			return -ERANGE;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->o = *o;
	s->ring_efd = -1;
	memcpy(s->regions, o->regions, o->nr_regions * sizeof(*o->regions));
	s->o.regions = s->regions;
	s->npages = o->mem_size / UFFD_PAGE;
	s->chunk_pages = o->strategy.chunk / UFFD_PAGE ? o->strategy.chunk / UFFD_PAGE : 1;
	s->removed = bitmap(s->npages);
	s->filled = bitmap(s->npages);
	if (!s->removed || !s->filled)
		goto fail;
	if (o->zero_bits) {
		s->zero = bitmap(s->npages);
		if (!s->zero)
			goto fail;
		/* the snapshot's byte layout is the u64 layout on a little-endian host */
		memcpy(s->zero, o->zero_bits, (s->npages + 7) / 8);
	}
	if (o->record) {
		s->recbits = bitmap(s->npages);
		s->rec = malloc(s->npages * sizeof(*s->rec) + 8);
		if (!s->recbits || !s->rec)
			goto fail;
	}
	if (o->strategy.mode == UFFD_MODE_PREFETCH && o->nws) {
		ret = prefetch_setup(s);
		if (ret)
			goto fail;
	}
	*out = s;
	return 0;
fail:
	uffd_server_destroy(s);
	return ret;
}

int uffd_server_run(struct uffd_server *s, int stop_fd)
{
	if (!s->started) {
		s->started = true;
		s->t_start = now_ns();
		if (s->prefetching)
			refill(s);
	}
	for (;;) {
		struct pollfd p[3] = {{.fd = s->o.uffd, .events = POLLIN},
				      {.fd = stop_fd, .events = POLLIN},
				      {.fd = s->prefetching ? s->ring_efd : -1, .events = POLLIN}};
		/* after -EAGAIN, retry soon: the remover goes on once its event is read */
		int timeout = s->npend || (s->prefetching && any_ready(s)) ? 1 : -1;
		int ret;

		if (poll(p, 3, timeout) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (p[1].revents)
			return 0;
		if (p[0].revents & (POLLERR | POLLNVAL))
			return -EBADF;
		ret = read_events(s);
		if (ret) {
			log_err("uffd: reading events: %s", strerror(-ret));
			return ret;
		}
		serve_pending(s);
		if (s->prefetching) {
			if (p[2].revents)
				reap(s);
			/* faults first: install prefetched data only with none waiting */
			if (s->npend == 0 && install_ready(s) == 0)
				refill(s);
		}
	}
}

void uffd_server_stats(const struct uffd_server *s, struct uffd_stats *st)
{
	*st = s->st;
}

const uint64_t *uffd_server_recorded(const struct uffd_server *s, size_t *n)
{
	*n = s->nrec;
	return s->rec;
}

void uffd_server_destroy(struct uffd_server *s)
{
	if (!s)
		return;
	if (s->ring_ok)
		io_uring_queue_exit(&s->ring);
	if (s->ring_efd >= 0)
		close(s->ring_efd);
	if (s->staging)
		munmap(s->staging, s->staging_len);
	free(s->slots);
	free(s->scratch);
	free(s->plan);
	free(s->zero);
	free(s->removed);
	free(s->filled);
	free(s->recbits);
	free(s->rec);
	free(s);
}
