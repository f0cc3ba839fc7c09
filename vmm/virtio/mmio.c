/* The virtio-mmio transport (version 2 registers) and the device core shared by all
 * devices: feature negotiation, queue setup, status, interrupts through an irqfd,
 * notifications through ioeventfds.
 *
 * Threads: vCPU threads enter through virtio_mmio_access; the main thread enters
 * through the kick eventfds and the backends. Each device has one lock, taken by
 * both. Kick eventfds are served on the main thread's loop rather than a worker per
 * device: the backends (io_uring completions, tap, unix sockets) already live there,
 * so one thread owns each device's data path, no wake-up crosses threads, and the
 * seccomp policy stays one per thread kind. A device that needs its own core later can
 * move its kick fd to a worker without touching the transport.
 */
#include "vmm/virtio/virtio_int.h"

#include <errno.h>
#include <linux/virtio_mmio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define VIRTIO_MMIO_MAGIC  0x74726976 /* "virt" */
#define VIRTIO_MMIO_VENDOR 0x77616874 /* "thaw" */

/* Status bits the driver may set; NEEDS_RESET is the device's. */
#define STATUS_DRIVER_BITS                                                                         \
	(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_DRIVER_OK |        \
	 VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_FAILED)

void virtio_dev_init(struct virtio_dev *d, const struct virtio_dev_ops *ops, struct vm *vm,
		     const char *id, const struct vmm_dev_place *place, uint64_t features)
{
	d->ops = ops;
	d->vm = vm;
	snprintf(d->id, sizeof(d->id), "%s", id);
	d->place = (struct virtio_placement){
	    .index = place->index,
	    .device_id = ops->device_id,
	    .base = place->base,
	    .irq = place->irq,
	};
	pthread_mutex_init(&d->lock, NULL);
	memset(&d->regs, 0, sizeof(d->regs));
	memset(&d->vs, 0, sizeof(d->vs));
	memset(d->vq, 0, sizeof(d->vq));
	d->vs.device_features = features | (1ull << VIRTIO_F_VERSION_1);
	d->vs.nr_queues = ops->nr_queues;
	d->irqfd = -1;
	d->kick_ep = -1;
	d->kick_watched = false;
	for (unsigned i = 0; i < VIRTIO_MAX_QUEUES; i++) {
		d->kick_fd[i] = -1;
		d->vq[i].s = &d->vs.q[i];
	}
	d->kvm_bound = false;
}

bool virtio_has_feature(const struct virtio_dev *d, unsigned bit)
{
	return d->vs.driver_features & (1ull << bit);
}

bool virtio_dev_live(const struct virtio_dev *d)
{
	return (d->regs.status & VIRTIO_CONFIG_S_DRIVER_OK) &&
	       !(d->regs.status & VIRTIO_CONFIG_S_NEEDS_RESET);
}

/* Raises the device's interrupt: an eventfd write that KVM turns into an edge on the
 * GSI (irqfd), with no exit and no lock in the kernel path. */
static void raise_irq(struct virtio_dev *d, uint32_t why)
{
	uint64_t one = 1;

	d->regs.interrupt_status |= why;
	if (d->irqfd >= 0 && write(d->irqfd, &one, sizeof(one)) < 0)
		log_ratelimited(LOG_WARN, "virtio %s: irqfd write: %s", d->id, strerror(errno));
}

void virtio_set_needs_reset(struct virtio_dev *d, const char *why)
{
	if (d->regs.status & VIRTIO_CONFIG_S_NEEDS_RESET)
		return;
	log_ratelimited(LOG_WARN, "virtio %s: guest error: %s; device needs reset", d->id, why);
	d->regs.status |= VIRTIO_CONFIG_S_NEEDS_RESET;
	/* Only a driver past FEATURES_OK may be told (spec 2.1.2); before that it
	 * finds the bit when it reads the status. */
	if (d->regs.status & VIRTIO_CONFIG_S_DRIVER_OK) {
		d->regs.config_generation++;
		raise_irq(d, VIRTIO_MMIO_INT_CONFIG);
	}
}

void virtio_config_changed(struct virtio_dev *d)
{
	d->regs.config_generation++;
	if (d->regs.status & VIRTIO_CONFIG_S_DRIVER_OK)
		raise_irq(d, VIRTIO_MMIO_INT_CONFIG);
}

