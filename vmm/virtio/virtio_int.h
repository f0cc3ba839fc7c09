/* Private to vmm/virtio/: the device core every device builds on, and the split
 * virtqueue. */
#ifndef THAW_VIRTIO_INT_H
#define THAW_VIRTIO_INT_H

#include "vmm/vmm.h"
#include "vmm/virtio/virtio.h"
#include "restore/snapshot.h"

#include <pthread.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <sys/uio.h>

/* ---------------------------------------------------------------- the split virtqueue */

/* Longest descriptor chain we take, indirect tables included; a longer one is a
 * guest bug (or a loop) and marks the device as needing reset. */
#define VIRTQ_MAX_CHAIN VIRTQ_MAX_SIZE

/* The host view of one queue: state (in struct virtio_state) plus host pointers to
 * its rings, computed and bounds-checked once when the queue becomes ready. */
struct virtq {
	struct virtq_state *s;
	const struct vmm_mem *mem;
	uint16_t max_size;
	bool event_idx; /* VIRTIO_RING_F_EVENT_IDX negotiated */
	bool indirect;	/* VIRTIO_RING_F_INDIRECT_DESC negotiated */
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
};

/* One popped descriptor chain: device-readable buffers first (out), then
 * device-writable ones (in), each a host pointer checked against guest RAM. */
struct virtq_elem {
	uint16_t head;
	unsigned nr_out, nr_in;
	uint64_t out_len, in_len; /* totals, each at most UINT32_MAX */
	struct iovec iov[VIRTQ_MAX_CHAIN];
};

/* Checks the queue's size and ring addresses against guest memory and computes the
 * host pointers. Returns 0, or -EINVAL with `why` naming the problem. */
int virtq_setup(struct virtq *q, struct virtq_state *s, const struct vmm_mem *mem,
		uint16_t max_size, uint64_t features, const char **why);

/* Takes the next available chain. Returns 1 with `e` filled, 0 when the ring is
 * empty, or -EINVAL when the ring or the chain is malformed (`why` says how): the
 * caller then marks the device as needing reset. With EVENT_IDX, an empty ring
 * re-arms avail_event so the driver notifies again. */
int virtq_pop(struct virtq *q, struct virtq_elem *e, const char **why);

/* Gives the last popped chain back (a backend had nothing to put in it). */
void virtq_unpop(struct virtq *q);

/* Returns chain `head` to the driver with `len` bytes written. */
void virtq_push(struct virtq *q, uint16_t head, uint32_t len);

/* True when the driver wants an interrupt for what was pushed since the last call
 * (EVENT_IDX's used_event, or the NO_INTERRUPT flag). */
bool virtq_should_notify(struct virtq *q);

/* True when the avail ring holds chains the device has not taken. */
bool virtq_has_avail(const struct virtq *q);

/* Copies between a chain's buffers and flat memory, starting `skip` bytes in;
 * returns bytes copied. */
size_t iov_to_buf(const struct iovec *iov, unsigned n, size_t skip, void *buf, size_t len);
size_t iov_from_buf(const struct iovec *iov, unsigned n, size_t skip, const void *buf, size_t len);
/* Builds in `dst` (capacity `max`) the sub-vector of `src` covering [skip, skip+len);
 * returns its count. */
unsigned iov_slice(const struct iovec *src, unsigned n, size_t skip, size_t len, struct iovec *dst,
		   unsigned max);

/* ---------------------------------------------------------------- the device core */

#define VIRTIO_COUNTERS 16 /* counters a device keeps for its metrics group */

