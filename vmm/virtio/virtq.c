/* The one split virtqueue implementation every device uses.
 *
 * The rings live in guest memory and the guest writes them while we read: every
 * index read from them is checked before use, every buffer address goes through
 * vmm_gpa, and indices are loaded once (a second load could see another value).
 * Anything malformed is reported to the caller, which marks the device as needing
 * reset; nothing here trusts the guest enough to crash on it.
 */
#include "vmm/virtio/virtio_int.h"

#include <errno.h>
#include <string.h>

static inline uint16_t load16(const volatile uint16_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static inline void store16(volatile uint16_t *p, uint16_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

int virtq_setup(struct virtq *q, struct virtq_state *s, const struct vmm_mem *mem,
		uint16_t max_size, uint64_t features, const char **why)
{
	uint64_t n = s->size;

	memset(q, 0, sizeof(*q));
	q->s = s;
	q->mem = mem;
	q->max_size = max_size;
	q->event_idx = features & (1ull << VIRTIO_RING_F_EVENT_IDX);
	q->indirect = features & (1ull << VIRTIO_RING_F_INDIRECT_DESC);
	if (n == 0 || n > max_size || (n & (n - 1))) {
		*why = "queue size is zero, not a power of two, or above the maximum";
		return -EINVAL;
	}
	if ((s->desc & 15) || (s->avail & 1) || (s->used & 3)) {
		*why = "ring address misaligned";
		return -EINVAL;
	}
	/* Sizes include the event index words at each ring's end. */
	q->desc = vmm_gpa(mem, s->desc, 16 * n);
	q->avail = vmm_gpa(mem, s->avail, 6 + 2 * n);
	q->used = vmm_gpa(mem, s->used, 6 + 8 * n);
	if (!q->desc || !q->avail || !q->used) {
		*why = "ring outside guest memory";
		q->desc = NULL;
		q->avail = NULL;
		q->used = NULL;
		return -EINVAL;
	}
	return 0;
}

bool virtq_has_avail(const struct virtq *q)
{
	return q->avail && load16(&q->avail->idx) != q->s->next_avail;
}

/* Adds one buffer to the chain being built, checking it against guest RAM and the
 * order rule (writable buffers after readable ones). */
static int add_buf(struct virtq *q, struct virtq_elem *e, uint64_t addr, uint32_t len, bool write,
		   const char **why)
{
	void *p;

	if (e->nr_out + e->nr_in >= VIRTQ_MAX_CHAIN) {
		*why = "descriptor chain too long";
		return -EINVAL;
	}
	if (!write && e->nr_in) {
		*why = "device-readable descriptor after a writable one";
		return -EINVAL;
	}
	p = vmm_gpa(q->mem, addr, len);
	if (!p) {
		*why = "descriptor buffer outside guest memory";
		return -EINVAL;
	}
	if (write) {
		if (e->in_len + len > UINT32_MAX) {
			*why = "chain length overflows 32 bits";
			return -EINVAL;
		}
		e->in_len += len;
		e->nr_in++;
	} else {
		if (e->out_len + len > UINT32_MAX) {
			*why = "chain length overflows 32 bits";
			return -EINVAL;
		}
		e->out_len += len;
		e->nr_out++;
	}
	e->iov[e->nr_out + e->nr_in - 1] = (struct iovec){p, len};
	return 0;
}

/* Walks an indirect table of `len` bytes at `addr`. */
static int walk_indirect(struct virtq *q, struct virtq_elem *e, uint64_t addr, uint32_t len,
			 const char **why)
{
	const struct vring_desc *table;
	unsigned n, i, count = 0;

	if (!q->indirect) {
		*why = "indirect descriptor without VIRTIO_RING_F_INDIRECT_DESC";
		return -EINVAL;
	}
	if (len == 0 || len % sizeof(struct vring_desc)) {
		*why = "indirect table length not a multiple of 16";
		return -EINVAL;
	}
	n = len / sizeof(struct vring_desc);
	if (n > VIRTQ_MAX_CHAIN) {
		*why = "indirect table too long";
		return -EINVAL;
	}
	table = vmm_gpa(q->mem, addr, len);
	if (!table) {
		*why = "indirect table outside guest memory";
		return -EINVAL;
	}
	for (i = 0;;) {
		struct vring_desc d;
		int ret;

		memcpy(&d, &table[i], sizeof(d)); /* one read: the guest may be writing */
		if (d.flags & VRING_DESC_F_INDIRECT) {
			*why = "nested indirect descriptor";
			return -EINVAL;
		}
		ret = add_buf(q, e, d.addr, d.len, d.flags & VRING_DESC_F_WRITE, why);
		if (ret)
			return ret;
		if (!(d.flags & VRING_DESC_F_NEXT))
			return 0;
		if (++count >= n) {
			*why = "indirect chain loops or runs past its table";
			return -EINVAL;
		}
		if (d.next >= n) {
			*why = "indirect next index outside its table";
			return -EINVAL;
		}
		i = d.next;
	}
}

int virtq_pop(struct virtq *q, struct virtq_elem *e, const char **why)
{
	uint16_t size = q->s->size, avail_idx, head, i;
	unsigned count = 0;

	if (!q->avail)
		return 0;
	avail_idx = load16(&q->avail->idx);
	if (avail_idx == q->s->next_avail) {
		if (!q->event_idx)
			return 0;
		/* Ask for a notification at the next entry, then look again: the driver
		 * may have added one before it saw the new avail_event. */
		store16((volatile uint16_t *)&q->used->ring[size], q->s->next_avail);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		avail_idx = load16(&q->avail->idx);
		if (avail_idx == q->s->next_avail)
			return 0;
	}
	if ((uint16_t)(avail_idx - q->s->next_avail) > size) {
		*why = "avail index moved by more than the queue size";
		return -EINVAL;
	}
	head = load16(&q->avail->ring[q->s->next_avail & (size - 1)]);
	if (head >= size) {
		*why = "avail ring head index outside the descriptor table";
		return -EINVAL;
	}
	e->head = head;
	e->nr_in = e->nr_out = 0;
	e->in_len = e->out_len = 0;
	for (i = head;;) {
		struct vring_desc d;
		int ret;

		memcpy(&d, &q->desc[i], sizeof(d));
		if (d.flags & VRING_DESC_F_INDIRECT) {
			if (d.flags & VRING_DESC_F_NEXT) {
				*why = "indirect descriptor with NEXT set";
				return -EINVAL;
			}
			ret = walk_indirect(q, e, d.addr, d.len, why);
			if (ret)
				return ret;
			break;
		}
		ret = add_buf(q, e, d.addr, d.len, d.flags & VRING_DESC_F_WRITE, why);
		if (ret)
			return ret;
		if (!(d.flags & VRING_DESC_F_NEXT))
			break;
		if (++count >= size) {
			*why = "descriptor chain loops or is longer than the queue";
			return -EINVAL;
		}
		if (d.next >= size) {
			*why = "descriptor next index outside the table";
			return -EINVAL;
		}
		i = d.next;
	}
	q->s->next_avail++;
	return 1;
}

void virtq_unpop(struct virtq *q)
{
	q->s->next_avail--;
}

void virtq_push(struct virtq *q, uint16_t head, uint32_t len)
{
	uint16_t size = q->s->size;
	struct vring_used_elem *u;

	if (!q->used)
		return;
	u = &q->used->ring[q->s->next_used & (size - 1)];
	u->id = head;
	u->len = len;
	q->s->next_used++;
	/* The element must be visible before the index that publishes it. */
	store16(&q->used->idx, q->s->next_used);
}

bool virtq_should_notify(struct virtq *q)
{
	uint16_t old, now = q->s->next_used, event;

	if (!q->avail)
		return false;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!q->event_idx)
		return !(load16(&q->avail->flags) & VRING_AVAIL_F_NO_INTERRUPT);
	old = q->s->signalled_used;
	q->s->signalled_used = now;
	if (!q->s->signalled_valid) {
		q->s->signalled_valid = true;
		return true;
	}
	event = load16(&q->avail->ring[q->s->size]);
	/* vring_need_event: did `now` pass `event` since `old`? (spec 2.7.10) */
	return (uint16_t)(now - event - 1) < (uint16_t)(now - old);
}

size_t iov_to_buf(const struct iovec *iov, unsigned n, size_t skip, void *buf, size_t len)
{
	size_t done = 0;

	for (unsigned i = 0; i < n && done < len; i++) {
		size_t l = iov[i].iov_len, c;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		c = l - skip < len - done ? l - skip : len - done;
		memcpy((uint8_t *)buf + done, (uint8_t *)iov[i].iov_base + skip, c);
		done += c;
		skip = 0;
	}
	return done;
}

size_t iov_from_buf(const struct iovec *iov, unsigned n, size_t skip, const void *buf, size_t len)
{
	size_t done = 0;

	for (unsigned i = 0; i < n && done < len; i++) {
		size_t l = iov[i].iov_len, c;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		c = l - skip < len - done ? l - skip : len - done;
		memcpy((uint8_t *)iov[i].iov_base + skip, (const uint8_t *)buf + done, c);
		done += c;
		skip = 0;
	}
	return done;
}

unsigned iov_slice(const struct iovec *src, unsigned n, size_t skip, size_t len, struct iovec *dst,
		   unsigned max)
{
	unsigned k = 0;

	for (unsigned i = 0; i < n && len && k < max; i++) {
		size_t l = src[i].iov_len, c;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		c = l - skip < len ? l - skip : len;
		if (c == 0)
			continue;
		dst[k].iov_base = (uint8_t *)src[i].iov_base + skip;
		dst[k].iov_len = c;
		k++;
		len -= c;
		skip = 0;
	}
	return k;
}
