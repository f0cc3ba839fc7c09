/* thaw's virtio devices: the public interface of vmm/virtio/.
 *
 * Devices are virtio 1.x over virtio-mmio (version 2 registers only), one 4 KiB window
 * and one IRQ each, placed by their order on the command line (drives, nets, vsock,
 * rng): device k lives at VIRTIO_MMIO_BASE + k * VIRTIO_MMIO_SIZE with IRQ
 * VIRTIO_IRQ_BASE + k. Queue notifications arrive through ioeventfds and interrupts
 * leave through irqfds; the backends (io_uring, tap, unix sockets) are served on the
 * main thread's loop.
 *
 * All of a device's state lives in three plain layers which a snapshot saves and
 * restores without reaching inside: the transport registers (struct virtio_mmio_regs),
 * the generic virtio state (struct virtio_state: features and queues) and the device's
 * own state (a member of the union in struct virtio_saved), next to its placement.
 */
#ifndef THAW_VIRTIO_H
#define THAW_VIRTIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/vmm.h"

struct vm;
struct virtio_dev;

#define VIRTIO_MAX_QUEUES 3   /* vsock has the most: rx, tx, event */
#define VIRTQ_MAX_SIZE	  256 /* the largest queue any device offers */
#define VIRTIO_ID_MAX	  VMM_DEV_ID_MAX
#define VIRTIO_PATH_MAX	  VMM_DEV_PATH_MAX

/* Layer 1: virtio-mmio transport registers (what the driver selected and sees). */
struct virtio_mmio_regs {
	uint32_t status;	    /* device status byte, VIRTIO_CONFIG_S_* */
	uint32_t dev_features_sel;  /* DeviceFeaturesSel: which 32-bit half is read */
	uint32_t drv_features_sel;  /* DriverFeaturesSel: which 32-bit half is written */
	uint32_t queue_sel;	    /* QueueSel */
	uint32_t interrupt_status;  /* bit 0 used buffer, bit 1 configuration change */
	uint32_t config_generation; /* bumped whenever the device changes its config */
};

/* Layer 2, per queue: what the driver set up and how far both sides got. */
struct virtq_state {
	uint16_t size; /* QueueNum chosen by the driver (a power of two <= max) */
	bool ready;    /* QueueReady */
	uint64_t desc; /* guest physical addresses of the three parts */
	uint64_t avail;
	uint64_t used;
	uint16_t next_avail;	 /* next avail ring entry the device will take */
	uint16_t next_used;	 /* next used ring entry the device will fill */
	uint16_t signalled_used; /* EVENT_IDX: next_used at the last interrupt */
	bool signalled_valid;	 /* false until the first interrupt after setup */
};

/* Layer 2: generic virtio state. */
struct virtio_state {
	uint64_t device_features; /* offered */
	uint64_t driver_features; /* acked; a subset of offered once FEATURES_OK is set */
	uint32_t nr_queues;
	struct virtq_state q[VIRTIO_MAX_QUEUES];
};

/* Where a device lives; saved and restored, never re-allocated. */
struct virtio_placement {
	uint32_t index;	    /* k: position on the command line */
	uint32_t device_id; /* VIRTIO_ID_* */
	uint64_t base;	    /* VIRTIO_MMIO_BASE + k * VIRTIO_MMIO_SIZE */
	uint32_t irq;	    /* VIRTIO_IRQ_BASE + k (the GSI) */
};

/* Layer 3 for each device: its configuration and the state a restore needs. */
struct virtio_blk_saved {
	char path[VIRTIO_PATH_MAX]; /* backing file when saved */
	bool read_only;
	uint64_t capacity;	  /* 512-byte sectors, as the guest saw them */
	struct vmm_rate_limit rl; /* burst: what was left */
	bool qcow2;		  /* the image's format: qcow2, else raw */
	/* disk_identity of the image when saved (0: none, a raw file); a restore refuses
	 * an image whose contents are not those (docs/disk.md). */
	uint64_t identity;
	/* The image's internal snapshot taken with this one (an internal disk
	 * checkpoint), "" for none: a restore reverts the image to it first. */
	char internal_snapshot[64];
};

struct virtio_net_saved {
	char tap[16]; /* IFNAMSIZ */
	uint8_t mac[6];
	uint32_t offload_flags; /* TUN_F_* set on the tap for the acked features */
	struct vmm_rate_limit rx_rl, tx_rl;
	/* MMDS through this interface: its address (host order, 0: none), version
	 * (enum api_mmds_version) and imds_compat. The store's data is not saved (as
	 * Firecracker: a clone gets its own over the API). */
	uint32_t mmds_ipv4;
	uint32_t mmds_version;
	bool mmds_imds_compat;
};

