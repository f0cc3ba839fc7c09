/* The pure parts of uffd/: strategy strings, fault and prefetch planning, the handshake's
 * JSON, and working-set files. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "restore/snapshot.h"
#include "uffd/uffd.h"

static void strategy_strings_parse_and_bad_ones_are_named(void **state)
{
	struct uffd_strategy st;
	char err[256];

	assert_int_equal(uffd_strategy_parse(NULL, &st, err, sizeof(err)), 0);
	assert_int_equal(st.mode, UFFD_MODE_ONDEMAND);
	assert_int_equal(st.chunk, 4096);
	assert_true(st.zero);
	assert_int_equal(uffd_strategy_parse("ondemand:64k", &st, err, sizeof(err)), 0);
	assert_int_equal(st.chunk, 65536);
	assert_int_equal(uffd_strategy_parse("record", &st, err, sizeof(err)), 0);
	assert_int_equal(st.chunk, 4096);
	assert_int_equal(uffd_strategy_parse("prefetch:2m,ws=/x/ws,gap=0,extent=1m,depth=8,nozero",
					     &st, err, sizeof(err)),
			 0);
	assert_int_equal(st.mode, UFFD_MODE_PREFETCH);
	assert_int_equal(st.chunk, 2 << 20);
	assert_string_equal(st.ws_path, "/x/ws");
	assert_int_equal(st.gap_pages, 0);
	assert_int_equal(st.extent_pages, 256);
	assert_int_equal(st.depth, 8);
	assert_false(st.zero);

	assert_int_equal(uffd_strategy_parse("lazy", &st, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "lazy"));
	assert_int_equal(uffd_strategy_parse("ondemand:3k", &st, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "3k"));
	assert_int_equal(uffd_strategy_parse("ondemand:4m", &st, err, sizeof(err)), -EINVAL);
	assert_int_equal(uffd_strategy_parse("ondemand,ws=f", &st, err, sizeof(err)), -EINVAL);
	assert_int_equal(uffd_strategy_parse("prefetch,depth=0", &st, err, sizeof(err)), -EINVAL);
	assert_int_equal(uffd_strategy_parse("prefetch,bogus", &st, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "bogus"));
}

static void fault_plan_covers_the_aligned_chunk_by_kind(void **state)
{
	uint64_t zero[2] = {0}, removed[2] = {0}, filled[2] = {0};
	struct uffd_pages pg = {128, zero, removed, filled};
	struct uffd_op ops[16];
	size_t n;

	/* one page */
	n = uffd_plan_fault(&pg, 37, 1, 0, 128, true, ops, 16);
	assert_int_equal(n, 1);
	assert_int_equal(ops[0].page, 37);
	assert_int_equal(ops[0].npages, 1);
	assert_int_equal(ops[0].kind, UFFD_OP_COPY);

	/* a 16-page chunk around page 37: [32, 48) with page 40 zero, 44 removed, 34 filled */
	zero[0] |= 1ull << 40;
	removed[0] |= 1ull << 44;
	filled[0] |= 1ull << 34;
	n = uffd_plan_fault(&pg, 37, 16, 0, 128, true, ops, 16);
	uint64_t copy = 0, zeros = 0, seen[2] = {0};

	for (size_t i = 0; i < n; i++) {
		for (uint64_t p = ops[i].page; p < ops[i].page + ops[i].npages; p++) {
			assert_true(p >= 32 && p < 48);
			assert_false(seen[0] >> p & 1); /* no page twice */
			seen[0] |= 1ull << p;
			assert_int_equal(ops[i].kind,
					 p == 40 || p == 44 ? UFFD_OP_ZERO : UFFD_OP_COPY);
		}
		if (ops[i].kind == UFFD_OP_COPY)
			copy += ops[i].npages;
		else
			zeros += ops[i].npages;
	}
	assert_int_equal(copy, 13);
	assert_int_equal(zeros, 2);
	assert_false(seen[0] >> 34 & 1); /* filled: left out */
	/* the faulting page is always first */
	assert_true(ops[0].page <= 37 && 37 < ops[0].page + ops[0].npages);

	/* without use_zero only removed pages are zeroed */
	n = uffd_plan_fault(&pg, 40, 1, 0, 128, false, ops, 16);
	assert_int_equal(ops[0].kind, UFFD_OP_COPY);
	/* a filled faulting page is still planned (a second vCPU must be woken) */
	n = uffd_plan_fault(&pg, 34, 1, 0, 128, true, ops, 16);
	assert_int_equal(n, 1);
	assert_int_equal(ops[0].page, 34);
	/* clipped to the region */
	memset(zero, 0, sizeof(zero));
	memset(removed, 0, sizeof(removed));
	memset(filled, 0, sizeof(filled));
	n = uffd_plan_fault(&pg, 70, 64, 66, 100, true, ops, 16);
	assert_int_equal(n, 1); /* grown down from the fault into one run */
	assert_int_equal(ops[0].page, 66);
	assert_int_equal(ops[0].npages, 34);
	/* outside the region: nothing */
	assert_int_equal(uffd_plan_fault(&pg, 101, 1, 66, 100, true, ops, 16), 0);
}

