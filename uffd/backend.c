/* thaw's side of the uffd backend: anonymous guest memory registered with a userfaultfd,
 * served by a handler thread (uffd/server.c) or handed to an external handler over its
 * unix socket, and a control thread that watches that handler's life and takes the
 * discard hook's signal. */
#include "uffd/uffd.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "restore/snapshot.h"

/* How long the control thread lets the main loop end the process after a handler died,
 * before it ends it itself: a thread waiting on guest memory that nobody serves any more
 * (the main thread inside a device model, say) cannot reach the exit path. */
#define HANDLER_DEATH_GRACE_MS 400
/* How long uffd_stop waits for the handler thread before it gives up on it. */
#define HANDLER_STOP_MS 2000
/* The discard hook's signal (SIGRTMIN itself kicks vCPUs out of KVM_RUN). */
#define UFFD_DISCARD_SIGNAL (SIGRTMIN + 1)

struct uffd_backend {
	struct uffd_vm vm; /* a copy of the caller's description */
	bool external;
	int uffd;
	int stop_fd;
	int sig_fd;
	int sock;
	int pidfd;
	pid_t peer;

	/* the handler thread */
	struct uffd_server *srv;
	const uint8_t *src;
	uint64_t mem_size;
	int mem_fd;
	uint64_t *ws;
	pthread_t handler, control;
	bool handler_started, control_started;
	char record_path[PATH_MAX];
	char snap_path[PATH_MAX];
	uint8_t snap_id[16];

	/* the stall detector (control thread only, read by uffd_stop after the join) */
	char sock_path[108];
	uint64_t stall_timeout_ns; /* 0: off */
	uint64_t stall_period_ms;
	uint64_t next_check_ns;
	struct uffd_stall_restore stall_restore;
	uint64_t checks, kicks, kick_returns;
	struct uffd_stall_vcpu stall[]; /* vm.nr_vcpus of them */
};

/* ---------------------------------------------------------------- the userfaultfd */

int uffd_open(char *err, size_t errlen)
{
	struct uffdio_api api = {.api = UFFD_API, .features = UFFD_FEATURE_EVENT_REMOVE};
	int fd, e_sys, e_dev = 0, dev;

	/* No UFFD_USER_MODE_ONLY: KVM touches guest memory from the kernel. */
	fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		e_sys = errno;
		dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
		if (dev < 0) {
			e_dev = errno;
		} else {
			fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
			if (fd < 0)
				e_dev = errno;
			close(dev);
		}
		if (fd < 0)
			return errf(err, errlen, -e_sys,
				    "userfaultfd: %s; /dev/userfaultfd: %s (see "
				    "vm.unprivileged_userfaultfd, or give access to the device)",
				    strerror(e_sys), strerror(e_dev));
	}
	if (ioctl(fd, UFFDIO_API, &api) < 0) {
		int e = errno;

		close(fd);
		return errf(err, errlen, -e, "UFFDIO_API with remove events: %s", strerror(e));
	}
	return fd;
}

int uffd_register(int uffd, void *addr, uint64_t len, char *err, size_t errlen)
{
	struct uffdio_register r = {.range = {.start = (uint64_t)(uintptr_t)addr, .len = len},
				    .mode = UFFDIO_REGISTER_MODE_MISSING};
	const uint64_t need =
	    (1ull << _UFFDIO_COPY) | (1ull << _UFFDIO_ZEROPAGE) | (1ull << _UFFDIO_WAKE);

	if (ioctl(uffd, UFFDIO_REGISTER, &r) < 0)
		return errf(err, errlen, -errno, "UFFDIO_REGISTER of %llu MiB: %s",
			    (unsigned long long)(len >> 20), strerror(errno));
	if ((r.ioctls & need) != need)
		return errf(err, errlen, -ENOTSUP,
			    "userfaultfd lacks UFFDIO_COPY/ZEROPAGE/WAKE on anonymous memory");
	return 0;
}

