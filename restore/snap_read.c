/* Reading a snapshot. This is the restore hot path: one fstat, one pread of header, table
 * and state (a second only for state above 64 KiB), checksums, and every bound checked,
 * because the file is hostile input. Two allocations, the state buffer and the snap,
 * which a snap_store keeps for the next open. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "restore/snap_internal.h"
#include "restore/snap_kvm.h" /* SNAP_MAX_VCPUS: the cap of the vcpu.<N> names */
#include "common/log.h"
#include "common/pages.h"

#define FIRST_READ (64u << 10)

struct snap {
	int fd;
	uint8_t *buf;	    /* [0, state_end) of the file */
	uint64_t file_size; /* actual size (fstat) */
	uint64_t state_end;
	uint16_t major, minor;
	uint32_t hflags;
	uint8_t id[16];
	struct snap_host_facts facts;
	uint64_t hdr_file_size; /* file_size as the header records it */
	struct snap_memory_loc mem;
	int dirfd; /* external memory: the snapshot's directory (O_PATH), else -1 */
	char mem_name[256];
	char mem_path[PATH_MAX];  /* directory + name, for messages and tools */
	struct snap_store *store; /* buf and this snap belong to it, or NULL: ours */
	size_t count;
	struct snap_section secs[];
};

/* Sections this reader knows. `device.*` and `vcpu.*` are families: their decoders (or the
 * VMM, for device kinds) judge their content. */
static bool section_known(const char *name)
{
	static const char *const exact[] = {
	    "machine",	   "cpuid",	  "irqchip",	 "pit",	       "clock", "config", "memory",
	    "memory.file", "memory.sums", "memory.zero", "workingset", "base",	"vmgenid"};
	for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++)
		if (!strcmp(name, exact[i]))
			return true;
	return !strncmp(name, "vcpu.", 5) || !strncmp(name, "device.", 7);
}

static int field_at(const uint8_t *data, uint64_t size, size_t pos, struct snap_field *f)
{
	if (pos == size)
		return 0;
	if (pos > size || size - pos < FIELD_HDR)
		return -EBADMSG;
	const uint8_t *p = data + pos;
	f->tag = rd16(p);
	f->type = rd16(p + 2);
	f->len = rd32(p + 4);
	if (align_up(f->len, 8) > size - pos - FIELD_HDR)
		return -EBADMSG;
	f->val = p + FIELD_HDR;
	switch (f->type) {
	case SNAP_T_U64:
		if (f->len != 8)
			return -EBADMSG;
		break;
	case SNAP_T_U64A:
		if (f->len % 8)
			return -EBADMSG;
		break;
	case SNAP_T_STR:
		if (memchr(f->val, 0, f->len))
			return -EBADMSG;
		break;
	default: /* bytes, and types newer than this reader: skipped by length */
		break;
	}
	return 1;
}

int snap_field_next(const struct snap_section *sec, size_t *pos, struct snap_field *f)
{
	if (!sec->data || (sec->flags & SNAP_SEC_RAW))
		return -EPROTO;
	int r = field_at(sec->data, sec->size, *pos, f);
	if (r == 1)
		*pos += FIELD_HDR + align_up(f->len, 8);
	return r;
}

/* Walks the records of `sec`, marking each tag in `seen` (65536 bits, all clear on entry)
 * and refusing a second record of one tag and non-zero padding. Clears what it set before
 * returning, so one bitmap serves every section of a file. On the restore path: kept to
 * one validating walk and one bare hop over the records it accepted. */
static int check_fields(const struct snap_section *sec, uint64_t *seen, char *err, size_t errlen)
{
	struct snap_field f;
	size_t pos = 0;
	int r, ret = 0;

	while ((r = field_at(sec->data, sec->size, pos, &f)) == 1) {
		uint64_t bit = 1ull << (f.tag % 64);
		/* the padding is the top bytes of the value's last 8-byte word */
		uint64_t pad = f.len % 8 ? rd64(f.val + (f.len & ~7u)) >> (8 * (f.len % 8)) : 0;
		if (pad || (seen[f.tag / 64] & bit)) {
			errf(err, errlen, 0,
			     pad ? "section '%s' field 0x%x has non-zero padding (offset %zu)"
				 : "section '%s' has tag 0x%x twice (second at offset %zu)",
			     sec->name, f.tag, pos);
			ret = -EBADMSG;
			break;
		}
		seen[f.tag / 64] |= bit;
		pos += FIELD_HDR + align_up(f.len, 8);
	}
	if (!ret && r < 0) {
		errf(err, errlen, 0, "section '%s' has a malformed field at offset %zu", sec->name,
		     pos);
		ret = -EBADMSG;
	}
	/* clear the bits of the records before `pos`, whose framing is now known good */
	for (size_t p = 0; p < pos; p += FIELD_HDR + align_up(rd32(sec->data + p + 4), 8))
		seen[rd16(sec->data + p) / 64] = 0;
	return ret;
}

int snap_section_check_fields(const struct snap_section *sec, char *err, size_t errlen)
{
	uint64_t seen[65536 / 64];
	if (!sec->data || (sec->flags & SNAP_SEC_RAW)) {
		errf(err, errlen, 0, "section '%s' is not made of tagged fields", sec->name);
		return -EBADMSG;
	}
	memset(seen, 0, sizeof(seen));
	return check_fields(sec, seen, err, errlen);
}

