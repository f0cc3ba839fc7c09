/* Rate limiters: the token bucket's arithmetic on a clock the test drives, and a
 * limited entropy device that holds its queue back and resumes it from its timer. */
#include "tests/unit/test_virtio_harness.h"

#include <linux/virtio_ids.h>
#include <poll.h>

#define MS 1000000ull

static struct virtio_bucket bucket(uint64_t size, uint64_t burst, uint64_t refill_ms)
{
	struct virtio_bucket b;

	virtio_bucket_init(&b, &(struct vmm_token_bucket){size, burst, refill_ms}, 1000 * MS);
	return b;
}

static void test_bucket_starts_full_and_refills_evenly(void **state)
{
	struct virtio_bucket b = bucket(1000, 0, 100);

	assert_int_equal(virtio_bucket_wait_ns(&b), 0);
	virtio_bucket_charge(&b, 1000);
	/* Empty: one token comes back after a thousandth of the refill time. */
	assert_int_equal(virtio_bucket_wait_ns(&b), 100 * MS / 1000);
	virtio_bucket_refill(&b, 1000 * MS + 50 * MS);
	assert_int_equal(b.budget, 500);
	/* Refill stops at the bucket's size. */
	virtio_bucket_refill(&b, 5000 * MS);
	assert_int_equal(b.budget, 1000);
}

static void test_bucket_keeps_fractions_of_a_token(void **state)
{
	struct virtio_bucket b = bucket(3, 0, 10);

	virtio_bucket_charge(&b, 3);
	/* 3 tokens per 10 ms: ten 1 ms steps refill 3, not 10 times a rounded-down 0. */
	for (unsigned i = 1; i <= 10; i++)
		virtio_bucket_refill(&b, 1000 * MS + i * MS);
	assert_int_equal(b.budget, 3);
}

static void test_one_time_burst_is_spent_first_and_never_refills(void **state)
{
	struct virtio_bucket b = bucket(100, 250, 1000);

	virtio_bucket_charge(&b, 200);
	assert_int_equal(b.burst, 50);
	assert_int_equal(b.budget, 100);
	virtio_bucket_charge(&b, 150);
	assert_int_equal(b.burst, 0);
	assert_int_equal(b.budget, 0);
	virtio_bucket_refill(&b, 1000 * MS + 10000 * MS);
	assert_int_equal(b.burst, 0);
	assert_int_equal(b.budget, 100);
}

static void test_request_larger_than_bucket_passes_and_leaves_debt(void **state)
{
	struct virtio_bucket b = bucket(1000, 0, 1000);

	assert_int_equal(virtio_bucket_wait_ns(&b), 0);
	virtio_bucket_charge(&b, 4000);
	assert_int_equal(b.budget, -3000);
	/* 3001 tokens to a budget of 1, at 1000 per second. */
	assert_int_equal(virtio_bucket_wait_ns(&b), 3001 * MS);
	virtio_bucket_refill(&b, 1000 * MS + 3001 * MS);
	assert_int_equal(virtio_bucket_wait_ns(&b), 0);
}

static void test_zero_size_or_refill_limits_nothing(void **state)
{
	struct virtio_bucket a = bucket(0, 10, 100), b = bucket(100, 0, 0);

	virtio_bucket_charge(&a, 1u << 30);
	virtio_bucket_charge(&b, 1u << 30);
	assert_int_equal(virtio_bucket_wait_ns(&a), 0);
	assert_int_equal(virtio_bucket_wait_ns(&b), 0);
	assert_false(vmm_rate_limit_on(&(struct vmm_rate_limit){{100, 0, 0}, {0, 5, 10}}));
	assert_true(vmm_rate_limit_on(&(struct vmm_rate_limit){{0}, {5, 0, 10}}));
}

/* A stream of requests that waits whenever the bucket says so moves, over a long
 * stretch, size per refill time: within 1% here (the first full bucket included). */
static void test_long_run_rate_is_the_configured_rate(void **state)
{
	struct virtio_bucket b = bucket(1 << 20, 0, 1000); /* 1 MiB/s */
	uint64_t now = 1000 * MS, bytes = 0;

	while (now < 1000 * MS + 60000 * MS) {
		uint64_t w;

		virtio_bucket_refill(&b, now);
		w = virtio_bucket_wait_ns(&b);
		if (w) {
			now += w;
			continue;
		}
		virtio_bucket_charge(&b, 192 * 1024);
		bytes += 192 * 1024;
	}
	/* 60 s at 1 MiB/s, plus the bucket that started full. */
	assert_true(bytes >= 60ull << 20);
	assert_true(bytes <= (61ull << 20) + (61ull << 20) / 100);
}

static void test_large_debt_does_not_overflow(void **state)
{
	struct virtio_bucket b = bucket(1000, 0, 1);
	int64_t before;

	virtio_bucket_charge(&b, UINT64_MAX);
	virtio_bucket_charge(&b, UINT64_MAX);
	assert_true(b.budget < 0);
	assert_true(virtio_bucket_wait_ns(&b) > 0);
	before = b.budget;
	virtio_bucket_refill(&b, UINT64_MAX);
	assert_true(b.budget > before);
}

/* ---- a limited device ---------------------------------------------------------------- */

struct fx {
	struct vm *vm;
	struct virtio_dev *d;
	struct h_queue q;
};

