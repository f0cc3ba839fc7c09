/* Lazy restore through userfaultfd: the public interface of uffd/.
 *
 * Guest RAM is anonymous memory registered with a userfaultfd; a handler fills each page
 * the first time it is touched, from the snapshot's memory. The handler is either a
 * thread inside thaw (--mem-backend uffd) or an external process such as thaw-uffd
 * (--mem-backend uffd-ext), which receives the uffd and a JSON description of the memory
 * over a unix socket exactly as Firecracker sends them, so handlers written for either
 * VMM work with the other. docs/uffd.md describes strategies, files and the protocol.
 *
 * Pages are numbered by their byte offset in the snapshot's memory section / 4096
 * ("memory pages"): the zero bitmap, working sets and the regions' `offset` use them.
 *
 * uffd/ knows nothing of the VMM's types: the VMM describes its guest memory and lends a
 * few calls (request exit, sample and kick a vCPU, translate an address) in a struct
 * uffd_vm, and keeps the struct uffd_backend it gets back as an opaque pointer. uffd/
 * links against restore/ (the snapshot reader) and common/ only. All functions return 0
 * or -errno unless stated.
 */
#ifndef THAW_UFFD_H
#define THAW_UFFD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct snap;

#define UFFD_PAGE	  4096u
#define UFFD_MAX_REGIONS  8
#define UFFD_MSG_MAX	  4096	     /* the handshake message; Firecracker's handlers read 1 KiB */
#define UFFD_MAX_WS_PAGES (1u << 26) /* 256 GiB of 4 KiB pages: cap on a working set */

/* ---------------------------------------------------------------- strategies */

enum uffd_mode {
	UFFD_MODE_ONDEMAND, /* install the faulting page (or its aligned chunk) */
	UFFD_MODE_PREFETCH, /* install the working set at start, the rest on demand */
};

struct uffd_strategy {
	enum uffd_mode mode;
	uint64_t chunk;	       /* bytes installed per fault: a power of two, 4 KiB..2 MiB */
	bool zero;	       /* zero-bitmap pages through UFFDIO_ZEROPAGE, no read (default) */
	char ws_path[256];     /* prefetch: working-set side file ("" = the snapshot's own) */
	uint32_t gap_pages;    /* prefetch: holes of up to this many pages inside an extent are
				  read too, for fewer, larger reads and copies (default 8) */
	uint32_t extent_pages; /* prefetch: largest read / UFFDIO_COPY (default 64 = 256 KiB) */
	uint32_t depth;	       /* prefetch: reads in flight on the io_uring (default 32) */
	uint32_t batch;	       /* prefetch: working-set entries sorted and merged at a time:
				  larger batches give larger extents, smaller ones keep the
				  recorded order closer (default 4096) */
};

/* Parses a strategy: MODE[:CHUNK][,OPTION]... with MODE `ondemand`, `prefetch` or
 * `record` (ondemand with 4 KiB chunks: what recording a working set wants), CHUNK a size
 * like 4k, 64k, 2m, and OPTIONs `nozero`, `ws=FILE`, `gap=N`, `extent=SIZE`,
 * `depth=N`. NULL or "" is `ondemand`. -EINVAL with `err` naming the bad part. */
int uffd_strategy_parse(const char *spec, struct uffd_strategy *st, char *err, size_t errlen);

/* ---------------------------------------------------------------- planning (pure) */

/* Page state the planners read, each a bitmap over memory pages (bit i % 64 of word
 * i / 64). `zero` (may be NULL): the snapshot says the page is all zeros. `removed`: the
 * VMM discarded it (MADV_DONTNEED) since restore, so it must read back as zeros.
 * `filled`: installed by us and not removed since. */
struct uffd_pages {
	uint64_t npages;
	const uint64_t *zero;
	const uint64_t *removed;
	const uint64_t *filled;
};

static inline bool uffd_bit(const uint64_t *bits, uint64_t i)
{
	return bits && (bits[i / 64] >> (i % 64)) & 1;
}

enum uffd_op_kind { UFFD_OP_COPY, UFFD_OP_ZERO };

