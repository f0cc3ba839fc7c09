/* The main thread's event loop with real pipes and eventfds: callbacks, removal from
 * inside a callback, stop, the idle timeout and the table limit. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cmocka.h>

#include "vmm/vmm.h"

/* One watched fd and what its callback saw. */
struct watch {
	struct vmm_loop *loop;
	int fd;
	unsigned calls;
	uint32_t events;
	/* what the callback does besides counting */
	bool drain;	   /* read the eventfd so it stops being readable */
	int stop_status;   /* >= 0: stop the loop with it */
	struct watch *del; /* remove this one */
	struct watch *add; /* then add this one */
	bool del_self;
};

static void on_event(void *opaque, uint32_t events)
{
	struct watch *w = opaque;
	uint64_t v;

	w->calls++;
	w->events = events;
	if (w->drain && read(w->fd, &v, sizeof(v)) != sizeof(v))
		fail_msg("read of eventfd %d: %s", w->fd, strerror(errno));
	if (w->del)
		vmm_loop_del(w->loop, w->del->fd);
	if (w->add)
		assert_int_equal(vmm_loop_add(w->loop, w->add->fd, EPOLLIN, on_event, w->add), 0);
	if (w->del_self)
		vmm_loop_del(w->loop, w->fd);
	if (w->stop_status >= 0)
		vmm_loop_stop(w->loop, w->stop_status);
}

static void watch_init(struct watch *w, struct vmm_loop *l, bool readable)
{
	memset(w, 0, sizeof(*w));
	w->loop = l;
	w->stop_status = -1;
	w->fd = eventfd(readable ? 1 : 0, EFD_CLOEXEC | EFD_NONBLOCK);
	assert_true(w->fd >= 0);
}

/* Idle callback: counts and stops the loop with status 99. */
struct idle {
	struct vmm_loop *loop;
	unsigned calls;
};

static void on_idle(void *opaque)
{
	struct idle *i = opaque;

	i->calls++;
	vmm_loop_stop(i->loop, 99);
}

/* After one quiet round of `ms`, the loop stops with 99. */
static void stop_when_idle(struct vmm_loop *l, struct idle *i, int ms)
{
	i->loop = l;
	i->calls = 0;
	l->timeout_ms = ms;
	l->idle = on_idle;
	l->idle_opaque = i;
}

static int setup(void **state)
{
	static struct vmm_loop l;

	alarm(10); /* a hung loop fails the run instead of blocking it */
	if (vmm_loop_init(&l))
		return -1;
	*state = &l;
	return 0;
}

static int teardown(void **state)
{
	vmm_loop_destroy(*state);
	alarm(0);
	return 0;
}

static void test_init_waits_forever_by_default(void **state)
{
	struct vmm_loop *l = *state;

	assert_true(l->epfd >= 0);
	assert_int_equal(l->timeout_ms, -1);
	assert_false(l->stop);
}

static void test_callback_runs_for_readable_pipe(void **state)
{
	struct vmm_loop *l = *state;
	struct watch w;
	int p[2];

	assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
	memset(&w, 0, sizeof(w));
	w.loop = l;
	w.fd = p[0];
	w.stop_status = 42;
	assert_int_equal(vmm_loop_add(l, p[0], EPOLLIN, on_event, &w), 0);
	assert_int_equal(write(p[1], "x", 1), 1);
	assert_int_equal(vmm_loop_run(l), 42);
	assert_int_equal(w.calls, 1);
	assert_true(w.events & EPOLLIN);
	close(p[0]);
	close(p[1]);
}

static void test_hangup_is_delivered(void **state)
{
	struct vmm_loop *l = *state;
	struct watch w;
	int p[2];

	assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
	memset(&w, 0, sizeof(w));
	w.loop = l;
	w.fd = p[0];
	w.stop_status = 0;
	assert_int_equal(vmm_loop_add(l, p[0], EPOLLIN, on_event, &w), 0);
	close(p[1]);
	assert_int_equal(vmm_loop_run(l), 0);
	assert_true(w.events & EPOLLHUP);
	close(p[0]);
}

