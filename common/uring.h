/* io_uring rings that can do only what their owner does with them (issue 14).
 *
 * An io_uring submission runs in the kernel on the ring owner's behalf, past every
 * seccomp filter: a thread allowed only io_uring_enter could otherwise open files or
 * sockets through an OPENAT or SOCKET entry. A ring made here is created disabled,
 * given its files (registered, "fixed"), its completion eventfd and its restrictions
 * (the entry opcodes it uses, IOSQE_FIXED_FILE required, the register requests still
 * allowed), and only then enabled. From then on the kernel answers any other entry
 * with -EACCES in its completion, and no entry can name a file by descriptor. */
#ifndef THAW_URING_H
#define THAW_URING_H

#include <liburing.h>
#include <stddef.h>
#include <stdint.h>

/* Most opcodes plus register requests one ring may allow. */
#define URING_MAX_ALLOWED 16

struct uring_limits {
	const uint8_t *ops; /* IORING_OP_* the ring's entries may use */
	unsigned nr_ops;
	const int *files; /* registered as fixed files 0 .. nr_files - 1; -1 leaves a slot
			     empty (io_uring_register_files_update fills it later) */
	unsigned nr_files;
	int eventfd;		     /* signalled on completions; -1: none */
	const uint8_t *register_ops; /* IORING_REGISTER_* still allowed once enabled */
	unsigned nr_register_ops;
};

/* Initializes `ring` with `entries` entries under the limits `l` (nothing of `l` is
 * kept). Every entry submitted on it must then carry IOSQE_FIXED_FILE and a registered
 * file index instead of a descriptor, and no other flag. Call on a thread whose filter
 * allows io_uring_setup and io_uring_register (thaw's main thread before vm_launch,
 * vmm/seccomp.c). Returns 0, or -errno with the failing call in `err` and no ring left
 * to exit; on success the caller ends the ring with io_uring_queue_exit. */
int uring_init_restricted(struct io_uring *ring, unsigned entries, const struct uring_limits *l,
			  char *err, size_t errlen);

#endif