/* One install: `npages` memory pages from `page`, copied from the snapshot or zeroed. */
struct uffd_op {
	uint64_t page;
	uint64_t npages;
	enum uffd_op_kind kind;
};

/* What to install for a fault on memory page `fault`: the chunk of `chunk_pages` (a
 * power of two) aligned around it, clipped to [lo, hi) (the fault's region), split into
 * runs of one kind. Pages already filled are left out, except the faulting page itself
 * (a second vCPU may have faulted on a page just filled: it must still be woken).
 * Removed pages, and zero pages when `use_zero`, become ZERO runs. Returns the number of
 * ops written (at most `max`; the chunk is cut short when `ops` is full). */
size_t uffd_plan_fault(const struct uffd_pages *pg, uint64_t fault, uint64_t chunk_pages,
		       uint64_t lo, uint64_t hi, bool use_zero, struct uffd_op *ops, size_t max);

/* The next prefetch batch: takes up to min(`batch`, `max_ops`) working-set entries from
 * ws[*pos] on (advancing *pos), skips pages out of range,
 * filled or removed, sorts the rest and merges them into ops: COPY extents of at most
 * `extent` pages, bridging holes of up to `gap` copyable pages, and ZERO runs for zero
 * pages when `use_zero`. `scratch` holds `batch` entries. Returns the number of ops. */
size_t uffd_plan_prefetch(const struct uffd_pages *pg, const uint64_t *ws, size_t nws, size_t *pos,
			  size_t batch, uint32_t gap, uint32_t extent, bool use_zero,
			  uint64_t *scratch, struct uffd_op *ops, size_t max_ops);

/* ---------------------------------------------------------------- the handshake */

/* One guest memory region as the handler sees it (Firecracker's GuestRegionUffdMapping):
 * host address in the VMM, size, offset in the memory file, page size in bytes. */
struct uffd_region {
	uint64_t base;
	uint64_t size;
	uint64_t offset;
	uint64_t page_size;
};

/* Writes the JSON array Firecracker sends ([{"base_host_virt_addr":..,"size":..,
 * "offset":..,"page_size":..,"page_size_kib":..}], page_size_kib being its deprecated
 * twin, also in bytes). Returns the length (without the NUL written after it), or
 * -ENOSPC. */
int uffd_regions_encode(const struct uffd_region *r, size_t n, char *buf, size_t len);

/* Parses and validates that array (untrusted): 1..max regions, page_size (or
 * page_size_kib) 4096, base, size and offset page aligned, no wrap, regions overlapping
 * neither in the VMM nor in the file. Unknown keys are ignored. -EINVAL with `err`. */
int uffd_regions_parse(const char *json, size_t len, struct uffd_region *r, size_t max, size_t *n,
		       char *err, size_t errlen);

/* Connects to a handler's socket and sends `json` with `uffd` attached (SCM_RIGHTS), in
 * one message. Returns the connected socket (close-on-exec) or -errno with `err`. */
int uffd_handshake_send(const char *sock_path, int uffd, const char *json, size_t len, char *err,
			size_t errlen);

/* Receives one handshake on a connected socket: the JSON text (NUL terminated, at most
 * `len` - 1 bytes) and the fd. -EPROTO when the message carried no fd. */
int uffd_handshake_recv(int sock, char *buf, size_t len, int *uffd, char *err, size_t errlen);

/* ---------------------------------------------------------------- working-set files */

/* A working set is the ordered list of memory pages touched first after a restore. The
 * side file is a snapshot-format file without memory holding section `workingset` and a
 * `base` section with the snapshot's id and path (docs/snapshot-format.md, 6.13), so
 * thaw-snap inspect and verify read it. Written atomically. `snap_id` may be NULL
 * (handlers that serve a raw memory file know no id). */
int uffd_ws_write(const char *path, const uint8_t *snap_id, const char *snap_path,
		  const uint64_t *pages, size_t n);

/* Reads a side file: refuses one recorded for another snapshot (when both ids are
 * known), a page size other than 4 KiB, and pages >= `npages`. *pages is malloc'ed. */