/* ---------------------------------------------------------------- the handshake */

int uffd_handshake_send(const char *sock_path, int uffd, const char *json, size_t len, char *err,
			size_t errlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = {.iov_base = (void *)json, .iov_len = len};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = ctl.buf,
			    .msg_controllen = sizeof(ctl.buf)};
	struct cmsghdr *c;
	ssize_t n;
	int s, e;

	if (strlen(sock_path) >= sizeof(sa.sun_path))
		return errf(err, errlen, -ENAMETOOLONG, "uffd socket path %s is too long",
			    sock_path);
	memcpy(sa.sun_path, sock_path, strlen(sock_path) + 1);
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return errf(err, errlen, -errno, "socket: %s", strerror(errno));
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		e = errno;
		close(s);
		return errf(err, errlen, -e, "connecting to the uffd handler at %s: %s", sock_path,
			    strerror(e));
	}
	memset(ctl.buf, 0, sizeof(ctl.buf));
	c = (struct cmsghdr *)ctl.buf; /* CMSG_FIRSTHDR, which cannot be NULL here */
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &uffd, sizeof(int));
	do
		n = sendmsg(s, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)len) {
		e = n < 0 ? errno : EPIPE;
		close(s);
		return errf(err, errlen, -e, "sending the uffd to %s: %s", sock_path, strerror(e));
	}
	return s;
}

int uffd_handshake_recv(int sock, char *buf, size_t len, int *uffd, char *err, size_t errlen)
{
	union {
		char buf[CMSG_SPACE(4 * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = {.iov_base = buf, .iov_len = len - 1};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = ctl.buf,
			    .msg_controllen = sizeof(ctl.buf)};
	ssize_t n;

	*uffd = -1;
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errf(err, errlen, -errno, "recvmsg: %s", strerror(errno));
	if (n == 0)
		return errf(err, errlen, -ECONNRESET, "the VMM closed the connection");
	buf[n] = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		size_t nfd;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < nfd; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (*uffd < 0)
				*uffd = fd;
			else
				close(fd); /* only one is expected */
		}
	}
	if (*uffd < 0)
		return errf(err, errlen, -EPROTO, "the handshake carried no file descriptor");
	return (int)n;
}

/* ---------------------------------------------------------------- threads */

/* Each uffd thread narrows the main filter it inherited to its own (the VMM's). */
static bool narrow_filter(struct uffd_backend *b, const char *who)
{
	char why[120];

	if (b->vm.thread_filter(b->vm.opaque) == 0)
		return true;
	snprintf(why, sizeof(why), "uffd: the %s thread could not install its seccomp filter", who);
	b->vm.request_exit(b->vm.opaque, b->vm.exit_status, why);
	return false;
}

static void *handler_main(void *opaque)
{
	struct uffd_backend *b = opaque;
	int ret;

	if (!narrow_filter(b, "handler"))
		return NULL;
	ret = uffd_server_run(b->srv, b->stop_fd);

	if (ret) {
		char why[160];

		snprintf(why, sizeof(why), "uffd: the page-fault handler thread failed (%s)",
			 strerror(-ret));
		b->vm.request_exit(b->vm.opaque, b->vm.exit_status, why);
	}
	return NULL;
}

static int discard(const struct uffd_vm *vm, uint64_t gpa, uint64_t len)
{
	void *host;

	if (len == 0 || (gpa | len) % UFFD_PAGE)
		return -EINVAL;
	host = vm->gpa_to_host(vm->opaque, gpa, len);
	if (!host)
		return -EINVAL;
	if (madvise(host, len, MADV_DONTNEED) < 0)
		return -errno;
	return 0;
}

/* A copy of the VM's description: the request may outlive the backend (uffd_stop does
 * not wait for discard threads, and the process exits soon after). */
struct discard_req {
	struct uffd_vm vm;
	uint64_t gpa, len;
};

/* Own thread: with remove events the madvise waits until the handler has read the
 * event, and a dead external handler never will. */
