/* The pure parts of the uffd backend: strategy strings, what to install for a fault or
 * a prefetch batch, and the handshake's JSON. No syscalls here, so all of it is unit
 * tested without a userfaultfd. */
#include "uffd/uffd.h"
#include "common/log.h"

#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "4k", "64K", "2m", "4096": bytes, or 0 when malformed. */
static uint64_t parse_size(const char *s, size_t len)
{
	uint64_t v = 0, mul = 1;
	size_t i;

	if (len && (s[len - 1] == 'k' || s[len - 1] == 'K'))
		mul = 1024, len--;
	else if (len && (s[len - 1] == 'm' || s[len - 1] == 'M'))
		mul = 1024 * 1024, len--;
	if (len == 0 || len > 9)
		return 0;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return 0;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	return v * mul;
}

static bool is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

int uffd_strategy_parse(const char *spec, struct uffd_strategy *st, char *err, size_t errlen)
{
	const char *p, *end, *colon;
	size_t mlen;

	*st = (struct uffd_strategy){.mode = UFFD_MODE_ONDEMAND,
				     .chunk = UFFD_PAGE,
				     .zero = true,
				     .gap_pages = 8,
				     .extent_pages = 64,
				     .depth = 32,
				     .batch = 4096};
	if (!spec || !*spec)
		return 0;
	if (strlen(spec) > 512)
		return errf(err, errlen, -EINVAL, "strategy: longer than 512 characters");
	end = strchr(spec, ',');
	if (!end)
		end = spec + strlen(spec);
	colon = memchr(spec, ':', (size_t)(end - spec));
	mlen = (size_t)((colon ? colon : end) - spec);
	if (mlen == 8 && !strncmp(spec, "ondemand", 8))
		st->mode = UFFD_MODE_ONDEMAND;
	else if (mlen == 8 && !strncmp(spec, "prefetch", 8))
		st->mode = UFFD_MODE_PREFETCH;
	else if (mlen == 6 && !strncmp(spec, "record", 6))
		st->mode = UFFD_MODE_ONDEMAND;
	else
		return errf(err, errlen, -EINVAL,
			    "strategy: '%.*s' is not ondemand, prefetch or record", (int)mlen,
			    spec);
	if (colon) {
		st->chunk = parse_size(colon + 1, (size_t)(end - colon - 1));
		if (!is_pow2(st->chunk) || st->chunk < UFFD_PAGE || st->chunk > (2u << 20))
			return errf(err, errlen, -EINVAL,
				    "strategy: chunk '%.*s' is not a power of two from 4k to 2m",
				    (int)(end - colon - 1), colon + 1);
	}
	for (p = end; *p == ','; p = end) {
		const char *opt = p + 1, *eq;
		size_t olen;

		end = strchr(opt, ',');
		if (!end)
			end = opt + strlen(opt);
		olen = (size_t)(end - opt);
		eq = memchr(opt, '=', olen);
		if (olen == 6 && !strncmp(opt, "nozero", 6)) {
			st->zero = false;
		} else if (eq && eq - opt == 2 && !strncmp(opt, "ws", 2)) {
			size_t n = (size_t)(end - eq - 1);

			if (n == 0 || n >= sizeof(st->ws_path))
				return errf(err, errlen, -EINVAL,
					    "strategy: ws= needs a path shorter than %zu",
					    sizeof(st->ws_path));
			memcpy(st->ws_path, eq + 1, n);
			st->ws_path[n] = 0;
		} else if (eq && eq - opt == 3 && !strncmp(opt, "gap", 3)) {
			uint64_t v = parse_size(eq + 1, (size_t)(end - eq - 1));

			if ((v == 0 && strncmp(eq + 1, "0", (size_t)(end - eq - 1))) || v > 512)
				return errf(err, errlen, -EINVAL,
					    "strategy: gap= takes 0..512 pages");
			st->gap_pages = (uint32_t)v;
		} else if (eq && eq - opt == 6 && !strncmp(opt, "extent", 6)) {
			uint64_t v = parse_size(eq + 1, (size_t)(end - eq - 1));

			if (!is_pow2(v) || v < UFFD_PAGE || v > (8u << 20))
				return errf(err, errlen, -EINVAL,
					    "strategy: extent= is a power of two from 4k to 8m");
			st->extent_pages = (uint32_t)(v / UFFD_PAGE);
		} else if (eq && eq - opt == 5 && !strncmp(opt, "depth", 5)) {
			uint64_t v = parse_size(eq + 1, (size_t)(end - eq - 1));

			if (v < 1 || v > 256)
				return errf(err, errlen, -EINVAL, "strategy: depth= takes 1..256");
			st->depth = (uint32_t)v;
		} else if (eq && eq - opt == 5 && !strncmp(opt, "batch", 5)) {
			uint64_t v = parse_size(eq + 1, (size_t)(end - eq - 1));

			if (v < 1 || v > 65536)
				return errf(err, errlen, -EINVAL,
					    "strategy: batch= takes 1..65536");
			st->batch = (uint32_t)v;
		} else {
			return errf(err, errlen, -EINVAL,
				    "strategy: unknown option '%.*s' (nozero, ws=, gap=, extent=, "
				    "depth=, batch=)",
				    (int)olen, opt);
		}
	}
	if (st->ws_path[0] && st->mode != UFFD_MODE_PREFETCH)
		return errf(err, errlen, -EINVAL, "strategy: ws= is for prefetch");
	return 0;
}