int virtio_pop(struct virtio_dev *d, unsigned qi, struct virtq_elem *e)
{
	const char *why = NULL;
	int ret;

	if (qi >= d->vs.nr_queues || !virtio_dev_live(d) || !d->vs.q[qi].ready)
		return 0;
	ret = virtq_pop(&d->vq[qi], e, &why);
	if (ret < 0) {
		char msg[128];

		snprintf(msg, sizeof(msg), "queue %u: %s", qi, why);
		virtio_set_needs_reset(d, msg);
	}
	return ret;
}

void virtio_notify(struct virtio_dev *d, unsigned qi)
{
	if (virtq_should_notify(&d->vq[qi]))
		raise_irq(d, VIRTIO_MMIO_INT_VRING);
}

void virtio_requeue(struct virtio_dev *d, unsigned qi)
{
	uint64_t one = 1;

	/* Even when the ring looks empty now: only a pop that finds it empty re-arms
	 * EVENT_IDX's avail_event, without which the driver may not notify again. The
	 * loop reads the eventfd before calling the handler, so this survives. */
	if (qi >= d->vs.nr_queues || d->kick_fd[qi] < 0 || !virtio_dev_live(d) ||
	    !d->vs.q[qi].ready)
		return;
	if (write(d->kick_fd[qi], &one, sizeof(one)) < 0)
		log_ratelimited(LOG_WARN, "virtio %s: re-arming queue %u: %s", d->id, qi,
				strerror(errno));
}

void virtio_push(struct virtio_dev *d, unsigned qi, uint16_t head, uint32_t len)
{
	if (!d->vs.q[qi].ready)
		return;
	virtq_push(&d->vq[qi], head, len);
	virtio_notify(d, qi);
}

/* Back to the state after power-on: transport registers, features, queues. */
static void dev_reset(struct virtio_dev *d)
{
	uint64_t features = d->vs.device_features;

	if (d->ops->reset)
		d->ops->reset(d);
	memset(&d->regs, 0, sizeof(d->regs));
	memset(&d->vs.q, 0, sizeof(d->vs.q));
	d->vs.driver_features = 0;
	d->vs.device_features = features;
	for (unsigned i = 0; i < VIRTIO_MAX_QUEUES; i++) {
		memset(&d->vq[i], 0, sizeof(d->vq[i]));
		d->vq[i].s = &d->vs.q[i];
	}
}

static struct virtq_state *selected(struct virtio_dev *d)
{
	return d->regs.queue_sel < d->vs.nr_queues ? &d->vs.q[d->regs.queue_sel] : NULL;
}

static void queue_ready(struct virtio_dev *d, uint32_t v)
{
	unsigned qi = d->regs.queue_sel;
	struct virtq_state *s = selected(d);
	const char *why;
	char msg[128];

	if (!s)
		return;
	if (!v) {
		s->ready = false;
		memset(&d->vq[qi], 0, sizeof(d->vq[qi]));
		d->vq[qi].s = s;
		return;
	}
	if (virtq_setup(&d->vq[qi], s, &d->vm->mem, d->ops->queue_max, d->vs.driver_features,
			&why)) {
		snprintf(msg, sizeof(msg), "queue %u setup: %s", qi, why);
		virtio_set_needs_reset(d, msg);
		return;
	}
	s->ready = true;
	s->next_avail = s->next_used = 0;
	s->signalled_used = 0;
	s->signalled_valid = false;
}