static void *discard_main(void *opaque)
{
	struct discard_req *r = opaque;
	int ret = discard(&r->vm, r->gpa, r->len);

	if (ret)
		log_err("uffd: discard of [%#llx, +%#llx): %s", (unsigned long long)r->gpa,
			(unsigned long long)r->len, strerror(-ret));
	else
		log_info("uffd: discarded [%#llx, +%#llx)", (unsigned long long)r->gpa,
			 (unsigned long long)r->len);
	free(r);
	return NULL;
}

static void on_discard_signal(struct uffd_backend *b)
{
	struct signalfd_siginfo si;
	struct discard_req *r;
	pthread_attr_t attr;
	pthread_t t;

	while (read(b->sig_fd, &si, sizeof(si)) == sizeof(si)) {
		uint32_t v = (uint32_t)si.ssi_int;

		r = malloc(sizeof(*r));
		if (!r)
			return;
		*r = (struct discard_req){b->vm, (uint64_t)(v & 0xffff) << 20,
					  (uint64_t)(v >> 16) << 20};
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&t, &attr, discard_main, r)) {
			log_err("uffd: cannot start a discard thread");
			free(r);
		}
		pthread_attr_destroy(&attr);
	}
}

/* True when the external handler is gone: its connection hung up or its process ended. */
static bool handler_gone(struct uffd_backend *b, const struct pollfd *p, const char **how)
{
	if (p[3].revents) {
		*how = "exited";
		return true;
	}
	if (p[2].revents & (POLLHUP | POLLRDHUP | POLLERR)) {
		*how = "hung up its socket";
		return true;
	}
	if (p[2].revents & POLLIN) {
		char buf[256];
		ssize_t n = recv(b->sock, buf, sizeof(buf), MSG_DONTWAIT);

		/* Nothing is expected after the handshake; data is dropped. */
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			*how = "closed its socket";
			return true;
		}
	}
	return false;
}

/* Asks the main loop to end the process and gives it HANDLER_DEATH_GRACE_MS. A thread
 * waiting on guest memory nobody serves (the main thread inside a device model or a
 * snapshot, say) cannot reach the exit path: then this thread ends the process. */
static void stop_vm(struct uffd_backend *b, const char *why)
{
	struct pollfd p = {.fd = b->stop_fd, .events = POLLIN};

	b->vm.request_exit(b->vm.opaque, b->vm.exit_status, why);
	if (poll(&p, 1, HANDLER_DEATH_GRACE_MS) > 0)
		return; /* uffd_stop: the process is on its way out */
	log_err("uffd: the VMM did not stop within %d ms (a thread waits on guest memory "
		"nobody serves): exiting",
		HANDLER_DEATH_GRACE_MS);
	_exit(b->vm.exit_status);
}

/* Who serves the faults, for messages. */
static void describe_handler(const struct uffd_backend *b, char *buf, size_t len)
{
	if (!b->external)
		snprintf(buf, len, "thaw's own handler thread");
	else if (b->peer > 0)
		snprintf(buf, len, "pid %d at %s", (int)b->peer, b->sock_path);
	else
		snprintf(buf, len, "at %s", b->sock_path);
}

/* True when the userfaultfd holds a fault event no handler has read yet. Polling does
 * not take it. */