/* ---------------------------------------------------------------- fault planning */

static enum uffd_op_kind kind_of(const struct uffd_pages *pg, uint64_t i, bool use_zero)
{
	if (uffd_bit(pg->removed, i) || (use_zero && uffd_bit(pg->zero, i)))
		return UFFD_OP_ZERO;
	return UFFD_OP_COPY;
}

/* Appends page i to the ops, extending the last op when it is adjacent and alike.
 * Returns false when a new op was needed and there is no room. */
static bool push(struct uffd_op *ops, size_t *n, size_t max, uint64_t i, enum uffd_op_kind k)
{
	if (*n && ops[*n - 1].kind == k && ops[*n - 1].page + ops[*n - 1].npages == i) {
		ops[*n - 1].npages++;
		return true;
	}
	if (*n == max)
		return false;
	ops[(*n)++] = (struct uffd_op){i, 1, k};
	return true;
}

size_t uffd_plan_fault(const struct uffd_pages *pg, uint64_t fault, uint64_t chunk_pages,
		       uint64_t lo, uint64_t hi, bool use_zero, struct uffd_op *ops, size_t max)
{
	uint64_t start, stop;
	size_t n = 0;

	if (hi > pg->npages)
		hi = pg->npages;
	if (fault < lo || fault >= hi || !max)
		return 0;
	if (chunk_pages == 0 || (chunk_pages & (chunk_pages - 1)))
		chunk_pages = 1;
	start = fault & ~(chunk_pages - 1);
	stop = start + chunk_pages;
	if (start < lo)
		start = lo;
	if (stop > hi)
		stop = hi;
	/* The faulting page first, so a full `ops` never leaves it out; then the chunk in
	 * address order around it. */
	push(ops, &n, max, fault, kind_of(pg, fault, use_zero));
	for (uint64_t i = fault + 1; i < stop; i++) {
		if (uffd_bit(pg->filled, i))
			continue;
		if (!push(ops, &n, max, i, kind_of(pg, i, use_zero)))
			return n;
	}
	for (uint64_t i = fault; i-- > start;) {
		enum uffd_op_kind k;

		if (uffd_bit(pg->filled, i))
			continue;
		k = kind_of(pg, i, use_zero);
		/* extend the op holding page i+1 downwards when it starts there */
		bool merged = false;

		for (size_t j = 0; j < n; j++) {
			if (ops[j].page == i + 1 && ops[j].kind == k) {
				ops[j].page = i;
				ops[j].npages++;
				merged = true;
				break;
			}
		}
		if (!merged) {
			if (n == max)
				return n;
			ops[n++] = (struct uffd_op){i, 1, k};
		}
	}
	return n;
}

/* ---------------------------------------------------------------- prefetch planning */

/* In-place heapsort: no allocation and no libc qsort, whose merge sort asks the kernel
 * for the machine's memory size (sysinfo), a syscall the handler thread's seccomp
 * filter does not allow and has no business making. */