struct virtio_rng_saved {
	struct vmm_rate_limit rl;
};

struct virtio_vsock_saved {
	uint64_t guest_cid;
	char uds_path[VIRTIO_PATH_MAX];
	/* Connections are not saved (their host sockets cannot be); a restored device
	 * sends the guest VIRTIO_VSOCK_EVENT_TRANSPORT_RESET, as Firecracker does. */
};

struct virtio_saved {
	uint32_t version; /* VIRTIO_SAVED_VERSION of the writer */
	char id[VIRTIO_ID_MAX];
	struct virtio_placement place;
	struct virtio_mmio_regs regs;
	struct virtio_state vs;
	union {
		struct virtio_blk_saved blk;
		struct virtio_net_saved net;
		struct virtio_vsock_saved vsock;
		struct virtio_rng_saved rng;
	} dev; /* by place.device_id */
};

#define VIRTIO_SAVED_VERSION 1

/* Number of virtio devices of `vm` (0 before vmm_devices_attach). */
unsigned virtio_count(struct vm *vm);

/* Device `i` (0 <= i < virtio_count) in placement order, or NULL. */
struct virtio_dev *virtio_get(struct vm *vm, unsigned i);

/* A device's name (id= from the command line, or "vsock"/"rng") and VIRTIO_ID_*. */
const char *virtio_dev_name(const struct virtio_dev *dev);
uint32_t virtio_dev_type(const struct virtio_dev *dev);

/* Waits until no block I/O of `vm` is in flight, completing what was submitted (used
 * ring entries written, interrupts raised). Call it with the vCPUs paused (vm_pause)
 * so no new requests arrive; afterwards virtio_save sees a settled device. Returns 0,
 * or -errno when an io_uring wait failed (the device is then marked needing reset). */
int virtio_quiesce(struct vm *vm);

/* Exports the device's three layers and placement into `out` (no allocation, no
 * syscalls). Call with the vCPUs paused and after virtio_quiesce. */
void virtio_save(struct virtio_dev *dev, struct virtio_saved *out);

/* Imports `in` (untrusted: validated first) into `dev`, which vmm_devices_attach
 * created from the same configuration. Checks: version, device type and placement
 * equal to dev's, acked features within the offered ones, queue count, queue sizes
 * powers of two <= the device maximum, ring addresses inside guest memory, indices
 * consistent with the rings. Returns 0, or -EINVAL with the reason logged, leaving
 * `dev` reset. Call before the vCPUs run; afterwards the device continues where the
 * saved one stopped (vsock sends a transport reset event). */
int virtio_restore(struct virtio_dev *dev, const struct virtio_saved *in);

struct snap_writer;
struct snap_section;

/* Writes device `d` (vCPUs paused, after virtio_quiesce) as section device.virtio<k>:
 * kind and placement, the transport and virtio layers, then the device's own fields
 * (tag by tag in docs/snapshot-format.md). 0 or -errno. */
int virtio_save_section(struct virtio_dev *d, struct snap_writer *w);

/* Decodes a device.virtio<k> section (untrusted) into `out` without any device: the
 * section's version, its name against its index, kind and placement, every field of
 * every layer with its range, then the device's own fields. 0; -ENOTSUP for a version
 * or device type this thaw lacks; -EBADMSG otherwise; `err` names the section and the
 * field. virtio_restore does the checks that need the device and guest memory. */
int virtio_decode_section(const struct snap_section *sec, struct virtio_saved *out, char *err,
			  size_t errlen);

struct snap;
struct vm_restore_opts;

/* A restore's device plan, before anything is built: decodes every device section of
 * `s` (virtio_decode_section) into saved[index] (saved_at[index] set), and adds each
 * device to `cfg` at its saved place with the backend `opts` gives it (see struct
 * vm_restore_opts). Refuses, naming it, a device section thaw lacks, a placement used
 * twice, a device without a backend, an override naming no device. 0 or -errno. */
int virtio_plan_restore(const struct snap *s, const struct vm_restore_opts *opts,
			struct vm_config *cfg, struct virtio_saved *saved, bool *saved_at,
			char *err, size_t errlen);
/* After vmm_devices_attach built the planned devices: virtio_restore of each from
 * saved[its placement index]. */
int virtio_restore_all(struct vm *vm, const struct virtio_saved *saved, char *err, size_t errlen);