int snap_section_check_version(const struct snap_section *sec, unsigned major, char *err,
			       size_t errlen)
{
	if (sec->ver_major > major) {
		errf(err, errlen, 0, "section '%s' version %u.%u is newer than this reader (%u.x)",
		     sec->name, sec->ver_major, sec->ver_minor, major);
		return -EPROTONOSUPPORT;
	}
	if (sec->ver_major == 0) {
		errf(err, errlen, 0,
		     "section '%s' version %u.%u is older than any version this reader knows "
		     "(1.x to %u.x)",
		     sec->name, sec->ver_major, sec->ver_minor, major);
		return -EPROTONOSUPPORT;
	}
	return 0;
}

static int find_field(const struct snap_section *sec, uint16_t tag, uint16_t type,
		      struct snap_field *f)
{
	size_t pos = 0;
	int r;
	while ((r = snap_field_next(sec, &pos, f)) == 1)
		if (f->tag == tag)
			return f->type == type ? 0 : -EPROTO;
	return r < 0 ? r : -ENOENT;
}

int snap_get_u64_max(const struct snap_section *sec, uint16_t tag, uint64_t max, uint64_t *v,
		     char *err, size_t errlen)
{
	struct snap_field f;
	int r = find_field(sec, tag, SNAP_T_U64, &f);
	if (r == -EPROTO)
		errf(err, errlen, 0, "section '%s' field 0x%x is %s, expected u64", sec->name, tag,
		     snap_type_name(f.type));
	else if (r == -EBADMSG)
		errf(err, errlen, 0, "section '%s' has a malformed field", sec->name);
	if (r)
		return r;
	uint64_t x = rd64(f.val);
	if (x > max) {
		errf(err, errlen, 0,
		     "section '%s' field 0x%x value 0x%llx is above its limit 0x%llx", sec->name,
		     tag, (unsigned long long)x, (unsigned long long)max);
		return -ERANGE;
	}
	*v = x;
	return 0;
}

int snap_get_u64_def(const struct snap_section *sec, uint16_t tag, uint64_t max, uint64_t def,
		     uint64_t *v, char *err, size_t errlen)
{
	int r = snap_get_u64_max(sec, tag, max, v, err, errlen);
	if (r == -ENOENT) {
		*v = def;
		return 0;
	}
	return r;
}

int snap_get_u64(const struct snap_section *sec, uint16_t tag, uint64_t *v)
{
	struct snap_field f;
	int r = find_field(sec, tag, SNAP_T_U64, &f);
	if (r)
		return r;
	*v = rd64(f.val);
	return 0;
}

int snap_get_bytes(const struct snap_section *sec, uint16_t tag, const void **p, size_t *len)
{
	struct snap_field f;
	int r = find_field(sec, tag, SNAP_T_BYTES, &f);
	if (r)
		return r;
	*p = f.val;
	*len = f.len;
	return 0;
}

int snap_get_str(const struct snap_section *sec, uint16_t tag, const char **p, size_t *len)
{
	struct snap_field f;
	int r = find_field(sec, tag, SNAP_T_STR, &f);
	if (r)
		return r;
	*p = (const char *)f.val;
	*len = f.len;
	return 0;
}

int snap_get_strbuf(const struct snap_section *sec, uint16_t tag, char *buf, size_t size)
{
	const char *p;
	size_t len;
	int r = snap_get_str(sec, tag, &p, &len);
	if (r)
		return r;
	if (len >= size)
		return -ENAMETOOLONG;
	memcpy(buf, p, len);
	buf[len] = 0;
	return 0;
}

int snap_get_u64a(const struct snap_section *sec, uint16_t tag, const uint64_t **v, size_t *n)
{
	struct snap_field f;
	int r = find_field(sec, tag, SNAP_T_U64A, &f);
	if (r)
		return r;
	*v = (const uint64_t *)(const void *)f.val;
	*n = f.len / 8;
	return 0;
}

void snap_section_view(struct snap_section *sec, const char *name, const void *data, size_t len)
{
	memset(sec, 0, sizeof(*sec));
	snprintf(sec->name, sizeof(sec->name), "%s", name);
	sec->ver_major = 1;
	sec->size = len;
	sec->data = data;
}

int snap_section_verify(const struct snap_section *sec, char *err, size_t errlen)
{
	if (!sec->data)
		return 0; /* bulk: covered by memory.sums */
	uint32_t c = snap_crc32c(0, sec->data, sec->size);
	if (c != sec->crc) {
		errf(err, errlen, 0,
		     "section '%s' checksum mismatch (stored 0x%08x, computed 0x%08x)", sec->name,
		     sec->crc, c);
		return -EBADMSG;
	}
	return 0;
}

