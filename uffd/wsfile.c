/* Working-set files: the recorded order of first-touched pages, kept either as a side file
 * (a snapshot-format file without memory: `workingset` plus `base` naming the snapshot)
 * or embedded into a copy of the snapshot. Both go through restore/'s writer and reader,
 * so they are checksummed and thaw-snap inspect/verify read them. */
#include "uffd/uffd.h"
#include "common/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "restore/snapshot.h"

/* Fields of the `base` section (docs/snapshot-format.md, section 7). */
#define BASE_ID	  1
#define BASE_PATH 2
#define WS_PSIZE  1
#define WS_PAGES  2

int uffd_ws_write(const char *path, const uint8_t *snap_id, const char *snap_path,
		  const uint64_t *pages, size_t n)
{
	struct snap_writer *w;
	struct snap_sec *base;
	int ret;

	ret = snap_writer_create(path, NULL, &w);
	if (ret)
		return ret;
	ret = snap_put_workingset(w, pages, n);
	if (!ret)
		ret = snap_writer_section(w, "base", 1, 0, 0, &base);
	if (!ret && snap_id)
		ret = snap_put_bytes(base, BASE_ID, snap_id, 16);
	if (!ret && snap_path)
		ret = snap_put_str(base, BASE_PATH, snap_path);
	if (ret) {
		snap_writer_abort(w);
		return ret;
	}
	return snap_writer_commit(w, NULL);
}

int uffd_ws_read(const char *path, const uint8_t *snap_id, uint64_t npages, uint64_t **pages,
		 size_t *n, char *err, size_t errlen)
{
	const struct snap_section *ws, *base;
	const uint64_t *v;
	const void *id;
	struct snap *s;
	uint64_t psz;
	size_t cnt, idlen;
	int ret;

	*pages = NULL;
	*n = 0;
	ret = snap_open(path, &s, err, errlen);
	if (ret)
		return ret;
	ws = snap_section_find(s, "workingset");
	if (!ws) {
		ret = errf(err, errlen, -ENOENT, "%s has no workingset section", path);
		goto out;
	}
	base = snap_section_find(s, "base");
	if (snap_id && base && snap_get_bytes(base, BASE_ID, &id, &idlen) == 0 &&
	    (idlen != 16 || memcmp(id, snap_id, 16))) {
		ret = errf(err, errlen, -ESTALE,
			   "%s was recorded for another snapshot (its base id differs)", path);
		goto out;
	}
	if (snap_get_u64(ws, WS_PSIZE, &psz) || psz != UFFD_PAGE ||
	    snap_get_u64a(ws, WS_PAGES, &v, &cnt)) {
		ret = errf(err, errlen, -EBADMSG, "%s: workingset lacks 4 KiB pages", path);
		goto out;
	}
	if (cnt > UFFD_MAX_WS_PAGES) {
		ret = errf(err, errlen, -EFBIG, "%s: %zu pages (at most %u)", path, cnt,
			   UFFD_MAX_WS_PAGES);
		goto out;
	}
	for (size_t i = 0; i < cnt; i++) {
		if (v[i] >= npages) {
			ret = errf(err, errlen, -ERANGE,
				   "%s: page %llu is outside the memory (%llu pages)", path,
				   (unsigned long long)v[i], (unsigned long long)npages);
			goto out;
		}
	}
	*pages = malloc(cnt ? cnt * sizeof(**pages) : 1);
	if (!*pages) {
		ret = -ENOMEM;
		goto out;
	}
	if (cnt)
		memcpy(*pages, v, cnt * sizeof(**pages));
	*n = cnt;
out:
	snap_close(s);
	return ret;
}

/* Copies one state section field by field (the writer re-frames them identically). */
static int copy_section(struct snap_writer *w, const struct snap_section *sec)
{
	struct snap_sec *dst;
	struct snap_field f;
	size_t pos = 0;
	int ret, r = 0;

	ret = snap_writer_section(w, sec->name, sec->ver_major, sec->ver_minor,
				  sec->flags & SNAP_SEC_REQUIRED, &dst);
	while (!ret && (r = snap_field_next(sec, &pos, &f)) == 1) {
		switch (f.type) {
		case SNAP_T_U64: {
			uint64_t v;

			memcpy(&v, f.val, 8);
			ret = snap_put_u64(dst, f.tag, v);
			break;
		}
		case SNAP_T_STR:
			ret = snap_put_strn(dst, f.tag, (const char *)f.val, f.len);
			break;
		case SNAP_T_U64A:
			ret = snap_put_u64a(dst, f.tag, (const uint64_t *)(const void *)f.val,
					    f.len / 8);
			break;
		default:
			ret = snap_put_bytes(dst, f.tag, f.val, f.len);
			break;
		}
	}
	if (!ret && r < 0)
		ret = r;
	return ret;
}

int uffd_ws_embed(const char *in, const uint64_t *pages, size_t n, const char *out, char *err,
		  size_t errlen)
{
	struct snap_writer_opts wo = {0};
	struct snap_memory_loc loc;
	struct snap_writer *w = NULL;
	struct snap *s;
	void *mem = MAP_FAILED;
	int fd = -1, ret;

	ret = snap_open(in, &s, err, errlen);
	if (ret)
		return ret;
	ret = snap_memory(s, &loc);
	if (!ret && loc.size == 0)
		ret = errf(err, errlen, -EINVAL, "%s has no memory", in);
	if (ret)
		goto out;
	for (size_t i = 0; i < n; i++)
		if (pages[i] >= loc.size / UFFD_PAGE) {
			ret = errf(err, errlen, -ERANGE, "working set page %llu outside memory",
				   (unsigned long long)pages[i]);
			goto out;
		}
	ret = snap_memory_open(s, &fd, err, errlen);
	if (ret)
		goto out;
	mem = mmap(NULL, loc.size, PROT_READ, MAP_PRIVATE, fd, (off_t)loc.offset);
	if (mem == MAP_FAILED) {
		ret = errf(err, errlen, -errno, "mmap of %s's memory: %s", in, strerror(errno));
		goto out;
	}
	wo.facts = snap_host_facts(s);
	ret = snap_writer_create(out, &wo, &w);
	if (ret) {
		errf(err, errlen, ret, "creating %s: %s", out, strerror(-ret));
		goto out;
	}
	for (size_t i = 0; i < snap_section_count(s) && !ret; i++) {
		const struct snap_section *sec = snap_section_at(s, i);

		if (!sec->data || !strncmp(sec->name, "memory", 6) ||
		    !strcmp(sec->name, "workingset"))
			continue;
		ret = copy_section(w, sec);
		if (ret)
			errf(err, errlen, ret, "copying section %s: %s", sec->name, strerror(-ret));
	}
	if (!ret)
		ret = snap_put_workingset(w, pages, n);
	if (!ret)
		ret = snap_writer_set_memory(w, mem, loc.size);
	if (ret) {
		snap_writer_abort(w);
		goto out;
	}
	ret = snap_writer_commit(w, NULL);
	if (ret)
		errf(err, errlen, ret, "writing %s: %s", out, strerror(-ret));
out:
	if (mem != MAP_FAILED)
		munmap(mem, loc.size);
	if (fd >= 0)
		close(fd);
	snap_close(s);
	return ret;
}