/* Closes the device's backend and opens another: a drive's file path, a net's tap
 * name, or vsock's unix socket path (NULL: reopen the configured one). For a drive
 * the new file must hold at least as many sectors as the guest was told. Call with
 * the vCPUs paused (typically right after virtio_restore). Returns 0 or -errno; on
 * failure the old backend is gone and the device answers every request with an
 * error (blk) or drops packets (net), vsock refuses connections. */
int virtio_reopen(struct virtio_dev *dev, const char *backend);

/* The backend of a running or paused VM's drive becomes `path` (PATCH /drives): in-flight
 * requests complete first, the capacity the guest sees follows the new file and the guest
 * gets a configuration-change interrupt, as after a media change. -ENOTSUP for a device
 * that is not a drive. A file that does not open leaves the drive on its old one; a
 * failure after that (the ring refusing the new file) leaves it without a backend
 * (every request fails), as after a failed virtio_reopen. */
int virtio_change_media(struct virtio_dev *dev, const char *path);

/* Replaces a device's rate limiter `which`: 0 for a drive's or the entropy device's, 0
 * (receive) or 1 (transmit) for a network interface. Buckets named in `keep`
 * (VMM_RL_KEEP_*) stay as they are; the others take `rl`'s (an empty one lifts that
 * limit) and start full. -ENOTSUP when the device has no such limiter. */
int virtio_set_rate_limit(struct virtio_dev *dev, unsigned which, const struct vmm_rate_limit *rl,
			  unsigned keep);

struct api_mmds;
/* Makes network interface `dev` answer MMDS from `store` (not owned; it must outlive the
 * device or be taken away first) at the store's configured address, or with `store` NULL
 * stop answering. Frames for that address no longer reach the tap. 0, -ENOTSUP when
 * `dev` is no network interface, -ENOMEM. */
int virtio_net_set_mmds(struct virtio_dev *dev, struct api_mmds *store);
/* The MMDS configuration a restored interface was saved with (0: it had none): its
 * address (host order), version and imds_compat. */
uint32_t virtio_net_saved_mmds(const struct virtio_dev *dev, uint32_t *version, bool *imds_compat);

struct json_object;
/* Adds Firecracker's device metrics groups to `root`: per kind ("block", "net",
 * "entropy") the sum over its devices, and per device "<group>_<id>", each counter the
 * change since the previous call (one caller: the metrics line). */
void virtio_metrics(struct vm *vm, struct json_object *root);

/* The device named `name` (a drive's or interface's id) of type `device_id`, or NULL. */
struct virtio_dev *virtio_find(struct vm *vm, uint32_t device_id, const char *name);

/* An external disk checkpoint of drive `dev` (vm_snapshot_create, the VM paused and
 * quiesced): _prepare makes `next` (a new qcow2 overlay over the drive's image, durable)
 * and returns 1, or 0 when the drive takes no part (raw, read-only); _switch then moves
 * the drive onto `next` once the snapshot is written; _abandon removes `next` when it was
 * not. 0 or -errno (logged). */
int virtio_blk_checkpoint_prepare(struct virtio_dev *dev, const char *snapshot_path, char *next,
				  size_t cap);
int virtio_blk_checkpoint_switch(struct virtio_dev *dev, const char *next);
/* An internal disk checkpoint: an internal snapshot `name` in the drive's qcow2 image,
 * recorded in the device's next saved state. 1 when made, 0 when the drive takes no part
 * (raw, read-only), -errno (logged). _done(dev, keep) ends it: the name leaves the saved
 * state, and without `keep` (the VM snapshot failed) the internal snapshot is deleted. */
int virtio_blk_checkpoint_internal(struct virtio_dev *dev, const char *name);
void virtio_blk_checkpoint_internal_done(struct virtio_dev *dev, bool keep);

struct io_uring;

/* Initializes `ring` as every drive's ring is made: restricted (common/uring.h) to
 * readv, writev and fsync (readv alone when `ro`) on `fd`, registered as fixed file 0,
 * completions signalled on `ev_fd`, and IORING_REGISTER_FILES_UPDATE as the only
 * register request left (a reopened backend). Returns 0 or -errno with `err` set. */
int virtio_blk_ring_init(struct io_uring *ring, int fd, bool ro, int ev_fd, char *err,
			 size_t errlen);

/* Tears every device down (backends closed, fds unregistered). vmm_devices_attach
 * may be called again afterwards. */
void virtio_detach_all(struct vm *vm);

#endif