static void prefetch_plan_sorts_merges_and_skips(void **state)
{
	uint64_t zero[4] = {0}, removed[4] = {0}, filled[4] = {0};
	struct uffd_pages pg = {256, zero, removed, filled};
	const uint64_t ws[] = {50, 10, 11, 300, 13, 12, 10, 20, 7, 100, 101, 102, 200};
	uint64_t scratch[64];
	struct uffd_op ops[64];
	size_t pos = 0, n;

	zero[0] |= 1ull << 7;		   /* zero: a ZERO op */
	filled[0] |= 1ull << 20;	   /* filled: skipped */
	removed[3] |= 1ull << (200 - 192); /* removed: skipped */
	n = uffd_plan_prefetch(&pg, ws, 13, &pos, 64, 2, 8, true, scratch, ops, 64);
	assert_int_equal(pos, 13);
	/* 7 zero; 10..13 one extent; 50; 100..102 */
	assert_int_equal(n, 4);
	assert_int_equal(ops[0].page, 7);
	assert_int_equal(ops[0].kind, UFFD_OP_ZERO);
	assert_int_equal(ops[1].page, 10);
	assert_int_equal(ops[1].npages, 4);
	assert_int_equal(ops[1].kind, UFFD_OP_COPY);
	assert_int_equal(ops[2].page, 50);
	assert_int_equal(ops[2].npages, 1);
	assert_int_equal(ops[3].page, 100);
	assert_int_equal(ops[3].npages, 3);

	/* gaps of up to `gap` copyable pages are bridged, up to `extent` pages */
	const uint64_t ws2[] = {30, 33, 36, 45};
	pos = 0;
	n = uffd_plan_prefetch(&pg, ws2, 4, &pos, 64, 2, 8, true, scratch, ops, 64);
	assert_int_equal(n, 2);
	assert_int_equal(ops[0].page, 30);
	assert_int_equal(ops[0].npages, 7);
	assert_int_equal(ops[1].page, 45);
	pos = 0;
	n = uffd_plan_prefetch(&pg, ws2, 4, &pos, 64, 2, 4, true, scratch, ops, 64);
	assert_int_equal(n, 3); /* [30,34) then 36, 45 */
	assert_int_equal(ops[0].npages, 4);
	/* a zero page in the gap stops a bridge */
	zero[0] |= 1ull << 31;
	pos = 0;
	n = uffd_plan_prefetch(&pg, ws2, 4, &pos, 64, 2, 8, true, scratch, ops, 64);
	assert_int_equal(ops[0].page, 30);
	assert_int_equal(ops[0].npages, 1);

	/* batches: the order of the working set is kept from batch to batch */
	pos = 0;
	n = uffd_plan_prefetch(&pg, ws, 13, &pos, 3, 0, 8, true, scratch, ops, 64);
	assert_int_equal(pos, 3);
	assert_int_equal(n, 2); /* 10..11, 50 (300 is out of range) */
	assert_int_equal(ops[0].page, 10);
	assert_int_equal(ops[1].page, 50);
}

static void prefetch_plan_of_a_shuffled_range_is_one_extent(void **state)
{
	static uint64_t ws[4096], scratch[4096];
	static struct uffd_op ops[4096];
	struct uffd_pages pg = {4096, NULL, NULL, NULL};
	size_t pos = 0, n;

	for (size_t i = 0; i < 4096; i++)
		ws[i] = (i * 1237 + 11) % 4096; /* a permutation: 1237 is odd */
	n = uffd_plan_prefetch(&pg, ws, 4096, &pos, 4096, 0, 4096, true, scratch, ops, 4096);
	assert_int_equal(n, 1);
	assert_int_equal(ops[0].page, 0);
	assert_int_equal(ops[0].npages, 4096);
	/* cut into extents of 64 */
	pos = 0;
	n = uffd_plan_prefetch(&pg, ws, 4096, &pos, 4096, 8, 64, true, scratch, ops, 4096);
	assert_int_equal(n, 64);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(ops[i].page, i * 64);
		assert_int_equal(ops[i].npages, 64);
	}
}