static void test_callback_runs_each_round_while_readable(void **state)
{
	struct vmm_loop *l = *state;
	struct watch a, b;

	watch_init(&a, l, true); /* stays readable: level triggered */
	watch_init(&b, l, false);
	assert_int_equal(vmm_loop_add(l, a.fd, EPOLLIN, on_event, &a), 0);
	assert_int_equal(vmm_loop_add(l, b.fd, EPOLLIN, on_event, &b), 0);
	for (int i = 0; i < 3; i++) {
		/* run one round at a time: stop from the callback */
		a.stop_status = i;
		l->stop = false;
		assert_int_equal(vmm_loop_run(l), i);
	}
	assert_int_equal(a.calls, 3);
	assert_int_equal(b.calls, 0);
	close(a.fd);
	close(b.fd);
}

static void test_stop_returns_first_status(void **state)
{
	struct vmm_loop *l = *state;

	vmm_loop_stop(l, 3);
	vmm_loop_stop(l, 5);
	assert_int_equal(vmm_loop_run(l), 3);
}

/* Stopping ends the round: the other ready callbacks of the batch do not run. */
static void test_stop_skips_rest_of_round(void **state)
{
	struct vmm_loop *l = *state;
	struct watch a, b;

	watch_init(&a, l, true);
	watch_init(&b, l, true);
	a.stop_status = 1;
	b.stop_status = 2;
	assert_int_equal(vmm_loop_add(l, a.fd, EPOLLIN, on_event, &a), 0);
	assert_int_equal(vmm_loop_add(l, b.fd, EPOLLIN, on_event, &b), 0);
	int status = vmm_loop_run(l);
	assert_int_equal(a.calls + b.calls, 1);
	assert_int_equal(status, a.calls ? 1 : 2);
	close(a.fd);
	close(b.fd);
}

static void test_del_self_from_callback(void **state)
{
	struct vmm_loop *l = *state;
	struct watch a;
	struct idle i;

	watch_init(&a, l, true); /* never drained: would fire every round if kept */
	a.del_self = true;
	assert_int_equal(vmm_loop_add(l, a.fd, EPOLLIN, on_event, &a), 0);
	stop_when_idle(l, &i, 5);
	assert_int_equal(vmm_loop_run(l), 99);
	assert_int_equal(a.calls, 1);
	assert_int_equal(i.calls, 1);
	close(a.fd);
}

/* Both are ready in the same round; whichever runs first removes the other, whose
 * event is already in the batch and must not be delivered. */
static void test_del_other_from_callback_drops_its_pending_event(void **state)
{
	struct vmm_loop *l = *state;
	struct watch a, b;
	struct idle i;

	watch_init(&a, l, true);
	watch_init(&b, l, true);
	a.drain = b.drain = true;
	a.del = &b;
	b.del = &a;
	assert_int_equal(vmm_loop_add(l, a.fd, EPOLLIN, on_event, &a), 0);
	assert_int_equal(vmm_loop_add(l, b.fd, EPOLLIN, on_event, &b), 0);
	stop_when_idle(l, &i, 5);
	assert_int_equal(vmm_loop_run(l), 99);
	assert_int_equal(a.calls + b.calls, 1);
	close(a.fd);
	close(b.fd);
}

/* As above, and the callback then watches a new fd (a server replacing a connection):
 * the removed fd's pending event must not reach the newcomer's callback, which would
 * see an event its fd never had. */