struct virtio_dev_ops {
	const char *name;
	const char *kind; /* in the snapshot: "virtio-blk", ... */
	uint32_t device_id;
	uint32_t nr_queues;
	uint16_t queue_max;
	uint32_t config_len;
	/* All callbacks run with dev->lock held. */
	void (*config_read)(struct virtio_dev *d, uint32_t off, uint8_t *data, uint32_t len);
	void (*config_write)(struct virtio_dev *d, uint32_t off, const uint8_t *data, uint32_t len);
	/* The driver notified queue `q` (through the ioeventfd or an MMIO write). */
	void (*notify)(struct virtio_dev *d, unsigned q);
	/* DRIVER_OK was set: start the backend's data path. */
	int (*activate)(struct virtio_dev *d);
	/* The driver wrote 0 to status or the device is torn down: stop touching guest
	 * memory (wait for in-flight I/O), drop per-driver state. */
	void (*reset)(struct virtio_dev *d);
	/* Layer 3 of a snapshot, the device's own state, kept beside its logic: `save`
	 * copies it into out->dev (no syscalls), `restore` checks in->dev against this
	 * device and takes it; `encode` writes out->dev as section fields from
	 * SNAP_DEV_OWN up and `decode` reads them back (untrusted: lengths and ranges
	 * checked). encode and decode need no device: a restore decodes every section
	 * before it builds anything. */
	void (*save)(struct virtio_dev *d, struct virtio_saved *out);
	int (*restore)(struct virtio_dev *d, const struct virtio_saved *in);
	void (*encode)(struct snap_sec *sec, const struct virtio_saved *s);
	int (*decode)(const struct snap_section *sec, struct virtio_saved *s, char *err,
		      size_t errlen);
	int (*reopen)(struct virtio_dev *d, const char *backend);
	/* A new backend of any size the guest is told about (a drive's media change). */
	int (*change_media)(struct virtio_dev *d, const char *backend);
	/* Firecracker's metrics group for this kind ("block", "net", "entropy"; NULL: none)
	 * and the names of the device's counters (d->cnt[i]), NULL-terminated. */
	const char *metrics_group;
	const char *const *counter_names;
	/* The device's rate limiter `which` (see virtio_set_rate_limit), or NULL. */
	struct virtio_rl *(*rate_limiter)(struct virtio_dev *d, unsigned which);
	int (*quiesce)(struct virtio_dev *d);
	void (*destroy)(struct virtio_dev *d);
};

struct virtio_dev {
	const struct virtio_dev_ops *ops;
	struct vm *vm;
	char id[VIRTIO_ID_MAX];
	struct virtio_placement place;
	/* Protects everything below: vCPU threads (MMIO) and the main thread (eventfds,
	 * backends) both come here. */
	pthread_mutex_t lock;
	struct virtio_mmio_regs regs;
	struct virtio_state vs;
	struct virtq vq[VIRTIO_MAX_QUEUES];
	int irqfd;			/* eventfd bound to the GSI with KVM_IRQFD */
	int kick_fd[VIRTIO_MAX_QUEUES]; /* eventfds bound to QueueNotify */
	int kick_ep;			/* epoll set of kick_fd, watched by the loop */
	bool kick_watched;
	bool kvm_bound; /* irqfd and ioeventfds registered */
	void *priv;	/* the device's own state */
	/* Counters named by ops->counter_names, changed with `lock` held; what the last
	 * metrics line reported of each (Firecracker reports changes since then). */
	uint64_t cnt[VIRTIO_COUNTERS];
	uint64_t cnt_reported[VIRTIO_COUNTERS];
};

/* Initialises the core part of `d` at `place` (no fds yet). */
void virtio_dev_init(struct virtio_dev *d, const struct virtio_dev_ops *ops, struct vm *vm,
		     const char *id, const struct vmm_dev_place *place, uint64_t features);

/* Creates the irqfd and one ioeventfd per queue, binds them with KVM (when the VM
 * has a vm_fd), watches the kick fds on the main loop, and registers the MMIO
 * window. */
int virtio_dev_bind(struct virtio_dev *d);
void virtio_dev_unbind(struct virtio_dev *d);

/* The MMIO handler of a device window (vmm_bus_fn). */
void virtio_mmio_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);

/* Pops from queue `qi`; on a malformed ring marks the device as needing reset and
 * returns -EINVAL. Returns 0 too when the device is broken or the queue not ready. */
int virtio_pop(struct virtio_dev *d, unsigned qi, struct virtq_elem *e);
/* Pushes and raises the used-buffer interrupt if the driver wants one. */
void virtio_push(struct virtio_dev *d, unsigned qi, uint16_t head, uint32_t len);
/* Raises the used-buffer interrupt for queue `qi` if the driver wants one (after
 * several virtq_push calls). */
void virtio_notify(struct virtio_dev *d, unsigned qi);
/* Chains one notification may take from a queue before its handler returns: a guest
 * that republishes chains as fast as they are used would otherwise hold the main
 * thread (and with it the API and signals) for as long as it likes. */
#define VIRTIO_BUDGET_CHAINS 64
/* A queue handler spent its budget: signals queue `qi`'s kick eventfd as a guest
 * notification would, so the main loop comes back to the queue on a later round,
 * after the other ready fds had their turn (that round finds the ring empty at worst,
 * which re-arms EVENT_IDX notifications). */