static void sift(uint64_t *a, size_t root, size_t n)
{
	for (;;) {
		size_t c = 2 * root + 1;
		uint64_t t;

		if (c >= n)
			return;
		if (c + 1 < n && a[c + 1] > a[c])
			c++;
		if (a[root] >= a[c])
			return;
		t = a[root];
		a[root] = a[c];
		a[c] = t;
		root = c;
	}
}

static void sort_u64(uint64_t *a, size_t n)
{
	for (size_t i = n / 2; i-- > 0;)
		sift(a, i, n);
	for (size_t end = n; end > 1; end--) {
		uint64_t t = a[0];

		a[0] = a[end - 1];
		a[end - 1] = t;
		sift(a, 0, end - 1);
	}
}

size_t uffd_plan_prefetch(const struct uffd_pages *pg, const uint64_t *ws, size_t nws, size_t *pos,
			  size_t batch, uint32_t gap, uint32_t extent, bool use_zero,
			  uint64_t *scratch, struct uffd_op *ops, size_t max_ops)
{
	size_t m = 0, n = 0;

	if (extent == 0)
		extent = 1;
	if (batch > max_ops)
		batch = max_ops; /* each page makes at most one op: none is ever dropped */
	while (*pos < nws && m < batch) {
		uint64_t p = ws[(*pos)++];

		if (p >= pg->npages || uffd_bit(pg->filled, p) || uffd_bit(pg->removed, p))
			continue;
		scratch[m++] = p;
	}
	sort_u64(scratch, m);
	for (size_t i = 0; i < m; i++) {
		uint64_t p = scratch[i];
		enum uffd_op_kind k =
		    use_zero && uffd_bit(pg->zero, p) ? UFFD_OP_ZERO : UFFD_OP_COPY;
		struct uffd_op *last = n ? &ops[n - 1] : NULL;

		if (i && p == scratch[i - 1])
			continue; /* a page listed twice */
		if (last && last->kind == k) {
			uint64_t end = last->page + last->npages;
			uint64_t want = p + 1 - last->page;
			bool bridge =
			    p >= end && p - end <= (k == UFFD_OP_COPY ? gap : 0) && want <= extent;

			/* a hole is bridged only if every page in it may be copied */
			for (uint64_t h = end; bridge && h < p; h++)
				if (uffd_bit(pg->filled, h) || uffd_bit(pg->removed, h) ||
				    (use_zero && uffd_bit(pg->zero, h)))
					bridge = false;
			if (bridge) {
				last->npages = want;
				continue;
			}
		}
		ops[n++] = (struct uffd_op){p, 1, k};
	}
	return n;
}

/* ---------------------------------------------------------------- handshake JSON */

int uffd_regions_encode(const struct uffd_region *r, size_t n, char *buf, size_t len)
{
	size_t off = 0;
	int w;

	if (len < 2)
		return -ENOSPC;
	buf[off++] = '[';
	for (size_t i = 0; i < n; i++) {
		w = snprintf(buf + off, len - off,
			     "%s{\"base_host_virt_addr\":%" PRIu64 ",\"size\":%" PRIu64
			     ",\"offset\":%" PRIu64 ",\"page_size\":%" PRIu64
			     ",\"page_size_kib\":%" PRIu64 "}",
			     i ? "," : "", r[i].base, r[i].size, r[i].offset, r[i].page_size,
			     r[i].page_size);
		if (w < 0 || (size_t)w >= len - off)
			return -ENOSPC;
		off += (size_t)w;
	}
	if (off + 2 > len)
		return -ENOSPC;
	buf[off++] = ']';
	buf[off] = 0;
	return (int)off;
}

/* A non-negative integer member; json-c keeps integers as int64 or uint64. */
static int get_u64(json_object *o, const char *key, uint64_t *v, bool *found)
{
	json_object *m;

	*found = json_object_object_get_ex(o, key, &m);
	if (!*found)
		return 0;
	if (!json_object_is_type(m, json_type_int))
		return -EINVAL;
	if (json_object_get_int64(m) < 0 && json_object_get_uint64(m) <= INT64_MAX)
		return -EINVAL;
	*v = json_object_get_uint64(m);
	return 0;
}