static void status_write(struct virtio_dev *d, uint32_t v)
{
	uint32_t old = d->regs.status;

	if (v == 0) {
		dev_reset(d);
		return;
	}
	v &= STATUS_DRIVER_BITS;
	if ((v & VIRTIO_CONFIG_S_FEATURES_OK) && !(old & VIRTIO_CONFIG_S_FEATURES_OK)) {
		uint64_t acked = d->vs.driver_features;

		/* Refusing FEATURES_OK (leaving it clear) is how a device says no; the
		 * driver reads the status back and gives up. */
		if ((acked & ~d->vs.device_features) || !(acked & (1ull << VIRTIO_F_VERSION_1))) {
			log_ratelimited(LOG_WARN,
					"virtio %s: driver acked features %#llx outside offered "
					"%#llx or without VERSION_1; FEATURES_OK refused",
					d->id, (unsigned long long)acked,
					(unsigned long long)d->vs.device_features);
			v &= ~(uint32_t)(VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
		}
	}
	if ((v & VIRTIO_CONFIG_S_DRIVER_OK) && !(v & VIRTIO_CONFIG_S_FEATURES_OK))
		v &= ~(uint32_t)VIRTIO_CONFIG_S_DRIVER_OK;
	d->regs.status = v | (old & VIRTIO_CONFIG_S_NEEDS_RESET);
	if ((v & VIRTIO_CONFIG_S_DRIVER_OK) && !(old & VIRTIO_CONFIG_S_DRIVER_OK) &&
	    d->ops->activate && !(old & VIRTIO_CONFIG_S_NEEDS_RESET)) {
		if (d->ops->activate(d))
			virtio_set_needs_reset(d, "backend could not start");
	}
}

static uint32_t reg_read(struct virtio_dev *d, uint64_t off)
{
	struct virtq_state *s = selected(d);

	switch (off) {
	case VIRTIO_MMIO_MAGIC_VALUE:
		return VIRTIO_MMIO_MAGIC;
	case VIRTIO_MMIO_VERSION:
		return 2;
	case VIRTIO_MMIO_DEVICE_ID:
		return d->ops->device_id;
	case VIRTIO_MMIO_VENDOR_ID:
		return VIRTIO_MMIO_VENDOR;
	case VIRTIO_MMIO_DEVICE_FEATURES:
		if (d->regs.dev_features_sel > 1)
			return 0;
		return (uint32_t)(d->vs.device_features >> (32 * d->regs.dev_features_sel));
	case VIRTIO_MMIO_QUEUE_NUM_MAX:
		return s ? d->ops->queue_max : 0;
	case VIRTIO_MMIO_QUEUE_READY:
		return s ? s->ready : 0;
	case VIRTIO_MMIO_INTERRUPT_STATUS:
		return d->regs.interrupt_status;
	case VIRTIO_MMIO_STATUS:
		return d->regs.status;
	case VIRTIO_MMIO_CONFIG_GENERATION:
		return d->regs.config_generation;
	case VIRTIO_MMIO_SHM_LEN_LOW:
	case VIRTIO_MMIO_SHM_LEN_HIGH:
		return 0xffffffff; /* no shared memory regions */
	default:
		return 0;
	}
}

static void set_half(uint64_t *v, bool high, uint32_t x)
{
	if (high)
		*v = (*v & 0xffffffffull) | ((uint64_t)x << 32);
	else
		*v = (*v & ~0xffffffffull) | x;
}

static void reg_write(struct virtio_dev *d, uint64_t off, uint32_t v)
{
	struct virtq_state *s = selected(d);
	/* Queue registers may change only while the queue is off and the driver has
	 * not finished (spec 4.2.3.2). */
	bool q_writable = s && !s->ready && !(d->regs.status & VIRTIO_CONFIG_S_DRIVER_OK);

	switch (off) {
	case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
		d->regs.dev_features_sel = v;
		break;
	case VIRTIO_MMIO_DRIVER_FEATURES:
		if ((d->regs.status & VIRTIO_CONFIG_S_FEATURES_OK) || d->regs.drv_features_sel > 1)
			break;
		set_half(&d->vs.driver_features, d->regs.drv_features_sel == 1, v);
		break;
	case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
		d->regs.drv_features_sel = v;
		break;
	case VIRTIO_MMIO_QUEUE_SEL:
		d->regs.queue_sel = v;
		break;
	case VIRTIO_MMIO_QUEUE_NUM:
		if (q_writable)
			s->size = v > 0xffff ? 0 : (uint16_t)v; /* checked at QueueReady */
		break;
	case VIRTIO_MMIO_QUEUE_READY:
		if (s && !(d->regs.status & VIRTIO_CONFIG_S_NEEDS_RESET))
			queue_ready(d, v);
		break;
	case VIRTIO_MMIO_QUEUE_NOTIFY:
		/* Only reached without an ioeventfd (unit tests, or a write of another
		 * width than the one KVM matches). */
		if (v < d->vs.nr_queues && d->ops->notify && virtio_dev_live(d))
			d->ops->notify(d, v);
		break;
	case VIRTIO_MMIO_INTERRUPT_ACK:
		d->regs.interrupt_status &= ~v;
		break;
	case VIRTIO_MMIO_STATUS:
		status_write(d, v);
		break;
	case VIRTIO_MMIO_QUEUE_DESC_LOW:
	case VIRTIO_MMIO_QUEUE_DESC_HIGH:
		if (q_writable)
			set_half(&s->desc, off == VIRTIO_MMIO_QUEUE_DESC_HIGH, v);
		break;
	case VIRTIO_MMIO_QUEUE_AVAIL_LOW:
	case VIRTIO_MMIO_QUEUE_AVAIL_HIGH:
		if (q_writable)
			set_half(&s->avail, off == VIRTIO_MMIO_QUEUE_AVAIL_HIGH, v);
		break;
	case VIRTIO_MMIO_QUEUE_USED_LOW:
	case VIRTIO_MMIO_QUEUE_USED_HIGH:
		if (q_writable)
			set_half(&s->used, off == VIRTIO_MMIO_QUEUE_USED_HIGH, v);
		break;
	default:
		log_ratelimited(LOG_DEBUG, "virtio %s: write to register %#llx ignored", d->id,
				(unsigned long long)off);
		break;
	}
}

void virtio_mmio_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct virtio_dev *d = opaque;

	pthread_mutex_lock(&d->lock);
	if (offset >= VIRTIO_MMIO_CONFIG) {
		uint32_t off = (uint32_t)(offset - VIRTIO_MMIO_CONFIG);

		if (off >= d->ops->config_len || len > d->ops->config_len - off) {
			if (!is_write)
				memset(data, 0, len);
		} else if (is_write) {
			if (d->ops->config_write)
				d->ops->config_write(d, off, data, len);
		} else {
			d->ops->config_read(d, off, data, len);
		}
	} else if (len != 4 || (offset & 3)) {
		/* Registers are 32-bit only (spec 4.2.2.2). */
		log_ratelimited(LOG_DEBUG, "virtio %s: %u-byte access to register %#llx ignored",
				d->id, len, (unsigned long long)offset);
		if (!is_write)
			memset(data, 0, len);
	} else if (is_write) {
		uint32_t v;

		memcpy(&v, data, 4);
		reg_write(d, offset, v);
	} else {
		uint32_t v = reg_read(d, offset);

		memcpy(data, &v, 4);
	}
	pthread_mutex_unlock(&d->lock);
}

