/* Writing a snapshot: section builders, then one commit that lays out the file, streams
 * guest memory (holes for zero pages, chunk checksums on the fly), writes header, table
 * and state in one pwrite, and makes the file appear atomically. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <dirent.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "restore/snap_internal.h"
#include "common/log.h"

#define WRITE_RUN_MAX (1u << 20) /* largest single pwrite of memory: stays in L2 after CRC */
#define MAX_FIELD     (SNAP_MAX_STATE / 2)

/* ---------------------------------------------------------------- builders */

void snap_sec_release(struct snap_sec *sec)
{
	if (!sec)
		return;
	free(sec->buf);
	memset(sec, 0, sizeof(*sec));
}

long snap_put_reserve(struct snap_sec *sec, uint16_t tag, uint16_t type, size_t len)
{
	if (sec->err)
		return sec->err;
	if (len > MAX_FIELD) {
		sec->err = -E2BIG;
		return sec->err;
	}
	size_t need = sec->len + FIELD_HDR + align_up(len, 8);
	if (need > sec->cap) {
		size_t cap = sec->cap ? sec->cap : 256;
		while (cap < need)
			cap *= 2;
		uint8_t *nb = realloc(sec->buf, cap);
		if (!nb) {
			sec->err = -ENOMEM;
			return sec->err;
		}
		sec->buf = nb;
		sec->cap = cap;
	}
	uint8_t *p = sec->buf + sec->len;
	wr16(p, tag);
	wr16(p + 2, type);
	wr32(p + 4, (uint32_t)len);
	memset(p + FIELD_HDR, 0, align_up(len, 8));
	sec->len = need;
	return (long)(p + FIELD_HDR - sec->buf);
}

static int put(struct snap_sec *sec, uint16_t tag, uint16_t type, const void *v, size_t len)
{
	long off = snap_put_reserve(sec, tag, type, len);
	if (off < 0)
		return (int)off;
	if (len)
		memcpy(sec->buf + off, v, len);
	return 0;
}

int snap_put_u64(struct snap_sec *sec, uint16_t tag, uint64_t v)
{
	return put(sec, tag, SNAP_T_U64, &v, 8);
}

int snap_put_bytes(struct snap_sec *sec, uint16_t tag, const void *p, size_t len)
{
	return put(sec, tag, SNAP_T_BYTES, p, len);
}

int snap_put_strn(struct snap_sec *sec, uint16_t tag, const char *s, size_t len)
{
	if (memchr(s, 0, len)) {
		if (!sec->err)
			sec->err = -EINVAL;
		return -EINVAL;
	}
	return put(sec, tag, SNAP_T_STR, s, len);
}

int snap_put_str(struct snap_sec *sec, uint16_t tag, const char *s)
{
	return snap_put_strn(sec, tag, s, strlen(s));
}

int snap_put_u64a(struct snap_sec *sec, uint16_t tag, const uint64_t *v, size_t n)
{
	if (n > MAX_FIELD / 8) {
		if (!sec->err)
			sec->err = -E2BIG;
		return -E2BIG;
	}
	return put(sec, tag, SNAP_T_U64A, v, n * 8);
}

int snap_name_valid(const char *name, size_t max)
{
	size_t n = 0;
	for (; n < max && name[n]; n++) {
		char c = name[n];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-'))
			return 0;
	}
	return n > 0 && n < max;
}

/* ---------------------------------------------------------------- files appearing atomically */

/* One output file (the snapshot, or its memory file) written where nobody sees it and
 * given its final name at commit. Preferred: an unnamed file (O_TMPFILE), which a crash
 * or SIGKILL at any point simply frees, named at commit by linkat. Where the file system
 * has no O_TMPFILE, or this process can link neither by AT_EMPTY_PATH (needs
 * CAP_DAC_READ_SEARCH) nor through /proc/self/fd (a jail has no /proc), a named
 * temporary `.<name>.tmp-XXXXXX` is written instead, and the next create of the same
 * target removes the ones a crash left. */
