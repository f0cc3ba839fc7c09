/* Shared by the virtio unit tests: a fake VM whose guest memory is a plain buffer
 * (no /dev/kvm), and a tiny "driver" that writes the transport registers and builds
 * rings by hand, as a guest would. */
#ifndef TEST_VIRTIO_HARNESS_H
#define TEST_VIRTIO_HARNESS_H

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include <linux/virtio_mmio.h>

#include "vmm/virtio/virtio_int.h"
#include "restore/snapshot.h"

#include <stdio.h>

#define H_MEM_SIZE (4u << 20)
/* Guest-physical layout the fake driver uses: rings of queue i at H_RING(i). */
#define H_RING(i)  (0x10000ull + (uint64_t)(i)*0x10000ull)
#define H_DESC(i)  H_RING(i)
#define H_AVAIL(i) (H_RING(i) + 0x4000)
#define H_USED(i)  (H_RING(i) + 0x8000)
#define H_DATA	   0x100000ull /* buffers from here up */

/* A VM with only what the devices touch: memory, the MMIO bus, the loop. */
static inline struct vm *h_vm_new(uint64_t mem_size)
{
	struct vm *vm = calloc(1, sizeof(*vm));
	void *p;

	assert_non_null(vm);
	vm->vm_fd = vm->kvm_fd = vm->exit_fd = -1;
	p = mmap(NULL, mem_size, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	assert_true(p != MAP_FAILED);
	vmm_mem_layout(&vm->mem, mem_size);
	vm->mem.host = p;
	vm->mem.owned = true;
	assert_int_equal(vmm_loop_init(&vm->loop), 0);
	return vm;
}

/* Command-line device specs into typed configurations (0, or -EINVAL). */
static inline int h_parse_drive(const char *spec, struct vmm_drive_cfg *c)
{
	char err[256];
	unsigned given;

	return vmm_parse_drive(spec, NULL, c, &given, err, sizeof(err));
}

static inline int h_parse_net(const char *spec, struct vmm_net_cfg *c)
{
	char err[256];
	unsigned given;

	return vmm_parse_net(spec, NULL, c, &given, err, sizeof(err));
}

static inline int h_parse_vsock(const char *spec, struct vmm_vsock_cfg *c)
{
	char err[256];
	unsigned given;

	return vmm_parse_vsock(spec, NULL, c, &given, err, sizeof(err));
}

/* A device through a real snapshot file: virtio_save_section into a new file,
 * snap_open, virtio_decode_section of its section. The decoded state must equal what
 * virtio_save sees, and is returned in `out` for the caller to restore. */
static inline void h_file_roundtrip(struct virtio_dev *d, struct virtio_saved *out)
{
	char path[] = "/tmp/thaw-test-devsnap-XXXXXX", name[32], err[256] = "";
	static uint8_t mem[4096];
	struct virtio_saved direct;
	struct snap_writer *w;
	struct snap *s;
	const struct snap_section *sec;
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(snap_writer_create(path, &(struct snap_writer_opts){.no_fsync = true}, &w),
			 0);
	assert_int_equal(virtio_save_section(d, w), 0);
	assert_int_equal(snap_writer_set_memory(w, mem, sizeof(mem)), 0);
	assert_int_equal(snap_writer_commit(w, NULL), 0);
	assert_int_equal(snap_open(path, &s, err, sizeof(err)), 0);
	virtio_save(d, &direct);
	snprintf(name, sizeof(name), "device.virtio%u", direct.place.index);
	sec = snap_section_find(s, name);
	assert_non_null(sec);
	if (virtio_decode_section(sec, out, err, sizeof(err)))
		fail_msg("%s", err);
	assert_memory_equal(out, &direct, sizeof(direct));
	snap_close(s);
	unlink(path);
}

static inline void h_vm_free(struct vm *vm)
{
	virtio_detach_all(vm);
	vmm_loop_destroy(&vm->loop);
	vmm_mem_free(&vm->mem);
	free(vm);
}

static inline void *h_ptr(struct vm *vm, uint64_t gpa)
{
	return vm->mem.host + gpa;
}

static inline uint32_t h_rd(struct virtio_dev *d, uint64_t off)
{
	uint32_t v;

	virtio_mmio_access(d, off, (uint8_t *)&v, 4, false);
	return v;
}

static inline void h_wr(struct virtio_dev *d, uint64_t off, uint32_t v)
{
	virtio_mmio_access(d, off, (uint8_t *)&v, 4, true);
}

/* Whether the device raised its interrupt since the last call (reads the irqfd). */
static inline bool h_irq(struct virtio_dev *d)
{
	uint64_t n;

	return read(d->irqfd, &n, sizeof(n)) == sizeof(n);
}

/* The driver side of one queue. */
struct h_queue {
	struct vm *vm;
	unsigned slot; /* rings at H_RING(slot) */
	uint16_t size;
	uint16_t avail_idx; /* next avail ring slot */
	uint16_t next_desc; /* next free descriptor */
	uint16_t used_seen;
};

static inline struct vring_desc *h_desc(struct h_queue *q)
{
	return h_ptr(q->vm, H_DESC(q->slot));
}

static inline struct vring_avail *h_avail(struct h_queue *q)
{
	return h_ptr(q->vm, H_AVAIL(q->slot));
}

static inline struct vring_used *h_used(struct h_queue *q)
{
	return h_ptr(q->vm, H_USED(q->slot));
}

/* Sets up queue `qi` with `size` entries and rings at H_RING(slot) through the
 * registers. */
static inline void h_queue_setup(struct virtio_dev *d, struct h_queue *q, unsigned qi,
				 unsigned slot, uint16_t size)
{
	memset(q, 0, sizeof(*q));
	q->vm = d->vm;
	q->slot = slot;
	q->size = size;
	memset(h_ptr(d->vm, H_RING(slot)), 0, 0x10000);
	h_wr(d, VIRTIO_MMIO_QUEUE_SEL, qi);
	h_wr(d, VIRTIO_MMIO_QUEUE_NUM, size);
	h_wr(d, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)H_DESC(slot));
	h_wr(d, VIRTIO_MMIO_QUEUE_DESC_HIGH, 0);
	h_wr(d, VIRTIO_MMIO_QUEUE_AVAIL_LOW, (uint32_t)H_AVAIL(slot));
	h_wr(d, VIRTIO_MMIO_QUEUE_AVAIL_HIGH, 0);
	h_wr(d, VIRTIO_MMIO_QUEUE_USED_LOW, (uint32_t)H_USED(slot));
	h_wr(d, VIRTIO_MMIO_QUEUE_USED_HIGH, 0);
	h_wr(d, VIRTIO_MMIO_QUEUE_READY, 1);
}