/* ---------------------------------------------------------------- KVM binding */

static void on_kick(void *opaque, uint32_t events)
{
	struct virtio_dev *d = opaque;
	uint64_t n;

	__atomic_add_fetch(&d->vm->device_events, 1, __ATOMIC_RELAXED);

	pthread_mutex_lock(&d->lock);
	for (unsigned i = 0; i < d->vs.nr_queues; i++) {
		if (read(d->kick_fd[i], &n, sizeof(n)) == sizeof(n) && virtio_dev_live(d) &&
		    d->ops->notify)
			d->ops->notify(d, i);
	}
	pthread_mutex_unlock(&d->lock);
}

static int ioeventfd(struct virtio_dev *d, unsigned qi, bool assign)
{
	struct kvm_ioeventfd io = {
	    .datamatch = qi,
	    .addr = d->place.base + VIRTIO_MMIO_QUEUE_NOTIFY,
	    .len = 4,
	    .fd = d->kick_fd[qi],
	    .flags = KVM_IOEVENTFD_FLAG_DATAMATCH | (assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN),
	};

	if (ioctl(d->vm->vm_fd, KVM_IOEVENTFD, &io) < 0) {
		int e = errno;

		log_err("virtio %s: KVM_IOEVENTFD queue %u: %s", d->id, qi, strerror(e));
		return -e;
	}
	return 0;
}

static int irqfd(struct virtio_dev *d, bool assign)
{
	struct kvm_irqfd f = {
	    .fd = (uint32_t)d->irqfd,
	    .gsi = d->place.irq,
	    .flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN,
	};

	if (ioctl(d->vm->vm_fd, KVM_IRQFD, &f) < 0) {
		int e = errno;

		log_err("virtio %s: KVM_IRQFD gsi %u: %s", d->id, d->place.irq, strerror(e));
		return -e;
	}
	return 0;
}