static int pread_all(int fd, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;
	while (len) {
		ssize_t n = pread(fd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -ENODATA;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/* 1 when `name` may name the memory file: one file name in the snapshot's own directory
 * (no '/', not "." or ".."), so it cannot reach outside that directory. */
static bool mem_name_valid(const char *p, size_t len)
{
	if (len == 0 || len > 255 || memchr(p, '/', len))
		return false;
	return !(len == 1 && p[0] == '.') && !(len == 2 && p[0] == '.' && p[1] == '.');
}

/* Fills s->mem from the `memory` or `memory.file` section. An external memory file is
 * found in the snapshot's directory, which is opened now (O_PATH): the memory file is
 * then looked up beside the file this snap was read from, whatever happens to `path`. */
static int setup_memory(struct snap *s, const char *path, char *err, size_t errlen)
{
	const struct snap_section *m = snap_section_find(s, "memory");
	const struct snap_section *mf = snap_section_find(s, "memory.file");
	bool ext = s->hflags & SNAP_HDR_MEM_EXTERNAL;
	int r;
	s->mem.fd = -1;
	if (m && mf) {
		errf(err, errlen, 0, "both 'memory' and 'memory.file' sections present");
		return -EBADMSG;
	}
	if (ext != !!mf) {
		errf(err, errlen, 0,
		     "header flag external-memory %s but section 'memory.file' is %s",
		     ext ? "set" : "clear", mf ? "present" : "missing");
		return -EBADMSG;
	}
	if (m) {
		if ((r = snap_section_check_version(m, 1, err, errlen)))
			return r;
		if (m->flags != (SNAP_SEC_REQUIRED | SNAP_SEC_RAW | SNAP_SEC_BULK) || m->crc ||
		    (m->offset % SNAP_MEM_ALIGN) || !m->size || (m->size % SNAP_PAGE_SIZE)) {
			errf(err, errlen, 0,
			     "section 'memory' must be required, raw and bulk with crc 0, 2 MiB "
			     "aligned and a non-zero whole number of pages (flags 0x%x, offset "
			     "%llu, size %llu)",
			     m->flags, (unsigned long long)m->offset, (unsigned long long)m->size);
			return -EBADMSG;
		}
		s->mem.fd = s->fd;
		s->mem.offset = m->offset;
		s->mem.size = m->size;
		return 0;
	}
	if (!mf)
		return 0;
	if ((r = snap_section_check_version(mf, 1, err, errlen)))
		return r;
	const char *p;
	size_t len;
	uint64_t size;
	if (snap_get_str(mf, 1, &p, &len) || !mem_name_valid(p, len)) {
		errf(err, errlen, 0,
		     "section 'memory.file': the path must be one file name in the snapshot's "
		     "directory (no '/', not '.' or '..')");
		return -EBADMSG;
	}
	if (snap_get_u64(mf, 2, &size) || !size || (size % SNAP_PAGE_SIZE)) {
		errf(err, errlen, 0,
		     "section 'memory.file': size must be a non-zero whole number of pages");
		return -EBADMSG;
	}
	const char *slash = strrchr(path, '/');
	int dirlen = slash ? (int)(slash - path) + 1 : 0;
	if ((size_t)dirlen + len >= sizeof(s->mem_path)) {
		errf(err, errlen, 0, "section 'memory.file': path too long");
		return -ENAMETOOLONG;
	}
	memcpy(s->mem_name, p, len);
	s->mem_name[len] = 0;
	snprintf(s->mem_path, sizeof(s->mem_path), "%.*s%s", dirlen, path, s->mem_name);
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%.*s", dirlen ? dirlen : 1, dirlen ? path : ".");
	s->dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0) {
		r = -errno;
		errf(err, errlen, 0, "open directory %s: %s", dir, strerror(errno));
		return r;
	}
	s->mem.external = true;
	s->mem.path = s->mem_path;
	s->mem.size = size;
	return 0;
}

/* Sections this version's writers always mark REQUIRED: a reader that does not know them
 * could not restore the VM correctly, so one without the flag is a damaged file. */
static bool must_be_required(const char *name)
{
	static const char *const exact[] = {"machine", "cpuid",	 "irqchip",    "pit",
					    "clock",   "memory", "memory.file"};
	for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++)
		if (!strcmp(name, exact[i]))
			return true;
	return !strncmp(name, "vcpu.", 5) || !strncmp(name, "device.", 7);
}

/* The family names carry an index or an id: `vcpu.<N>` (N decimal, no leading zero,
 * < SNAP_MAX_VCPUS), `device.<id>` (1..24 chars of [a-z0-9_-]). */
static bool family_name_valid(const char *name)
{
	if (!strncmp(name, "vcpu.", 5)) {
		const char *d = name + 5;
		size_t n = strlen(d);
		if (n == 0 || n > 2 || (n > 1 && d[0] == '0'))
			return false;
		unsigned v = 0;
		for (size_t i = 0; i < n; i++) {
			if (d[i] < '0' || d[i] > '9')
				return false;
			v = v * 10 + (unsigned)(d[i] - '0');
		}
		return v < SNAP_MAX_VCPUS;
	}
	if (!strncmp(name, "device.", 7)) {
		const char *id = name + 7;
		size_t n = strlen(id);
		return n >= 1 && n <= 24 && !strchr(id, '.');
	}
	return true;
}

static bool all_zero(const uint8_t *p, size_t len)
{
	/* zero when the first byte is and every byte equals the next: memcmp runs at
	 * vector speed, a byte loop over the 3852 reserved header bytes would not */
	return !len || (!p[0] && !memcmp(p, p + 1, len - 1));
}

/* Walks the section table. `strict` (a file of a minor this reader knows) adds the rules
 * a newer minor may relax: no bytes outside header, table, sections and their zero
 * padding; reserved bits and bytes zero; raw and bulk only for `memory`. */
static int parse(struct snap *s, const char *path, unsigned flags, bool strict, char *err,
		 size_t errlen)
{
	uint64_t toff = rd64(s->buf + H_TABLE_OFF);
	const uint8_t *tab = s->buf + toff;
	uint64_t table_end = toff + s->count * SNAP_TABLE_ENTRY;
	uint64_t prev_end = table_end, state_last = table_end;
	const char *prev_name = "section table";
	uint64_t seen[65536 / 64]; /* tags of one section: check_fields leaves it clear */
	int ret = -EBADMSG;

	memset(seen, 0, sizeof(seen));
	for (size_t i = 0; i < s->count; i++) {
		const uint8_t *e = tab + i * SNAP_TABLE_ENTRY;
		struct snap_section *sec = &s->secs[i];
		memcpy(sec->name, e + T_NAME, SNAP_NAME_MAX);
		if (!snap_name_valid(sec->name, SNAP_NAME_MAX) ||
		    memchr(sec->name, 0, SNAP_NAME_MAX) == NULL || !family_name_valid(sec->name)) {
			errf(err, errlen, 0, "section %zu has an invalid name", i);
			goto out;
		}
		size_t nlen = strlen(sec->name);
		sec->ver_major = rd16(e + T_VMAJ);
		sec->ver_minor = rd16(e + T_VMIN);
		sec->flags = rd32(e + T_FLAGS);
		sec->offset = rd64(e + T_OFFSET);
		sec->size = rd64(e + T_SIZE);
		sec->crc = rd32(e + T_CRC);
		if (strict && (!all_zero(e + nlen, SNAP_NAME_MAX - nlen) || rd32(e + 60) ||
			       (sec->flags &
				~(uint32_t)(SNAP_SEC_REQUIRED | SNAP_SEC_RAW | SNAP_SEC_BULK)))) {
			errf(err, errlen, 0,
			     "section '%s': reserved table bits or bytes are not zero (flags 0x%x)",
			     sec->name, sec->flags);
			goto out;
		}
		uint64_t end = sec->offset + sec->size;
		if (end < sec->offset) {
			errf(err, errlen, 0, "section '%s' offset+size overflows", sec->name);
			goto out;
		}
		if (end > s->file_size) {
			errf(err, errlen, 0,
			     "file truncated: section '%s' ends at %llu but file is %llu bytes",
			     sec->name, (unsigned long long)end, (unsigned long long)s->file_size);
			goto out;
		}
		if (sec->offset < prev_end) {
			errf(err, errlen, 0,
			     "section '%s' overlaps %s%s%s (sections must be in offset order)",
			     sec->name, i ? "section '" : "", prev_name, i ? "'" : "");
			goto out;
		}
		prev_end = end;
		prev_name = sec->name;
		for (size_t j = 0; j < i; j++) {
			if (!strcmp(s->secs[j].name, sec->name)) {
				errf(err, errlen, 0, "duplicate section '%s'", sec->name);
				goto out;
			}
		}
		bool known = section_known(sec->name);
		if ((sec->flags & SNAP_SEC_REQUIRED) && !known) {
			errf(err, errlen, 0, "unknown required section '%s' (version %u.%u)",
			     sec->name, sec->ver_major, sec->ver_minor);
			ret = -EPROTONOSUPPORT;
			goto out;
		}
		if (must_be_required(sec->name) && !(sec->flags & SNAP_SEC_REQUIRED)) {
			errf(err, errlen, 0, "section '%s' lacks the REQUIRED flag", sec->name);
			goto out;
		}
		bool is_mem = !strcmp(sec->name, "memory");
		uint32_t rb = sec->flags & (SNAP_SEC_RAW | SNAP_SEC_BULK);
		if ((rb && !is_mem && (strict || known || (sec->flags & SNAP_SEC_BULK))) ||
		    (is_mem && rb != (SNAP_SEC_RAW | SNAP_SEC_BULK))) {
			errf(err, errlen, 0,
			     "section '%s' has flags 0x%x: only 'memory' is raw and bulk, and it "
			     "is both",
			     sec->name, sec->flags);
			goto out;
		}
		if (sec->flags & SNAP_SEC_BULK) {
			uint64_t want = align_up(s->state_end, SNAP_MEM_ALIGN);
			if (sec->offset < s->state_end || (strict && sec->offset != want)) {
				errf(err, errlen, 0,
				     "bulk section '%s' at %llu: it must start at the first 2 MiB "
				     "boundary after the state area (%llu)",
				     sec->name, (unsigned long long)sec->offset,
				     (unsigned long long)want);
				goto out;
			}
			sec->data = NULL;
			continue;
		}
		if (end > s->state_end || (sec->offset % 8)) {
			errf(err, errlen, 0,
			     "section '%s' (%llu..%llu) lies outside the state area or is "
			     "misaligned",
			     sec->name, (unsigned long long)sec->offset, (unsigned long long)end);
			goto out;
		}
		if (strict && (sec->offset != align_up(state_last, 8) ||
			       !all_zero(s->buf + state_last, sec->offset - state_last))) {
			errf(err, errlen, 0,
			     "section '%s' at %llu: state sections must follow each other with "
			     "only zero padding to 8 bytes (expected offset %llu)",
			     sec->name, (unsigned long long)sec->offset,
			     (unsigned long long)align_up(state_last, 8));
			goto out;
		}
		state_last = end;
		sec->data = s->buf + sec->offset;
		if (!(flags & SNAP_OPEN_NO_SECTION_CRC)) {
			ret = snap_section_verify(sec, err, errlen);
			if (ret)
				goto out;
			ret = -EBADMSG;
		}
		if (!(sec->flags & SNAP_SEC_RAW) && check_fields(sec, seen, err, errlen)) {
			/* Damage is the likelier cause: name it when the CRC disagrees. */
			if (flags & SNAP_OPEN_NO_SECTION_CRC)
				snap_section_verify(sec, err, errlen);
			goto out;
		}
	}
	if (strict && (s->state_end != align_up(state_last, 8) ||
		       !all_zero(s->buf + state_last, s->state_end - state_last))) {
		errf(err, errlen, 0,
		     "state area ends at %llu but its last section at %llu: only zero padding "
		     "to 8 bytes may follow it",
		     (unsigned long long)s->state_end, (unsigned long long)state_last);
		goto out;
	}
	ret = setup_memory(s, path, err, errlen);
	if (ret)
		goto out;
	/* Bytes after what the header accounts for are refused like missing ones: whatever
	 * appended them, inspect and verify would not show them. */
	uint64_t expect =
	    s->mem.size && !s->mem.external ? s->mem.offset + s->mem.size : s->state_end;
	if (strict && s->hdr_file_size != expect) {
		errf(err, errlen, 0, "header says the file is %llu bytes, its layout %llu",
		     (unsigned long long)s->hdr_file_size, (unsigned long long)expect);
		ret = -EBADMSG;
		goto out;
	}
	ret = 0;
out:
	return ret;
}

/* A state buffer of at least `len` bytes: the store's, grown when it is too small, or a
 * new one. */
static uint8_t *state_buf(struct snap_store *st, uint8_t *buf, size_t len)
{
	uint8_t *nb;

	if (st && st->cap >= len)
		return st->buf;
	nb = realloc(buf, len);
	if (nb && st) {
		st->buf = nb;
		st->cap = len;
	}
	return nb;
}

/* A zeroed snap with room for `count` sections: the store's, or a new one. */
static struct snap *snap_struct(struct snap_store *st, size_t count)
{
	size_t size = sizeof(struct snap) + count * sizeof(struct snap_section);
	struct snap *s;

	if (st && st->nsecs >= count) {
		memset(st->s, 0, size);
		return st->s;
	}
	s = calloc(1, size);
	if (s && st) {
		free(st->s);
		st->s = s;
		st->nsecs = count;
	}
	return s;
}

int snap_store_reserve(struct snap_store *st, size_t state_bytes, size_t sections)
{
	if (!state_buf(st, st->buf, state_bytes < FIRST_READ ? FIRST_READ : state_bytes) ||
	    !snap_struct(st, sections))
		return -ENOMEM;
	return 0;
}

void snap_store_trim(struct snap_store *st)
{
	pages_release(st->buf, st->cap);
	if (st->s)
		pages_release(st->s, sizeof(struct snap) + st->nsecs * sizeof(struct snap_section));
}

void snap_store_warm(struct snap_store *st)
{
	pages_touch(st->buf, st->cap < FIRST_READ ? st->cap : FIRST_READ);
	if (st->s)
		pages_touch(st->s, sizeof(struct snap) + st->nsecs * sizeof(struct snap_section));
}

void snap_store_free(struct snap_store *st)
{
	free(st->buf);
	free(st->s);
	memset(st, 0, sizeof(*st));
}

int snap_open_flags(const char *path, unsigned flags, struct snap **out, char *err, size_t errlen)
{
	return snap_open_in(NULL, path, flags, out, err, errlen);
}

int snap_open_in(struct snap_store *st, const char *path, unsigned flags, struct snap **out,
		 char *err, size_t errlen)
{
	uint8_t *buf = NULL;
	struct snap *s = NULL;
	struct stat stb;
	int ret;

	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		errf(err, errlen, 0, "open %s: %s", path, strerror(errno));
		return ret;
	}
	if (fstat(fd, &stb) < 0) {
		ret = -errno;
		errf(err, errlen, 0, "fstat %s: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(stb.st_mode)) {
		ret = -EINVAL;
		errf(err, errlen, 0, "%s is not a regular file", path);
		goto fail;
	}
	uint64_t fsize = (uint64_t)stb.st_size;
	size_t first = fsize < FIRST_READ ? (size_t)fsize : FIRST_READ;
	buf = state_buf(st, NULL, FIRST_READ);
	if (!buf) {
		ret = -ENOMEM;
		goto fail;
	}
	ret = pread_all(fd, buf, first, 0);
	if (ret) {
		errf(err, errlen, 0, "pread %s: %s", path, strerror(-ret));
		goto fail;
	}
	ret = -EBADMSG;
	if (first < 8 || memcmp(buf, SNAP_MAGIC, 8)) {
		if (first < 8)
			errf(err, errlen, 0, "bad magic (file is only %zu bytes)", first);
		else
			errf(err, errlen, 0, "bad magic (not a thaw snapshot)");
		goto fail;
	}
	if (first < SNAP_HEADER_SIZE) {
		errf(err, errlen, 0, "file truncated: header needs %u bytes but file is %zu bytes",
		     SNAP_HEADER_SIZE, first);
		goto fail;
	}
	/* The version sits at a fixed place for every format: check it before the header
	 * layout (and its checksum) is trusted. */
	uint16_t major = rd16(buf + H_MAJOR), minor = rd16(buf + H_MINOR);
	if (major != SNAP_FORMAT_MAJOR) {
		ret = -EPROTONOSUPPORT;
		errf(err, errlen, 0, "format version %u.%u is %s than this reader (%u.x)", major,
		     minor, major > SNAP_FORMAT_MAJOR ? "newer" : "older", SNAP_FORMAT_MAJOR);
		goto fail;
	}
	uint32_t hcrc = snap_crc32c(0, buf, H_CRC);
	if (hcrc != rd32(buf + H_CRC)) {
		errf(err, errlen, 0, "header checksum mismatch (stored 0x%08x, computed 0x%08x)",
		     rd32(buf + H_CRC), hcrc);
		goto fail;
	}
	/* Reserved bytes are zero in every file of a minor this reader knows; a newer minor
	 * may have put fields there that this reader ignores. */
	bool strict = minor <= SNAP_FORMAT_MINOR;
	if (strict && (rd32(buf + 52) || !all_zero(buf + 240, H_CRC - 240) ||
		       !all_zero(buf + H_VENDOR + 12, 4) ||
		       !all_zero(buf + H_KERNEL + 64, H_KERNEL_LEN - 64))) {
		errf(err, errlen, 0, "header reserved bytes are not zero");
		goto fail;
	}
	uint32_t hflags = rd32(buf + H_FLAGS);
	if (hflags & SNAP_HDR_INCOMPAT_MASK & ~SNAP_HDR_KNOWN) {
		ret = -EPROTONOSUPPORT;
		errf(err, errlen, 0, "header has unknown incompatible flags 0x%x",
		     hflags & SNAP_HDR_INCOMPAT_MASK & ~SNAP_HDR_KNOWN);
		goto fail;
	}
	if ((hflags & SNAP_HDR_DIFF) && !(flags & SNAP_OPEN_DIFF)) {
		ret = -EPROTONOSUPPORT;
		errf(err, errlen, 0,
		     "%s is a diff snapshot: merge it onto its base first (thaw-snap merge)", path);
		goto fail;
	}
	uint32_t count = rd32(buf + H_COUNT);
	uint64_t toff = rd64(buf + H_TABLE_OFF), state_end = rd64(buf + H_STATE_END);
	if (rd32(buf + H_HDR_SIZE) != SNAP_HEADER_SIZE || count > SNAP_MAX_SECTIONS ||
	    toff < SNAP_HEADER_SIZE || toff % 8 || (strict && toff != SNAP_HEADER_SIZE) ||
	    state_end % 8 || state_end > SNAP_MAX_STATE || toff > state_end ||
	    (uint64_t)count * SNAP_TABLE_ENTRY > state_end - toff) {
		errf(err, errlen, 0,
		     "header fields out of range (header size %u, %u sections, table at "
		     "%llu, state ends at %llu)",
		     rd32(buf + H_HDR_SIZE), count, (unsigned long long)toff,
		     (unsigned long long)state_end);
		goto fail;
	}
	uint64_t table_end = toff + (uint64_t)count * SNAP_TABLE_ENTRY;
	if (table_end > fsize) {
		errf(err, errlen, 0,
		     "file truncated: section table ends at %llu but file is %llu bytes",
		     (unsigned long long)table_end, (unsigned long long)fsize);
		goto fail;
	}
	/* Read whatever of the state area the file holds, so a truncation is reported
	 * against the section it cuts. */
	uint64_t have = state_end < fsize ? state_end : fsize;
	if (have > first) {
		uint8_t *nb = state_buf(st, buf, have);
		if (!nb) {
			ret = -ENOMEM;
			goto fail;
		}
		buf = nb;
		ret = pread_all(fd, buf + first, have - first, first);
		if (ret) {
			errf(err, errlen, 0, "pread %s: %s", path, strerror(-ret));
			goto fail;
		}
		ret = -EBADMSG;
	}
	uint32_t tcrc = snap_crc32c(0, buf + toff, (size_t)count * SNAP_TABLE_ENTRY);
	if (tcrc != rd32(buf + H_TABLE_CRC)) {
		errf(err, errlen, 0,
		     "section table checksum mismatch (stored 0x%08x, computed 0x%08x)",
		     rd32(buf + H_TABLE_CRC), tcrc);
		goto fail;
	}

	s = snap_struct(st, count);
	if (!s) {
		ret = -ENOMEM;
		goto fail;
	}
	s->store = st;
	s->fd = fd;
	s->dirfd = -1;
	s->hdr_file_size = rd64(buf + H_FILE_SIZE);
	s->buf = buf;
	s->file_size = fsize;
	s->state_end = state_end;
	s->major = major;
	s->minor = minor;
	s->hflags = hflags;
	s->count = count;
	memcpy(s->id, buf + H_ID, 16);
	memcpy(s->facts.vendor, buf + H_VENDOR, 12);
	s->facts.family = rd32(buf + H_FAMILY);
	s->facts.model = rd32(buf + H_MODEL);
	s->facts.stepping = rd32(buf + H_STEPPING);
	s->facts.cpuid_digest = rd32(buf + H_CPUID_DIGEST);
	memcpy(s->facts.kernel, buf + H_KERNEL, sizeof(s->facts.kernel) - 1);
	ret = parse(s, path, flags, strict, err, errlen);
	if (ret)
		goto fail;
	if (state_end > fsize) {
		ret = -EBADMSG;
		errf(err, errlen, 0,
		     "file truncated: state area ends at %llu but file is %llu bytes",
		     (unsigned long long)state_end, (unsigned long long)fsize);
		goto fail;
	}
	if (rd64(buf + H_FILE_SIZE) > fsize) {
		ret = -EBADMSG;
		errf(err, errlen, 0,
		     "file truncated: header says %llu bytes but file is %llu bytes",
		     (unsigned long long)rd64(buf + H_FILE_SIZE), (unsigned long long)fsize);
		goto fail;
	}
	if (rd64(buf + H_FILE_SIZE) < fsize) {
		ret = -EBADMSG;
		errf(err, errlen, 0,
		     "%llu bytes appended after the end the header records (%llu bytes)",
		     (unsigned long long)(fsize - rd64(buf + H_FILE_SIZE)),
		     (unsigned long long)rd64(buf + H_FILE_SIZE));
		goto fail;
	}
	*out = s;
	return 0;
fail:
	if (s && s->dirfd >= 0)
		close(s->dirfd);
	if (!st) {
		free(s);
		free(buf);
	}
	close(fd);
	return ret;
}

int snap_open(const char *path, struct snap **out, char *err, size_t errlen)
{
	return snap_open_flags(path, 0, out, err, errlen);
}

void snap_close(struct snap *s)
{
	if (!s)
		return;
	close(s->fd);
	if (s->dirfd >= 0)
		close(s->dirfd);
	if (s->store)
		return; /* the store keeps both for the next open */
	free(s->buf);
	free(s);
}

void snap_format_version(const struct snap *s, uint16_t *major, uint16_t *minor)
{
	*major = s->major;
	*minor = s->minor;
}

uint32_t snap_header_flags(const struct snap *s)
{
	return s->hflags;
}

const struct snap_host_facts *snap_host_facts(const struct snap *s)
{
	return &s->facts;
}

const uint8_t *snap_id(const struct snap *s)
{
	return s->id;
}

const struct snap_section *snap_section_find(const struct snap *s, const char *name)
{
	for (size_t i = 0; i < s->count; i++)
		if (!strcmp(s->secs[i].name, name))
			return &s->secs[i];
	return NULL;
}

size_t snap_section_count(const struct snap *s)
{
	return s->count;
}

const struct snap_section *snap_section_at(const struct snap *s, size_t i)
{
	return i < s->count ? &s->secs[i] : NULL;
}

int snap_memory(const struct snap *s, struct snap_memory_loc *loc)
{
	*loc = s->mem;
	return 0;
}

int snap_memory_open(const struct snap *s, int *fd_out, char *err, size_t errlen)
{
	struct stat stb;
	int fd;
	if (!s->mem.size) {
		errf(err, errlen, 0, "snapshot has no memory");
		return -ENOENT;
	}
	if (!s->mem.external) {
		fd = fcntl(s->fd, F_DUPFD_CLOEXEC, 0);
		if (fd < 0) {
			errf(err, errlen, 0, "dup: %s", strerror(errno));
			return -errno;
		}
		*fd_out = fd; /* snap_open checked the file covers the section */
		return 0;
	}
	/* One file name (snap_open checked: no '/', no '..') in the snapshot's directory,
	 * never through a symlink: the file stays inside that directory. This is what
	 * openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS) would give for one component,
	 * without a syscall the VMM's seccomp filter would have to allow.
	 * O_NONBLOCK: a hostile snapshot may name a FIFO, which must not hang the open. */
	fd = openat(s->dirfd, s->mem_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		int e = -errno;
		errf(err, errlen, 0, "open memory file %s: %s%s", s->mem.path, strerror(errno),
		     errno == ELOOP ? " (a symlink: refused)" : "");
		return e;
	}
	if (fstat(fd, &stb) < 0 || !S_ISREG(stb.st_mode) || (uint64_t)stb.st_size != s->mem.size) {
		errf(err, errlen, 0,
		     "memory file %s is not a regular file of exactly %llu bytes (the snapshot's "
		     "memory size)",
		     s->mem.path, (unsigned long long)s->mem.size);
		close(fd);
		return -EBADMSG;
	}
	*fd_out = fd;
	return 0;
}

int snap_memory_zero_bitmap(const struct snap *s, const uint8_t **bits, uint64_t *npages)
{
	const struct snap_section *z = snap_section_find(s, "memory.zero");
	uint64_t psz, n;
	const void *p;
	size_t len;
	if (!z)
		return -ENOENT;
	if (snap_section_check_version(z, 1, NULL, 0))
		return -EPROTONOSUPPORT;
	if (snap_get_u64(z, 1, &psz) || snap_get_u64(z, 2, &n) || snap_get_bytes(z, 3, &p, &len))
		return -EBADMSG;
	if (psz != SNAP_PAGE_SIZE || n != s->mem.size / SNAP_PAGE_SIZE || len != (n + 7) / 8)
		return -EBADMSG;
	*bits = p;
	*npages = n;
	return 0;
}

int snap_workingset(const struct snap *s, const uint64_t **pages, size_t *n)
{
	const struct snap_section *ws = snap_section_find(s, "workingset");
	uint64_t psz;
	if (!ws)
		return -ENOENT;
	if (snap_section_check_version(ws, 1, NULL, 0))
		return -EPROTONOSUPPORT;
	if (snap_get_u64(ws, 1, &psz) || snap_get_u64a(ws, 2, pages, n))
		return -EBADMSG;
	if (psz != SNAP_PAGE_SIZE)
		return -EBADMSG;
	/* A side file (no memory of its own) is checked by its user against the base. */
	uint64_t npages = s->mem.size / SNAP_PAGE_SIZE;
	for (size_t i = 0; npages && i < *n; i++)
		if ((*pages)[i] >= npages)
			return -EBADMSG;
	return 0;
}

void snap_reportf(snap_report_fn report, void *opaque, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (report)
		report(opaque, msg);
}

int snap_memory_verify(const struct snap *s, snap_report_fn report, void *opaque,
		       uint64_t *chunks_checked)
{
	const struct snap_section *sums_sec = snap_section_find(s, "memory.sums");
	const uint64_t *sums;
	size_t nsums;
	uint64_t chunk, msize;
	const uint8_t *zbits = NULL;
	uint64_t zpages = 0;
	int fd = -1, ret = 0;
	char err[256];

	if (chunks_checked)
		*chunks_checked = 0;
	if (!s->mem.size)
		return 0;
	if (sums_sec && snap_section_check_version(sums_sec, 1, err, sizeof(err))) {
		snap_reportf(report, opaque, "%s", err);
		return -EPROTONOSUPPORT;
	}
	if (!sums_sec || snap_get_u64(sums_sec, 1, &chunk) || snap_get_u64(sums_sec, 2, &msize) ||
	    snap_get_u64a(sums_sec, 3, &sums, &nsums)) {
		snap_reportf(report, opaque, "section 'memory.sums' missing or incomplete");
		return -EBADMSG;
	}
	if (chunk == 0 || chunk % SNAP_PAGE_SIZE || chunk > (64u << 20) || msize != s->mem.size ||
	    nsums != (msize + chunk - 1) / chunk) {
		snap_reportf(report, opaque,
			     "section 'memory.sums' does not match memory size %llu",
			     (unsigned long long)s->mem.size);
		return -EBADMSG;
	}
	int zr = snap_memory_zero_bitmap(s, &zbits, &zpages);
	if (zr == -EBADMSG) {
		snap_reportf(report, opaque,
			     "section 'memory.zero' is incomplete or does not match "
			     "memory size");
		ret = -EBADMSG;
	} else if (zr == -EPROTONOSUPPORT) {
		snap_section_check_version(snap_section_find(s, "memory.zero"), 1, err,
					   sizeof(err));
		snap_reportf(report, opaque, "%s", err);
		ret = -EBADMSG;
	}
	int r0 = snap_memory_open(s, &fd, err, sizeof(err));
	if (r0) {
		snap_reportf(report, opaque, "%s", err);
		return r0;
	}
	uint8_t *buf = malloc(chunk > SNAP_MEM_ALIGN ? chunk : SNAP_MEM_ALIGN);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	/* The padding before in-file memory is no section's: nothing reads it, so nothing
	 * may hide there either (usually a hole: reading it costs nothing). */
	if (!s->mem.external && s->mem.offset > s->state_end) {
		size_t gap = (size_t)(s->mem.offset - s->state_end);
		int r = pread_all(fd, buf, gap, s->state_end);
		if (r || !all_zero(buf, gap)) {
			snap_reportf(
			    report, opaque,
			    "bytes %llu..%llu between the state area and memory are not zero",
			    (unsigned long long)s->state_end, (unsigned long long)s->mem.offset);
			ret = -EBADMSG;
		}
	}
	for (uint64_t i = 0; i < nsums; i++) {
		uint64_t off = i * chunk;
		size_t len = (size_t)(msize - off < chunk ? msize - off : chunk);
		int r = pread_all(fd, buf, len, s->mem.offset + off);
		if (r) {
			snap_reportf(report, opaque, "memory chunk %llu: read failed: %s",
				     (unsigned long long)i, strerror(-r));
			ret = r;
			break;
		}
		uint32_t c = snap_crc32c(0, buf, len);
		if (c != (uint32_t)sums[i] || sums[i] >> 32) {
			snap_reportf(
			    report, opaque,
			    "memory chunk %llu (bytes %llu..%llu) checksum mismatch (stored "
			    "0x%08llx, computed 0x%08x)",
			    (unsigned long long)i, (unsigned long long)off,
			    (unsigned long long)(off + len), (unsigned long long)sums[i], c);
			ret = -EBADMSG;
		}
		if (zbits) {
			for (size_t p = 0; p < len; p += SNAP_PAGE_SIZE) {
				uint64_t pg = (off + p) / SNAP_PAGE_SIZE;
				if (!(zbits[pg / 8] & (1u << (pg % 8))))
					continue;
				for (size_t k = 0; k < SNAP_PAGE_SIZE; k++) {
					if (buf[p + k]) {
						snap_reportf(report, opaque,
							     "memory page %llu is marked zero in "
							     "'memory.zero' but is not",
							     (unsigned long long)pg);
						ret = -EBADMSG;
						break;
					}
				}
			}
		}
		if (chunks_checked)
			(*chunks_checked)++;
	}
	free(buf);
	close(fd);
	return ret;
}