int uffd_ws_read(const char *path, const uint8_t *snap_id, uint64_t npages, uint64_t **pages,
		 size_t *n, char *err, size_t errlen);

/* Writes OUT = IN plus (or with a replaced) optional `workingset` section, memory inline.
 * Offline (reads all memory); OUT appears atomically. */
int uffd_ws_embed(const char *in, const uint64_t *pages, size_t n, const char *out, char *err,
		  size_t errlen);

/* ---------------------------------------------------------------- the handler */

struct uffd_stats {
	uint64_t faults;       /* page-fault events served */
	uint64_t copied_pages; /* pages installed from the snapshot (faults + prefetch) */
	uint64_t zero_pages;   /* pages installed with UFFDIO_ZEROPAGE */
	uint64_t prefetched;   /* pages installed by prefetch */
	uint64_t prefetch_ns;  /* from start until the last prefetch copy */
	uint64_t removes;      /* remove events */
	uint64_t removed_pages;
	uint64_t eagain;   /* installs retried because the memory map was changing */
	uint64_t exists;   /* installs that found the page already there */
	uint64_t recorded; /* pages in the recorded working set */
};

struct uffd_server_opts {
	int uffd;			   /* borrowed: registered, API done */
	const struct uffd_region *regions; /* borrowed, validated */
	size_t nr_regions;
	const uint8_t *src; /* the snapshot's memory mapped read-only: page i at src + 4096 i */
	uint64_t mem_size;  /* bytes at src; every region lies inside */
	int src_fd;	    /* the same memory for io_uring reads (prefetch) */
	uint64_t src_off;   /* offset of memory page 0 in src_fd */
	const uint8_t *zero_bits; /* the snapshot's zero bitmap (byte layout), may be NULL */
	const uint64_t *ws;	  /* working set for prefetch, may be NULL; borrowed */
	size_t nws;
	struct uffd_strategy strategy;
	bool record; /* keep the order of faulted pages */
};

struct uffd_server;

/* Allocates the page bitmaps and, for prefetch, the io_uring and staging buffers. */
int uffd_server_create(const struct uffd_server_opts *o, struct uffd_server **out);

struct io_uring;

/* Initializes `ring` (`depth` entries) as the handler's prefetch ring is made:
 * restricted (common/uring.h) to IORING_OP_READ of `src_fd`, registered as fixed file
 * 0, with completions on `efd` and no register request left. 0 or -errno with `err`. */
int uffd_ring_init(struct io_uring *ring, unsigned depth, int src_fd, int efd, char *err,
		   size_t errlen);

/* Serves faults, remove events and prefetch until `stop_fd` polls readable or hung up
 * (an eventfd, or the handler's connection to a VMM that ends). Runs on one thread;
 * returns 0, or -errno when the uffd failed. May be called again after it returned. */
int uffd_server_run(struct uffd_server *s, int stop_fd);

/* Counters (a copy; consistent when the server is not running). */
void uffd_server_stats(const struct uffd_server *s, struct uffd_stats *st);

/* The recorded working set so far (borrowed until destroy). */
const uint64_t *uffd_server_recorded(const struct uffd_server *s, size_t *n);

void uffd_server_destroy(struct uffd_server *s);

/* One line of counters for logs: "faults=.. copied=.. zero=.. ...". */
void uffd_stats_format(const struct uffd_stats *st, char *buf, size_t len);

/* Opens a userfaultfd, close-on-exec and non-blocking: the userfaultfd syscall first,
 * /dev/userfaultfd when that is refused. Negotiates the API with remove events and
 * checks the copy and zeropage ioctls exist. -errno with `err`. */
int uffd_open(char *err, size_t errlen);

/* Registers [addr, addr+len) for missing faults. */
int uffd_register(int uffd, void *addr, uint64_t len, char *err, size_t errlen);

/* ---------------------------------------------------------------- stall detector (pure) */