static struct fx *limited_rng(const struct vmm_rate_limit *rl)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct vm_config cfg = {.rng = true, .rng_rl = *rl};

	f->vm = h_vm_new(H_MEM_SIZE);
	assert_int_equal(vmm_devices_attach(f->vm, &cfg, NULL, 0), 0);
	f->d = virtio_get(f->vm, 0);
	h_driver_up(f->d, ~0ull, &f->q, 1, 64, 0);
	return f;
}

static void fx_free(struct fx *f)
{
	h_vm_free(f->vm);
	free(f);
}

static unsigned take_all(struct h_queue *q)
{
	uint32_t id, len;
	unsigned n = 0;

	while (h_take_used(q, &id, &len))
		n++;
	return n;
}

static void publish(struct fx *f, unsigned n)
{
	uint64_t a[] = {H_DATA};
	uint32_t l[] = {16};
	bool w[] = {true};

	for (unsigned i = 0; i < n; i++)
		h_publish(&f->q, h_add_chain(&f->q, 1, a, l, w));
}

/* The loop entry watching a timerfd: the limiter's timer. */
static struct vmm_loop_entry *timer_entry(struct fx *f)
{
	for (unsigned i = 0; i < VMM_LOOP_MAX; i++) {
		struct vmm_loop_entry *e = &f->vm->loop.entries[i];
		char path[64], link[64] = "";

		snprintf(path, sizeof(path), "/proc/self/fd/%d", e->fd);
		if (e->fn && readlink(path, link, sizeof(link) - 1) > 0 &&
		    strcmp(link, "anon_inode:[timerfd]") == 0)
			return e;
	}
	fail_msg("no rate limiter timer on the loop");
	return NULL;
}

static void test_ops_limit_holds_the_queue_back(void **state)
{
	/* Two requests per 10 s: the first notification serves exactly two. */
	struct fx *f = limited_rng(&(struct vmm_rate_limit){.ops = {2, 0, 10000}});

	publish(f, 5);
	h_kick(f->d, 0);
	assert_int_equal(take_all(&f->q), 2);
	/* Held, not dropped: the rest stay available, and a second kick serves none. */
	h_kick(f->d, 0);
	assert_int_equal(take_all(&f->q), 0);
	assert_false(h_needs_reset(f->d));
	fx_free(f);
}

static void test_timer_resumes_a_held_queue(void **state)
{
	/* One 16-byte request per 20 ms. */
	struct fx *f = limited_rng(&(struct vmm_rate_limit){.ops = {1, 0, 20}});
	struct vmm_loop_entry *t = timer_entry(f);
	unsigned served, n, fired = 0;

	publish(f, 4);
	h_kick(f->d, 0);
	served = take_all(&f->q);
	assert_true(served >= 1 && served < 4);
	while (served < 4) {
		struct pollfd p = {.fd = t->fd, .events = POLLIN};

		/* The timer must fire; 10 s is a bound for a broken one, not a speed. */
		assert_int_equal(poll(&p, 1, 10000), 1);
		t->fn(t->opaque, EPOLLIN);
		fired++;
		/* The timer signalled the queue as a guest notification would: a loop round
		 * (which runs the handler only for a signalled queue) serves more. */
		h_loop_round(f->d);
		n = take_all(&f->q);
		assert_true(n >= 1);
		served += n;
	}
	assert_true(fired >= 1);
	assert_int_equal(served, 4);
	fx_free(f);
}

static void test_bandwidth_limit_counts_bytes(void **state)
{
	/* 32 bytes per 10 s and a 16-byte burst: 16 + 16 + the 16 that leaves the budget
	 * at 0, then held. */
	struct fx *f = limited_rng(&(struct vmm_rate_limit){.bandwidth = {32, 16, 10000}});

	publish(f, 6);
	h_kick(f->d, 0);
	assert_int_equal(take_all(&f->q), 3);
	fx_free(f);
}

/* The entropy device's limit goes into its section and back. */
static void test_rng_rate_limit_survives_a_snapshot(void **state)
{
	struct fx *f = limited_rng(&(struct vmm_rate_limit){.ops = {7, 3, 250}});
	struct virtio_saved s;

	h_file_roundtrip(f->d, &s);
	assert_int_equal(s.dev.rng.rl.ops.size, 7);
	assert_int_equal(s.dev.rng.rl.ops.one_time_burst, 3);
	assert_int_equal(s.dev.rng.rl.ops.refill_ms, 250);
	assert_int_equal(s.dev.rng.rl.bandwidth.size, 0);
	assert_int_equal(virtio_restore(f->d, &s), 0);
	fx_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bucket_starts_full_and_refills_evenly),
	    cmocka_unit_test(test_bucket_keeps_fractions_of_a_token),
	    cmocka_unit_test(test_one_time_burst_is_spent_first_and_never_refills),
	    cmocka_unit_test(test_request_larger_than_bucket_passes_and_leaves_debt),
	    cmocka_unit_test(test_zero_size_or_refill_limits_nothing),
	    cmocka_unit_test(test_long_run_rate_is_the_configured_rate),
	    cmocka_unit_test(test_large_debt_does_not_overflow),
	    cmocka_unit_test(test_ops_limit_holds_the_queue_back),
	    cmocka_unit_test(test_timer_resumes_a_held_queue),
	    cmocka_unit_test(test_bandwidth_limit_counts_bytes),
	    cmocka_unit_test(test_rng_rate_limit_survives_a_snapshot),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