static bool fault_waiting(const struct uffd_backend *b)
{
	struct pollfd p = {.fd = b->uffd, .events = POLLIN};

	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

/* One round of the stall detector (uffd.h): kicks the vCPUs that did not exit by
 * themselves since the last round and ends the VM when one is stuck. */
static void stall_check(struct uffd_backend *b, uint64_t now)
{
	const struct uffd_vm *vm = &b->vm;
	char stuck[160] = "", handler[160], why[640];
	size_t off = 0;
	bool refaults = false, waiting;
	uint64_t waited_ms = 0;
	enum uffd_vm_phase phase = vm->phase(vm->opaque);

	if (phase == UFFD_VM_EXITING)
		return;
	waiting = fault_waiting(b);
	b->checks++;
	if (uffd_stall_restore_step(&b->stall_restore, phase == UFFD_VM_RESTORING, waiting, now,
				    b->stall_timeout_ns)) {
		describe_handler(b, handler, sizeof(handler));
		snprintf(
		    why, sizeof(why),
		    "uffd: the restore (main thread) stuck in a guest memory fault for %llu ms "
		    "(limit %llu ms, --uffd-stall-timeout-ms): the page-fault handler (%s) is "
		    "alive but reads no fault; stopping the VM",
		    (unsigned long long)((now - b->stall_restore.since_ns) / 1000000),
		    (unsigned long long)(b->stall_timeout_ns / 1000000), handler);
		stop_vm(b, why);
		return;
	}
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		struct uffd_stall_vcpu *st = &b->stall[i];
		struct uffd_vcpu_sample s;
		enum uffd_stall_verdict v;

		vm->vcpu_sample(vm->opaque, i, &s);
		if (st->since_ns && s.active && s.seq != st->seq)
			b->kick_returns++;
		v = uffd_stall_step(st, &s, now, b->stall_timeout_ns, waiting);
		if (v == UFFD_STALL_KICK) {
			vm->vcpu_probe(vm->opaque, i);
			b->kicks++;
		} else if (v == UFFD_STALL_STUCK) {
			int n = snprintf(stuck + off, sizeof(stuck) - off, "%svcpu%u",
					 off ? ", " : "", i);

			if (n > 0 && (size_t)n < sizeof(stuck) - off)
				off += (size_t)n;
			refaults |= st->refaults;
			if ((now - st->since_ns) / 1000000 > waited_ms)
				waited_ms = (now - st->since_ns) / 1000000;
		}
	}
	if (!off)
		return;
	describe_handler(b, handler, sizeof(handler));
	snprintf(why, sizeof(why),
		 "uffd: %s stuck in a guest memory fault for %llu ms (limit %llu ms, "
		 "--uffd-stall-timeout-ms): the page-fault handler (%s) is alive but does not "
		 "serve it%s; stopping the VM",
		 stuck, (unsigned long long)waited_ms,
		 (unsigned long long)(b->stall_timeout_ns / 1000000), handler,
		 refaults ? " (each kick out of KVM_RUN only re-entered the same fault)" : "");
	stop_vm(b, why);
}

static void *control_main(void *opaque)
{
	struct uffd_backend *b = opaque;

	if (!narrow_filter(b, "control"))
		return NULL;
	for (;;) {
		struct pollfd p[4] = {{.fd = b->stop_fd, .events = POLLIN},
				      {.fd = b->sig_fd, .events = POLLIN},
				      {.fd = b->sock, .events = POLLIN | POLLRDHUP},
				      {.fd = b->pidfd, .events = POLLIN}};
		const char *how;
		char why[200];
		int wait_ms = -1, n;
		uint64_t now;

		/* No timer at all without the detector; with it, one wake-up a period. */
		if (b->stall_timeout_ns) {
			now = now_ns();
			wait_ms = now >= b->next_check_ns
				      ? 0
				      : (int)((b->next_check_ns - now + 999999) / 1000000);
		}
		n = poll(p, 4, wait_ms);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_err("uffd: control poll: %s", strerror(errno));
			return NULL;
		}
		if (p[0].revents)
			return NULL;
		if (p[1].revents)
			on_discard_signal(b);
		if (b->stall_timeout_ns && (now = now_ns()) >= b->next_check_ns) {
			stall_check(b, now);
			b->next_check_ns = now + b->stall_period_ms * 1000000;
		}
		if (!b->external || !handler_gone(b, p, &how))
			continue;
		snprintf(why, sizeof(why),
			 "uffd: the page-fault handler (pid %d) %s: guest memory can no longer be "
			 "served, stopping the VM",
			 (int)b->peer, how);
		stop_vm(b, why);
		return NULL;
	}
}