int virtio_dev_bind(struct virtio_dev *d)
{
	struct vm *vm = d->vm;
	bool kvm = vm->vm_fd > 0;
	int ret;

	d->irqfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (d->irqfd < 0) {
		ret = -errno;
		log_err("virtio %s: eventfd: %s", d->id, strerror(-ret));
		return ret;
	}
	/* The loop's fd table is small: it watches one epoll set per device holding
	 * the device's kick eventfds. */
	d->kick_ep = epoll_create1(EPOLL_CLOEXEC);
	if (d->kick_ep < 0) {
		ret = -errno;
		log_err("virtio %s: epoll_create1: %s", d->id, strerror(-ret));
		goto fail;
	}
	for (unsigned i = 0; i < d->vs.nr_queues; i++) {
		struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};

		d->kick_fd[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (d->kick_fd[i] < 0 || epoll_ctl(d->kick_ep, EPOLL_CTL_ADD, d->kick_fd[i], &ev)) {
			ret = -errno;
			log_err("virtio %s: kick eventfd: %s", d->id, strerror(-ret));
			goto fail;
		}
	}
	ret = vmm_loop_add(&vm->loop, d->kick_ep, EPOLLIN, on_kick, d);
	if (ret)
		goto fail;
	d->kick_watched = true;
	if (kvm) {
		ret = irqfd(d, true);
		if (ret)
			goto fail;
		d->kvm_bound = true;
		for (unsigned i = 0; i < d->vs.nr_queues; i++) {
			ret = ioeventfd(d, i, true);
			if (ret)
				goto fail;
		}
	}
	ret = vmm_bus_register(&vm->mmio, d->place.base, VIRTIO_MMIO_SIZE, virtio_mmio_access, d,
			       d->id);
	if (ret)
		goto fail;
	return 0;
fail:
	virtio_dev_unbind(d);
	return ret;
}

/* vmm/ has no unregister (devices normally live as long as the VM); taking our own
 * entry out keeps the array sorted. Only while no vCPU runs: lookups take no lock. */
static void bus_remove(struct vmm_bus *bus, const struct virtio_dev *d)
{
	for (unsigned i = 0; i < bus->nr; i++) {
		if (bus->ranges[i].opaque != d || bus->ranges[i].fn != virtio_mmio_access)
			continue;
		memmove(&bus->ranges[i], &bus->ranges[i + 1],
			(bus->nr - i - 1) * sizeof(bus->ranges[0]));
		bus->nr--;
		return;
	}
}

void virtio_dev_unbind(struct virtio_dev *d)
{
	struct vm *vm = d->vm;

	bus_remove(&vm->mmio, d);
	if (d->kick_watched)
		vmm_loop_del(&vm->loop, d->kick_ep);
	d->kick_watched = false;
	for (unsigned i = 0; i < VIRTIO_MAX_QUEUES; i++) {
		if (d->kick_fd[i] < 0)
			continue;
		if (d->kvm_bound)
			ioeventfd(d, i, false);
		close(d->kick_fd[i]);
		d->kick_fd[i] = -1;
	}
	if (d->kick_ep >= 0)
		close(d->kick_ep);
	d->kick_ep = -1;
	if (d->irqfd >= 0) {
		if (d->kvm_bound)
			irqfd(d, false);
		close(d->irqfd);
		d->irqfd = -1;
	}
	d->kvm_bound = false;
}

/* ---------------------------------------------------------------- save and restore */

void virtio_save(struct virtio_dev *d, struct virtio_saved *out)
{
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&d->lock);
	out->version = VIRTIO_SAVED_VERSION;
	snprintf(out->id, sizeof(out->id), "%s", d->id);
	out->place = d->place;
	out->regs = d->regs;
	out->vs = d->vs;
	if (d->ops->save)
		d->ops->save(d, out);
	pthread_mutex_unlock(&d->lock);
}

static int bad(const struct virtio_dev *d, const char *why)
{
	log_err("virtio %s: saved state refused: %s", d->id, why);
	return -EINVAL;
}

