/* The main thread's event loop: epoll with one callback per fd.
 *
 * Fairness: epoll is level-triggered and each round dispatches every fd it returned
 * once; an fd that is still ready goes to the back of the kernel's ready list, so with
 * more ready fds than one wait returns, the others come first in the next round. A
 * callback that has more work than its budget leaves its fd ready (the virtio queues
 * re-signal their kick eventfd) instead of looping, so the API socket and the signalfd
 * are served within a round or two whatever a guest does. */
#include "vmm/vmm.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

int vmm_loop_init(struct vmm_loop *l)
{
	memset(l, 0, sizeof(*l));
	l->timeout_ms = -1;
	for (int i = 0; i < VMM_LOOP_MAX; i++)
		l->entries[i].fd = -1;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0) {
		int ret = -errno;

		log_err("epoll_create1: %s", strerror(-ret));
		return ret;
	}
	return 0;
}

int vmm_loop_add(struct vmm_loop *l, int fd, uint32_t events, vmm_loop_fn fn, void *opaque)
{
	for (int i = 0; i < VMM_LOOP_MAX; i++) {
		struct vmm_loop_entry *e = &l->entries[i];
		struct epoll_event ev = {.events = events, .data.ptr = e};

		if (e->fd >= 0 || e->dead)
			continue;
		if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
			int ret = -errno; /* before log_err can change errno */

			log_err("epoll_ctl add fd %d: %s", fd, strerror(-ret));
			return ret;
		}
		*e = (struct vmm_loop_entry){fd, fn, opaque, false};
		return 0;
	}
	log_err("main loop: more than %d fds", VMM_LOOP_MAX);
	return -ENOSPC;
}

static struct vmm_loop_entry *find(struct vmm_loop *l, int fd)
{
	for (int i = 0; i < VMM_LOOP_MAX; i++)
		if (l->entries[i].fd == fd)
			return &l->entries[i];
	return NULL;
}

int vmm_loop_mod(struct vmm_loop *l, int fd, uint32_t events)
{
	struct vmm_loop_entry *e = find(l, fd);
	struct epoll_event ev = {.events = events, .data.ptr = e};

	if (!e)
		return -ENOENT;
	if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
		return -errno;
	return 0;
}

void vmm_loop_del(struct vmm_loop *l, int fd)
{
	struct vmm_loop_entry *e = find(l, fd);

	if (!e)
		return;
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
	/* An event for this entry may still be in the current batch: a cleared fn
	 * makes the dispatcher skip it, and the slot stays unused (dead) until the
	 * batch is done so a new fd cannot inherit that event. */
	e->fd = -1;
	e->fn = NULL;
	e->dead = l->dispatching;
}

void vmm_loop_stop(struct vmm_loop *l, int status)
{
	if (!l->stop) {
		l->stop = true;
		l->status = status;
	}
}

int vmm_loop_run(struct vmm_loop *l)
{
	l->idle_ran_ns = now_ns();
	while (!l->stop) {
		struct epoll_event evs[16];
		int n;

		if (l->before_wait) {
			void (*fn)(void *) = l->before_wait;

			l->before_wait = NULL;
			fn(l->before_wait_opaque);
			if (l->stop)
				break;
		}
		n = epoll_wait(l->epfd, evs, 16, l->timeout_ms);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_err("epoll_wait: %s", strerror(errno));
			return VMM_EXIT_INTERNAL;
		}
		if (l->idle && l->timeout_ms >= 0) {
			uint64_t now = now_ns();

			/* Not only on an empty wait: a device that re-arms itself every
			 * round would keep n above 0 for as long as the guest likes. */
			if (n == 0 ||
			    now - l->idle_ran_ns >= (uint64_t)l->timeout_ms * 1000000ull) {
				l->idle_ran_ns = now;
				l->idle(l->idle_opaque);
			}
		}
		l->dispatching = true;
		for (int i = 0; i < n && !l->stop; i++) {
			struct vmm_loop_entry *e = evs[i].data.ptr;

			if (e->fn)
				e->fn(e->opaque, evs[i].events);
		}
		l->dispatching = false;
		for (int i = 0; i < VMM_LOOP_MAX; i++)
			l->entries[i].dead = false;
	}
	return l->status;
}

void vmm_loop_destroy(struct vmm_loop *l)
{
	if (l->epfd >= 0)
		close(l->epfd);
	l->epfd = -1;
}
