#include "common/uring.h"

#include <errno.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/log.h"

/* Debian's liburing 2.3 declares io_uring_register_restrictions and
 * io_uring_enable_rings but its shared library does not export them (they are missing
 * from its version script): the two requests are made here. */
static int ring_register(struct io_uring *ring, unsigned op, const void *arg, unsigned nr)
{
	return syscall(SYS_io_uring_register, ring->ring_fd, op, arg, nr) < 0 ? -errno : 0;
}

int uring_init_restricted(struct io_uring *ring, unsigned entries, const struct uring_limits *l,
			  char *err, size_t errlen)
{
	struct io_uring_restriction res[URING_MAX_ALLOWED + 1];
	unsigned n = 0;
	int ret;

	if (l->nr_ops + l->nr_register_ops > URING_MAX_ALLOWED || !l->nr_ops)
		return errf(err, errlen, -EINVAL, "io_uring restrictions: %u opcodes, %u requests",
			    l->nr_ops, l->nr_register_ops);
	memset(res, 0, sizeof(res));
	for (unsigned i = 0; i < l->nr_ops; i++) {
		res[n].opcode = IORING_RESTRICTION_SQE_OP;
		res[n++].sqe_op = l->ops[i];
	}
	for (unsigned i = 0; i < l->nr_register_ops; i++) {
		res[n].opcode = IORING_RESTRICTION_REGISTER_OP;
		res[n++].register_op = l->register_ops[i];
	}
	/* With no IORING_RESTRICTION_SQE_FLAGS_ALLOWED entry this is also the only flag
	 * an entry may carry: no links, no async punts, no buffer selection. */
	res[n].opcode = IORING_RESTRICTION_SQE_FLAGS_REQUIRED;
	res[n++].sqe_flags = IOSQE_FIXED_FILE;

	/* Disabled until enabled below: nothing can be submitted on a ring that has
	 * no restrictions yet, and restrictions can be registered only while disabled. */
	ret = io_uring_queue_init(entries, ring, IORING_SETUP_R_DISABLED);
	if (ret < 0)
		return errf(err, errlen, ret,
			    "io_uring_queue_init(%u, IORING_SETUP_R_DISABLED): %s", entries,
			    strerror(-ret));
	if (l->nr_files) {
		ret = io_uring_register_files(ring, l->files, l->nr_files);
		if (ret < 0) {
			errf(err, errlen, ret, "io_uring_register_files: %s", strerror(-ret));
			goto fail;
		}
	}
	if (l->eventfd >= 0) {
		ret = io_uring_register_eventfd(ring, l->eventfd);
		if (ret < 0) {
			errf(err, errlen, ret, "io_uring_register_eventfd: %s", strerror(-ret));
			goto fail;
		}
	}
	ret = ring_register(ring, IORING_REGISTER_RESTRICTIONS, res, n);
	if (ret < 0) {
		errf(err, errlen, ret, "io_uring_register(IORING_REGISTER_RESTRICTIONS): %s",
		     strerror(-ret));
		goto fail;
	}
	ret = ring_register(ring, IORING_REGISTER_ENABLE_RINGS, NULL, 0);
	if (ret < 0) {
		errf(err, errlen, ret, "io_uring_register(IORING_REGISTER_ENABLE_RINGS): %s",
		     strerror(-ret));
		goto fail;
	}
	return 0;
fail:
	io_uring_queue_exit(ring);
	return ret;
}
