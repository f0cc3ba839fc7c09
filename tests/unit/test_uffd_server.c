/* The uffd handler against a real userfaultfd over plain anonymous memory (no KVM): a
 * thread touches the registered range and must see the source's bytes, zeros where the
 * zero bitmap or a discard says so; records and prefetches are checked by their
 * counters. Skipped when this host refuses userfaultfd. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "uffd/uffd.h"

#define NPAGES 1024 /* 4 MiB */
#define SIZE   ((size_t)NPAGES * UFFD_PAGE)

struct rig {
	int uffd, stop, src_fd;
	uint8_t *mem;
	uint8_t *src;
	uint8_t zero[NPAGES / 8];
	struct uffd_server *srv;
	pthread_t t;
	int ret;
};

static void *run(void *opaque)
{
	struct rig *r = opaque;

	r->ret = uffd_server_run(r->srv, r->stop);
	return NULL;
}

static uint8_t byte_at(size_t page, size_t i)
{
	return (uint8_t)(page * 7 + i * 13 + 1);
}

/* Source: page i holds byte_at(i, ..) unless i % 5 == 0, which is all zero and marked
 * so in the zero bitmap. */
static bool setup_rig(struct rig *r, const char *strategy, const uint64_t *ws, size_t nws,
		      bool record)
{
	char err[256];
	struct uffd_region reg;
	struct uffd_server_opts o = {0};
	char path[] = "/tmp/thaw-uffd-src-XXXXXX";

	memset(r, 0, sizeof(*r));
	r->uffd = uffd_open(err, sizeof(err));
	if (r->uffd < 0) {
		print_message("SKIPPED: %s\n", err);
		return false;
	}
	r->mem = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(r->mem != MAP_FAILED);
	assert_int_equal(uffd_register(r->uffd, r->mem, SIZE, err, sizeof(err)), 0);
	r->src_fd = mkstemp(path);
	assert_true(r->src_fd >= 0);
	unlink(path);
	assert_int_equal(ftruncate(r->src_fd, SIZE), 0);
	r->src = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, r->src_fd, 0);
	assert_true(r->src != MAP_FAILED);
	for (size_t p = 0; p < NPAGES; p++) {
		if (p % 5 == 0) {
			r->zero[p / 8] |= (uint8_t)(1u << (p % 8));
			continue;
		}
		for (size_t i = 0; i < UFFD_PAGE; i++)
			r->src[p * UFFD_PAGE + i] = byte_at(p, i);
	}
	reg = (struct uffd_region){(uint64_t)(uintptr_t)r->mem, SIZE, 0, UFFD_PAGE};
	o.uffd = r->uffd;
	o.regions = &reg;
	o.nr_regions = 1;
	o.src = r->src;
	o.mem_size = SIZE;
	o.src_fd = r->src_fd;
	o.zero_bits = r->zero;
	o.ws = ws;
	o.nws = nws;
	o.record = record;
	assert_int_equal(uffd_strategy_parse(strategy, &o.strategy, err, sizeof(err)), 0);
	assert_int_equal(uffd_server_create(&o, &r->srv), 0);
	r->stop = eventfd(0, EFD_CLOEXEC);
	assert_int_equal(pthread_create(&r->t, NULL, run, r), 0);
	return true;
}

static void teardown_rig(struct rig *r, struct uffd_stats *st)
{
	uint64_t one = 1;

	assert_int_equal(write(r->stop, &one, sizeof(one)), sizeof(one));
	pthread_join(r->t, NULL);
	assert_int_equal(r->ret, 0);
	uffd_server_stats(r->srv, st);
	uffd_server_destroy(r->srv);
	munmap(r->mem, SIZE);
	munmap(r->src, SIZE);
	close(r->src_fd);
	close(r->uffd);
	close(r->stop);
}

static void check_page(const struct rig *r, size_t p, bool zero)
{
	for (size_t i = 0; i < UFFD_PAGE; i += 509) {
		uint8_t want = zero || p % 5 == 0 ? 0 : byte_at(p, i);

		if (r->mem[p * UFFD_PAGE + i] != want)
			fail_msg("page %zu byte %zu: %u, want %u", p, i, r->mem[p * UFFD_PAGE + i],
				 want);
	}
}

