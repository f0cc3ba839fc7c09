/* Rate limiters: Firecracker's token buckets (bandwidth and operations, each with a
 * one-time burst), enforced on a device's queue.
 *
 * A held-back queue is simply not processed: its chains stay in the avail ring and
 * the guest sees a slow device, as it would a busy disk or link. When the budget is
 * back, a timerfd signals the queue's kick eventfd (virtio_requeue), and the queue's
 * own handler runs again on the main loop, exactly as after a guest notification, so
 * each device needs only an admit/charge pair around the work it already does.
 */
#include "vmm/virtio/virtio_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#define NS_PER_MS 1000000ull

void virtio_bucket_init(struct virtio_bucket *b, const struct vmm_token_bucket *cfg, uint64_t now)
{
	memset(b, 0, sizeof(*b));
	/* As Firecracker: a bucket of size 0 or refill time 0 limits nothing. */
	if (!cfg->size || !cfg->refill_ms)
		return;
	b->size = cfg->size;
	b->refill_ns = cfg->refill_ms * NS_PER_MS;
	b->burst = cfg->one_time_burst;
	b->budget = (int64_t)(b->size > INT64_MAX ? INT64_MAX : b->size);
	b->last_ns = now;
}

void virtio_bucket_refill(struct virtio_bucket *b, uint64_t now)
{
	unsigned __int128 t;
	uint64_t add, room;

	if (!b->size || now <= b->last_ns)
		return;
	room = b->budget >= 0 ? b->size - (uint64_t)b->budget : b->size + (uint64_t)-b->budget;
	t = (unsigned __int128)(now - b->last_ns) * b->size + b->frac;
	b->last_ns = now;
	if (t / b->refill_ns >= room) {
		b->budget = (int64_t)b->size;
		b->frac = 0;
		return;
	}
	add = (uint64_t)(t / b->refill_ns);
	b->frac = (uint64_t)(t % b->refill_ns);
	b->budget += (int64_t)add;
}

void virtio_bucket_charge(struct virtio_bucket *b, uint64_t tokens)
{
	uint64_t from_burst;

	if (!b->size)
		return;
	from_burst = tokens < b->burst ? tokens : b->burst;
	b->burst -= from_burst;
	tokens -= from_burst;
	/* Debt is capped at INT64_MAX/2 (far beyond any request) to keep it signed. */
	if (tokens > (uint64_t)(INT64_MAX / 2))
		tokens = INT64_MAX / 2;
	if (b->budget < INT64_MIN / 2 + (int64_t)tokens)
		b->budget = INT64_MIN / 2;
	else
		b->budget -= (int64_t)tokens;
}

uint64_t virtio_bucket_wait_ns(const struct virtio_bucket *b)
{
	unsigned __int128 need;

	if (!b->size || b->budget > 0 || b->burst > 0)
		return 0;
	/* Tokens to reach a budget of 1, in token-nanoseconds, less what is banked. */
	need = ((unsigned __int128)(uint64_t)(1 - b->budget)) * b->refill_ns - b->frac;
	need = (need + b->size - 1) / b->size;
	return need > UINT64_MAX ? UINT64_MAX : (uint64_t)need;
}