int virtio_core_restore(struct virtio_dev *d, const struct virtio_saved *in)
{
	const struct virtio_state *vs = &in->vs;
	const char *why;

	if (in->version != VIRTIO_SAVED_VERSION)
		return bad(d, "unknown version");
	if (in->place.index != d->place.index || in->place.device_id != d->place.device_id ||
	    in->place.base != d->place.base || in->place.irq != d->place.irq)
		return bad(d, "placement or device type differs from this VM's device");
	if (vs->device_features != d->vs.device_features)
		return bad(d, "offered features differ from this device's");
	if (vs->driver_features & ~vs->device_features)
		return bad(d, "acked features outside the offered ones");
	if (vs->nr_queues != d->ops->nr_queues)
		return bad(d, "queue count differs");
	if (in->regs.status & ~(uint32_t)(STATUS_DRIVER_BITS | VIRTIO_CONFIG_S_NEEDS_RESET))
		return bad(d, "unknown status bits");
	if (in->regs.interrupt_status & ~3u)
		return bad(d, "unknown interrupt status bits");
	for (unsigned i = 0; i < vs->nr_queues; i++) {
		struct virtq tmp;
		struct virtq_state s = vs->q[i];

		if (!s.ready)
			continue;
		if (virtq_setup(&tmp, &s, &d->vm->mem, d->ops->queue_max, vs->driver_features,
				&why))
			return bad(d, why);
		/* The used index in guest memory must be the one we saved: anything else
		 * means the state and the memory are from different moments. */
		if (__atomic_load_n(&tmp.used->idx, __ATOMIC_ACQUIRE) != s.next_used)
			return bad(d, "used ring index disagrees with guest memory");
		if ((uint16_t)(__atomic_load_n(&tmp.avail->idx, __ATOMIC_ACQUIRE) - s.next_avail) >
		    s.size)
			return bad(d, "avail ring index disagrees with guest memory");
	}
	d->regs = in->regs;
	d->vs = *vs;
	for (unsigned i = 0; i < VIRTIO_MAX_QUEUES; i++) {
		memset(&d->vq[i], 0, sizeof(d->vq[i]));
		d->vq[i].s = &d->vs.q[i];
		if (i < vs->nr_queues && d->vs.q[i].ready)
			virtq_setup(&d->vq[i], &d->vs.q[i], &d->vm->mem, d->ops->queue_max,
				    vs->driver_features, &why);
	}
	return 0;
}

int virtio_restore(struct virtio_dev *d, const struct virtio_saved *in)
{
	int ret;

	pthread_mutex_lock(&d->lock);
	dev_reset(d);
	ret = virtio_core_restore(d, in);
	if (!ret && d->ops->restore)
		ret = d->ops->restore(d, in);
	if (ret) {
		dev_reset(d);
	} else {
		if (d->regs.interrupt_status)
			raise_irq(d, 0); /* an interrupt pending at save time is still owed */
		/* A kick that was still in its eventfd when the snapshot was taken is
		 * lost: look at every queue once, as if the driver had notified. */
		for (unsigned i = 0; i < d->vs.nr_queues && virtio_dev_live(d); i++)
			if (d->vs.q[i].ready && d->ops->notify)
				d->ops->notify(d, i);
	}
	pthread_mutex_unlock(&d->lock);
	return ret;
}

int virtio_reopen(struct virtio_dev *d, const char *backend)
{
	int ret = -ENOTSUP;

	pthread_mutex_lock(&d->lock);
	if (d->ops->reopen)
		ret = d->ops->reopen(d, backend);
	pthread_mutex_unlock(&d->lock);
	return ret;
}

int virtio_change_media(struct virtio_dev *d, const char *path)
{
	int ret = -ENOTSUP;

	pthread_mutex_lock(&d->lock);
	if (d->ops->change_media)
		ret = d->ops->change_media(d, path);
	pthread_mutex_unlock(&d->lock);
	return ret;
}

int virtio_set_rate_limit(struct virtio_dev *d, unsigned which, const struct vmm_rate_limit *rl,
			  unsigned keep)
{
	struct virtio_rl *r = d->ops->rate_limiter ? d->ops->rate_limiter(d, which) : NULL;
	int ret;

	if (!r)
		return -ENOTSUP;
	pthread_mutex_lock(&d->lock);
	ret = virtio_rl_set(r, d, r->q, rl, keep);
	pthread_mutex_unlock(&d->lock);
	return ret;
}

const char *virtio_dev_name(const struct virtio_dev *d)
{
	return d->id;
}

uint32_t virtio_dev_type(const struct virtio_dev *d)
{
	return d->place.device_id;
}

/* ---------------------------------------------------------------- the snapshot section */

/* Tags of layers 1 and 2 in a device.virtio<k> section (docs/snapshot-format.md,
 * "Device sections"); each device's own tags start at SNAP_DEV_OWN in its file. */