static void ondemand_pages_have_the_source_bytes(void **state)
{
	static const char *const strategies[] = {"ondemand", "ondemand:64k", "ondemand:2m",
						 "ondemand,nozero", NULL};

	for (int k = 0; strategies[k]; k++) {
		struct rig r;
		struct uffd_stats st;

		if (!setup_rig(&r, strategies[k], NULL, 0, false))
			skip();
		/* scattered order, then everything */
		for (size_t i = 0; i < NPAGES; i++)
			check_page(&r, (i * 389) % NPAGES, false);
		teardown_rig(&r, &st);
		assert_true(st.faults > 0);
		assert_int_equal(st.copied_pages + st.zero_pages, NPAGES);
		if (!strcmp(strategies[k], "ondemand")) {
			assert_int_equal(st.faults, NPAGES);
			assert_int_equal(st.zero_pages, NPAGES / 5 + 1);
		}
		if (!strcmp(strategies[k], "ondemand:2m"))
			assert_true(st.faults <= 2);
		if (strstr(strategies[k], "nozero"))
			assert_int_equal(st.zero_pages, 0);
	}
}

struct discard_arg {
	uint8_t *addr;
	size_t len;
};

static void *discard(void *opaque)
{
	struct discard_arg *a = opaque;

	assert_int_equal(madvise(a->addr, a->len, MADV_DONTNEED), 0);
	return NULL;
}

static void removed_pages_read_back_as_zeros(void **state)
{
	struct rig r;
	struct uffd_stats st;
	struct discard_arg a;
	pthread_t t;

	if (!setup_rig(&r, "ondemand:64k", NULL, 0, false))
		skip();
	for (size_t p = 0; p < NPAGES; p++)
		check_page(&r, p, false);
	/* a write that a discard must throw away */
	memset(r.mem + 100 * UFFD_PAGE, 0xAB, 50 * UFFD_PAGE);
	a = (struct discard_arg){r.mem + 100 * UFFD_PAGE, 50 * UFFD_PAGE};
	/* from another thread, as the VMM would: madvise waits for the event to be read */
	pthread_create(&t, NULL, discard, &a);
	pthread_join(t, NULL);
	for (size_t p = 96; p < 160; p++)
		check_page(&r, p, p >= 100 && p < 150);
	teardown_rig(&r, &st);
	assert_int_equal(st.removes, 1);
	assert_int_equal(st.removed_pages, 50);
}

static void record_keeps_first_touch_order(void **state)
{
	struct rig r;
	struct uffd_stats st;
	const uint64_t *rec;
	size_t n;
	static const size_t order[] = {700, 3, 512, 3, 701, 90};

	if (!setup_rig(&r, "record", NULL, 0, true))
		skip();
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
		check_page(&r, order[i], false);
	rec = uffd_server_recorded(r.srv, &n);
	assert_int_equal(n, 5);
	assert_int_equal(rec[0], 700);
	assert_int_equal(rec[1], 3);
	assert_int_equal(rec[2], 512);
	assert_int_equal(rec[3], 701);
	assert_int_equal(rec[4], 90);
	teardown_rig(&r, &st);
	assert_int_equal(st.recorded, 5);
}

static void prefetch_installs_the_working_set_before_it_is_touched(void **state)
{
	struct rig r;
	struct uffd_stats st;
	uint64_t ws[300];
	long long waited = 0;

	for (size_t i = 0; i < 300; i++)
		ws[i] = (i * 37) % NPAGES;
	if (!setup_rig(&r, "prefetch", ws, 300, false))
		skip();
	/* wait until prefetch has finished, then touch the set: no faults */
	do {
		usleep(10000);
		waited += 10;
		uffd_server_stats(r.srv, &st);
	} while (st.prefetch_ns == 0 && waited < 10000);
	for (size_t i = 0; i < 300; i++)
		check_page(&r, ws[i], false);
	check_page(&r, 1, false); /* outside: on demand */
	teardown_rig(&r, &st);
	assert_true(st.prefetch_ns > 0);
	assert_true(st.prefetched >= 300);
	assert_int_equal(st.faults, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(ondemand_pages_have_the_source_bytes),
	    cmocka_unit_test(removed_pages_read_back_as_zeros),
	    cmocka_unit_test(record_keeps_first_touch_order),
	    cmocka_unit_test(prefetch_installs_the_working_set_before_it_is_touched),
	};

	return cmocka_run_group_tests_name("uffd_server", tests, NULL, NULL);
}
