/* thaw-snap: offline tools over snapshot files.
 *   thaw-snap inspect FILE          every section and field as JSON on stdout
 *   thaw-snap verify FILE           every checksum (header, table, sections, memory chunks)
 *                                   and every section decoded as a restore would
 *   thaw-snap merge BASE DIFF OUT   apply a diff snapshot to its base
 * Exit status: 0 good, 1 a check failed or the file is unreadable, 2 usage. */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "restore/snapshot.h"
#include "vmm/vmm.h"
#include "common/log.h"

static json_object *hex(const uint8_t *p, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	char *s = malloc(2 * len + 1);
	if (!s)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		s[2 * i] = digits[p[i] >> 4];
		s[2 * i + 1] = digits[p[i] & 15];
	}
	s[2 * len] = 0;
	json_object *o = json_object_new_string(s);
	free(s);
	return o;
}

static json_object *hex64(uint64_t v)
{
	char b[24];
	snprintf(b, sizeof(b), "0x%llx", (unsigned long long)v);
	return json_object_new_string(b);
}

static json_object *value_of(const struct snap_field *f)
{
	switch (f->type) {
	case SNAP_T_U64: {
		uint64_t v;
		memcpy(&v, f->val, 8);
		return json_object_new_uint64(v);
	}
	case SNAP_T_STR:
		return json_object_new_string_len((const char *)f->val, (int)f->len);
	case SNAP_T_U64A: {
		json_object *a = json_object_new_array();
		for (uint32_t i = 0; i < f->len / 8; i++) {
			uint64_t v;
			memcpy(&v, f->val + 8 * i, 8);
			json_object_array_add(a, json_object_new_uint64(v));
		}
		return a;
	}
	default:
		return hex(f->val, f->len);
	}
}

/* Pairs (msrs, xcrs) and strided tables (cpuid, regions) read better as objects. */
static json_object *special(const char *sec, const char *name, const struct snap_field *f)
{
	const uint64_t *w = (const uint64_t *)(const void *)f->val;
	size_t n = f->len / 8;
	if (f->type != SNAP_T_U64A)
		return NULL;
	if (!strncmp(sec, "vcpu.", 5) && (!strcmp(name, "msrs") || !strcmp(name, "xcrs"))) {
		json_object *a = json_object_new_array();
		for (size_t i = 0; i + 1 < n; i += 2) {
			json_object *o = json_object_new_object();
			json_object_object_add(o, "index", hex64(w[i]));
			json_object_object_add(o, "value", hex64(w[i + 1]));
			json_object_array_add(a, o);
		}
		return a;
	}
	if (!strcmp(sec, "cpuid") && !strcmp(name, "entries")) {
		static const char *const k[] = {"function", "index", "flags", "eax",
						"ebx",	    "ecx",   "edx"};
		json_object *a = json_object_new_array();
		for (size_t i = 0; i + 7 <= n; i += 7) { /* entry_words is 7 in version 1 */
			json_object *o = json_object_new_object();
			for (int j = 0; j < 7; j++)
				json_object_object_add(o, k[j], hex64(w[i + (size_t)j]));
			json_object_array_add(a, o);
		}
		return a;
	}
	if (!strcmp(sec, "machine") && !strcmp(name, "regions")) {
		json_object *a = json_object_new_array();
		for (size_t i = 0; i + 3 <= n; i += 3) {
			json_object *o = json_object_new_object();
			json_object_object_add(o, "gpa", hex64(w[i]));
			json_object_object_add(o, "size", json_object_new_uint64(w[i + 1]));
			json_object_object_add(o, "offset", json_object_new_uint64(w[i + 2]));
			json_object_array_add(a, o);
		}
		return a;
	}
	if (!strcmp(sec, "memory.sums") && !strcmp(name, "sums")) {
		json_object *a = json_object_new_array();
		for (size_t i = 0; i < n; i++)
			json_object_array_add(a, hex64(w[i]));
		return a;
	}
	return NULL;
}