static void regions_round_trip_through_the_firecracker_json(void **state)
{
	struct uffd_region in[2] = {{0x7f0000000000ull, 3ull << 30, 0, 4096},
				    {0x7f00c0000000ull, 1ull << 30, 3ull << 30, 4096}};
	struct uffd_region out[8];
	char buf[UFFD_MSG_MAX], err[256];
	size_t n;
	int len;

	len = uffd_regions_encode(in, 2, buf, sizeof(buf));
	assert_true(len > 0);
	assert_int_equal((size_t)len, strlen(buf));
	assert_non_null(strstr(buf, "\"base_host_virt_addr\":139637976727552"));
	assert_non_null(strstr(buf, "\"page_size\":4096"));
	assert_non_null(strstr(buf, "\"page_size_kib\":4096"));
	/* fits what Firecracker's example handlers read in one go */
	assert_true(len < 1024);
	assert_int_equal(uffd_regions_parse(buf, (size_t)len, out, 8, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 2);
	assert_memory_equal(in, out, sizeof(in));
	assert_int_equal(uffd_regions_encode(in, 2, buf, 20), -ENOSPC);
}

static void regions_from_an_untrusted_peer_are_validated(void **state)
{
	static const struct {
		const char *json, *why;
	} bad[] = {
	    {"{}", "array"},
	    {"[]", "regions"},
	    {"[1]", "object"},
	    {"[{\"base_host_virt_addr\":4096,\"size\":4096,\"offset\":0}]", "page_size"},
	    {"[{\"base_host_virt_addr\":4096,\"size\":4096,\"offset\":0,\"page_size\":2097152}]",
	     "page size"},
	    {"[{\"base_host_virt_addr\":4097,\"size\":4096,\"offset\":0,\"page_size\":4096}]",
	     "unaligned"},
	    {"[{\"base_host_virt_addr\":-4096,\"size\":4096,\"offset\":0,\"page_size\":4096}]",
	     "non-negative"},
	    {"[{\"base_host_virt_addr\":4096,\"size\":0,\"offset\":0,\"page_size\":4096}]",
	     "empty"},
	    {"[{\"base_host_virt_addr\":18446744073709547520,\"size\":8192,\"offset\":0,"
	     "\"page_size\":4096}]",
	     "wrapping"},
	    {"[{\"base_host_virt_addr\":4096,\"size\":8192,\"offset\":0,\"page_size\":4096},"
	     "{\"base_host_virt_addr\":65536,\"size\":8192,\"offset\":4096,\"page_size\":4096}]",
	     "overlaps"},
	    {"[{\"base_host_virt_addr\":\"4096\",\"size\":4096,\"offset\":0,\"page_size\":4096}]",
	     "non-negative"},
	    {"[{\"base_host_virt_addr\":4096,\"size\":4096,\"offset\":0,\"page_size\":4096}] x",
	     "trailing"},
	    {"[{\"base_host_virt_addr\":4096,", "JSON"},
	};
	struct uffd_region r[8];
	char err[256];
	size_t n;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = 0;
		if (uffd_regions_parse(bad[i].json, strlen(bad[i].json), r, 8, &n, err,
				       sizeof(err)) != -EINVAL ||
		    !strstr(err, bad[i].why))
			fail_msg("%s: got '%s', want '%s'", bad[i].json, err, bad[i].why);
	}
	/* page_size_kib alone (older senders), unknown keys ignored, trailing NUL */
	const char ok[] = "[{\"base_host_virt_addr\":4096,\"size\":8192,\"offset\":0,"
			  "\"page_size_kib\":4096,\"extra\":true}]";
	assert_int_equal(uffd_regions_parse(ok, sizeof(ok), r, 8, &n, err, sizeof(err)), 0);
	assert_int_equal(r[0].page_size, 4096);
	/* more regions than the caller has room for */
	const char two[] = "[{\"base_host_virt_addr\":4096,\"size\":4096,\"offset\":0,"
			   "\"page_size\":4096},{\"base_host_virt_addr\":65536,\"size\":4096,"
			   "\"offset\":4096,\"page_size\":4096}]";
	assert_int_equal(uffd_regions_parse(two, strlen(two), r, 1, &n, err, sizeof(err)), -EINVAL);
}