enum {
	VT_INDEX = 5,	  /* u64: placement index k */
	VT_DEVICE_ID = 6, /* u64: VIRTIO_ID_* */
	VT_NAME = 7,	  /* str: the device's id */
	VT_STATUS = SNAP_DEV_TRANSPORT,
	VT_DEV_FEATURES_SEL,
	VT_DRV_FEATURES_SEL,
	VT_QUEUE_SEL,
	VT_INTERRUPT_STATUS,
	VT_CONFIG_GENERATION,
	VT_DEVICE_FEATURES = SNAP_DEV_VIRTIO,
	VT_DRIVER_FEATURES,
	VT_NR_QUEUES,
	VT_QUEUE0 = SNAP_DEV_VIRTIO + 0x10, /* u64[]: size ready desc avail used next_avail
					       next_used signalled_used signalled_valid */
};

#define VIRTQ_FIELDS	     9
#define VIRTIO_SECTION_MAJOR 1
#define VIRTIO_SECTION_MINOR 0

int virtio_save_section(struct virtio_dev *d, struct snap_writer *w)
{
	struct virtio_saved v;
	struct snap_device_place place;
	struct snap_sec *sec;
	char name[24];
	int ret;

	virtio_save(d, &v);
	place = (struct snap_device_place){v.place.base, VIRTIO_MMIO_SIZE, v.place.irq};
	snprintf(name, sizeof(name), "virtio%u", v.place.index);
	ret = snap_device_begin(w, name, d->ops->kind, VIRTIO_SECTION_MAJOR, VIRTIO_SECTION_MINOR,
				&place, &sec);
	if (ret)
		return ret;
	snap_put_u64(sec, VT_INDEX, v.place.index);
	snap_put_u64(sec, VT_DEVICE_ID, v.place.device_id);
	snap_put_str(sec, VT_NAME, v.id);
	snap_put_u64(sec, VT_STATUS, v.regs.status);
	snap_put_u64(sec, VT_DEV_FEATURES_SEL, v.regs.dev_features_sel);
	snap_put_u64(sec, VT_DRV_FEATURES_SEL, v.regs.drv_features_sel);
	snap_put_u64(sec, VT_QUEUE_SEL, v.regs.queue_sel);
	snap_put_u64(sec, VT_INTERRUPT_STATUS, v.regs.interrupt_status);
	snap_put_u64(sec, VT_CONFIG_GENERATION, v.regs.config_generation);
	snap_put_u64(sec, VT_DEVICE_FEATURES, v.vs.device_features);
	snap_put_u64(sec, VT_DRIVER_FEATURES, v.vs.driver_features);
	snap_put_u64(sec, VT_NR_QUEUES, v.vs.nr_queues);
	for (unsigned q = 0; q < v.vs.nr_queues && q < VIRTIO_MAX_QUEUES; q++) {
		const struct virtq_state *vq = &v.vs.q[q];
		uint64_t a[VIRTQ_FIELDS] = {vq->size,	   vq->ready,	       vq->desc,
					    vq->avail,	   vq->used,	       vq->next_avail,
					    vq->next_used, vq->signalled_used, vq->signalled_valid};

		snap_put_u64a(sec, (uint16_t)(VT_QUEUE0 + q), a, VIRTQ_FIELDS);
	}
	if (d->ops->encode)
		d->ops->encode(sec, &v);
	return sec->err;
}

int virtio_get_u64(const struct snap_section *sec, uint16_t tag, uint64_t max, bool required,
		   uint64_t *v, char *err, size_t errlen)
{
	int ret = required ? snap_get_u64_max(sec, tag, max, v, err, errlen)
			   : snap_get_u64_def(sec, tag, max, 0, v, err, errlen);
	const char *name = snap_field_name(sec->name, tag);

	if (ret == -ENOENT)
		return errf(err, errlen, -EBADMSG, "%s: field '%s' (tag 0x%x) is missing",
			    sec->name, name ? name : "?", tag);
	return ret ? -EBADMSG : 0;
}

