/* Applying a diff snapshot to its base (offline: reads memory). The base's memory is
 * mapped copy-on-write, the diff's dirty pages are read over it, and the result goes
 * through the ordinary writer, which recomputes checksums and the zero bitmap. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "restore/snap_internal.h"

static int copy_state(struct snap_writer *w, const struct snap *diff, char *err, size_t errlen)
{
	for (size_t i = 0; i < snap_section_count(diff); i++) {
		const struct snap_section *sec = snap_section_at(diff, i);
		struct snap_sec *out;
		/* the writer makes its own memory sections; `base` is what merging removes */
		if (!sec->data || !strncmp(sec->name, "memory", 6) || !strcmp(sec->name, "base"))
			continue;
		int r = snap_writer_section(w, sec->name, sec->ver_major, sec->ver_minor,
					    sec->flags & SNAP_SEC_REQUIRED, &out);
		if (r) {
			errf(err, errlen, 0, "merge: section '%s': %s", sec->name, strerror(-r));
			return r;
		}
		/* Records are copied as they are: merge must not drop fields it does not know. */
		struct snap_field f;
		size_t pos = 0;
		while ((r = snap_field_next(sec, &pos, &f)) == 1) {
			long off = snap_put_reserve(out, f.tag, f.type, f.len);
			if (off < 0)
				return (int)off;
			memcpy(out->buf + off, f.val, f.len);
		}
		if (r < 0)
			return r;
	}
	return 0;
}

static int read_at(int fd, uint8_t *p, size_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pread(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -ENODATA;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

struct first_report {
	char *err;
	size_t errlen;
	const char *path;
	int n;
};

static void keep_first(void *opaque, const char *msg)
{
	struct first_report *f = opaque;
	if (!f->n++)
		errf(f->err, f->errlen, 0, "%s: %s", f->path, msg);
}

/* Memory chunk checksums of one input, the first problem named in `err`. */
static int verify_input(const struct snap *s, const char *path, char *err, size_t errlen)
{
	struct first_report f = {err, errlen, path, 0};
	int r = snap_memory_verify(s, keep_first, &f, NULL);
	if (r && !f.n)
		errf(err, errlen, 0, "%s: memory: %s", path, strerror(-r));
	return r ? -EBADMSG : 0;
}

int snap_merge(const char *base_path, const char *diff_path, const char *out_path, char *err,
	       size_t errlen)
{
	struct snap *base = NULL, *diff = NULL;
	struct snap_writer *w = NULL;
	struct snap_memory_loc bl, dl;
	uint8_t *mem = MAP_FAILED;
	int bfd = -1, dfd = -1, ret;
	const void *bits, *id;
	size_t nbits, idlen;

	ret = snap_open(base_path, &base, err, errlen);
	if (ret)
		return ret;
	ret = snap_open_flags(diff_path, SNAP_OPEN_DIFF, &diff, err, errlen);
	if (ret)
		goto out;
	const struct snap_section *bsec = snap_section_find(diff, "base");
	if (!(snap_header_flags(diff) & SNAP_HDR_DIFF) || !bsec) {
		ret = -EINVAL;
		errf(err, errlen, 0, "%s is not a diff snapshot", diff_path);
		goto out;
	}
	ret = snap_section_check_version(bsec, 1, err, errlen);
	if (ret)
		goto out;
	if (snap_get_bytes(bsec, 1, &id, &idlen) || idlen != 16 ||
	    snap_get_bytes(bsec, 3, &bits, &nbits)) {
		ret = -EBADMSG;
		errf(err, errlen, 0, "section 'base' of %s lacks the base id or page bitmap",
		     diff_path);
		goto out;
	}
	if (memcmp(id, snap_id(base), 16)) {
		ret = -EINVAL;
		errf(err, errlen, 0, "%s was taken against another snapshot than %s (ids differ)",
		     diff_path, base_path);
		goto out;
	}
	snap_memory(base, &bl);
	snap_memory(diff, &dl);
	uint64_t npages = bl.size / SNAP_PAGE_SIZE;
	if (dl.size != bl.size || nbits != (npages + 7) / 8) {
		ret = -EBADMSG;
		errf(err, errlen, 0, "diff memory (%llu bytes) does not match base (%llu bytes)",
		     (unsigned long long)dl.size, (unsigned long long)bl.size);
		goto out;
	}
	/* The output gets fresh checksums over whatever the inputs hold: damage in either
	 * must be found now, or it would come out certified as good. */
	ret = verify_input(base, base_path, err, errlen);
	if (!ret)
		ret = verify_input(diff, diff_path, err, errlen);
	if (ret)
		goto out;
	/* the merged snapshot describes where the VM ran, not where it was merged */
	struct snap_writer_opts o = {.facts = snap_host_facts(diff)};
	ret = snap_writer_create(out_path, &o, &w);
	if (ret) {
		errf(err, errlen, 0, "create %s: %s", out_path, strerror(-ret));
		goto out;
	}
	ret = copy_state(w, diff, err, errlen);
	if (ret)
		goto out;
	if (bl.size) {
		if ((ret = snap_memory_open(base, &bfd, err, errlen)) ||
		    (ret = snap_memory_open(diff, &dfd, err, errlen)))
			goto out;
		mem =
		    mmap(NULL, bl.size, PROT_READ | PROT_WRITE, MAP_PRIVATE, bfd, (off_t)bl.offset);
		if (mem == MAP_FAILED) {
			ret = -errno;
			errf(err, errlen, 0, "mmap base memory: %s", strerror(errno));
			goto out;
		}
		const uint8_t *b = bits;
		for (uint64_t pg = 0; pg < npages; pg++) {
			if (!(b[pg / 8] & (1u << (pg % 8))))
				continue;
			uint64_t first = pg;
			while (pg + 1 < npages && (b[(pg + 1) / 8] & (1u << ((pg + 1) % 8))))
				pg++;
			uint64_t off = first * SNAP_PAGE_SIZE,
				 len = (pg + 1 - first) * SNAP_PAGE_SIZE;
			ret = read_at(dfd, mem + off, len, dl.offset + off);
			if (ret) {
				errf(err, errlen, 0, "read diff memory: %s", strerror(-ret));
				goto out;
			}
		}
		ret = snap_writer_set_memory(w, mem, bl.size);
		if (ret)
			goto out;
	}
	ret = snap_writer_commit(w, NULL);
	w = NULL;
	if (ret)
		errf(err, errlen, 0, "write %s: %s", out_path, strerror(-ret));
out:
	snap_writer_abort(w);
	if (mem != MAP_FAILED)
		munmap(mem, bl.size);
	if (bfd >= 0)
		close(bfd);
	if (dfd >= 0)
		close(dfd);
	snap_close(diff);
	snap_close(base);
	return ret;
}