static void working_set_files_round_trip_and_refuse_strangers(void **state)
{
	char dir[] = "/tmp/thaw-wstest-XXXXXX", path[300], err[256];
	const uint64_t pages[] = {9, 2, 700, 3};
	uint8_t id[16], other[16];
	uint64_t *got;
	size_t n;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/ws", dir);
	memset(id, 0x5a, sizeof(id));
	memset(other, 0xa5, sizeof(other));
	assert_int_equal(uffd_ws_write(path, id, "/snap/base.snap", pages, 4), 0);
	assert_int_equal(uffd_ws_read(path, id, 1024, &got, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 4);
	assert_memory_equal(got, pages, sizeof(pages));
	free(got);
	/* no id to compare: accepted */
	assert_int_equal(uffd_ws_read(path, NULL, 1024, &got, &n, err, sizeof(err)), 0);
	free(got);
	assert_int_equal(uffd_ws_read(path, other, 1024, &got, &n, err, sizeof(err)), -ESTALE);
	assert_non_null(strstr(err, "another snapshot"));
	assert_int_equal(uffd_ws_read(path, id, 700, &got, &n, err, sizeof(err)), -ERANGE);
	assert_non_null(strstr(err, "700"));
	/* a damaged file is refused by the snapshot reader's checksums */
	{
		FILE *f = fopen(path, "r+");
		long size;
		int c;

		assert_non_null(f);
		fseek(f, 0, SEEK_END);
		size = ftell(f);
		fseek(f, size - 12, SEEK_SET);
		c = fgetc(f);
		fseek(f, size - 12, SEEK_SET);
		fputc(c ^ 1, f);
		fclose(f);
		assert_true(uffd_ws_read(path, id, 1024, &got, &n, err, sizeof(err)) < 0);
	}
	unlink(path);
	rmdir(dir);
}

static void embedding_a_working_set_keeps_state_and_memory(void **state)
{
	char dir[] = "/tmp/thaw-wstest-XXXXXX", in[300], out[300], err[256];
	static uint8_t mem[16 * 4096];
	const uint64_t pages[] = {5, 1, 9};
	struct snap_writer *w;
	struct snap *s;
	struct snap_memory_loc loc;
	const uint64_t *ws;
	const char *json;
	size_t n, jl;

	assert_non_null(mkdtemp(dir));
	snprintf(in, sizeof(in), "%s/in.snap", dir);
	snprintf(out, sizeof(out), "%s/out.snap", dir);
	for (size_t i = 0; i < sizeof(mem); i++)
		mem[i] = (uint8_t)(i / 4096 == 3 ? 0 : i * 31 + 7);
	assert_int_equal(snap_writer_create(in, &(struct snap_writer_opts){.no_fsync = true}, &w),
			 0);
	assert_int_equal(snap_put_config(w, "{\"a\":1}", 7), 0);
	assert_int_equal(snap_writer_set_memory(w, mem, sizeof(mem)), 0);
	assert_int_equal(snap_writer_commit(w, NULL), 0);

	assert_int_equal(uffd_ws_embed(in, pages, 3, out, err, sizeof(err)), 0);
	assert_int_equal(snap_open(out, &s, err, sizeof(err)), 0);
	assert_int_equal(snap_workingset(s, &ws, &n), 0);
	assert_int_equal(n, 3);
	assert_memory_equal(ws, pages, sizeof(pages));
	assert_int_equal(snap_get_config(s, &json, &jl), 0);
	assert_int_equal(jl, 7);
	assert_memory_equal(json, "{\"a\":1}", 7);
	assert_int_equal(snap_memory(s, &loc), 0);
	assert_int_equal(loc.size, sizeof(mem));
	assert_int_equal(snap_memory_verify(s, NULL, NULL, NULL), 0);
	snap_close(s);
	/* a page outside the memory is refused */
	const uint64_t far[] = {16};

	assert_int_equal(uffd_ws_embed(in, far, 1, out, err, sizeof(err)), -ERANGE);
	unlink(in);
	unlink(out);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(strategy_strings_parse_and_bad_ones_are_named),
	    cmocka_unit_test(fault_plan_covers_the_aligned_chunk_by_kind),
	    cmocka_unit_test(prefetch_plan_sorts_merges_and_skips),
	    cmocka_unit_test(prefetch_plan_of_a_shuffled_range_is_one_extent),
	    cmocka_unit_test(regions_round_trip_through_the_firecracker_json),
	    cmocka_unit_test(regions_from_an_untrusted_peer_are_validated),
	    cmocka_unit_test(working_set_files_round_trip_and_refuse_strangers),
	    cmocka_unit_test(embedding_a_working_set_keeps_state_and_memory),
	};

	return cmocka_run_group_tests_name("uffd", tests, NULL, NULL);
}