/* ---------------------------------------------------------------- restore */

static void backend_free(struct uffd_backend *b)
{
	if (b->srv)
		uffd_server_destroy(b->srv);
	if (b->src)
		munmap((void *)b->src, b->mem_size);
	if (b->mem_fd >= 0)
		close(b->mem_fd);
	if (b->uffd >= 0)
		close(b->uffd);
	if (b->stop_fd >= 0)
		close(b->stop_fd);
	if (b->sig_fd >= 0)
		close(b->sig_fd);
	if (b->sock >= 0)
		close(b->sock);
	if (b->pidfd >= 0)
		close(b->pidfd);
	free(b->ws);
	free(b);
}

/* The handler thread's inputs: snapshot mapping, zero bitmap, working set. */
static int setup_internal(struct uffd_backend *b, const struct snap *s,
			  const struct snap_memory_loc *loc, const struct uffd_restore_opts *opts,
			  const struct uffd_strategy *st, const struct uffd_region *regions,
			  size_t nr, char *err, size_t errlen)
{
	struct uffd_server_opts so = {.uffd = b->uffd,
				      .regions = regions,
				      .nr_regions = nr,
				      .mem_size = loc->size,
				      .src_off = loc->offset,
				      .strategy = *st,
				      .record = opts->record != NULL};
	uint64_t npages = loc->size / UFFD_PAGE, zn;
	const uint8_t *zbits;
	void *p;
	int ret;

	ret = snap_memory_open(s, &b->mem_fd, err, errlen);
	if (ret)
		return ret;
	p = mmap(NULL, loc->size, PROT_READ, MAP_PRIVATE | MAP_NORESERVE, b->mem_fd,
		 (off_t)loc->offset);
	if (p == MAP_FAILED)
		return errf(err, errlen, -errno, "mmap of the snapshot's memory: %s",
			    strerror(errno));
	b->src = p;
	b->mem_size = loc->size;
	so.src = b->src;
	so.src_fd = b->mem_fd;
	if (snap_memory_zero_bitmap(s, &zbits, &zn) == 0 && zn == npages)
		so.zero_bits = zbits; /* copied by uffd_server_create */
	if (st->mode == UFFD_MODE_PREFETCH) {
		size_t n;

		if (st->ws_path[0]) {
			ret =
			    uffd_ws_read(st->ws_path, snap_id(s), npages, &b->ws, &n, err, errlen);
			if (ret)
				return ret;
		} else {
			const uint64_t *w;

			if (snap_workingset(s, &w, &n))
				return errf(
				    err, errlen, -ENOENT,
				    "prefetch: the snapshot has no valid workingset section "
				    "(record one with --uffd-record FILE, then use "
				    "prefetch,ws=FILE or thaw-uffd embed)");
			b->ws = malloc(n * sizeof(*w) + 8);
			if (!b->ws)
				return -ENOMEM;
			memcpy(b->ws, w, n * sizeof(*w));
		}
		so.ws = b->ws;
		so.nws = n;
	}
	if (opts->record) {
		if (strlen(opts->record) >= sizeof(b->record_path))
			return errf(err, errlen, -ENAMETOOLONG, "--uffd-record: path too long");
		strcpy(b->record_path, opts->record);
		snprintf(b->snap_path, sizeof(b->snap_path), "%s",
			 opts->snap_path ? opts->snap_path : "");
		memcpy(b->snap_id, snap_id(s), 16);
	}
	ret = uffd_server_create(&so, &b->srv);
	if (ret)
		return errf(err, errlen, ret, "uffd handler: %s", strerror(-ret));
	ret = pthread_create(&b->handler, NULL, handler_main, b);
	if (ret)
		return errf(err, errlen, -ret, "starting the uffd handler thread: %s",
			    strerror(ret));
	pthread_setname_np(b->handler, "uffd-handler");
	b->handler_started = true;
	return 0;
}