static json_object *section_json(const struct snap_section *sec)
{
	json_object *o = json_object_new_object();
	char ver[16];
	snprintf(ver, sizeof(ver), "%u.%u", sec->ver_major, sec->ver_minor);
	json_object_object_add(o, "name", json_object_new_string(sec->name));
	json_object_object_add(o, "version", json_object_new_string(ver));
	json_object_object_add(o, "required",
			       json_object_new_boolean(!!(sec->flags & SNAP_SEC_REQUIRED)));
	json_object_object_add(o, "flags", hex64(sec->flags));
	json_object_object_add(o, "offset", json_object_new_uint64(sec->offset));
	json_object_object_add(o, "size", json_object_new_uint64(sec->size));
	if (!sec->data) {
		json_object_object_add(o, "checksum", json_object_new_string("memory.sums"));
		return o;
	}
	char crc[16];
	snprintf(crc, sizeof(crc), "0x%08x", sec->crc);
	json_object_object_add(o, "crc32c", json_object_new_string(crc));
	if (sec->flags & SNAP_SEC_RAW) {
		json_object_object_add(o, "raw", hex(sec->data, sec->size));
		return o;
	}
	json_object *named = json_object_new_object();
	json_object *unknown = json_object_new_array();
	struct snap_field f;
	size_t pos = 0;
	while (snap_field_next(sec, &pos, &f) == 1) {
		const char *name = snap_field_name(sec->name, f.tag);
		if (name) {
			json_object *v = NULL;
			if (!strcmp(sec->name, "config") && f.type == SNAP_T_STR) {
				char *txt = strndup((const char *)f.val, f.len);
				v = txt ? json_tokener_parse(txt) : NULL;
				free(txt);
			} else if (!strcmp(sec->name, "memory.zero") && f.type == SNAP_T_BYTES) {
				uint64_t z = 0;
				for (uint32_t i = 0; i < f.len; i++)
					z += (uint64_t)__builtin_popcount(f.val[i]);
				json_object_object_add(named, "zero_pages",
						       json_object_new_uint64(z));
				continue;
			} else {
				v = special(sec->name, name, &f);
			}
			json_object_object_add(named, name, v ? v : value_of(&f));
			continue;
		}
		json_object *u = json_object_new_object();
		json_object_object_add(u, "tag", json_object_new_int(f.tag));
		json_object_object_add(u, "type", json_object_new_string(snap_type_name(f.type)));
		json_object_object_add(u, "hex", hex(f.val, f.len));
		json_object_array_add(unknown, u);
	}
	json_object_object_add(o, "fields", named);
	if (json_object_array_length(unknown))
		json_object_object_add(o, "unknown_fields", unknown);
	else
		json_object_put(unknown);
	return o;
}