int uffd_regions_parse(const char *json, size_t len, struct uffd_region *r, size_t max, size_t *n,
		       char *err, size_t errlen)
{
	json_tokener *tok;
	json_object *arr;
	size_t count;
	int ret = 0;

	*n = 0;
	if (len > UFFD_MSG_MAX)
		return errf(err, errlen, -EINVAL, "regions: message of %zu bytes (at most %u)", len,
			    UFFD_MSG_MAX);
	tok = json_tokener_new();
	if (!tok)
		return -ENOMEM;
	arr = json_tokener_parse_ex(tok, json, (int)len);
	if (!arr || json_tokener_get_error(tok) != json_tokener_success) {
		ret = errf(err, errlen, -EINVAL, "regions: not valid JSON");
		goto out;
	}
	if (tok->char_offset != (int)len) {
		/* trailing bytes after the array: only whitespace and NULs */
		for (size_t i = (size_t)tok->char_offset; i < len; i++)
			if (json[i] != ' ' && json[i] != '\n' && json[i] != '\r' &&
			    json[i] != '\t' && json[i] != 0) {
				ret = errf(err, errlen, -EINVAL,
					   "regions: trailing data after the array");
				goto out;
			}
	}
	if (!json_object_is_type(arr, json_type_array)) {
		ret = errf(err, errlen, -EINVAL, "regions: not a JSON array");
		goto out;
	}
	count = json_object_array_length(arr);
	if (count == 0 || count > max) {
		ret = errf(err, errlen, -EINVAL, "regions: %zu regions (1..%zu)", count, max);
		goto out;
	}
	for (size_t i = 0; i < count; i++) {
		json_object *o = json_object_array_get_idx(arr, i);
		struct uffd_region x = {0};
		bool fb, fs, fo, fp, fk;
		uint64_t kib = 0;

		if (!json_object_is_type(o, json_type_object) ||
		    get_u64(o, "base_host_virt_addr", &x.base, &fb) ||
		    get_u64(o, "size", &x.size, &fs) || get_u64(o, "offset", &x.offset, &fo) ||
		    get_u64(o, "page_size", &x.page_size, &fp) ||
		    get_u64(o, "page_size_kib", &kib, &fk)) {
			ret = errf(err, errlen, -EINVAL,
				   "regions[%zu]: not an object of non-negative integers", i);
			goto out;
		}
		if (!fb || !fs || !fo || (!fp && !fk)) {
			ret = errf(err, errlen, -EINVAL,
				   "regions[%zu]: needs base_host_virt_addr, size, offset and "
				   "page_size",
				   i);
			goto out;
		}
		if (!fp)
			x.page_size = kib; /* bytes, despite the name */
		if (x.page_size != UFFD_PAGE) {
			ret =
			    errf(err, errlen, -EINVAL,
				 "regions[%zu]: page size %" PRIu64 " (only 4096)", i, x.page_size);
			goto out;
		}
		if (x.size == 0 || (x.base | x.size | x.offset) % UFFD_PAGE ||
		    x.base + x.size < x.base || x.offset + x.size < x.offset) {
			ret = errf(err, errlen, -EINVAL,
				   "regions[%zu]: empty, unaligned or wrapping (base %#" PRIx64
				   ", size %#" PRIx64 ", offset %#" PRIx64 ")",
				   i, x.base, x.size, x.offset);
			goto out;
		}
		for (size_t j = 0; j < i; j++) {
			const struct uffd_region *y = &r[j];

			if ((x.base < y->base + y->size && y->base < x.base + x.size) ||
			    (x.offset < y->offset + y->size && y->offset < x.offset + x.size)) {
				ret = errf(err, errlen, -EINVAL,
					   "regions[%zu] overlaps regions[%zu]", i, j);
				goto out;
			}
		}
		r[i] = x;
	}
	*n = count;
out:
	json_object_put(arr);
	json_tokener_free(tok);
	return ret;
}

void uffd_stats_format(const struct uffd_stats *st, char *buf, size_t len)
{
	snprintf(buf, len,
		 "faults=%" PRIu64 " copied=%" PRIu64 " zero=%" PRIu64 " prefetched=%" PRIu64
		 " prefetch_ms=%.1f removes=%" PRIu64 " removed_pages=%" PRIu64 " eagain=%" PRIu64
		 " exists=%" PRIu64 " recorded=%" PRIu64,
		 st->faults, st->copied_pages, st->zero_pages, st->prefetched,
		 (double)st->prefetch_ns / 1e6, st->removes, st->removed_pages, st->eagain,
		 st->exists, st->recorded);
}