static void test_event_of_deleted_fd_not_delivered_to_fd_added_in_same_round(void **state)
{
	struct vmm_loop *l = *state;
	struct watch a, b, c;
	struct idle i;

	watch_init(&a, l, true);
	watch_init(&b, l, true);
	watch_init(&c, l, false); /* never readable */
	a.drain = b.drain = true;
	a.del = &b;
	b.del = &a;
	a.add = b.add = &c;
	assert_int_equal(vmm_loop_add(l, a.fd, EPOLLIN, on_event, &a), 0);
	assert_int_equal(vmm_loop_add(l, b.fd, EPOLLIN, on_event, &b), 0);
	stop_when_idle(l, &i, 5);
	assert_int_equal(vmm_loop_run(l), 99);
	assert_int_equal(a.calls + b.calls, 1);
	assert_int_equal(c.calls, 0);
	close(a.fd);
	close(b.fd);
	close(c.fd);
}

static void test_idle_runs_after_timeout(void **state)
{
	struct vmm_loop *l = *state;
	struct idle i;

	stop_when_idle(l, &i, 1);
	assert_int_equal(vmm_loop_run(l), 99);
	assert_int_equal(i.calls, 1);
}

static void test_idle_not_run_while_events_arrive(void **state)
{
	struct vmm_loop *l = *state;
	struct watch a;
	struct idle i;

	watch_init(&a, l, true);
	a.stop_status = 7;
	assert_int_equal(vmm_loop_add(l, a.fd, EPOLLIN, on_event, &a), 0);
	stop_when_idle(l, &i, 1000);
	assert_int_equal(vmm_loop_run(l), 7);
	assert_int_equal(i.calls, 0);
	close(a.fd);
}

/* Counts its calls and, as a guard, stops the loop with status 7 after many. */
static void on_always_ready(void *opaque, uint32_t events)
{
	struct watch *w = opaque;

	if (++w->calls == 2000000)
		vmm_loop_stop(w->loop, 7);
}

/* An fd that never stops being ready (a device re-arming its kick every round) must
 * not starve the idle callback: it still runs once its timeout has passed. */
static void test_idle_runs_while_an_fd_stays_ready(void **state)
{
	struct vmm_loop *l = *state;
	struct watch a;
	struct idle i;

	watch_init(&a, l, true); /* never drained */
	assert_int_equal(vmm_loop_add(l, a.fd, EPOLLIN, on_always_ready, &a), 0);
	stop_when_idle(l, &i, 5);
	assert_int_equal(vmm_loop_run(l), 99);
	assert_int_equal(i.calls, 1);
	assert_true(a.calls > 0);
	close(a.fd);
}

/* A callback may start the idle timer itself (the console does, to retry input). */
static void on_event_then_idle(void *opaque, uint32_t events)
{
	struct watch *w = opaque;
	uint64_t v;

	w->calls++;
	assert_int_equal(read(w->fd, &v, sizeof(v)), sizeof(v));
	w->loop->timeout_ms = 1;
}

static void test_callback_can_set_timeout(void **state)
{
	struct vmm_loop *l = *state;
	struct watch a;
	struct idle i;

	watch_init(&a, l, true);
	assert_int_equal(vmm_loop_add(l, a.fd, EPOLLIN, on_event_then_idle, &a), 0);
	stop_when_idle(l, &i, -1); /* no timeout until the callback sets one */
	assert_int_equal(vmm_loop_run(l), 99);
	assert_int_equal(a.calls, 1);
	assert_int_equal(i.calls, 1);
	close(a.fd);
}

static void test_mod_enables_events(void **state)
{
	struct vmm_loop *l = *state;
	struct watch a;
	struct idle i;

	watch_init(&a, l, true);
	a.stop_status = 5;
	assert_int_equal(vmm_loop_add(l, a.fd, 0, on_event, &a), 0);
	stop_when_idle(l, &i, 5);
	assert_int_equal(vmm_loop_run(l), 99); /* readable, but not asked for */
	assert_int_equal(a.calls, 0);
	l->stop = false;
	assert_int_equal(vmm_loop_mod(l, a.fd, EPOLLIN), 0);
	assert_int_equal(vmm_loop_run(l), 5);
	assert_int_equal(a.calls, 1);
	close(a.fd);
}