enum tmp_how {
	TMP_EMPTY_PATH, /* unnamed; linkat(fd, "", ..., AT_EMPTY_PATH) */
	TMP_PROC,	/* unnamed; linkat("/proc/self/fd/N", ..., AT_SYMLINK_FOLLOW) */
	TMP_NAMED,	/* mkostemp name, renamed at commit */
};

struct out_file {
	char *final;   /* as the caller gave it */
	char *dir;     /* its directory ("." when the path has no '/') */
	char *base;    /* its last component */
	char *tmp;     /* dir/.<base>.tmp[-XXXXXX]: the name renamed over `final`, or NULL */
	bool tmp_ours; /* `tmp` exists and is ours to unlink on failure */
	int dirfd;
	int fd;
	enum tmp_how how;
};

static void out_init(struct out_file *o)
{
	memset(o, 0, sizeof(*o));
	o->dirfd = -1;
	o->fd = -1;
}

static char *join(const char *dir, const char *name)
{
	size_t len = strlen(dir) + strlen(name) + 2;
	char *p = malloc(len);
	if (p)
		snprintf(p, len, "%s/%s", dir, name);
	return p;
}

/* A linkat that can only fail (the target "." exists): EEXIST means this way of linking
 * the unnamed file works here; anything else (ENOENT without the capability or without
 * /proc) means it does not. Creates nothing. */
static bool link_works(const struct out_file *o, enum tmp_how how)
{
	char proc[40];
	int r;
	if (how == TMP_EMPTY_PATH) {
		r = linkat(o->fd, "", o->dirfd, ".", AT_EMPTY_PATH);
	} else {
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", o->fd);
		r = linkat(AT_FDCWD, proc, o->dirfd, ".", AT_SYMLINK_FOLLOW);
	}
	return r < 0 && errno == EEXIST;
}

static int link_as(const struct out_file *o, const char *name)
{
	char proc[40];
	if (o->how == TMP_EMPTY_PATH)
		return linkat(o->fd, "", o->dirfd, name, AT_EMPTY_PATH) ? -errno : 0;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", o->fd);
	return linkat(AT_FDCWD, proc, o->dirfd, name, AT_SYMLINK_FOLLOW) ? -errno : 0;
}

/* Removes `.<base>.tmp-XXXXXX` files a killed create of the same target left. A
 * concurrent create of the same target that loses its temporary this way fails at its
 * rename (ENOENT); it never renames another's partial file. */
static void sweep_stale(const struct out_file *o)
{
	char prefix[NAME_MAX + 8];
	int n = snprintf(prefix, sizeof(prefix), ".%s.tmp-", o->base);
	DIR *d = opendir(o->dir);
	struct dirent *e;
	if (!d || n < 0 || (size_t)n >= sizeof(prefix)) {
		if (d)
			closedir(d);
		return;
	}
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, prefix, (size_t)n) || strlen(e->d_name) != (size_t)n + 6)
			continue;
		char *p = join(o->dir, e->d_name);
		if (p && unlink(p) == 0)
			log_info("snapshot: removed %s, left by an interrupted create", p);
		free(p);
	}
	closedir(d);
}