/* A handler that is alive but does not serve (stopped, deadlocked, buggy) leaves a vCPU
 * waiting in the kernel for a page forever. The uffd control thread samples every vCPU
 * each check period (uffd_vm.vcpu_sample) and feeds the samples through uffd_stall_step;
 * vCPUs that did not exit by themselves since the last check get a kick
 * (uffd_vm.vcpu_probe). Running or halted vCPUs come back from KVM_RUN at once. A vCPU is
 * stuck when, for `timeout_ns` after its first kick, either
 *  - it has not come back from the kicks at all (the kernel waits for the page
 *    killably, as KVM's page faults do up to Linux 6.1), or
 *  - it comes back only to be kicked again, each time with the same registers, not
 *    halted, while the userfaultfd holds a fault nobody has read (kernels where KVM
 *    waits for the page interruptibly: the kick ends the wait, re-entry faults again). */

/* The period between checks for a timeout: a third of it, within 10 ms..1 s, so a
 * stuck vCPU has had at least two kicks when it is declared stuck. */
uint64_t uffd_stall_period_ms(uint64_t timeout_ms);

enum uffd_stall_verdict {
	UFFD_STALL_OK,	  /* nothing to do for this vCPU */
	UFFD_STALL_KICK,  /* kick it (uffd_vm.vcpu_probe) */
	UFFD_STALL_STUCK, /* stuck in a fault nobody serves */
};

/* What the detector remembers of one vCPU between checks. Zero it to start. */
struct uffd_stall_vcpu {
	bool known; /* at least one sample was taken */
	uint64_t seq, exits, fp_seq, fp;
	bool fp_valid;	   /* `fp` holds a fingerprint to compare with */
	uint64_t since_ns; /* start of the current suspicion (0: none) */
	uint64_t kicks;	   /* kicks in the current suspicion */
	bool refaults;	   /* the suspicion is of the second kind (re-entered fault) */
};

/* One vCPU as the stall detector sees it; the VMM fills it (uffd_vm.vcpu_sample). */
struct uffd_vcpu_sample {
	bool active;	 /* its thread runs the guest: started, not parked, not ended */
	uint64_t seq;	 /* changes whenever it enters or leaves KVM_RUN */
	uint64_t exits;	 /* changes when KVM_RUN returned with an exit (guest progress) */
	uint64_t fp_seq; /* changes when a probe kick made KVM_RUN return */
	uint64_t fp;	 /* registers at that return (a hash) */
	bool fp_halted;	 /* it was halted then, or waiting for INIT/SIPI: not runnable */
};

/* One check of one vCPU at `now_ns` (monotonic, > 0): updates `st` from sample `s` and
 * says what to do. `fault_waiting`: the userfaultfd has an unread fault right now.
 * Pure: no clock, no I/O. */
enum uffd_stall_verdict uffd_stall_step(struct uffd_stall_vcpu *st,
					const struct uffd_vcpu_sample *s, uint64_t now_ns,
					uint64_t timeout_ns, bool fault_waiting);

/* Before any vCPU runs, the restore itself touches guest memory on the main thread (the
 * kvmclock MSR writes): a handler that never serves leaves the restore blocked, with no
 * vCPU to kick. Stuck when, at every check for `timeout_ns`, the restore had not
 * finished and the userfaultfd held an unread fault. */
struct uffd_stall_restore {
	uint64_t since_ns; /* first check of the current run of such checks (0: none) */
};

/* One check: true when the restore is stuck. Pure. */
bool uffd_stall_restore_step(struct uffd_stall_restore *st, bool restoring, bool fault_waiting,
			     uint64_t now_ns, uint64_t timeout_ns);

/* ---------------------------------------------------------------- the VMM's side */

/* Where the VM is, for the stall detector. */
enum uffd_vm_phase {
	UFFD_VM_RESTORING, /* the restore runs on the main thread; no vCPU runs yet */
	UFFD_VM_RUNNING,   /* the vCPUs have been started */
	UFFD_VM_EXITING,   /* the process is on its way out: nothing to watch */
};

/* One guest RAM region: a slice of the host mapping. */
struct uffd_vm_region {
	uint64_t offset; /* in the host mapping, and in the snapshot's memory */
	uint64_t size;
};

/* The VM uffd serves, as the VMM describes it to uffd_restore_memory (which copies it).
 * Every call back gets `opaque` and may come from any of uffd's threads at any time
 * until uffd_stop returned. */