int virtio_decode_section(const struct snap_section *sec, struct virtio_saved *v, char *err,
			  size_t errlen)
{
	const struct virtio_dev_ops *ops;
	struct snap_device_place place;
	char kind[32], *name;
	uint64_t x;
	int ret;

#define GET(tag, max, dst)                                                                         \
	do {                                                                                       \
		ret = virtio_get_u64(sec, tag, max, true, &x, err, errlen);                        \
		if (ret)                                                                           \
			return ret;                                                                \
		dst = x;                                                                           \
	} while (0)
	memset(v, 0, sizeof(*v));
	v->version = VIRTIO_SAVED_VERSION;
	ret = snap_section_check_version(sec, VIRTIO_SECTION_MAJOR, err, errlen);
	if (ret)
		return ret;
	GET(VT_INDEX, VIRTIO_MAX_DEVS - 1, v->place.index);
	GET(VT_DEVICE_ID, UINT32_MAX, v->place.device_id);
	ops = virtio_kind_ops(v->place.device_id);
	if (!ops)
		return errf(err, errlen, -ENOTSUP, "%s: this thaw has no virtio device of type %u",
			    sec->name, v->place.device_id);
	/* The name says where the device was, and so does its placement: they agree, or
	 * the file is not one thaw wrote. */
	x = strtoull(sec->name + strlen("device.virtio"), &name, 10);
	if (*name || x != v->place.index)
		return errf(err, errlen, -EBADMSG, "%s: its name and its index %u disagree",
			    sec->name, v->place.index);
	if (snap_device_get_place(sec, kind, sizeof(kind), &place))
		return errf(err, errlen, -EBADMSG, "%s: no device kind or placement", sec->name);
	if (strcmp(kind, ops->kind) || place.mmio_size != VIRTIO_MMIO_SIZE)
		return errf(err, errlen, -EBADMSG,
			    "%s: kind '%s' with a %llu-byte window is not a %s device", sec->name,
			    kind, (unsigned long long)place.mmio_size, ops->kind);
	/* thaw's layout ties a device's window and IRQ to its index: a place that
	 * disagrees is refused, and the one saved is the one used. */
	if (place.mmio_base != VIRTIO_MMIO_BASE + v->place.index * VIRTIO_MMIO_SIZE ||
	    place.irq != VIRTIO_IRQ_BASE + v->place.index)
		return errf(err, errlen, -EBADMSG,
			    "%s: window %#llx IRQ %u is not device %u's place (%#llx, IRQ %u)",
			    sec->name, (unsigned long long)place.mmio_base, place.irq,
			    v->place.index, VIRTIO_MMIO_BASE + v->place.index * VIRTIO_MMIO_SIZE,
			    VIRTIO_IRQ_BASE + v->place.index);
	v->place.base = place.mmio_base;
	v->place.irq = place.irq;
	ret = snap_get_strbuf(sec, VT_NAME, v->id, sizeof(v->id));
	if (ret || !v->id[0])
		return errf(err, errlen, -EBADMSG, "%s: device name missing or longer than %d",
			    sec->name, VIRTIO_ID_MAX - 1);
	GET(VT_STATUS, UINT32_MAX, v->regs.status);
	GET(VT_DEV_FEATURES_SEL, UINT32_MAX, v->regs.dev_features_sel);
	GET(VT_DRV_FEATURES_SEL, UINT32_MAX, v->regs.drv_features_sel);
	GET(VT_QUEUE_SEL, UINT32_MAX, v->regs.queue_sel);
	GET(VT_INTERRUPT_STATUS, 3, v->regs.interrupt_status);
	GET(VT_CONFIG_GENERATION, UINT32_MAX, v->regs.config_generation);
	GET(VT_DEVICE_FEATURES, UINT64_MAX, v->vs.device_features);
	GET(VT_DRIVER_FEATURES, UINT64_MAX, v->vs.driver_features);
	GET(VT_NR_QUEUES, VIRTIO_MAX_QUEUES, v->vs.nr_queues);
#undef GET
	for (unsigned q = 0; q < v->vs.nr_queues; q++) {
		const uint64_t *a;
		size_t n;
		struct virtq_state *vq = &v->vs.q[q];

		if (snap_get_u64a(sec, (uint16_t)(VT_QUEUE0 + q), &a, &n) || n != VIRTQ_FIELDS)
			return errf(err, errlen, -EBADMSG,
				    "%s: queue %u is missing or not %d values", sec->name, q,
				    VIRTQ_FIELDS);
		if (a[0] > VIRTQ_MAX_SIZE || a[1] > 1 || a[5] > UINT16_MAX || a[6] > UINT16_MAX ||
		    a[7] > UINT16_MAX || a[8] > 1)
			return errf(err, errlen, -EBADMSG, "%s: queue %u has out-of-range values",
				    sec->name, q);
		*vq = (struct virtq_state){(uint16_t)a[0], a[1] != 0,	   a[2],
					   a[3],	   a[4],	   (uint16_t)a[5],
					   (uint16_t)a[6], (uint16_t)a[7], a[8] != 0};
	}
	return ops->decode ? ops->decode(sec, v, err, errlen) : 0;
}