static void on_timer(void *opaque, uint32_t events)
{
	struct virtio_rl *rl = opaque;
	uint64_t n;

	__atomic_add_fetch(&rl->d->vm->device_events, 1, __ATOMIC_RELAXED);

	if (read(rl->timer_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_ratelimited(LOG_WARN, "virtio %s: rate limiter timer: %s", rl->d->id,
				strerror(errno));
	rl->armed = false;
	virtio_requeue(rl->d, rl->q);
}

int virtio_rl_set(struct virtio_rl *rl, struct virtio_dev *d, unsigned q,
		  const struct vmm_rate_limit *cfg, unsigned keep)
{
	uint64_t now = now_ns();
	int ret;

	rl->d = d;
	rl->q = q;
	if (vmm_rate_limit_on(cfg) && !rl->has_timer) {
		rl->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
		if (rl->timer_fd < 0) {
			ret = -errno;
			log_err("virtio %s: rate limiter: timerfd_create: %s", d->id,
				strerror(-ret));
			return ret;
		}
		ret = vmm_loop_add(&d->vm->loop, rl->timer_fd, EPOLLIN, on_timer, rl);
		if (ret) {
			close(rl->timer_fd);
			return ret;
		}
		rl->has_timer = true;
	}
	if (!(keep & VMM_RL_KEEP_BANDWIDTH))
		virtio_bucket_init(&rl->bw, &cfg->bandwidth, now);
	if (!(keep & VMM_RL_KEEP_OPS))
		virtio_bucket_init(&rl->ops, &cfg->ops, now);
	/* A queue held by the old limit runs again at once under the new one. */
	if (rl->armed) {
		struct itimerspec off = {{0, 0}, {0, 0}};

		timerfd_settime(rl->timer_fd, 0, &off, NULL);
		rl->armed = false;
		virtio_requeue(d, q);
	}
	return 0;
}

static void bucket_get(const struct virtio_bucket *b, struct vmm_token_bucket *out)
{
	out->size = b->size;
	out->one_time_burst = b->burst;
	out->refill_ms = b->size ? b->refill_ns / NS_PER_MS : 0;
}

void virtio_rl_get(const struct virtio_rl *rl, struct vmm_rate_limit *out)
{
	bucket_get(&rl->bw, &out->bandwidth);
	bucket_get(&rl->ops, &out->ops);
}

bool virtio_rl_admit(struct virtio_rl *rl)
{
	struct itimerspec when = {{0, 0}, {0, 0}};
	uint64_t now, wait, w;

	if (!rl->bw.size && !rl->ops.size)
		return true;
	if (rl->armed)
		return false;
	now = now_ns();
	virtio_bucket_refill(&rl->bw, now);
	virtio_bucket_refill(&rl->ops, now);
	wait = virtio_bucket_wait_ns(&rl->bw);
	w = virtio_bucket_wait_ns(&rl->ops);
	if (w > wait)
		wait = w;
	if (!wait)
		return true;
	virtio_count_add(rl->d, rl->cnt, 1);
	when.it_value.tv_sec = (time_t)(wait / 1000000000ull);
	when.it_value.tv_nsec = (long)(wait % 1000000000ull);
	if (timerfd_settime(rl->timer_fd, 0, &when, NULL) < 0) {
		/* Without a timer the queue would stall for good: let the request pass. */
		log_ratelimited(LOG_WARN, "virtio %s: rate limiter: timerfd_settime: %s", rl->d->id,
				strerror(errno));
		return true;
	}
	rl->armed = true;
	return false;
}

void virtio_rl_charge(struct virtio_rl *rl, uint64_t bytes)
{
	virtio_bucket_charge(&rl->bw, bytes);
	virtio_bucket_charge(&rl->ops, 1);
}

void virtio_rl_encode(struct snap_sec *sec, uint16_t tag, const struct vmm_rate_limit *rl)
{
	const struct vmm_token_bucket *b[2] = {&rl->bandwidth, &rl->ops};

	if (!vmm_rate_limit_on(rl))
		return;
	for (unsigned i = 0; i < 2; i++) {
		snap_put_u64(sec, (uint16_t)(tag + 3 * i), b[i]->size);
		snap_put_u64(sec, (uint16_t)(tag + 3 * i + 1), b[i]->one_time_burst);
		snap_put_u64(sec, (uint16_t)(tag + 3 * i + 2), b[i]->refill_ms);
	}
}

int virtio_rl_decode(const struct snap_section *sec, uint16_t tag, struct vmm_rate_limit *rl,
		     char *err, size_t errlen)
{
	struct vmm_token_bucket *b[2] = {&rl->bandwidth, &rl->ops};
	int ret = 0;

	/* Values the API would accept (below 2^63); a refill time in ms that fits ns. */
	for (unsigned i = 0; i < 2 && !ret; i++) {
		ret = virtio_get_u64(sec, (uint16_t)(tag + 3 * i), INT64_MAX, false, &b[i]->size,
				     err, errlen);
		if (!ret)
			ret = virtio_get_u64(sec, (uint16_t)(tag + 3 * i + 1), INT64_MAX, false,
					     &b[i]->one_time_burst, err, errlen);
		if (!ret)
			ret =
			    virtio_get_u64(sec, (uint16_t)(tag + 3 * i + 2), UINT64_MAX / NS_PER_MS,
					   false, &b[i]->refill_ms, err, errlen);
	}
	return ret;
}

void virtio_rl_destroy(struct virtio_rl *rl)
{
	if (!rl->has_timer)
		return;
	vmm_loop_del(&rl->d->vm->loop, rl->timer_fd);
	close(rl->timer_fd);
	rl->has_timer = rl->armed = false;
}