struct uffd_vm {
	/* Guest RAM: one host mapping of `size` bytes cut into regions. `host`: the range
	 * to map over (MAP_FIXED), or NULL for a new mapping; uffd_restore_memory stores
	 * the mapping here as soon as it exists. */
	void *host;
	uint64_t size;
	unsigned nr_regions; /* 1..UFFD_MAX_REGIONS */
	struct uffd_vm_region regions[UFFD_MAX_REGIONS];
	unsigned nr_vcpus; /* fixed while the backend lives */
	unsigned stall_ms; /* the stall detector's timeout (0: off) */
	int exit_status;   /* the process's status when guest memory can no longer be served */

	void *opaque;
	/* Narrows the calling thread's seccomp filter to uffd's; called first on each
	 * thread uffd starts. Non-zero: that thread ends the VM (request_exit) and itself. */
	int (*thread_filter)(void *opaque);
	/* Asks the VMM to end the process with `status` (the first caller wins). */
	void (*request_exit)(void *opaque, int status, const char *why);
	enum uffd_vm_phase (*phase)(void *opaque);
	/* Reads vCPU `i` < nr_vcpus without a lock (a vCPU not started is inactive). */
	void (*vcpu_sample)(void *opaque, unsigned i, struct uffd_vcpu_sample *s);
	/* Kicks vCPU `i` out of KVM_RUN and has it fingerprint the return (registers,
	 * halted or not); nothing for an inactive vCPU. */
	void (*vcpu_probe)(void *opaque, unsigned i);
	/* The host address of `len` bytes of guest RAM at `gpa`, or NULL when any of them
	 * lies outside (the VMM's checked translator). */
	void *(*gpa_to_host)(void *opaque, uint64_t gpa, uint64_t len);
};

/* How guest memory is served. */
struct uffd_restore_opts {
	bool external;	       /* hand the uffd to an external handler at `sock` */
	const char *sock;      /* external: the handler's unix socket */
	const char *strategy;  /* own handler: a uffd_strategy_parse spec (NULL: ondemand) */
	const char *record;    /* own handler: write the faulted working set here (or NULL) */
	const char *snap_path; /* the snapshot's path, named in a recorded working set */
};

/* thaw's uffd backend: the userfaultfd, the handler or the external handler's
 * connection, and the control thread. Opaque to the VMM. */
struct uffd_backend;

/* Maps anonymous guest memory of vm->size bytes (over vm->host when set, as for a
 * prepared VM; otherwise a new mapping, stored in vm->host also when the call fails
 * later: the caller owns and unmaps it), registers it with a userfaultfd and starts
 * serving faults from the snapshot's memory (own thread, or hands the uffd to the
 * external handler at o->sock). The snapshot's memory section must have vm->size
 * bytes. Serving has started when it returns 0 and *out is set: vCPU state may be set
 * (the kvmclock MSR writes fault guest memory). A handler that dies later ends the VM
 * (vm->request_exit) with a clear error. -errno with `err` otherwise. */
int uffd_restore_memory(struct uffd_vm *vm, const struct snap *s, const struct uffd_restore_opts *o,
			struct uffd_backend **out, char *err, size_t errlen);

/* Stops the threads, logs the counters, writes a recorded working set and frees `b`
 * (NULL: nothing). Call on the main thread, once. */
void uffd_stop(struct uffd_backend *b);

/* Discards guest RAM [gpa, gpa+len) (page aligned) as a balloon would: MADV_DONTNEED on
 * the host mapping; the handler sees a remove event and serves zeros there afterwards.
 * Blocks until the handler has taken the event: never call it on the handler thread.
 * -EINVAL outside guest RAM, -ENODEV when `b` is NULL (memory does not come through
 * uffd).
 *
 * Test and operator hook: a VM restored through uffd also discards when thaw receives
 * SIGRTMIN+1 queued with sigqueue(2) value `start_mib | len_mib << 16` (MiB of guest
 * physical address space), logging "uffd: discarded ...". */
int uffd_discard(struct uffd_backend *b, uint64_t gpa, uint64_t len);

#endif