static int setup_external(struct uffd_backend *b, const struct uffd_restore_opts *opts,
			  const struct uffd_region *regions, size_t nr, char *err, size_t errlen)
{
	char json[UFFD_MSG_MAX];
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	int len;

	len = uffd_regions_encode(regions, nr, json, sizeof(json));
	if (len < 0)
		return errf(err, errlen, len, "encoding the memory regions");
	snprintf(b->sock_path, sizeof(b->sock_path), "%s", opts->sock);
	b->sock = uffd_handshake_send(opts->sock, b->uffd, json, (size_t)len, err, errlen);
	if (b->sock < 0)
		return b->sock;
	if (getsockopt(b->sock, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0 && cred.pid > 0) {
		b->peer = cred.pid;
		b->pidfd = (int)syscall(SYS_pidfd_open, cred.pid, 0);
		if (b->pidfd < 0)
			log_warn("uffd: pidfd_open(%d): %s: watching the socket only",
				 (int)cred.pid, strerror(errno));
	}
	return 0;
}

int uffd_restore_memory(struct uffd_vm *vm, const struct snap *s,
			const struct uffd_restore_opts *opts, struct uffd_backend **out, char *err,
			size_t errlen)
{
	struct uffd_region regions[UFFD_MAX_REGIONS];
	struct uffd_strategy st;
	struct snap_memory_loc loc;
	struct uffd_backend *b;
	sigset_t rt;
	bool fixed = vm->host != NULL;
	void *p;
	int ret;

	if (vm->nr_regions == 0 || vm->nr_regions > UFFD_MAX_REGIONS)
		return errf(err, errlen, -EINVAL, "uffd: %u memory regions (1..%u)", vm->nr_regions,
			    UFFD_MAX_REGIONS);
	if (opts->external) {
		if (opts->strategy || opts->record)
			return errf(err, errlen, -EINVAL,
				    "--uffd-strategy and --uffd-record belong to the external "
				    "handler (thaw-uffd --strategy/--record)");
	} else {
		ret = uffd_strategy_parse(opts->strategy, &st, err, errlen);
		if (ret)
			return ret;
	}
	ret = snap_memory(s, &loc);
	if (ret)
		return errf(err, errlen, ret, "memory section: %s", strerror(-ret));
	if (loc.size != vm->size || loc.size == 0)
		return errf(err, errlen, -EBADMSG,
			    "memory section has %llu bytes, the machine %llu",
			    (unsigned long long)loc.size, (unsigned long long)vm->size);
	b = calloc(1, sizeof(*b) + vm->nr_vcpus * sizeof(b->stall[0]));
	if (!b)
		return errf(err, errlen, -ENOMEM, "out of memory");
	b->vm = *vm;
	b->external = opts->external;
	b->uffd = b->stop_fd = b->sig_fd = b->sock = b->pidfd = b->mem_fd = -1;

	/* Anonymous memory over the prepared range (the KVM slot stays valid: its MMU
	 * notifier sees the old pages go) or a new range the caller registers. */
	p = mmap(fixed ? vm->host : NULL, loc.size, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | (fixed ? MAP_FIXED : 0), -1, 0);
	if (p == MAP_FAILED) {
		ret = errf(err, errlen, -errno, "mmap of %llu MiB of guest memory: %s",
			   (unsigned long long)(loc.size >> 20), strerror(errno));
		goto fail;
	}
	vm->host = b->vm.host = p;
	ret = b->uffd = uffd_open(err, errlen);
	if (ret < 0)
		goto fail;
	ret = uffd_register(b->uffd, p, loc.size, err, errlen);
	if (ret)
		goto fail;
	for (unsigned i = 0; i < vm->nr_regions; i++)
		regions[i] =
		    (struct uffd_region){.base = (uint64_t)(uintptr_t)p + vm->regions[i].offset,
					 .size = vm->regions[i].size,
					 .offset = vm->regions[i].offset,
					 .page_size = UFFD_PAGE};

	b->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (b->stop_fd < 0) {
		ret = errf(err, errlen, -errno, "eventfd: %s", strerror(errno));
		goto fail;
	}
	/* The discard hook's signal: blocked here, before the vCPU threads exist, so every
	 * thread inherits the mask and only the control thread's signalfd takes it. */
	sigemptyset(&rt);
	sigaddset(&rt, UFFD_DISCARD_SIGNAL);
	pthread_sigmask(SIG_BLOCK, &rt, NULL);
	b->sig_fd = signalfd(-1, &rt, SFD_CLOEXEC | SFD_NONBLOCK);
	if (b->sig_fd < 0) {
		ret = errf(err, errlen, -errno, "signalfd: %s", strerror(errno));
		goto fail;
	}
	if (b->external)
		ret = setup_external(b, opts, regions, vm->nr_regions, err, errlen);
	else
		ret = setup_internal(b, s, &loc, opts, &st, regions, vm->nr_regions, err, errlen);
	if (ret)
		goto fail;
	if (vm->stall_ms) {
		b->stall_timeout_ns = (uint64_t)vm->stall_ms * 1000000;
		b->stall_period_ms = uffd_stall_period_ms(vm->stall_ms);
		b->next_check_ns = now_ns() + b->stall_period_ms * 1000000;
	}
	ret = pthread_create(&b->control, NULL, control_main, b);
	if (ret) {
		ret =
		    errf(err, errlen, -ret, "starting the uffd control thread: %s", strerror(ret));
		goto fail;
	}
	pthread_setname_np(b->control, "uffd-control");
	b->control_started = true;
	*out = b;
	return 0;
fail:
	if (b->handler_started) {
		uint64_t one = 1;

		if (write(b->stop_fd, &one, sizeof(one)) == sizeof(one))
			pthread_join(b->handler, NULL);
	}
	backend_free(b);
	return ret < 0 ? ret : -EIO;
}

/* pthread_join with a limit; true when the thread was joined. */
static bool join_bounded(pthread_t t, int ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	return pthread_timedjoin_np(t, NULL, &ts) == 0;
}

void uffd_stop(struct uffd_backend *b)
{
	uint64_t one = 1;

	if (!b)
		return;
	if (write(b->stop_fd, &one, sizeof(one)) != sizeof(one))
		log_err("uffd: signalling the handler to stop: %s", strerror(errno));
	if (b->control_started)
		pthread_join(b->control, NULL);
	if (b->stall_timeout_ns)
		log_info("uffd: stall detector: checks=%llu kicks=%llu returns=%llu",
			 (unsigned long long)b->checks, (unsigned long long)b->kicks,
			 (unsigned long long)b->kick_returns);
	/* A handler thread that stopped serving may never see the stop: the process
	 * exits without its counters and record rather than wait for it. */
	if (b->handler_started && !join_bounded(b->handler, HANDLER_STOP_MS)) {
		log_err("uffd: the handler thread did not stop within %d ms: its counters and "
			"working set are lost",
			HANDLER_STOP_MS);
		return; /* it may still use what backend_free would release */
	}
	if (b->srv) {
		struct uffd_stats st;
		char line[400];

		uffd_server_stats(b->srv, &st);
		uffd_stats_format(&st, line, sizeof(line));
		log_info("uffd: %s", line);
		if (b->record_path[0]) {
			size_t n;
			const uint64_t *pages = uffd_server_recorded(b->srv, &n);
			int ret = uffd_ws_write(b->record_path, b->snap_id, b->snap_path, pages, n);

			if (ret)
				log_err("uffd: writing the working set to %s: %s", b->record_path,
					strerror(-ret));
			else
				log_info("uffd: recorded %zu pages to %s", n, b->record_path);
		}
	}
	backend_free(b);
}

int uffd_discard(struct uffd_backend *b, uint64_t gpa, uint64_t len)
{
	if (!b)
		return -ENODEV;
	return discard(&b->vm, gpa, len);
}