void virtio_requeue(struct virtio_dev *d, unsigned qi);
/* Marks the device as needing reset (DEVICE_NEEDS_RESET + configuration interrupt)
 * with a rate-limited log line; all queue processing stops until the driver resets. */
void virtio_set_needs_reset(struct virtio_dev *d, const char *why);
/* Bumps config_generation and raises the configuration interrupt. */
void virtio_config_changed(struct virtio_dev *d);
/* True when DRIVER_OK is set and DEVICE_NEEDS_RESET is not. */
bool virtio_dev_live(const struct virtio_dev *d);
bool virtio_has_feature(const struct virtio_dev *d, unsigned bit);
/* Restores the generic layers from `in` (validated); used by virtio_restore. */
int virtio_core_restore(struct virtio_dev *d, const struct virtio_saved *in);

/* ---------------------------------------------------------------- rate limiters */

/* One token bucket at run time. The budget may go negative: a request is admitted while
 * the budget is positive and then charged in full, so a request larger than the bucket
 * still passes and the debt it leaves delays the next one. Over any long stretch the
 * rate is exactly size per refill time; a single request may overshoot by its own size.
 * (Charging after admission also lets a net device read a frame before it knows its
 * length.) */
struct virtio_bucket {
	uint64_t size;	    /* 0: no bucket */
	uint64_t refill_ns; /* time to refill `size` tokens */
	uint64_t burst;	    /* one-time burst left */
	int64_t budget;
	uint64_t frac; /* refill remainder, in token-nanoseconds, below refill_ns */
	uint64_t last_ns;
};

/* Sets `b` from `cfg` at time `now`, full (Firecracker's buckets start full). */
void virtio_bucket_init(struct virtio_bucket *b, const struct vmm_token_bucket *cfg, uint64_t now);
/* Adds what the time since the last call refilled (capped at size). */
void virtio_bucket_refill(struct virtio_bucket *b, uint64_t now);
/* Takes `tokens`, one-time burst first; the budget may go negative. */
void virtio_bucket_charge(struct virtio_bucket *b, uint64_t tokens);
/* Nanoseconds from `now` (after virtio_bucket_refill) until the budget is positive;
 * 0 when it is, or when `b` is no bucket. */
uint64_t virtio_bucket_wait_ns(const struct virtio_bucket *b);

/* A device's rate limiter: a bandwidth and an ops bucket and a timer that, when the
 * budget is back, signals the queue it held as a guest notification would
 * (virtio_requeue), so the queue's handler runs again on the main loop. Embedded in a
 * device's own state; zero-initialised it limits nothing and costs nothing. */
struct virtio_rl {
	struct virtio_bucket bw, ops;
	struct virtio_dev *d;
	unsigned q;
	int timer_fd; /* made when first configured; -1 (or 0 never set) otherwise */
	bool has_timer, armed;
	unsigned cnt; /* the device's counter (d->cnt) of requests held back */
};

/* (Re)configures `rl`, which holds back queue `q` of `d`: the buckets not named in
 * `keep` (VMM_RL_KEEP_*) take `cfg`'s and start full (an empty one lifts that limit).
 * The first limit creates the timer and watches it on the main loop. Every device
 * calls it once when created (limit or not). Call from the main thread with d->lock
 * held or before the device runs. 0 or -errno. */
int virtio_rl_set(struct virtio_rl *rl, struct virtio_dev *d, unsigned q,
		  const struct vmm_rate_limit *cfg, unsigned keep);
/* The limit `rl` applies now (for saving and GET): sizes, refill and the burst left. */
void virtio_rl_get(const struct virtio_rl *rl, struct vmm_rate_limit *out);
/* True when a request may go now; else arms the timer that requeues the queue and
 * counts the hold. A limiter that limits nothing always admits. */
bool virtio_rl_admit(struct virtio_rl *rl);
/* Charges an admitted request of `bytes` (and one operation). */
void virtio_rl_charge(struct virtio_rl *rl, uint64_t bytes);
/* A rate limit in a device section: six u64 fields from `tag` (bandwidth size, burst,
 * refill_ms, then the same for ops), written only when the limit is on. Decoding an
 * absent limit gives none (snapshots from before rate limiters). */
void virtio_rl_encode(struct snap_sec *sec, uint16_t tag, const struct vmm_rate_limit *rl);
int virtio_rl_decode(const struct snap_section *sec, uint16_t tag, struct vmm_rate_limit *rl,
		     char *err, size_t errlen);