static int out_create(struct out_file *o, const char *path, unsigned mode, bool named)
{
	const char *slash = strrchr(path, '/');
	int ret = -ENOMEM;
	o->final = strdup(path);
	o->base = strdup(slash ? slash + 1 : path);
	o->dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
	if (!o->final || !o->base || !o->dir)
		return -ENOMEM;
	if (!o->base[0] || !strcmp(o->base, ".") || !strcmp(o->base, ".."))
		return -EISDIR;
	o->dirfd = open(o->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (o->dirfd < 0) {
		ret = -errno;
		log_err("snapshot: open directory %s: %s", o->dir, strerror(errno));
		return ret;
	}
	o->fd = named ? -1 : openat(o->dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (o->fd >= 0) {
		o->how = TMP_EMPTY_PATH;
		if (!link_works(o, TMP_EMPTY_PATH)) {
			o->how = TMP_PROC;
			if (!link_works(o, TMP_PROC)) {
				close(o->fd);
				o->fd = -1;
			}
		}
	}
	if (o->fd >= 0) {
		char name[NAME_MAX + 8];
		snprintf(name, sizeof(name), ".%s.tmp", o->base);
		o->tmp = join(o->dir, name);
		if (!o->tmp)
			return -ENOMEM;
		unlink(o->tmp); /* left by a create killed between its link and its rename */
	} else {
		sweep_stale(o);
		char name[NAME_MAX + 16];
		snprintf(name, sizeof(name), ".%s.tmp-XXXXXX", o->base);
		o->tmp = join(o->dir, name);
		if (!o->tmp)
			return -ENOMEM;
		o->fd = mkostemp(o->tmp, O_CLOEXEC);
		if (o->fd < 0) {
			ret = -errno;
			log_err("snapshot: mkostemp(%s): %s", o->tmp, strerror(errno));
			return ret;
		}
		o->how = TMP_NAMED;
		o->tmp_ours = true;
	}
	if (mode && fchmod(o->fd, mode & 07777) < 0) {
		ret = -errno;
		log_err("snapshot: fchmod(%s, %o): %s", o->final, mode, strerror(errno));
		return ret;
	}
	return 0;
}

/* Gives the written file its final name: one link when nothing has that name yet,
 * else a link to `.<base>.tmp` renamed over the old file. */
static int out_commit(struct out_file *o)
{
	int ret;
	if (o->how != TMP_NAMED) {
		ret = link_as(o, o->base);
		if (ret != -EEXIST)
			goto done;
		ret = link_as(o, strrchr(o->tmp, '/') + 1);
		if (ret == -EEXIST && unlink(o->tmp) == 0)
			ret = link_as(o, strrchr(o->tmp, '/') + 1);
		if (ret)
			goto done;
		o->tmp_ours = true;
	}
	ret = rename(o->tmp, o->final) ? -errno : 0;
	if (ret) {
		log_err("snapshot: rename(%s, %s): %s", o->tmp, o->final, strerror(-ret));
		return ret;
	}
	o->tmp_ours = false;
	return 0;
done:
	if (ret)
		log_err("snapshot: linkat(%s): %s", o->final, strerror(-ret));
	return ret;
}

/* Closes and frees; unlinks a temporary name that never became the final one. */
static void out_release(struct out_file *o)
{
	if (o->fd >= 0)
		close(o->fd);
	if (o->tmp_ours)
		unlink(o->tmp);
	if (o->dirfd >= 0)
		close(o->dirfd);
	free(o->final);
	free(o->dir);
	free(o->base);
	free(o->tmp);
	out_init(o);
}

/* ---------------------------------------------------------------- the writer */

struct wsec {
	char name[SNAP_NAME_MAX];
	uint16_t ver_major, ver_minor;
	uint32_t flags;
	struct snap_sec sec;
	uint64_t offset;
};

struct snap_writer {
	struct out_file out;	 /* the snapshot */
	struct out_file mem_out; /* its memory file, when mem_ext */
	bool mem_ext;
	char *mem_name; /* the memory file's name, as memory.file records it */
	bool no_fsync;
	bool checksum_thread;
	struct snap_host_facts facts;
	struct wsec **secs;
	size_t nsecs, cap;
	const uint8_t *mem;
	uint64_t mem_len;
	bool has_mem;
	const uint8_t *dirty; /* diff snapshot: pages to write; NULL: a full snapshot */
};

/* The memory file must be where the reader looks for it: in the snapshot's directory,
 * recorded by its name alone. */
static int mem_file_place(struct snap_writer *w)
{
	struct stat a, b;
	if (fstat(w->out.dirfd, &a) < 0 || fstat(w->mem_out.dirfd, &b) < 0)
		return -errno;
	if (a.st_dev != b.st_dev || a.st_ino != b.st_ino || !strcmp(w->out.base, w->mem_out.base)) {
		log_err("snapshot: the memory file %s must be another file in the snapshot's "
			"directory (%s): the snapshot records its name only",
			w->mem_out.final, w->out.dir);
		return -EINVAL;
	}
	w->mem_name = strdup(w->mem_out.base);
	return w->mem_name ? 0 : -ENOMEM;
}

int snap_writer_create(const char *final_path, const struct snap_writer_opts *opts,
		       struct snap_writer **out)
{
	int ret;
	struct snap_writer *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	out_init(&w->out);
	out_init(&w->mem_out);
	bool named = opts && opts->named_temp;
	ret = out_create(&w->out, final_path, opts ? opts->mode : 0, named);
	if (ret)
		goto fail;
	if (opts && opts->mem_file_path) {
		w->mem_ext = true;
		ret = out_create(&w->mem_out, opts->mem_file_path, opts->mode, named);
		if (!ret)
			ret = mem_file_place(w);
		if (ret)
			goto fail;
	}
	w->no_fsync = opts && opts->no_fsync;
	w->checksum_thread = opts && opts->checksum_thread;
	if (opts && opts->facts)
		w->facts = *opts->facts;
	else
		snap_host_facts_current(&w->facts);
	*out = w;
	return 0;
fail:
	snap_writer_abort(w);
	return ret;
}

void snap_writer_abort(struct snap_writer *w)
{
	if (!w)
		return;
	out_release(&w->out);
	out_release(&w->mem_out);
	for (size_t i = 0; i < w->nsecs; i++) {
		snap_sec_release(&w->secs[i]->sec);
		free(w->secs[i]);
	}
	free(w->secs);
	free(w->mem_name);
	free(w);
}

static int add_section(struct snap_writer *w, const char *name, uint16_t maj, uint16_t min,
		       uint32_t flags, struct wsec **out)
{
	if (!snap_name_valid(name, SNAP_NAME_MAX))
		return -EINVAL;
	for (size_t i = 0; i < w->nsecs; i++)
		if (!strcmp(w->secs[i]->name, name))
			return -EEXIST;
	if (w->nsecs + 4 > SNAP_MAX_SECTIONS) /* room for the memory sections */
		return -E2BIG;
	if (w->nsecs == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 16;
		struct wsec **ns = realloc(w->secs, cap * sizeof(*ns));
		if (!ns)
			return -ENOMEM;
		w->secs = ns;
		w->cap = cap;
	}
	struct wsec *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->ver_major = maj;
	s->ver_minor = min;
	s->flags = flags;
	w->secs[w->nsecs++] = s;
	*out = s;
	return 0;
}

int snap_writer_section(struct snap_writer *w, const char *name, uint16_t ver_major,
			uint16_t ver_minor, uint32_t flags, struct snap_sec **sec)
{
	if (!strncmp(name, "memory", 6) || (flags & ~SNAP_SEC_REQUIRED))
		return -EINVAL;
	struct wsec *s;
	int ret = add_section(w, name, ver_major, ver_minor, flags, &s);
	if (ret)
		return ret;
	*sec = &s->sec;
	return 0;
}

int snap_writer_set_memory(struct snap_writer *w, const void *mem, uint64_t len)
{
	/* A snapshot without memory has no memory section (readers refuse an empty one). */
	if (w->has_mem || !len || (len % SNAP_PAGE_SIZE) || !mem)
		return -EINVAL;
	w->mem = mem;
	w->mem_len = len;
	w->has_mem = true;
	return 0;
}

int snap_writer_set_diff(struct snap_writer *w, const struct snap *base, const char *base_path,
			 const uint8_t *dirty, uint64_t npages)
{
	struct snap_memory_loc loc;
	struct wsec *s;
	snap_memory(base, &loc);
	if (w->dirty || !dirty || npages != loc.size / SNAP_PAGE_SIZE ||
	    (snap_header_flags(base) & SNAP_HDR_DIFF))
		return -EINVAL;
	int ret = add_section(w, "base", 1, 0, SNAP_SEC_REQUIRED, &s);
	if (ret)
		return ret;
	snap_put_bytes(&s->sec, 1, snap_id(base), 16);
	snap_put_str(&s->sec, 2, base_path);
	snap_put_bytes(&s->sec, 3, dirty, (npages + 7) / 8);
	w->dirty = dirty;
	return s->sec.err;
}

static int pwrite_all(int fd, const void *buf, size_t len, uint64_t off, const char *what)
{
	const uint8_t *p = buf;
	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int e = -errno;
			log_err("snapshot: pwrite(%s, %zu bytes at %llu): %s", what, len,
				(unsigned long long)off, strerror(errno));
			return e;
		}
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static bool page_is_zero(const uint8_t *p)
{
	const uint64_t *q = (const uint64_t *)(const void *)p;
	/* Most data pages differ from zero in their first words: test those alone first. */
	if (q[0] | q[1] | q[2] | q[3])
		return false;
	uint64_t acc = 0;
	for (unsigned i = 4; i < SNAP_PAGE_SIZE / 8; i += 4)
		acc |= q[i] | q[i + 1] | q[i + 2] | q[i + 3];
	return acc == 0;
}

/* Streams memory to fd at `base`: zero pages become holes, runs of data pages go out in
 * large writes, and the chunk CRCs and the zero bitmap are filled as we go. A gap of
 * fewer than GAP_PAGES zero pages between data pages is written as data: one 16 KiB
 * copy costs less than the extra write call and extent a hole that small would need. */
#define GAP_PAGES 4
/* Checksum of one page as memory.sums counts it: pages outside a diff and zero pages by
 * the shift table (no reading), others by the crc32 instruction. */
static uint32_t page_crc(const struct snap_writer *w, uint64_t pg, uint32_t crc)
{
	const uint8_t *p = w->mem + pg * SNAP_PAGE_SIZE;
	if ((w->dirty && !(w->dirty[pg / 8] & (1u << (pg % 8)))) || page_is_zero(p))
		return snap_crc32c_zeros(crc, SNAP_PAGE_SIZE);
	return snap_crc32c(crc, p, SNAP_PAGE_SIZE);
}

struct sum_job {
	const struct snap_writer *w;
	uint64_t *sums;
};

static void *sum_thread(void *arg)
{
	struct sum_job *j = arg;
	uint64_t npages = j->w->mem_len / SNAP_PAGE_SIZE;
	uint32_t crc = 0;
	for (uint64_t pg = 0; pg < npages; pg++) {
		crc = page_crc(j->w, pg, crc);
		if ((pg + 1) % (SNAP_MEM_CHUNK / SNAP_PAGE_SIZE) == 0 || pg + 1 == npages) {
			j->sums[pg * SNAP_PAGE_SIZE / SNAP_MEM_CHUNK] = crc;
			crc = 0;
		}
	}
	return NULL;
}

/* Streams memory to fd at `base`: zero pages become holes, runs of data pages go out in
 * large writes, and the zero bitmap (and, when `sums` is not NULL, the chunk CRCs) are
 * filled as we go. A gap of fewer than GAP_PAGES zero pages between data pages is
 * written as data: one 16 KiB copy costs less than the extra write call and extent a
 * hole that small would need. */
#define GAP_PAGES 4
static int write_memory(struct snap_writer *w, int fd, uint64_t base, uint64_t *sums,
			uint8_t *zero_bits, struct snap_write_stats *st)
{
	const uint8_t *mem = w->mem;
	uint64_t npages = w->mem_len / SNAP_PAGE_SIZE;
	uint64_t run_start = 0, run_end = 0; /* [start, end) of data not yet written */
	uint32_t crc = 0;
	int ret;

	for (uint64_t pg = 0; pg < npages; pg++) {
		uint64_t off = pg * SNAP_PAGE_SIZE;
		const uint8_t *p = mem + off;
		if (w->dirty && !(w->dirty[pg / 8] & (1u << (pg % 8)))) {
			/* not in this diff: a hole that means "as in the base", never filled
			 * by gap coalescing (its checksum counts it as zeros) */
			if (sums)
				crc = snap_crc32c_zeros(crc, SNAP_PAGE_SIZE);
			if (run_end != run_start) {
				ret = pwrite_all(fd, mem + run_start, run_end - run_start,
						 base + run_start, "memory");
				if (ret)
					return ret;
				run_start = run_end;
			}
		} else if (page_is_zero(p)) {
			if (sums)
				crc = snap_crc32c_zeros(crc, SNAP_PAGE_SIZE);
			if (zero_bits)
				zero_bits[pg / 8] |= (uint8_t)(1u << (pg % 8));
			st->zero_pages++;
		} else {
			if (sums)
				crc = snap_crc32c(crc, p, SNAP_PAGE_SIZE);
			st->data_pages++;
			if (run_end != run_start && (off - run_end >= GAP_PAGES * SNAP_PAGE_SIZE ||
						     run_end - run_start >= WRITE_RUN_MAX)) {
				ret = pwrite_all(fd, mem + run_start, run_end - run_start,
						 base + run_start, "memory");
				if (ret)
					return ret;
				run_start = run_end;
			}
			if (run_end == run_start)
				run_start = off;
			run_end = off + SNAP_PAGE_SIZE;
		}
		if (sums && ((off + SNAP_PAGE_SIZE) % SNAP_MEM_CHUNK == 0 || pg + 1 == npages)) {
			sums[off / SNAP_MEM_CHUNK] = crc;
			crc = 0;
		}
	}
	if (run_end != run_start)
		return pwrite_all(fd, mem + run_start, run_end - run_start, base + run_start,
				  "memory");
	return 0;
}

/* With opts.checksum_thread, a helper computes the chunk sums while this thread writes:
 * on an idle core that hides the checksum time. Falls back to one thread if the helper
 * cannot be created. */
static int write_memory_all(struct snap_writer *w, int fd, uint64_t base, uint64_t *sums,
			    uint8_t *zero_bits, struct snap_write_stats *st)
{
	pthread_t th;
	struct sum_job job = {w, sums};
	if (!w->checksum_thread || pthread_create(&th, NULL, sum_thread, &job))
		return write_memory(w, fd, base, sums, zero_bits, st);
	int ret = write_memory(w, fd, base, NULL, zero_bits, st);
	pthread_join(th, NULL);
	return ret;
}

static int fsync_dir_of(const char *path)
{
	char *copy = strdup(path);
	if (!copy)
		return -ENOMEM;
	int dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int ret = 0;
	if (dfd < 0 || fsync(dfd) < 0) {
		ret = -errno;
		log_err("snapshot: fsync of directory %s: %s", copy, strerror(errno));
	}
	if (dfd >= 0)
		close(dfd);
	free(copy);
	return ret;
}

static void fill_header(struct snap_writer *w, uint8_t *h, uint32_t count, uint64_t state_end,
			uint64_t file_size, uint32_t table_crc)
{
	memcpy(h + H_MAGIC, SNAP_MAGIC, 8);
	wr16(h + H_MAJOR, SNAP_FORMAT_MAJOR);
	wr16(h + H_MINOR, SNAP_FORMAT_MINOR);
	wr32(h + H_FLAGS,
	     (w->mem_ext ? SNAP_HDR_MEM_EXTERNAL : 0) | (w->dirty ? SNAP_HDR_DIFF : 0));
	wr32(h + H_HDR_SIZE, SNAP_HEADER_SIZE);
	wr32(h + H_COUNT, count);
	wr64(h + H_TABLE_OFF, SNAP_HEADER_SIZE);
	wr64(h + H_STATE_END, state_end);
	wr64(h + H_FILE_SIZE, file_size);
	wr32(h + H_TABLE_CRC, table_crc);
	if (getrandom(h + H_ID, 16, GRND_NONBLOCK) != 16) {
		uint64_t a = now_ns(), b = (uint64_t)getpid() * 0x9e3779b97f4a7c15ull ^ a;
		wr64(h + H_ID, a);
		wr64(h + H_ID + 8, b);
	}
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	wr64(h + H_CREATED, (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec);
	strncpy((char *)h + H_VENDOR, w->facts.vendor, 15);
	wr32(h + H_FAMILY, w->facts.family);
	wr32(h + H_MODEL, w->facts.model);
	wr32(h + H_STEPPING, w->facts.stepping);
	wr32(h + H_CPUID_DIGEST, w->facts.cpuid_digest);
	strncpy((char *)h + H_KERNEL, w->facts.kernel, H_KERNEL_LEN - 1);
	wr32(h + H_CRC, snap_crc32c(0, h, H_CRC));
}

int snap_writer_commit(struct snap_writer *w, struct snap_write_stats *stats)
{
	struct snap_write_stats st_local = {0};
	struct snap_write_stats *st = stats ? stats : &st_local;
	uint8_t *front = NULL;
	struct wsec *mem_sec = NULL, *sums_sec = NULL, *zero_sec = NULL;
	uint64_t nchunks = 0, npages = 0;
	long sums_off = 0, zero_off = 0;
	int ret = 0;

	memset(st, 0, sizeof(*st));
	if (w->mem_ext && !w->has_mem) {
		ret = -EINVAL;
		log_err("snapshot: a memory file path was given but no memory was set");
		goto fail;
	}
	for (size_t i = 0; i < w->nsecs; i++) {
		if (w->secs[i]->sec.err) {
			ret = w->secs[i]->sec.err;
			log_err("snapshot: building section '%s' failed: %s", w->secs[i]->name,
				strerror(-ret));
			goto fail;
		}
	}

	/* Memory sections: sizes depend only on the memory length, so they are laid out
	 * before the memory is scanned and filled in afterwards. */
	if (w->has_mem) {
		nchunks = (w->mem_len + SNAP_MEM_CHUNK - 1) / SNAP_MEM_CHUNK;
		npages = w->mem_len / SNAP_PAGE_SIZE;
		if (w->mem_ext) {
			ret = add_section(w, "memory.file", 1, 0, SNAP_SEC_REQUIRED, &mem_sec);
			if (ret)
				goto fail;
			snap_put_str(&mem_sec->sec, 1, w->mem_name);
			snap_put_u64(&mem_sec->sec, 2, w->mem_len);
		}
		ret = add_section(w, "memory.sums", 1, 0, 0, &sums_sec);
		if (ret)
			goto fail;
		snap_put_u64(&sums_sec->sec, 1, SNAP_MEM_CHUNK);
		snap_put_u64(&sums_sec->sec, 2, w->mem_len);
		sums_off = snap_put_reserve(&sums_sec->sec, 3, SNAP_T_U64A, nchunks * 8);
		if (!w->dirty) { /* a diff cannot know which base pages are zero */
			ret = add_section(w, "memory.zero", 1, 0, 0, &zero_sec);
			if (ret)
				goto fail;
			snap_put_u64(&zero_sec->sec, 1, SNAP_PAGE_SIZE);
			snap_put_u64(&zero_sec->sec, 2, npages);
			zero_off =
			    snap_put_reserve(&zero_sec->sec, 3, SNAP_T_BYTES, (npages + 7) / 8);
		}
		ret = sums_sec->sec.err ? sums_sec->sec.err : zero_sec ? zero_sec->sec.err : 0;
		if (!ret && mem_sec)
			ret = mem_sec->sec.err;
		if (ret)
			goto fail;
	}

	/* Layout: header, table, state sections (8-aligned), memory (2 MiB aligned). */
	uint32_t count = (uint32_t)w->nsecs + (w->has_mem && !w->mem_ext ? 1 : 0);
	uint64_t pos = SNAP_HEADER_SIZE + (uint64_t)count * SNAP_TABLE_ENTRY;
	for (size_t i = 0; i < w->nsecs; i++) {
		pos = align_up(pos, 8);
		w->secs[i]->offset = pos;
		pos += w->secs[i]->sec.len;
	}
	uint64_t state_end = align_up(pos, 8);
	if (state_end > SNAP_MAX_STATE) {
		ret = -E2BIG;
		log_err("snapshot: state is %llu bytes, above the %u limit",
			(unsigned long long)state_end, SNAP_MAX_STATE);
		goto fail;
	}
	uint64_t mem_off = 0, file_size = state_end;
	if (w->has_mem && !w->mem_ext) {
		mem_off = align_up(state_end, SNAP_MEM_ALIGN);
		file_size = mem_off + w->mem_len;
	}

	uint64_t t0 = now_ns();
	if (w->has_mem) {
		uint64_t *sums = (uint64_t *)(void *)(sums_sec->sec.buf + sums_off);
		uint8_t *zbits = zero_sec ? zero_sec->sec.buf + zero_off : NULL;
		int mfd = w->mem_ext ? w->mem_out.fd : w->out.fd;
		ret = write_memory_all(w, mfd, mem_off, sums, zbits, st);
		if (ret)
			goto fail;
		if (w->mem_ext && ftruncate(w->mem_out.fd, (off_t)w->mem_len) < 0) {
			ret = -errno;
			log_err("snapshot: ftruncate(%s): %s", w->mem_out.final, strerror(errno));
			goto fail;
		}
	}
	uint64_t t1 = now_ns();
	st->mem_ns = t1 - t0;

	front = calloc(1, state_end);
	if (!front) {
		ret = -ENOMEM;
		goto fail;
	}
	uint8_t *tab = front + SNAP_HEADER_SIZE;
	for (size_t i = 0; i < w->nsecs; i++) {
		struct wsec *s = w->secs[i];
		uint8_t *e = tab + i * SNAP_TABLE_ENTRY;
		memcpy(front + s->offset, s->sec.buf, s->sec.len);
		memcpy(e + T_NAME, s->name, strlen(s->name));
		wr16(e + T_VMAJ, s->ver_major);
		wr16(e + T_VMIN, s->ver_minor);
		wr32(e + T_FLAGS, s->flags);
		wr64(e + T_OFFSET, s->offset);
		wr64(e + T_SIZE, s->sec.len);
		wr32(e + T_CRC, snap_crc32c(0, s->sec.buf, s->sec.len));
	}
	if (w->has_mem && !w->mem_ext) {
		uint8_t *e = tab + w->nsecs * SNAP_TABLE_ENTRY;
		memcpy(e + T_NAME, "memory", 6);
		wr16(e + T_VMAJ, 1);
		wr32(e + T_FLAGS, SNAP_SEC_REQUIRED | SNAP_SEC_RAW | SNAP_SEC_BULK);
		wr64(e + T_OFFSET, mem_off);
		wr64(e + T_SIZE, w->mem_len);
	}
	fill_header(w, front, count, state_end, file_size,
		    snap_crc32c(0, tab, (size_t)count * SNAP_TABLE_ENTRY));
	ret = pwrite_all(w->out.fd, front, state_end, 0, "header and state");
	if (ret)
		goto fail;
	/* Trailing zero pages are holes: the size must still cover them. */
	if (ftruncate(w->out.fd, (off_t)file_size) < 0) {
		ret = -errno;
		log_err("snapshot: ftruncate(%s): %s", w->out.final, strerror(errno));
		goto fail;
	}
	uint64_t t2 = now_ns();
	st->state_ns = t2 - t1;

	if (!w->no_fsync) {
		if ((w->mem_ext && fsync(w->mem_out.fd) < 0) || fsync(w->out.fd) < 0) {
			ret = -errno;
			log_err("snapshot: fsync(%s): %s", w->out.final, strerror(errno));
			goto fail;
		}
	}
	/* The memory file first: the snapshot must never name a memory file that is not
	 * there yet. */
	if (w->mem_ext && (ret = out_commit(&w->mem_out)))
		goto fail;
	ret = out_commit(&w->out);
	if (ret)
		goto fail;
	if (!w->no_fsync) {
		ret = fsync_dir_of(w->out.final);
		if (!ret && w->mem_ext)
			ret = fsync_dir_of(w->mem_out.final);
	}
	st->sync_ns = now_ns() - t2;
	free(front);
	snap_writer_abort(w); /* frees; the temporary names are gone */
	return ret;
fail:
	free(front);
	snap_writer_abort(w);
	return ret;
}