/* The whole driver bring-up: ACK, DRIVER, features (all offered when `features` is
 * ~0), FEATURES_OK, `nq` queues of `size` with rings from H_RING(slot), DRIVER_OK. */
static inline void h_driver_up(struct virtio_dev *d, uint64_t features, struct h_queue *qs,
			       unsigned nq, uint16_t size, unsigned slot)
{
	uint64_t offered;

	h_wr(d, VIRTIO_MMIO_STATUS, 0);
	h_wr(d, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	h_wr(d, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	h_wr(d, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	offered = h_rd(d, VIRTIO_MMIO_DEVICE_FEATURES);
	h_wr(d, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	offered |= (uint64_t)h_rd(d, VIRTIO_MMIO_DEVICE_FEATURES) << 32;
	features &= offered;
	h_wr(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	h_wr(d, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)features);
	h_wr(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	h_wr(d, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(features >> 32));
	h_wr(d, VIRTIO_MMIO_STATUS,
	     VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
	assert_true(h_rd(d, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_FEATURES_OK);
	for (unsigned i = 0; i < nq; i++)
		h_queue_setup(d, &qs[i], i, slot + i, size);
	h_wr(d, VIRTIO_MMIO_STATUS,
	     VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK |
		 VIRTIO_CONFIG_S_DRIVER_OK);
	assert_true(h_rd(d, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_DRIVER_OK);
}

/* Writes descriptor `i`. */
static inline void h_set_desc(struct h_queue *q, uint16_t i, uint64_t addr, uint32_t len,
			      uint16_t flags, uint16_t next)
{
	struct vring_desc *d = &h_desc(q)[i];

	d->addr = addr;
	d->len = len;
	d->flags = flags;
	d->next = next;
}

/* Adds a chain of `n` buffers (`writable[i]` says which) taking consecutive free
 * descriptors, and publishes it. Returns the head. */
static inline uint16_t h_add_chain(struct h_queue *q, unsigned n, const uint64_t *addr,
				   const uint32_t *len, const bool *writable)
{
	uint16_t head = q->next_desc;

	for (unsigned i = 0; i < n; i++) {
		uint16_t cur = (uint16_t)((head + i) % q->size);
		uint16_t flags = (uint16_t)((writable[i] ? VRING_DESC_F_WRITE : 0) |
					    (i + 1 < n ? VRING_DESC_F_NEXT : 0));

		h_set_desc(q, cur, addr[i], len[i], flags, (uint16_t)((cur + 1) % q->size));
	}
	q->next_desc = (uint16_t)((head + n) % q->size);
	return head;
}

/* Makes `head` available. */
static inline void h_publish(struct h_queue *q, uint16_t head)
{
	struct vring_avail *a = h_avail(q);

	a->ring[q->avail_idx % q->size] = head;
	q->avail_idx++;
	__atomic_store_n(&a->idx, q->avail_idx, __ATOMIC_RELEASE);
}

static inline void h_kick(struct virtio_dev *d, unsigned qi)
{
	h_wr(d, VIRTIO_MMIO_QUEUE_NOTIFY, qi);
}

/* Takes the next used element; false when there is none. */
static inline bool h_take_used(struct h_queue *q, uint32_t *id, uint32_t *len)
{
	struct vring_used *u = h_used(q);

	if (__atomic_load_n(&u->idx, __ATOMIC_ACQUIRE) == q->used_seen)
		return false;
	*id = u->ring[q->used_seen % q->size].id;
	*len = u->ring[q->used_seen % q->size].len;
	q->used_seen++;
	return true;
}

/* The starvation attack: a "guest" thread that republishes chain `head` whenever the
 * device has used one, so the avail ring never empties. It stops by itself after
 * `max` chains (today's code would otherwise loop forever) or at h_flood_stop. */
struct h_flood {
	struct h_queue *q;
	uint16_t head;
	unsigned max;
	unsigned published; /* written by the thread, read after the join */
	bool stop;	    /* atomic */
	pthread_t thread;
};

static inline uint16_t h_used_idx(struct h_queue *q)
{
	return __atomic_load_n(&h_used(q)->idx, __ATOMIC_ACQUIRE);
}

static inline void *h_flood_run(void *arg)
{
	struct h_flood *f = arg;

	while (!__atomic_load_n(&f->stop, __ATOMIC_ACQUIRE) && f->published < f->max) {
		if ((uint16_t)(f->q->avail_idx - h_used_idx(f->q)) < f->q->size) {
			h_publish(f->q, f->head);
			f->published++;
		} else {
			sched_yield();
		}
	}
	return NULL;
}

/* Fills the ring with `head` and starts republishing it. */
static inline void h_flood_start(struct h_flood *f, struct h_queue *q, uint16_t head, unsigned max)
{
	memset(f, 0, sizeof(*f));
	f->q = q;
	f->head = head;
	f->max = max;
	while ((uint16_t)(q->avail_idx - h_used_idx(q)) < q->size) {
		h_publish(q, head);
		f->published++;
	}
	assert_int_equal(pthread_create(&f->thread, NULL, h_flood_run, f), 0);
}

/* Waits until the ring is full again (so a test knows how much is pending), stops the
 * thread and returns how many chains it published in all. */
static inline unsigned h_flood_stop(struct h_flood *f)
{
	while (f->published < f->max &&
	       (uint16_t)(__atomic_load_n(&h_avail(f->q)->idx, __ATOMIC_ACQUIRE) -
			  h_used_idx(f->q)) < f->q->size)
		sched_yield();
	__atomic_store_n(&f->stop, true, __ATOMIC_RELEASE);
	assert_int_equal(pthread_join(f->thread, NULL), 0);
	return f->published;
}

/* Whether queue `qi`'s kick eventfd was signalled (the device re-armed it for a later
 * loop round); reads it, as the loop would. */
static inline bool h_rearmed(struct virtio_dev *d, unsigned qi)
{
	uint64_t n;

	return read(d->kick_fd[qi], &n, sizeof(n)) == sizeof(n);
}

/* One main-loop round for the device's kick fds: what the loop calls when the device's
 * kick epoll set is readable. */
static inline void h_loop_round(struct virtio_dev *d)
{
	for (unsigned i = 0; i < VMM_LOOP_MAX; i++) {
		struct vmm_loop_entry *e = &d->vm->loop.entries[i];

		if (e->fd == d->kick_ep && e->fn) {
			e->fn(e->opaque, EPOLLIN);
			return;
		}
	}
	fail_msg("kick epoll set of %s not on the loop", d->id);
}

static inline bool h_needs_reset(struct virtio_dev *d)
{
	return h_rd(d, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET;
}

#endif