static void test_mod_of_unknown_fd_refused(void **state)
{
	struct vmm_loop *l = *state;

	assert_int_equal(vmm_loop_mod(l, 12345, EPOLLIN), -ENOENT);
}

static void test_del_of_unknown_fd_is_harmless(void **state)
{
	struct vmm_loop *l = *state;

	vmm_loop_del(l, 12345);
	vmm_loop_del(l, -1);
}

static void test_add_of_bad_fd_refused(void **state)
{
	struct vmm_loop *l = *state;
	struct watch w = {0};

	assert_int_equal(vmm_loop_add(l, 12345, EPOLLIN, on_event, &w), -EBADF);
	/* the failed add took no slot */
	for (int i = 0; i < VMM_LOOP_MAX; i++)
		assert_int_equal(l->entries[i].fd, -1);
}

static void test_add_same_fd_twice_refused(void **state)
{
	struct vmm_loop *l = *state;
	struct watch a;

	watch_init(&a, l, false);
	assert_int_equal(vmm_loop_add(l, a.fd, EPOLLIN, on_event, &a), 0);
	assert_int_equal(vmm_loop_add(l, a.fd, EPOLLIN, on_event, &a), -EEXIST);
	close(a.fd);
}

static void test_full_table_refused_until_a_slot_frees(void **state)
{
	struct vmm_loop *l = *state;
	static struct watch w[VMM_LOOP_MAX + 1];

	for (int i = 0; i <= VMM_LOOP_MAX; i++)
		watch_init(&w[i], l, false);
	for (int i = 0; i < VMM_LOOP_MAX; i++)
		assert_int_equal(vmm_loop_add(l, w[i].fd, EPOLLIN, on_event, &w[i]), 0);
	assert_int_equal(vmm_loop_add(l, w[VMM_LOOP_MAX].fd, EPOLLIN, on_event, &w[VMM_LOOP_MAX]),
			 -ENOSPC);
	vmm_loop_del(l, w[10].fd);
	assert_int_equal(vmm_loop_add(l, w[VMM_LOOP_MAX].fd, EPOLLIN, on_event, &w[VMM_LOOP_MAX]),
			 0);
	for (int i = 0; i <= VMM_LOOP_MAX; i++)
		close(w[i].fd);
}

static void test_destroy_closes_epoll_fd(void **state)
{
	struct vmm_loop l;
	int fd;

	assert_int_equal(vmm_loop_init(&l), 0);
	fd = l.epfd;
	vmm_loop_destroy(&l);
	assert_int_equal(l.epfd, -1);
	assert_int_equal(fcntl(fd, F_GETFD), -1);
	assert_int_equal(errno, EBADF);
	vmm_loop_destroy(&l); /* twice is harmless */
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_init_waits_forever_by_default),
	    T(test_callback_runs_for_readable_pipe),
	    T(test_hangup_is_delivered),
	    T(test_callback_runs_each_round_while_readable),
	    T(test_stop_returns_first_status),
	    T(test_stop_skips_rest_of_round),
	    T(test_del_self_from_callback),
	    T(test_del_other_from_callback_drops_its_pending_event),
	    T(test_event_of_deleted_fd_not_delivered_to_fd_added_in_same_round),
	    T(test_idle_runs_after_timeout),
	    T(test_idle_not_run_while_events_arrive),
	    T(test_idle_runs_while_an_fd_stays_ready),
	    T(test_callback_can_set_timeout),
	    T(test_mod_enables_events),
	    T(test_mod_of_unknown_fd_refused),
	    T(test_del_of_unknown_fd_is_harmless),
	    T(test_add_of_bad_fd_refused),
	    T(test_add_same_fd_twice_refused),
	    T(test_full_table_refused_until_a_slot_frees),
	    cmocka_unit_test(test_destroy_closes_epoll_fd),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