static int inspect(const char *path)
{
	struct snap *s;
	char err[512];
	/* inspect shows damaged files too; verify is the tool that judges checksums */
	int r =
	    snap_open_flags(path, SNAP_OPEN_NO_SECTION_CRC | SNAP_OPEN_DIFF, &s, err, sizeof(err));
	if (r) {
		fprintf(stderr, "thaw-snap: %s: %s\n", path, err);
		return 1;
	}
	json_object *root = json_object_new_object();
	uint16_t maj, min;
	char buf[64];
	snap_format_version(s, &maj, &min);
	snprintf(buf, sizeof(buf), "%u.%u", maj, min);
	json_object_object_add(root, "file", json_object_new_string(path));
	json_object_object_add(root, "format", json_object_new_string(buf));
	json_object_object_add(root, "flags", hex64(snap_header_flags(s)));
	json_object_object_add(root, "id", hex(snap_id(s), 16));
	const struct snap_host_facts *hf = snap_host_facts(s);
	json_object *h = json_object_new_object();
	json_object_object_add(h, "vendor", json_object_new_string(hf->vendor));
	json_object_object_add(h, "family", json_object_new_int((int)hf->family));
	json_object_object_add(h, "model", json_object_new_int((int)hf->model));
	json_object_object_add(h, "stepping", json_object_new_int((int)hf->stepping));
	snprintf(buf, sizeof(buf), "0x%08x", hf->cpuid_digest);
	json_object_object_add(h, "cpuid_digest", json_object_new_string(buf));
	json_object_object_add(h, "kernel", json_object_new_string(hf->kernel));
	json_object_object_add(root, "host", h);
	struct snap_memory_loc loc;
	snap_memory(s, &loc);
	json_object *m = json_object_new_object();
	json_object_object_add(m, "external", json_object_new_boolean(loc.external));
	if (loc.external)
		json_object_object_add(m, "path", json_object_new_string(loc.path));
	else
		json_object_object_add(m, "offset", json_object_new_uint64(loc.offset));
	json_object_object_add(m, "size", json_object_new_uint64(loc.size));
	json_object_object_add(root, "memory", m);
	json_object *secs = json_object_new_array();
	for (size_t i = 0; i < snap_section_count(s); i++)
		json_object_array_add(secs, section_json(snap_section_at(s, i)));
	json_object_object_add(root, "sections", secs);
	puts(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
						      JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(root);
	snap_close(s);
	return 0;
}

static void report_line(void *opaque, const char *msg)
{
	int *bad = opaque;
	printf("FAIL %s\n", msg);
	(*bad)++;
}

/* The VMM's sections, checked by the VMM's own decoders (each device's in its file):
 * see snap_check in restore/snapshot.h for the contract of a checker. */
static const struct snap_checker device_checkers[] = {
    {"device.", vm_snapshot_check_section},
    {"machine", vm_snapshot_check_section},
    {"vmgenid", vm_snapshot_check_section},
};

static bool device_checked(const char *name)
{
	for (size_t i = 0; i < sizeof(device_checkers) / sizeof(device_checkers[0]); i++)
		if (device_checkers[i].prefix &&
		    !strncmp(name, device_checkers[i].prefix, strlen(device_checkers[i].prefix)))
			return true;
	return false;
}

static int verify(const char *path)
{
	struct snap *s;
	char err[512];
	int bad = 0;
	/* Header, table and bounds are checked by the open itself: without them nothing
	 * else can be located. Section checksums are checked one by one below, so every
	 * damaged section is named, not just the first. */
	int r =
	    snap_open_flags(path, SNAP_OPEN_NO_SECTION_CRC | SNAP_OPEN_DIFF, &s, err, sizeof(err));
	if (r) {
		printf("FAIL %s\n", err);
		return 1;
	}
	printf("ok   header and section table (%zu sections)\n", snap_section_count(s));
	for (size_t i = 0; i < snap_section_count(s); i++) {
		const struct snap_section *sec = snap_section_at(s, i);
		if (!sec->data)
			continue;
		if (snap_section_verify(sec, err, sizeof(err))) {
			printf("FAIL %s\n", err);
			bad++;
		} else {
			printf("ok   section '%s' (%llu bytes)\n", sec->name,
			       (unsigned long long)sec->size);
		}
	}
	/* Decoding: every section the restore path reads, as it reads it. */
	size_t decoded = 0;
	int before = bad;
	snap_check(s, device_checkers, sizeof(device_checkers) / sizeof(device_checkers[0]),
		   report_line, &bad, &decoded);
	if (bad == before)
		printf("ok   %zu sections decoded and checked as a restore would\n", decoded);
	for (size_t i = 0; i < snap_section_count(s); i++) {
		const struct snap_section *sec = snap_section_at(s, i);
		if (!strncmp(sec->name, "device.", 7) && !device_checked(sec->name))
			printf("note section '%s': only its placement is checked here; the VMM "
			       "checks the device's own state when it restores\n",
			       sec->name);
	}
	uint64_t chunks = 0;
	r = snap_memory_verify(s, report_line, &bad, &chunks);
	if (r && !bad) {
		printf("FAIL memory: %s\n", strerror(-r));
		bad++;
	}
	if (!r)
		printf("ok   memory (%llu chunks)\n", (unsigned long long)chunks);
	snap_close(s);
	printf("%s: %s\n", path, bad ? "BAD" : "ok: all checksums good, every section decodes");
	return bad ? 1 : 0;
}

static int usage(void)
{
	fprintf(stderr, "usage: thaw-snap inspect FILE\n"
			"       thaw-snap verify FILE\n"
			"       thaw-snap merge BASE DIFF OUT\n");
	return 2;
}

int main(int argc, char **argv)
{
	log_set_prefix("thaw-snap");
	if (argc == 5 && !strcmp(argv[1], "merge")) {
		char err[512];
		int r = snap_merge(argv[2], argv[3], argv[4], err, sizeof(err));
		if (r) {
			fprintf(stderr, "thaw-snap: merge: %s\n", err);
			return 1;
		}
		return 0;
	}
	if (argc != 3)
		return usage();
	if (!strcmp(argv[1], "inspect"))
		return inspect(argv[2]);
	if (!strcmp(argv[1], "verify"))
		return verify(argv[2]);
	return usage();
}
