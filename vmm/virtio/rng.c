/* virtio-rng (device id 4): fills the guest's buffers from getrandom. */
#include "vmm/virtio/virtio_int.h"

#include <errno.h>
#include <linux/virtio_ids.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* Bytes handed out per request: a guest asking for more gets this much (the driver
 * reads the used length), which bounds the time one request holds the main thread. */
#define RNG_MAX_PER_REQ (64 * 1024)
/* Bytes one notification hands out at most (besides VIRTIO_BUDGET_CHAINS); the rest
 * waits for a later loop round. */
#define RNG_BUDGET_BYTES (256 * 1024)

/* Firecracker's entropy metrics (the ones thaw counts), in d->cnt. */
enum { RNG_EVENTS, RNG_BYTES, RNG_HOST_FAILS, RNG_THROTTLED };
static const char *const rng_counters[] = {"entropy_event_count", "entropy_bytes", "host_rng_fails",
					   "entropy_rate_limiter_throttled", NULL};

struct rng {
	struct virtq_elem e;
	struct virtio_rl rl;
};

static void rng_notify(struct virtio_dev *d, unsigned q)
{
	struct rng *r = d->priv;
	struct virtq_elem *e = &r->e;
	size_t total = 0;
	unsigned chains = 0;

	virtio_count_add(d, RNG_EVENTS, 1);

	while (chains < VIRTIO_BUDGET_CHAINS && total < RNG_BUDGET_BYTES &&
	       virtio_rl_admit(&r->rl) && virtio_pop(d, 0, e) > 0) {
		size_t done = 0;

		for (unsigned i = e->nr_out; i < e->nr_out + e->nr_in && done < RNG_MAX_PER_REQ;
		     i++) {
			size_t want = e->iov[i].iov_len, off = 0;

			if (want > RNG_MAX_PER_REQ - done)
				want = RNG_MAX_PER_REQ - done;
			while (off < want) {
				ssize_t n =
				    getrandom((uint8_t *)e->iov[i].iov_base + off, want - off, 0);

				if (n < 0) {
					if (errno == EINTR)
						continue;
					log_ratelimited(LOG_WARN, "virtio %s: getrandom: %s", d->id,
							strerror(errno));
					virtio_count_add(d, RNG_HOST_FAILS, 1);
					break;
				}
				off += (size_t)n;
			}
			done += off;
			if (off < want)
				break;
		}
		virtq_push(&d->vq[0], e->head, (uint32_t)done);
		virtio_rl_charge(&r->rl, done);
		virtio_count_add(d, RNG_BYTES, done);
		total += done;
		chains++;
	}
	virtio_notify(d, 0);
	if (chains == VIRTIO_BUDGET_CHAINS || total >= RNG_BUDGET_BYTES)
		virtio_requeue(d, 0);
}

static void rng_config_read(struct virtio_dev *d, uint32_t off, uint8_t *data, uint32_t len)
{
	memset(data, 0, len);
}

static struct virtio_rl *rng_rate_limiter(struct virtio_dev *d, unsigned which)
{
	struct rng *r = d->priv;

	return which == 0 ? &r->rl : NULL;
}

static void rng_save(struct virtio_dev *d, struct virtio_saved *out)
{
	struct rng *r = d->priv;

	virtio_rl_get(&r->rl, &out->dev.rng.rl);
}

static void rng_encode(struct snap_sec *sec, const struct virtio_saved *s)
{
	virtio_rl_encode(sec, VIRTIO_TAG_RL, &s->dev.rng.rl);
}

static int rng_decode(const struct snap_section *sec, struct virtio_saved *s, char *err,
		      size_t errlen)
{
	return virtio_rl_decode(sec, VIRTIO_TAG_RL, &s->dev.rng.rl, err, errlen);
}

static void rng_destroy(struct virtio_dev *d)
{
	struct rng *r = d->priv;

	if (r)
		virtio_rl_destroy(&r->rl);
	free(r);
}

/* The entropy device's own state is its rate limit. */
const struct virtio_dev_ops virtio_rng_ops = {
    .name = "rng",
    .kind = "virtio-rng",
    .device_id = VIRTIO_ID_RNG,
    .nr_queues = 1,
    .queue_max = 64,
    .config_len = 0,
    .config_read = rng_config_read,
    .notify = rng_notify,
    .save = rng_save,
    .encode = rng_encode,
    .decode = rng_decode,
    .metrics_group = "entropy",
    .counter_names = rng_counters,
    .rate_limiter = rng_rate_limiter,
    .destroy = rng_destroy,
};

int virtio_rng_create(struct vm *vm, const struct vmm_rate_limit *rl,
		      const struct vmm_dev_place *place, struct virtio_dev **out)
{
	struct virtio_dev *d = calloc(1, sizeof(*d));
	struct rng *r;

	if (!d)
		return -ENOMEM;
	virtio_dev_init(d, &virtio_rng_ops, vm, "rng", place,
			(1ull << VIRTIO_RING_F_EVENT_IDX) | (1ull << VIRTIO_RING_F_INDIRECT_DESC));
	r = calloc(1, sizeof(*r));
	if (!r) {
		free(d);
		return -ENOMEM;
	}
	d->priv = r;
	*out = d; /* from here the caller's destroy releases what we took */
	r->rl.cnt = RNG_THROTTLED;
	return virtio_rl_set(&r->rl, d, 0, rl, 0);
}