/* First tags of a device's rate limits (docs/snapshot-format.md). */
#define VIRTIO_TAG_RL	 (SNAP_DEV_OWN + 0x10) /* blk, rng, net receive */
#define VIRTIO_TAG_RL_TX (SNAP_DEV_OWN + 0x16) /* net transmit */
/* Stops the timer and releases it (device teardown). */
void virtio_rl_destroy(struct virtio_rl *rl);

/* ---------------------------------------------------------------- MMDS on the wire */

/* Connections the MMDS endpoint keeps (the quietest gives way to a new one). */
#define MMDS_NET_CONNS 16

struct api_mmds;
struct mmds_net;

/* The service at IPv4 `ipv4` (host order) answering from `store` (not owned). */
int mmds_net_create(struct api_mmds *store, uint32_t ipv4, struct mmds_net **out);
void mmds_net_destroy(struct mmds_net *n);
/* A frame the guest transmitted (untrusted; without the vnet header): true when it was
 * the service's (an ARP request for its address, anything IPv4 to it), which it then
 * answered or dropped, false when it goes to the tap. Answers queue for the guest. */
bool mmds_net_input(struct mmds_net *n, const uint8_t *frame, size_t len, uint64_t now_ns);
/* Whether a frame starting with these `len` bytes (at least the Ethernet and IPv4
 * headers, or all of a shorter frame) is the service's, without taking it. */
bool mmds_net_wants(const struct mmds_net *n, const uint8_t *head, size_t len);
/* The oldest frame waiting for the guest (NULL: none), and taking it off the queue. */
const uint8_t *mmds_net_peek(struct mmds_net *n, size_t *len);
void mmds_net_pop(struct mmds_net *n);
/* Frames for the service dropped: malformed, or no room to answer. */
uint64_t mmds_net_dropped(const struct mmds_net *n);
/* Firecracker's mmds metrics the endpoint counts, in this order (names for
 * virtio_metrics), and their changes since the last call, added to `sum`. */
#define MMDS_NET_COUNTERS 7
extern const char *const mmds_net_counter_names[MMDS_NET_COUNTERS + 1];
void mmds_net_take_counts(struct mmds_net *n, uint64_t sum[MMDS_NET_COUNTERS]);
/* The MMDS endpoint of network interface `d`, or NULL (d->lock held). */
struct mmds_net *virtio_net_mmds(struct virtio_dev *d);

/* Counts `n` on counter `i` of `d` (d->lock held). */
static inline void virtio_count_add(struct virtio_dev *d, unsigned i, uint64_t n)
{
	d->cnt[i] += n;
}

/* The devices. Each allocates and initialises `*out` at `place` from its typed
 * configuration and opens its backend (blk's `dirfd` >= 0: the path is looked up
 * inside that directory, named `dir`, see vmm_open_beneath); no fds bound yet. On failure `*out`
 * may be set and the caller destroys it. */
int virtio_blk_create(struct vm *vm, const struct vmm_drive_cfg *c,
		      const struct vmm_dev_place *place, int dirfd, const char *dir,
		      struct virtio_dev **out);
int virtio_net_create(struct vm *vm, const struct vmm_net_cfg *c, const struct vmm_dev_place *place,
		      struct virtio_dev **out);
int virtio_vsock_create(struct vm *vm, const struct vmm_vsock_cfg *c,
			const struct vmm_dev_place *place, struct virtio_dev **out);
int virtio_rng_create(struct vm *vm, const struct vmm_rate_limit *rl,
		      const struct vmm_dev_place *place, struct virtio_dev **out);

/* Each device's ops, and the one for a VIRTIO_ID_* (NULL: not a device thaw has). */
extern const struct virtio_dev_ops virtio_blk_ops, virtio_net_ops, virtio_vsock_ops, virtio_rng_ops;
const struct virtio_dev_ops *virtio_kind_ops(uint32_t device_id);

/* Reads u64 field `tag` of a device section into `v`, refusing a value above `max`
 * (a narrower field must not be truncated) and, when `required`, a missing one
 * (absent and not required: 0). -EBADMSG with `err` naming section and field. */
int virtio_get_u64(const struct snap_section *sec, uint16_t tag, uint64_t max, bool required,
		   uint64_t *v, char *err, size_t errlen);

/* The devices of one VM, owned by vmm/virtio/. */
struct vmm_devices {
	unsigned nr;
	struct virtio_dev *dev[VIRTIO_MAX_DEVS];
};

#endif
